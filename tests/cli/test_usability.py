"""What a new user meets first on the command line: the version, honest help, whole tables when
piped, a confirmation before revoking a whole key (issue 14)."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from ownkey.cli import app


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("OWNKEY_HOME", str(home))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return home


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result


def test_version_is_the_package_metadata_version() -> None:
    import ownkey

    assert ok("--version").stdout.strip() == f"ownkey {version('ownkey')}"
    assert ownkey.__version__ == version("ownkey")


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found.extend(_commands(sub, (*path, name)))
    return found


def test_no_help_page_shows_a_flag_as_bool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    paths = _commands(get_command(app))
    assert len(paths) > 30
    for path in paths:
        text = ok(*path, "--help").stdout
        assert "<bool>" not in text, path
        options = [line for line in text.splitlines() if re.search(r"^\W*--", line)]
        # a text option says what its text is (TIME, SERVICE-ID), not Python's <str>
        assert not [line for line in options if "<str>" in line or "<list[str]>" in line], path
    register = ok("key", "register", "--help").stdout
    assert "<local|pkcs11|kmip|aws_kms>" in register
    assert re.search(r"--json\s+Print", register)
    export = ok("audit", "export", "--help").stdout
    assert re.search(r"--since\s+TIME", export)
    assert "<jsonl|csv>" in export
    assert "<ok|denied|unavailable|failed>" in export


def test_tables_are_not_cut_when_piped(home: Path) -> None:
    name = "a-rather-long-organisation-name-" + "x" * 60
    ok("org", "create", name)
    out = ok("org", "list").stdout
    assert name in out  # Rich's 80-column default would fold or cut it
    assert max(len(line) for line in out.splitlines()) > 80


def test_token_list_has_a_header_row(home: Path) -> None:
    ok("org", "create", "acme")
    ok("token", "create", "--org", "acme", "--note", "siem")
    lines = [line for line in ok("token", "list").stdout.splitlines() if line.strip()]
    header = lines[0] if "token" in lines[0] else lines[1]
    for column in ("token", "kind", "org", "state", "expires", "last used", "note"):
        assert column in header
    assert any("siem" in line and "acme" in line for line in lines)


def test_revoking_a_whole_key_asks_for_yes(home: Path) -> None:
    ok("org", "create", "acme", "--create-key")
    refused = run("revoke", "add", "acme")
    assert refused.exit_code == 2
    assert refused.stderr.strip().endswith("add --yes")
    assert json.loads(ok("revoke", "list", "acme", "--json").stdout) == []
    assert "all of customer:acme" in ok("revoke", "add", "acme", "--yes").stdout
    # a filtered rule needs no confirmation
    ok("revoke", "add", "acme", "--service", "0008")


def test_token_expiry_from_the_command_line(home: Path) -> None:
    made = json.loads(ok("token", "create", "--platform", "--expires-in", "1h", "--json").stdout)
    assert made["expires_at"].endswith("+00:00")
    [listed] = json.loads(ok("token", "list", "--json").stdout)
    assert (listed["expires_at"], listed["state"], listed["last_used_at"]) == (
        made["expires_at"],
        "active",
        None,
    )
    for bad in ("0", "soon"):
        refused = run("token", "create", "--platform", "--expires-in", bad)
        assert refused.exit_code == 2, bad
        assert refused.stderr.startswith("ownkey: --expires-in")


def test_audit_events_is_a_paged_table_with_the_exports_filters(home: Path) -> None:
    ok("org", "create", "acme", "--create-key", "--enable", "0008")
    for user in ("a@acme.test", "b@acme.test", "c@acme.test"):
        ok("user", "add", "acme", user)
    everything = json.loads(ok("audit", "events", "acme", "--json").stdout)
    actions = [e["action"] for e in everything["events"]]
    assert actions[0] == "org.create"
    assert "key.create" in actions[1:4]  # after the key manager's audited describe (AUD-1)
    assert everything["next_after"] is None
    first = json.loads(ok("audit", "events", "acme", "--limit", "2", "--json").stdout)
    assert [e["seq"] for e in first["events"]] == [1, 2]
    assert first["next_after"] == 2
    second = json.loads(
        ok("audit", "events", "acme", "--limit", "2", "--after", "2", "--json").stdout
    )
    assert [e["seq"] for e in second["events"]] == [3, 4]
    text = ok("audit", "events", "acme", "--limit", "2").stdout
    assert "org.create" in text
    assert "more: ownkey audit events acme --after 2" in text
    only = json.loads(ok("audit", "events", "acme", "--operation", "key.create", "--json").stdout)
    assert [e["key"] for e in only["events"]] == ["customer:acme"]
    for bad in (["--limit", "0"], ["--outcome", "maybe"], ["--service-id", "8"]):
        assert run("audit", "events", "acme", *bad).exit_code == 2, bad
