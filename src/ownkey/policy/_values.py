"""The one set of rules for values that arrive from outside: times, durations, ids, services.

The CLI, the REST API and the service layer all call these functions, so a value is accepted
or refused the same way wherever it arrives; a refusal is :class:`~ownkey.errors.InvalidRequest`
naming the field (exit 2 on the CLI, HTTP 422 on the API). They are checked *before* anything
is stored: a rule with a time nobody can print would make every later listing fail.

- **Time**: Unix seconds, finite, from 1970-01-01 to 9999-12-31T23:59:59Z (the range every
  printer and database of the project handles). The CLI also takes ISO 8601. Revocation rules
  and the audit export use this one unit; a number of milliseconds by mistake is out of range
  and said so.
- **Duration**: seconds (or ``90s``, ``15m``, ``24h``, ``7d`` on the CLI), finite, above 0 and
  at most 3650 days.
- **Id** (a scope, an asset or object id, a component, an org as an asset names it): 1 to 256
  characters of valid Unicode without control characters; they are bound into encryption
  contexts (UTF-8, at most 1024 bytes), so a lone surrogate or a NUL is refused here rather than
  failing deep inside.
- **Org name**: letters, digits, ``.``, ``_``, ``-``; at most 128, starting with a letter or digit.
- **Service id**: one of the catalog's service IDs.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata

from ownkey.catalog import SERVICE_IDS
from ownkey.errors import InvalidRequest

__all__ = [
    "MAX_DURATION",
    "MAX_ID_CHARS",
    "MAX_TIME",
    "MIN_TIME",
    "check_duration",
    "check_id",
    "check_org",
    "check_service_id",
    "check_time",
    "check_window",
    "parse_duration",
    "parse_time",
]

#: 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds.
MIN_TIME = 0.0
MAX_TIME = 253_402_300_799.0
#: The longest duration accepted anywhere (a destruction waiting period, a re-check): 3650 days.
MAX_DURATION = 3650 * 86_400.0
#: Ids are bound into contexts whose values hold 1024 bytes: 256 characters fit in any UTF-8.
MAX_ID_CHARS = 256

_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_DURATION = re.compile(r"(\d{1,30}(?:\.\d{1,9})?)([smhd]?)\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(field, "must be a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        raise InvalidRequest(field, "out of range") from None
    if not math.isfinite(number):
        raise InvalidRequest(field, "must be a finite number")
    return number


def check_time(field: str, value: object) -> float:
    """``value`` as Unix seconds within 1970..9999; InvalidRequest otherwise."""
    seconds = _number(field, value)
    if seconds < MIN_TIME:
        raise InvalidRequest(field, "before 1970-01-01: give Unix seconds or an ISO 8601 time")
    if seconds > MAX_TIME:
        hint = " (this looks like milliseconds)" if seconds / 1000 <= MAX_TIME else ""
        raise InvalidRequest(field, f"after 9999-12-31: times are Unix seconds{hint}")
    return seconds


def parse_time(field: str, text: str) -> float:
    """Unix seconds from ``2026-11-01``, ``2026-11-01T10:00:00Z`` or a number of seconds."""
    stripped = text.strip()
    try:
        number = float(stripped)
    except ValueError:
        pass
    else:
        return check_time(field, number)
    try:
        parsed = dt.datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(field, "an ISO 8601 time or Unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        seconds = parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        raise InvalidRequest(field, "out of range") from None
    return check_time(field, seconds)


def check_window(since: float | None, until: float | None, field: str = "until") -> None:
    """A window, when both ends are given, ends after it starts."""
    if since is not None and until is not None and until <= since:
        raise InvalidRequest(field, "must be after since")


def check_duration(field: str, value: object, *, minimum: float = 0.0) -> float:
    """``value`` as seconds, finite, above ``minimum`` (0: strictly positive) and at most
    :data:`MAX_DURATION`."""
    seconds = _number(field, value)
    if seconds <= 0 or seconds < minimum:
        floor = f"at least {minimum:g} s" if minimum > 0 else "above 0"
        raise InvalidRequest(field, f"{floor}, not {seconds:g} s")
    if seconds > MAX_DURATION:
        raise InvalidRequest(field, f"at most 3650 days, not {seconds:g} s")
    return seconds


def parse_duration(field: str, text: str, *, minimum: float = 0.0) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``24h``, ``7d``."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise InvalidRequest(field, "a duration like 3600, 15m, 24h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    return check_duration(field, seconds, minimum=minimum)


def _bad_char(value: str) -> str | None:
    for char in value:
        if 0xD800 <= ord(char) <= 0xDFFF:
            return "must be valid Unicode (a lone surrogate)"
        if unicodedata.category(char) == "Cc":
            return "must not contain control characters"
    return None


def check_id(field: str, value: object) -> str:
    """An id: 1..256 characters of valid Unicode, no control character (NUL included)."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(field, "required, a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise InvalidRequest(field, f"at most {MAX_ID_CHARS} characters")
    if not value.isprintable() or not value.isascii():  # the fast path skips plain ASCII ids
        problem = _bad_char(value)
        if problem is not None:
            raise InvalidRequest(field, problem)
    return value


#: The longest free-text note (a revocation rule's, a token's).
MAX_NOTE_CHARS = 1000


def check_note(field: str, value: object) -> str:
    """A free-text note: at most :data:`MAX_NOTE_CHARS` printable characters. Spaces and any
    script are fine; a control character is not: a note is shown in other people's terminals
    and pages (an ESC sequence in a tenant's rule note cleared the operator's screen in
    ``ownkey revoke list``), and a lone surrogate cannot be stored."""
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be text")
    if len(value) > MAX_NOTE_CHARS:
        raise InvalidRequest(field, f"at most {MAX_NOTE_CHARS} characters")
    if not value.isprintable():
        problem = _bad_char(value) or "must not contain control characters (tabs, line breaks)"
        raise InvalidRequest(field, problem)
    return value


def check_org(field: str, value: object) -> str:
    """An org name: letters, digits, ``.``, ``_``, ``-``; at most 128; a letter or digit first."""
    if not isinstance(value, str) or not _ORG.match(value):
        shown = value if isinstance(value, str) and value.isprintable() else "this value"
        raise InvalidRequest(
            field,
            f"{shown!r} is not an org name (letters, digits, '.', '_', '-'; at most 128 "
            "characters, starting with a letter or digit)",
        )
    return value


def check_service_id(field: str, value: object) -> str:
    """One of the catalog's service IDs (``0001`` .. ``9999`` as the seed lists them)."""
    if not isinstance(value, str) or value not in SERVICE_IDS:
        shown = value if isinstance(value, str) and value.isprintable() else "this value"
        raise InvalidRequest(field, f"unknown service ID {shown!r}")
    return value
