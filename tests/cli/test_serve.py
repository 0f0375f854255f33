"""``ownkey serve`` refuses to start on an unreachable database with one line, no secret, and
writes no credential to its logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ownkey.storage import Database


def test_serve_on_an_unreachable_database_says_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {
        **os.environ,
        "OWNKEY_HOME": str(home),
        "OWNKEY_DATABASE_URL": "postgresql+psycopg://ownkey:hunter2-secret@127.0.0.1:1/ownkey",
    }
    done = subprocess.run(
        [sys.executable, "-m", "ownkey", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ownkey: the database failed")
    assert "hunter2" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_writes_no_credential_to_any_log_line(tmp_path: Path) -> None:
    """Issue 23: a token in a URL query was refused (401) but written in full to the access log;
    at ``--log-level trace`` uvicorn also logs every header. No line may show a credential."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    env["OWNKEY_HOME"] = str(home)
    secrets = {
        "query": "okt_0123456789abcdef.cXVlcnktc2VjcmV0LXF1ZXJ5LXNlY3JldC1xdWVyeS1zZWM",
        "access": "access-hunter2",
        "bearer": "okt_fedcba9876543210.YmVhcmVyLXNlY3JldC1iZWFyZXItc2VjcmV0LWJlYXJlci1zZW",
        "cookie": "cookie-hunter2-session",
    }
    Database.open(f"sqlite:///{home / 'ownkey.db'}").close()  # serve does not migrate
    server = subprocess.Popen(
        [sys.executable, "-m", "ownkey", "serve", "--port", str(port), "--log-level", "trace"],
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
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ownkey serve never answered"
            time.sleep(0.1)
        refused = httpx.get(
            f"{base}/v1/orgs/acme/key",
            params={"token": secrets["query"], "access_token": secrets["access"]},
        )
        assert 400 <= refused.status_code < 500  # refused
        bearer = httpx.get(
            f"{base}/v1/orgs/acme/key", headers={"Authorization": f"Bearer {secrets['bearer']}"}
        )
        assert bearer.status_code == 401
        httpx.get(f"{base}/admin/signin", headers={"Cookie": f"ownkey_console={secrets['cookie']}"})
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    logged = out + err
    assert "/v1/orgs/acme/key?token=[redacted]&access_token=[redacted]" in logged  # the line
    for name, secret in secrets.items():
        assert secret.split(".")[-1] not in logged, name


@pytest.mark.parametrize("workers", [1, 2])
def test_every_way_serve_starts_uvicorn_logs_through_the_redacting_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """One worker or many (each child configures logging from the same dict): the redacting
    configuration is handed to uvicorn either way."""
    import uvicorn

    from ownkey.cli import _serve

    started: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: started.append(kwargs))
    monkeypatch.setenv("OWNKEY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    monkeypatch.setenv(_serve._RECHECK_ENV, "1.0")  # restored after: workers > 1 sets it
    Database.open(f"sqlite:///{tmp_path / 'home' / 'ownkey.db'}").close()  # serve checks it
    _serve.serve(port=8000, workers=workers)
    [kwargs] = started
    config = kwargs["log_config"]
    assert isinstance(config, dict)
    assert all("ownkey_redact" in handler["filters"] for handler in config["handlers"].values())
