"""``ownkey serve``'s log lines (issue 28, item 6): one line per event with an ISO 8601 time, the
request's id in every line of the request, JSON on request, never a credential.

The served cases run a real ``ownkey serve`` and read what it wrote; the verdict is in the text
of the lines, never in how long anything took.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ownkey._logs import REQUEST_ID, JsonFormatter, TextFormatter, accept_request_id, log_config
from ownkey._redact import RedactingFilter
from ownkey.storage import Database

ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
SECRET = "okt_0123456789abcdef.cXVlcnktc2VjcmV0LXF1ZXJ5LXNlY3JldC1xdWVyeS1zZWM"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, *args: str, env_format: str | None = None) -> tuple[str, str]:
    """Run ``ownkey serve``, send the requests of these tests, stop it: (stdout, stderr)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    env["OWNKEY_HOME"] = str(home)
    if env_format is not None:
        env["OWNKEY_LOG_FORMAT"] = env_format
    Database.open(f"sqlite:///{home / 'ownkey.db'}").close()  # serve does not migrate
    server = subprocess.Popen(
        [sys.executable, "-m", "ownkey", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a ceiling only: the verdict is in the log's text
        while True:
            assert server.poll() is None, server.communicate()
            try:
                if httpx.get(f"{base}/livez", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ownkey serve never answered"
            time.sleep(0.1)
        answer = httpx.get(f"{base}/readyz", headers={"X-Request-Id": "probe-42"})
        assert answer.headers["X-Request-Id"] == "probe-42"
        refused = httpx.get(f"{base}/v1/orgs/acme/key", params={"token": SECRET})
        assert 400 <= refused.status_code < 500  # refused
        assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["X-Request-Id"])
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert SECRET.split(".")[-1] not in out + err
    return out, err


def test_serve_json_lines_carry_the_time_and_the_request_id(tmp_path: Path) -> None:
    out, err = _serve(tmp_path, "--log-format", "json")
    entries = []
    for line in (out + err).splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))  # every JSON line is a whole JSON object
    assert entries
    for entry in entries:
        assert re.fullmatch(ISO, entry["time"])
        assert entry["level"]
        assert entry["logger"]
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    [ready] = [e for e in access if e["path"] == "/readyz"]
    assert ready["request_id"] == "probe-42"
    assert ready["method"] == "GET"
    assert ready["status"] == 200
    [refused] = [e for e in access if e["path"].startswith("/v1/orgs/acme/key")]
    assert refused["path"] == "/v1/orgs/acme/key?token=[redacted]"
    assert re.fullmatch(r"[0-9a-f]{32}", refused["request_id"])
    startup = [e for e in entries if e["logger"] == "uvicorn.error"]
    assert startup  # not a request's: no request id
    assert all("request_id" not in e for e in startup)


def test_serve_text_lines_start_with_an_iso_time_and_name_the_request(tmp_path: Path) -> None:
    out, err = _serve(tmp_path, env_format="text")
    lines = [line for line in (out + err).splitlines() if re.match(ISO, line)]
    [ready] = [line for line in lines if '"GET /readyz' in line]
    assert re.match(rf"{ISO} INFO uvicorn\.access \[rid=probe-42\] ", ready)
    assert any("uvicorn.error" in line for line in lines)


def test_the_log_format_comes_from_the_environment_too(tmp_path: Path) -> None:
    out, err = _serve(tmp_path, env_format="json")
    assert any(line.startswith('{"time"') for line in (out + err).splitlines())


def test_an_unknown_log_format_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ownkey", "serve", "--log-format", "xml"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OWNKEY_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 2
    assert "xml" in done.stderr


# -- the formatters alone ------------------------------------------------------------------------


def _record(name: str, msg: str, args: tuple[object, ...], exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"failed with Bearer {SECRET}\nsecond line")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)
    RedactingFilter().filter(record)
    return record


def test_a_traceback_stays_on_one_line_and_redacted() -> None:
    record = _record("ownkey.api", "boom %s", ("x",), exc=True)
    token = REQUEST_ID.set("rid-1")
    try:
        text = TextFormatter().format(record)
        entry = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in text
    assert "[rid=rid-1] boom x" in text
    assert "second line" in text
    assert entry["request_id"] == "rid-1"
    assert "RuntimeError" in entry["exception"]
    assert SECRET.split(".")[-1] not in text + entry["exception"]


def test_log_config_is_uvicorns_with_redaction_and_one_formatter() -> None:
    config = log_config("json")
    assert {f["()"] for f in config["formatters"].values()} == {"ownkey._logs.JsonFormatter"}
    assert all("ownkey_redact" in h["filters"] for h in config["handlers"].values())
    with pytest.raises(ValueError, match="log format"):
        log_config("xml")
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        logging.getLogger("uvicorn.error").warning("a %s", "warning")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert json.loads(stream.getvalue())["message"] == "a warning"


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("-lead", False), ("a b", False)],
)
def test_which_request_ids_are_kept(given: str, kept: bool) -> None:
    assert (accept_request_id(given) == given) is kept
