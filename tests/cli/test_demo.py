"""``ownkey demo`` runs end to end, shows what it claims, and fails loudly when a claim breaks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ownkey.cli import _demo, app
from ownkey.envelope import DEFAULT_SEGMENT_SIZE, MESSAGE_FIXED_OVERHEAD, sealed_size

MIB = 1024 * 1024
KEY_ID_LEN = len(b"demo-scope-key")


@pytest.fixture(scope="module")
def demo_output() -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(
        [sys.executable, "-m", "ownkey", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_demo_seals_and_opens_a_chat_message(demo_output: str) -> None:
    assert "material=<redacted>" in demo_output
    overhead = KEY_ID_LEN + MESSAGE_FIXED_OVERHEAD
    parts = f"{KEY_ID_LEN} (scope key id) + {MESSAGE_FIXED_OVERHEAD}"
    assert f"overhead     {overhead} bytes = {parts}" in demo_output
    assert "Opened the message with the same key and context: it matches." in demo_output


def test_demo_seals_a_64_mib_stream_and_reads_a_range_back(demo_output: str) -> None:
    sealed = sealed_size(64 * MIB, key_id_len=KEY_ID_LEN)
    assert f"Sealed 64 MiB into {sealed:,} bytes" in demo_output
    # The range is three 64-byte lines straddling the boundary in the middle of the stream.
    segments, middle = 64 * MIB // DEFAULT_SEGMENT_SIZE, 32 * MIB // DEFAULT_SEGMENT_SIZE
    assert (
        f"the stream has {segments} segments of {DEFAULT_SEGMENT_SIZE // 1024} KiB; "
        f"ownkey decrypted segments {middle - 1}-{middle}"
    ) in demo_output
    for line in (32 * MIB // 64 - 2, 32 * MIB // 64 - 1, 32 * MIB // 64):
        assert f"frame {line:09d} | all-hands recording" in demo_output
    assert "The range matches the original bytes." in demo_output


def test_demo_shows_every_bad_open_refused_with_one_error(demo_output: str) -> None:
    for attempt in (
        "another key of the same id",
        "a wrong context (org=globex)",
        "the message with a single tampered byte",
        "the recording with a wrong context",
        "the recording's range with a single tampered byte",
    ):
        line = next(line for line in demo_output.splitlines() if attempt in line)
        assert line.endswith("refused with InvalidCiphertext")
    assert "All 5 refused with the same error (InvalidCiphertext: invalid ciphertext)" in (
        demo_output
    )
    assert "Demo finished" in demo_output


def test_demo_exits_1_when_a_claim_does_not_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong_range(*args: object, **kwargs: object) -> bytes:
        return b"not the original bytes"

    monkeypatch.setattr(_demo, "open_range", wrong_range)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 1
    assert "FAILED: the ranged read differs from the original" in result.output
