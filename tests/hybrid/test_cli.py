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
        [
            "init",
            "--home",
            str(home),
            "--org",
            "x",
            "--idp",
            "https://i",
            "--platform",
            "https://p",
        ],
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


#: Values ``hybrid init`` took before issue 12's second pass and wrote into hybrid.json: settings
#: no token could ever match (an issuer that is not a URL, an org name with a space, a privileged
#: "email" without @).
BAD_INIT = [
    ("--idp", "notaurl"),
    ("--platform", "ftp://platform.example"),
    ("--idp", "http://[::1"),
    ("--org", "a b"),
    ("--org", "acme\x00"),
    ("--privileged", "notanemail"),
]


def test_a_bad_init_value_is_one_line_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    good = {"--org": "acme", "--idp": "https://idp.example", "--platform": "https://p.example"}
    for option, value in BAD_INIT:
        home = tmp_path / f"kacls{len(list(tmp_path.iterdir()))}"
        values = {**good, option: value}
        args = ["init", "--home", str(home), *[x for pair in values.items() for x in pair]]
        if option == "--privileged":
            args += ["--privileged", value]
        result = runner.invoke(hybrid_app, args)
        assert result.exit_code == 2, (option, value, result.output)
        assert option.removeprefix("--") in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert not home.exists(), (option, value)


def test_a_home_that_cannot_be_a_directory_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = runner.invoke(
        hybrid_app,
        [
            "init",
            "--home",
            str(a_file),
            "--org",
            "acme",
            "--idp",
            "https://i",
            "--platform",
            "https://p",
        ],
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # fail(): one line, no traceback
    assert "cannot be the key service's home" in result.output


def test_a_revocation_no_call_could_match_is_refused_and_restore_checks_too(
    tmp_path: Path,
) -> None:
    home = tmp_path / "kacls"
    _init(home)
    for args in (
        ["restore", "planet", "x"],
        ["revoke", "user", "not an email"],
        ["restore", "user", "not-an-email"],
        ["revoke", "org", "a b"],
        ["revoke", "conversation", "c\x00"],
    ):
        result = runner.invoke(hybrid_app, [*args, "--home", str(home)])
        assert result.exit_code == 2, (args, result.output)
    db = sqlite3.connect(home / "hybrid.db")
    try:
        assert db.execute("SELECT count(*) FROM revocations").fetchone() == (0,)
    finally:
        db.close()
