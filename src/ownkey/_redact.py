"""Credentials never reach a log line: the redaction every server of ownkey logs through.

Why: a client that puts its token in a URL (``?token=okt_...``) is refused, but uvicorn's access
log wrote the request line in full, so the token sat in a file any operator (or log shipper)
reads (issue 23). Refusing is not enough: whatever a client sends, the node must not write it
down. The same holds for an ``Authorization`` or ``Cookie`` header that reaches a log at
``--log-level trace``, a password in a database URL inside a traceback, and an IdP's JWT.

:func:`redact` rewrites one text; :class:`RedactingFilter` applies it to a log record's message,
arguments, traceback and stack (a handler filter, so it also sees records propagated from other
loggers); :func:`uvicorn_log_config` is uvicorn's own logging configuration with the filter on
every handler, and the root logger routed through it too (ownkey's own loggers, SQLAlchemy's).

A leaf: imports only the standard library, so the API, the CLI and the customer-run hybrid key
service (which may not import the platform's packages) share it.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from typing import Any, Final

__all__ = ["REDACTED", "RedactingFilter", "redact", "uvicorn_log_config"]

REDACTED: Final = "[redacted]"

#: Names of query parameters (and form fields in a logged URL) whose value is a credential.
_SECRET_WORDS = r"token|secret|passw|pwd|key|credential|auth|sign|session|cookie|code"  # noqa: S105
_NAME_CHAR = r"[^=&;\s\"'#?]"
_B64URL = r"[A-Za-z0-9_-]"

_OKT_ID = re.compile(r"okt_[0-9a-f]{16}\.")


def _okt(token: str) -> str:
    """An ownkey token keeps its public id (``okt_<id>.``, the row to look up), not its secret."""
    kept = _OKT_ID.match(token)
    return f"{kept.group(0) if kept else 'okt_'}{REDACTED}"


#: Every rule runs in time linear in the text (a log line can be a 16 KiB request line of the
#: client's choosing): runs are matched possessively (``*+``), and a rule that could fail after
#: a long run starts only where the run starts (a lookbehind), never inside it again.
_RULES: Final[tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...]] = (
    # ?token=... &access_token=... ;api_key=... (any case, any position in a query)
    (
        re.compile(
            rf"(?i)([?&;](?={_NAME_CHAR}*?(?:{_SECRET_WORDS})){_NAME_CHAR}*+=)[^&;\s\"'#]*+"
        ),
        rf"\g<1>{REDACTED}",
    ),
    # ownkey's tokens anywhere: okt_<public id>.<secret> keeps its id (the row), not the secret
    (re.compile(r"\bokt_[A-Za-z0-9._~+/=-]++"), lambda found: _okt(found.group(0))),
    # a JWT (IdP sign-in tokens, grants): header.payload.signature, base64url
    (
        re.compile(rf"(?<![A-Za-z0-9_-])eyJ{_B64URL}*+\.{_B64URL}++\.{_B64URL}*+"),
        REDACTED,
    ),
    # Authorization: Bearer ... / Basic ...
    (
        re.compile(r"(?i)\b(bearer|basic|digest)[ \t]++[A-Za-z0-9._~+/=\[\]-]++"),
        rf"\g<1> {REDACTED}",
    ),
    # headers as uvicorn's trace log prints them: (b'authorization', b'...'), (b'cookie', b'...')
    (
        re.compile(
            r"(?i)(b?['\"](?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key|"
            r"x-auth-token)['\"],[ \t]*+b?['\"])[^'\"]*+"
        ),
        rf"\g<1>{REDACTED}",
    ),
    # headers as text: Authorization: ..., Cookie: ...
    (
        re.compile(
            r"(?im)^([ \t]*+(?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key|x-auth-token)"
            r"[ \t]*+:[ \t]*+)[^\r\n]+"
        ),
        rf"\g<1>{REDACTED}",
    ),
    # the console's cookies wherever they appear
    (re.compile(r"(?i)\b(ownkey_console|ownkey_signin)=[^;\s\"',]++"), rf"\g<1>={REDACTED}"),
    # a password in a URL: scheme://user:password@host
    (
        re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*+://[^/\s:@'\"]*+:)[^@/\s'\"]++@"),
        rf"\g<1>{REDACTED}@",
    ),
)


def redact(text: str) -> str:
    """``text`` with every credential it shows replaced by ``[redacted]``."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def _redacted(value: object) -> object:
    """A log argument, redacted; numbers stay numbers (``%d`` formats them)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray | dict | list | tuple | set | frozenset):
        return redact(str(value))  # their str is their repr: %s and %r print the same
    return value


class RedactingFilter(logging.Filter):
    """Redacts a record in place (message, arguments, traceback, stack); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = "ownkey_redact"


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with :class:`RedactingFilter` on every handler, the
    root logger (ownkey's loggers, SQLAlchemy's) through the same redacting handler."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {_FILTER: {"()": f"{__name__}.RedactingFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), _FILTER]
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
