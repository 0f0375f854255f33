"""Every ``sh`` block of README.md runs as written (issue 14): a new user copies them literally.

Each block runs as one ``bash -euo pipefail`` script in a fresh directory with a fresh
``OWNKEY_HOME``, ``ownkey`` on ``PATH`` (this interpreter's), and a real PyKMIP server for the
KMIP lines. Only the placeholders the README documents are filled: ``$KMIP_HOST``,
``$KMIP_PORT``, ``$KMIP_KEY_ID`` and the PEM files ``client.pem``, ``client.key`` and
``kmip-ca.pem``; and port 8000 becomes a free port, so that the test never meets another
listener. A block fails the test on the first command that exits non-zero.

Not run, on purpose: the two set-up blocks (``make demo``, ``make test``; the venv or pipx), which
would recurse into the suite itself; ``tests/test_wheel.py`` builds, installs and runs the
package instead, and ``tests/cli/test_demo.py`` runs the demo.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.providers import _servers

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: Blocks about installing ownkey itself (see the module docstring).
_SET_UP = re.compile(r"^make (demo|test)|^\. \.venv/bin/activate", re.MULTILINE)
PLACEHOLDERS = (
    "$KMIP_HOST",
    "$KMIP_PORT",
    "$KMIP_KEY_ID",
    "client.pem",
    "client.key",
    "kmip-ca.pem",
)
BLOCK_TIMEOUT = 300.0
#: What a block's output must show besides a zero exit: the README's claims about it.
_CLAIMS = {
    "ownkey serve": (
        '"protection":{"protection":"customer","keys":["customer:acme"]',  # the recording
        '"reason":"revocation_rule"',  # the tombstone after the revocation
    ),
    "ownkey policy explain": ('"protection": "customer"', "registered customer:globex"),
}


def sh_blocks() -> list[str]:
    return _FENCE.findall(README.read_text(encoding="utf-8"))


def runnable_blocks() -> list[str]:
    return [block for block in sh_blocks() if not _SET_UP.search(block)]


def _first_line(block: str) -> str:
    return next(line for line in block.splitlines() if line.strip() and not line.startswith("#"))


@dataclass(frozen=True)
class Kmip:
    server: _servers.KmipServer
    key_id: str


@pytest.fixture(scope="module")
def kmip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kmip]:
    from ownkey.providers import KmipProvider

    with _servers.kmip_server(tmp_path_factory.mktemp("kmip")) as server:
        provider = KmipProvider(
            host=server.host,
            port=server.port,
            certfile=str(server.pki.client_cert),
            keyfile=str(server.pki.client_key),
            ca_file=str(server.pki.ca),
        )
        try:
            key_id = provider.create_key(label="globex")
        finally:
            provider.close()
        yield Kmip(server, key_id)


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    blocks = sh_blocks()
    assert len(blocks) >= 3
    # only the two set-up blocks (make demo/test; the venv or pipx) are skipped
    assert len(blocks) - len(runnable_blocks()) == 2
    text = README.read_text(encoding="utf-8")
    for placeholder in PLACEHOLDERS:
        assert f"`{placeholder}`" in text, f"README does not document {placeholder}"


def _shim(directory: Path) -> Path:
    """A directory holding ``ownkey``: this interpreter running this checkout's package."""
    directory.mkdir()
    script = directory / "ownkey"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ownkey "$@"\n')
    script.chmod(0o755)
    return directory


def _fill(block: str, port: int) -> str:
    return block.replace("8000", str(port))


@pytest.mark.slow  # about 30 ownkey processes and a server, a real KMIP key manager
@pytest.mark.parametrize(
    "block", runnable_blocks(), ids=lambda block: _first_line(block)[:40].strip()
)
def test_readme_block_runs_as_written(block: str, tmp_path: Path, kmip: Kmip) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name, source in (
        ("client.pem", kmip.server.pki.client_cert),
        ("client.key", kmip.server.pki.client_key),
        ("kmip-ca.pem", kmip.server.pki.ca),
    ):
        shutil.copy(source, work / name)
    bin_dir = _shim(tmp_path / "bin")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "OWNKEY_HOME": str(tmp_path / "home"),
        "KMIP_HOST": kmip.server.host,
        "KMIP_PORT": str(kmip.server.port),
        "KMIP_KEY_ID": kmip.key_id,
        "NO_COLOR": "1",
    }
    env.pop("OWNKEY_DATABASE_URL", None)
    script = tmp_path / "block.sh"
    script.write_text("set -euo pipefail\n" + _fill(block, _servers.free_port()))
    out = tmp_path / "out.log"
    with out.open("wb") as log:
        # Its own session, so that a server the block starts in the background is stopped too.
        process = subprocess.Popen(
            ["bash", str(script)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT)
        finally:
            _stop_group(process.pid)
    output = out.read_text(errors="replace")
    assert code == 0, f"README block failed (exit {code}):\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    for marker, claims in _CLAIMS.items():
        if marker in block:
            for claim in claims:
                assert claim in output, f"{claim!r} not in the output:\n{output[-4000:]}"


def _stop_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
