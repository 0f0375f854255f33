"""Every ``console-test`` block of docs/operations.md runs as written (issue 28 item 7), the way
``tests/test_readme.py`` runs the README's ``sh`` blocks: one ``bash -euo pipefail`` script per
block in a fresh directory with a fresh ``OWNKEY_HOME``, ``ownkey`` on ``PATH`` (this
interpreter's), and the ports 8000-8002 replaced by free ones. Blocks fenced plainly are not run;
the document says why for each (a PostgreSQL with a certificate, say)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.providers import _servers
from tests.test_readme import _stop_group

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
_FENCE = re.compile(r"^```console-test\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PORTS = ("8000", "8001", "8002")
BLOCK_TIMEOUT = 180.0


def blocks() -> list[str]:
    return _FENCE.findall(DOC.read_text(encoding="utf-8"))


def _first_line(block: str) -> str:
    return next(line for line in block.splitlines() if line.strip() and not line.startswith("#"))


def test_the_serving_section_has_its_blocks() -> None:
    found = blocks()
    assert any("FORWARDED_ALLOW_IPS" in block for block in found)
    assert any("node-b" in block for block in found)


def _fill(block: str) -> str:
    for port in _PORTS:
        block = re.sub(rf"\b{port}\b", str(_servers.free_port()), block)
    return block


@pytest.mark.slow  # ownkey processes and two servers per block
@pytest.mark.parametrize("block", blocks(), ids=lambda block: _first_line(block)[:40].strip())
def test_operations_block_runs_as_written(block: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "ownkey"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ownkey "$@"\n')
    shim.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "OWNKEY_HOME": str(tmp_path / "home"),
        "NO_COLOR": "1",
    }
    env.pop("FORWARDED_ALLOW_IPS", None)
    script = tmp_path / "block.sh"
    script.write_text("set -euo pipefail\n" + _fill(block))
    out = tmp_path / "out.log"
    with out.open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(script)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a server the block starts in the background stops too
        )
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT)
        finally:
            _stop_group(process.pid)
    output = out.read_text(errors="replace")
    assert code == 0, f"operations.md block failed (exit {code}):\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
