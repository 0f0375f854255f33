"""Issue 23: a token sent in a URL query was refused but written in full to the access log.
:func:`ownkey._redact.redact` and the filter every server logs through keep credentials out."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ownkey._redact import REDACTED, RedactingFilter, redact, uvicorn_log_config

TOKEN = "okt_0123456789abcdef.c2VjcmV0LXRva2VuLXRleHQtdGhhdC1pcy00My1jaGFy"
SECRET = "c2VjcmV0LXRva2VuLXRleHQtdGhhdC1pcy00My1jaGFy"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXNlY3JldA"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f'GET /v1/orgs/acme/key?token={TOKEN} HTTP/1.1" 401', SECRET),
        ("GET /x?access_token=hunter2-value&limit=5", "hunter2-value"),
        ("GET /x?limit=5&API_KEY=hunter2-value", "hunter2-value"),
        ("GET /x?a=1;client_secret=hunter2-value", "hunter2-value"),
        ("GET /x?password=hunter2-value#frag", "hunter2-value"),
        ("GET /cb?code=hunter2-value&state=s", "hunter2-value"),
        (f"GET /x?q={TOKEN}", SECRET),  # a token under any name
        ("GET /x?q=okt_not-a-well-formed-token-hunter2", "hunter2"),
        (f"ASGI [3] Receive {{'headers': [(b'authorization', b'Bearer {TOKEN}')]}}", SECRET),
        ("[(b'cookie', b'ownkey_console=hunter2-session; other=1')]", "hunter2-session"),
        ("(b'x-api-key', b'hunter2-value')", "hunter2-value"),
        ("Authorization: Basic aHVudGVyMi12YWx1ZQ==", "aHVudGVyMi12YWx1ZQ"),
        (f"the IdP said {JWT}", "c2lnbmF0dXJlLXNlY3JldA"),
        ("postgresql+psycopg://ownkey:hunter2-value@db:5432/ownkey", "hunter2-value"),
        ("Set-Cookie: ownkey_signin=hunter2-value; Path=/admin", "hunter2-value"),
    ],
)
def test_a_credential_never_survives_redaction(line: str, secret: str) -> None:
    redacted = redact(line)
    assert secret not in redacted
    assert REDACTED in redacted


def test_redaction_keeps_what_an_operator_needs() -> None:
    assert redact(f"?token={TOKEN}") == f"?token={REDACTED}"
    assert redact(f"Bearer {TOKEN}") == f"Bearer {REDACTED}"
    assert redact(TOKEN) == f"okt_0123456789abcdef.{REDACTED}"  # the public id stays
    plain = '127.0.0.1:5000 - "GET /v1/objects?org=acme&limit=10&after=m-1 HTTP/1.1" 200'
    assert redact(plain) == plain
    assert (
        redact("postgresql+psycopg://ownkey@db/ownkey") == "postgresql+psycopg://ownkey@db/ownkey"
    )


def test_the_filter_redacts_arguments_tracebacks_and_keeps_numbers() -> None:
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        record = logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:1", "GET", f"/v1/x?token={TOKEN}", "1.1", 401),
            exc_info=sys.exc_info(),
        )
    assert RedactingFilter().filter(record) is True
    assert record.args == ("127.0.0.1:1", "GET", f"/v1/x?token={REDACTED}", "1.1", 401)
    text = logging.Formatter("%(message)s").format(record)
    assert SECRET not in text
    assert "ValueError: bad token okt_0123456789abcdef.[redacted]" in text


def test_every_uvicorn_handler_and_the_root_logger_redact() -> None:
    config = uvicorn_log_config()
    assert config["handlers"]  # uvicorn's default and access handlers
    for handler in config["handlers"].values():
        assert "ownkey_redact" in handler["filters"]
    assert config["root"]["handlers"] == ["default"]
    assert config["filters"]["ownkey_redact"]["()"] == "ownkey._redact.RedactingFilter"


def test_a_database_error_shows_no_statement_values(tmp_path: Path) -> None:
    """A SQLAlchemy error's text reaches tracebacks and logs: it never carries the values."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from ownkey.storage import Database

    database = Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}")
    try:
        with pytest.raises(OperationalError) as raised, database.engine.connect() as conn:
            conn.execute(text("SELECT :value FROM no_such_table"), {"value": "hunter2-value"})
    finally:
        database.engine.dispose()
    assert "no_such_table" in str(raised.value)
    assert "hunter2-value" not in str(raised.value)


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "a long query name": lambda n: "/x?" + "token" * (n // 5),
    "many schemes": lambda n: "a." * (n // 2),
    "a JWT start in every word": lambda n: "-eyJ" * (n // 4),
    "blank lines": lambda n: "\n" * n,
    "header names": lambda n: "\n authorization" * (n // 15),
}


def _best_of(times: int, text: str) -> float:
    best = math.inf
    for _ in range(times):
        started = time.perf_counter()
        redact(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("shape", sorted(ADVERSARIAL))
def test_redaction_takes_time_linear_in_the_line(shape: str) -> None:
    """A log line is up to a 16 KiB request line of the client's choosing: a rule that
    backtracks quadratically made 16 KB of ``a.`` cost 0.8 s of the node's CPU per line. The
    verdict is a growth ratio, not a time: 8 times the text costs about 8 times as long when
    linear, 64 times when quadratic (lines that stay under 50 ms in all are fine anyway)."""
    build = ADVERSARIAL[shape]
    small, large = _best_of(5, build(4_000)), _best_of(3, build(32_000))
    assert large < 0.05 or large < 24 * small, (shape, small, large)
