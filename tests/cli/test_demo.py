"""``ownkey demo`` tells the whole story through the runtime, checks every claim it makes, and
fails loudly (exit 1) when one does not hold."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ownkey.cli import _demo, app

MIB = 1024 * 1024


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("OWNKEY_DATABASE_URL", None)  # the demo never touches a configured database
    return env


@pytest.fixture(scope="module")
def demo_output() -> str:
    """The full demo, as ``make demo`` runs it (200 MiB recording)."""
    result = subprocess.run(
        [sys.executable, "-m", "ownkey", "demo"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_demo_runs_in_under_a_minute_and_says_so(demo_output: str) -> None:
    found = re.search(r"Demo finished in ([0-9.]+) s \(under a minute\): (\d+) claims", demo_output)
    assert found is not None, demo_output[-500:]
    assert float(found.group(1)) < 60
    assert int(found.group(2)) >= 50


def test_two_orgs_with_their_keys_and_licences(demo_output: str) -> None:
    assert re.search(r"│ acme +│ customer:acme \(local", demo_output)
    assert re.search(r"│ globex +│ customer:globex \(local", demo_output)
    assert "cy@globex.test" in demo_output  # the unlicensed one


def test_the_200_mib_recording_is_streamed_in_bounded_memory(demo_output: str) -> None:
    found = re.search(
        r"Sealed 200 MiB into ([0-9,]+) bytes .* peak memory grew by (\d+) MiB", demo_output
    )
    assert found is not None
    assert int(found.group(1).replace(",", "")) > 200 * MIB
    assert int(found.group(2)) < _demo.MEMORY_BOUND_MIB
    for line in (100 * MIB // 64 - 2, 100 * MIB // 64 - 1, 100 * MIB // 64):
        assert f"frame {line:09d} | all-hands recording" in demo_output
    assert "the whole recording opens to the same SHA-256" in demo_output
    assert "the range read is refused (InvalidCiphertext" in demo_output


def test_plans_per_asset(demo_output: str) -> None:
    for asset, keys in (
        ("cross-org chat ann(acme) <-> bo(globex)", "customer:acme + customer:globex"),
        ("chat cy(globex, unlicensed) <-> al(acme)", "customer:acme + platform"),
        ("room name-tag photo (9999)", "customer:acme"),
        ("poll in ann's meeting (0001, excluded)", "platform"),
        ("reaction in the chat (0008, excluded)", "platform"),
    ):
        assert re.search(re.escape(asset) + r" +│ " + re.escape(keys) + " ", demo_output), asset


def test_revocation_renders_tombstones_and_is_lifted(demo_output: str) -> None:
    revoked = demo_output.split("5. acme revokes")[1].split("6. acme re-enables")[0]
    assert "tombstone chan-eng message" in revoked
    assert "opens chan-sales message" in revoked
    assert revoked.count("reason revocation_rule") == 5
    restored = demo_output.split("6. acme re-enables")[1].split("7. acme rotates")[0]
    assert "reason disabled" in restored
    assert "opens the cross-org chat" in restored


def test_rotation_rewraps_without_touching_content(demo_output: str) -> None:
    rotation = demo_output.split("7. acme rotates")[1].split("8. The audit chain")[0]
    found = re.search(r"SHA-256 before and after: ([0-9a-f]{16})\.\.\. = ([0-9a-f]{16})", rotation)
    assert found is not None
    assert found.group(1) == found.group(2)
    assert "all now under v2" in rotation
    assert "opens the recording range (unchanged bytes)" in rotation


def test_audit_chains_verify(demo_output: str) -> None:
    assert len(re.findall(r"│ acme +│ \d+ +│ \d+ +│ OK", demo_output)) == 2


def test_crypto_shredding_is_final(demo_output: str) -> None:
    shred = demo_output.split("9. acme crypto-shreds")[1]
    assert "Destroying now is refused" in shred
    assert "scope keys crypto-shredded" in shred
    assert (
        "the recording, after a restart: content unavailable (AccessDenied, reason destroyed)"
        in shred
    )
    assert "opens the poll (platform key)" in shred


def test_demo_exits_1_when_a_claim_does_not_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_demo, "_expected", lambda start, end: b"not the original bytes")
    result = CliRunner().invoke(app, ["demo", "--recording-mib", "1"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "FAILED: the ranged read differs from the original" in result.output


def test_demo_with_home_keeps_its_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWNKEY_DATABASE_URL", "recorded")  # so that monkeypatch restores it
    monkeypatch.delenv("OWNKEY_DATABASE_URL")
    home = tmp_path / "demo-home"
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--home", str(home), "--recording-mib", "1"])
    assert result.exit_code == 0, result.output
    assert f"ownkey --home {home} coverage acme" in result.output
    monkeypatch.setenv("OWNKEY_HOME", str(home))
    coverage = runner.invoke(app, ["coverage", "acme", "--json"])
    assert coverage.exit_code == 0, coverage.output
    report = json.loads(coverage.stdout)
    assert report["key"]["state"] == "destroyed"
    assert report["services"][0]["scope_keys"]["shredded"] == 1
    again = runner.invoke(app, ["demo", "--home", str(home)])
    assert again.exit_code == 2
    assert again.stderr.strip() == f"ownkey: --home {home} is not empty; the demo needs a new home"
