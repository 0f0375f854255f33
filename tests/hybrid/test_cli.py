"""``ownkey hybrid init | revoke | restore | audit verify`` on a home of its own (no server)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from ownkey.cli._hybrid import hybrid_app

runner = CliRunner()


def _init(home: Path) -> None:
    result = runner.invoke(
        hybrid_app,
        [
            "init",
            "--home",
            str(home),
            "--org",
            "acme",
            "--idp",
            "https://idp.acme.example",
            "--platform",
            "https://platform.example/hybrid",
            "--privileged",
            "DPO@acme.example",
        ],
    )
    assert result.exit_code == 0, result.output


def test_init_writes_a_home_once_with_its_own_key(tmp_path: Path) -> None:
    home = tmp_path / "kacls"
    _init(home)
    config = json.loads((home / "hybrid.json").read_text())
    assert config["org"] == "acme"
    assert config["privileged"] == ["dpo@acme.example"]
    assert (home / "keys" / "root.key").stat().st_mode & 0o077 == 0
    again = runner.invoke(
        hybrid_app,
        ["init", "--home", str(home), "--org", "x", "--idp", "i", "--platform", "p"],
    )
    assert again.exit_code == 1
    assert "initialised once" in again.output


def test_revocations_are_audited_and_a_bad_kind_is_bad_input(tmp_path: Path) -> None:
    home = tmp_path / "kacls"
    _init(home)
    assert (
        runner.invoke(
            hybrid_app, ["revoke", "user", "Al@acme.example", "--home", str(home)]
        ).exit_code
        == 0
    )
    bad = runner.invoke(hybrid_app, ["revoke", "team", "x", "--home", str(home)])
    assert bad.exit_code == 2
    assert (
        runner.invoke(
            hybrid_app, ["restore", "user", "al@acme.example", "--home", str(home)]
        ).exit_code
        == 0
    )
    db = sqlite3.connect(home / "hybrid.db")
    ops = [json.loads(b)["op"] for (b,) in db.execute("SELECT body FROM audit ORDER BY seq")]
    assert ops == ["revoke", "restore"]
    assert db.execute("SELECT COUNT(*) FROM revocations").fetchone() == (0,)
    db.close()
    verified = runner.invoke(hybrid_app, ["audit", "verify", "--home", str(home)])
    assert verified.exit_code == 0
    assert "2 records, 0 signed checkpoints" in verified.output


def test_a_missing_home_is_one_line_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(hybrid_app, ["audit", "verify", "--home", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "ownkey hybrid init" in result.output


def test_a_truncated_audit_log_fails_verification_behind_a_checkpoint(tmp_path: Path) -> None:
    """HYB-7: checkpoints are signed every 16 records, so cutting the tail is detected."""
    home = tmp_path / "kacls"
    _init(home)
    assert (home / "audit-signing.seed").stat().st_mode & 0o077 == 0
    for i in range(20):
        args = ["revoke", "conversation", f"c-{i}", "--home", str(home)]
        assert runner.invoke(hybrid_app, args).exit_code == 0
    verified = runner.invoke(hybrid_app, ["audit", "verify", "--home", str(home)])
    assert verified.exit_code == 0
    assert "20 records, 1 signed checkpoints, 4 after the last one" in verified.output
    db = sqlite3.connect(home / "hybrid.db")
    db.execute("DELETE FROM audit WHERE seq > 10")
    db.commit()
    db.close()
    cut = runner.invoke(hybrid_app, ["audit", "verify", "--home", str(home)])
    assert cut.exit_code == 1
    assert "seq 16: truncated" in cut.output
