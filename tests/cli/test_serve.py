"""``ownkey serve`` refuses to start on an unreachable database with one line, no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
