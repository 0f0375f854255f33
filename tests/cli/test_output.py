"""Where the output goes is the caller's business: a reader that stops early (``| head``) is not a
failure to report, and an output that cannot be written (``> file`` on a full disk) is one line,
never a traceback. Real processes, real pipes: the behaviour lives in the interpreter's streams.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _ownkey(
    home: Path, *args: str, stdout: Any = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """``ownkey ARGS`` as a real process on ``home``, its output to ``stdout``."""
    env = {**os.environ, "OWNKEY_HOME": str(home)}
    env.pop("OWNKEY_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "ownkey", *args],
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("output")
    created = _ownkey(home, "org", "create", "acme", "--create-key", "--cmk")
    assert created.returncode == 0, created.stderr
    return home


@pytest.mark.parametrize(
    "args",
    [("key", "list", "--json"), ("audit", "export", "acme"), ("org", "show", "acme")],
)
def test_a_reader_that_stops_early_is_not_reported_as_a_failure(
    home: Path, args: tuple[str, ...]
) -> None:
    """``ownkey audit events acme --json | head -1``: the pipe closing is the reader's choice, so
    there is no ``ownkey: a file operation failed: Broken pipe`` on stderr (there was for
    ``audit export``), just click's quiet exit."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: no race
    try:
        done = _ownkey(home, *args, stdout=write_end)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [("key", "list", "--json"), ("audit", "events", "acme", "--json"), ("audit", "verify", "acme")],
)
def test_output_to_a_full_disk_is_one_line(home: Path, args: tuple[str, ...]) -> None:
    """``ownkey key list --json > file`` on a full disk was a 20-frame traceback."""
    with open("/dev/full", "w") as full:
        done = _ownkey(home, *args, stdout=full)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "ownkey: writing the output failed: No space left on device"
    ], done.stderr
