"""The admin commands: org, user, key, revoke, coverage, jobs, and the global options.

Every command is run through Typer's runner against a fresh OWNKEY_HOME: human output by default,
``--json`` parsed, bad input exits 2 with exactly one line on stderr, refusals exit 1, nothing
secret is ever printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ownkey.catalog import ASSET_TYPES
from ownkey.cli import app
from ownkey.service import Runtime

ANN, AL = "ann@acme.test", "al@acme.test"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    # The global --home and --database-url options write OWNKEY_HOME and OWNKEY_DATABASE_URL
    # into the environment: monkeypatch records both so that it restores them after each test.
    monkeypatch.setenv("OWNKEY_HOME", str(home))
    monkeypatch.setenv("OWNKEY_DATABASE_URL", "recorded")
    monkeypatch.delenv("OWNKEY_DATABASE_URL")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    return home


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result


def js(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def one_line_error(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ownkey: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def acme(home: Path) -> Path:
    ok("org", "create", "acme", "--create-key", "--cmk", "--enable", "0001,0008")
    ok("user", "add", "acme", ANN, "--licensed")
    ok("user", "add", "acme", AL)
    return home


def recording(owner: str = ANN) -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": owner,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "meeting-1",
        "asset_id": "rec-1",
    }


@pytest.fixture
def runtime(acme: Path) -> Iterator[Runtime]:
    with Runtime.open(home=acme, env={}) as rt:
        yield rt


# -- org -----------------------------------------------------------------------------------------


def test_org_create_show_list(home: Path) -> None:
    created = js(
        "org",
        "create",
        "acme",
        "--create-key",
        "--cmk",
        "--enable",
        "0001",
        "--enable",
        "0008",
        "--large-org",
    )
    assert created["cmk"] is True
    assert created["services"] == ["0001", "0008"]
    assert created["large_org"] is True
    assert created["key"] == "customer:acme"
    shown = js("org", "show", "acme")
    assert {k: shown[k] for k in ("name", "cmk", "services")} == {
        "name": "acme",
        "cmk": True,
        "services": ["0001", "0008"],
    }
    ok("org", "create", "globex")
    assert [o["name"] for o in js("org", "list")] == ["acme", "globex"]
    human = ok("org", "show", "acme").stdout
    assert "org acme" in human
    assert "0001, 0008" in human
    assert "acme" in ok("org", "list").stdout


def test_org_list_when_empty(home: Path) -> None:
    assert "no orgs yet" in ok("org", "list").stdout
    assert js("org", "list") == []


def test_org_bad_input_exits_2(home: Path) -> None:
    assert "not an org name" in one_line_error(run("org", "create", "no spaces"))
    assert "unknown service ID '42'" in one_line_error(
        run("org", "create", "a", "--enable", "42,0042")
    )
    ok("org", "create", "acme")
    assert one_line_error(run("org", "create", "acme"), code=1) == (
        "ownkey: org 'acme' already exists"
    )
    assert "no org 'nope'" in one_line_error(run("org", "show", "nope"))
    assert "nothing to change" in one_line_error(run("org", "set", "acme"))
    assert "both enabled and disabled" in one_line_error(
        run("org", "set", "acme", "--enable", "0001", "--disable", "0001")
    )


def test_cmk_without_a_key_is_refused_with_exit_1(home: Path) -> None:
    ok("org", "create", "acme")
    line = one_line_error(run("org", "set", "acme", "--cmk"), code=1)
    assert "has no customer key" in line
    assert "ownkey key create acme" in line


def test_org_set_flags_and_services(acme: Path) -> None:
    out = js("org", "set", "acme", "--disable", "0008", "--enable", "0006", "--compliance-archival")
    assert out["services"] == ["0001", "0006"]
    assert out["compliance_archival"] is True
    assert out["now_customer"] == ["0006"]
    assert out["now_platform"] == ["0008"]
    out = js("org", "set", "acme", "--no-compliance-archival", "--no-backfill")
    assert out["compliance_archival"] is False
    assert out["backfill"] == {}


def test_org_set_backfills_existing_scope_keys(home: Path) -> None:
    ok("org", "create", "acme", "--create-key", "--cmk")
    ok("user", "add", "acme", ANN, "--licensed")
    with Runtime.open(env={}, home=home) as rt:
        sealed = rt.protector.seal(recording(), b"before")  # 0001 not enabled: platform key
    out = js("org", "set", "acme", "--enable", "0001")
    job = out["backfill"]["to_customer"]
    assert (job["state"], job["total"], job["done"]) == ("done", 1, 1)
    assert "platform could read it" in out["notice"]  # issue 23: said plainly
    report = js("coverage", "acme")
    row = next(s for s in report["services"] if s["service_id"] == "0001")
    assert row["scope_keys"] == {"customer": 1, "platform": 0, "shredded": 0}
    with Runtime.open(env={}, home=home) as rt:
        assert rt.protector.open(recording(), sealed) == b"before"
    human = ok("org", "set", "acme", "--disable", "0001").stdout
    assert "backfill to platform: 1/1 existing scope keys re-wrapped (done)" in human


# -- users ---------------------------------------------------------------------------------------


def test_users_and_licences(acme: Path) -> None:
    assert js("user", "list", "acme") == [
        {"org": "acme", "user": AL, "licensed": False},
        {"org": "acme", "user": ANN, "licensed": True},
    ]
    assert js("user", "license", "acme", AL)["changed"] == 1
    assert [u["user"] for u in js("user", "list", "acme", "--licensed")] == [AL, ANN]
    assert "unlicensed 1 user(s), 1 changed" in ok("user", "unlicense", "acme", ANN).stdout
    assert [u["user"] for u in js("user", "list", "acme", "--unlicensed")] == [ANN]
    assert js("user", "remove", "acme", ANN)["changed"] == 1
    assert "CMK licence" in ok("user", "list", "acme").stdout
    assert "no user 'x@acme.test'" in one_line_error(run("user", "license", "acme", "x@acme.test"))
    assert "not a user's email address" in one_line_error(run("user", "add", "acme", "a b"))
    # One rule, one spelling (issue 23 s4): `ann` is no user, `Ann@Acme.test` is ann@acme.test.
    assert "no @domain" in one_line_error(run("user", "add", "acme", "ann"))
    assert "only ASCII" in one_line_error(run("user", "add", "acme", "\u212aim@acme.test"))
    assert js("user", "add", "acme", "Cy@Acme.test", "CY@acme.test")["users"] == ["cy@acme.test"]
    assert "cy@acme.test" in [u["user"] for u in js("user", "list", "acme")]
    assert "Cy@Acme.test" not in [u["user"] for u in js("user", "list", "acme")]
    assert "no org 'globex'" in one_line_error(run("user", "add", "globex", ANN))


# -- keys ----------------------------------------------------------------------------------------


def test_key_list_check_and_no_secret_printed(acme: Path) -> None:
    keys = js("key", "list")
    assert [k["key"] for k in keys] == ["customer:acme", "platform"]
    assert [k["key"] for k in js("key", "list", "acme")] == ["customer:acme"]
    check = js("key", "check", "acme")
    assert check["round_trip"] == "ok"
    assert check["manager_state"] == "enabled"
    outputs = ok("key", "list").stdout + ok("key", "check", "customer:acme").stdout
    outputs += json.dumps(keys) + json.dumps(check)
    root_key = (acme / "root.key").read_text().strip()
    assert root_key not in outputs
    assert "round trip ok" in outputs


def test_key_create_for_another_org(acme: Path) -> None:
    ok("org", "create", "globex")
    created = js("key", "create", "globex")
    assert (created["key"], created["state"], created["provider"]) == (
        "customer:globex",
        "enabled",
        "local",
    )
    assert "already has a key" in one_line_error(run("key", "create", "globex"), code=1)
    assert "no key provider named 'hsm'" in one_line_error(
        run("key", "create", "initech", "--provider", "hsm"), code=1
    )


def test_key_rotate_rewraps_with_a_job(acme: Path, runtime: Runtime) -> None:
    sealed = runtime.protector.seal(recording(), b"content")
    out = js("key", "rotate", "acme")
    assert out["version"] == "v2"
    assert (out["rewrap"]["state"], out["rewrap"]["done"]) == ("done", 1)
    runtime.invalidate()
    assert runtime.protector.open(recording(), sealed) == b"content"
    human = ok("key", "rotate", "acme", "--no-rewrap").stdout
    assert "customer:acme: rotated; now enabled (version v3)" in human


def test_key_lifecycle(acme: Path) -> None:
    assert js("key", "disable", "acme")["state"] == "disabled"
    assert "now enabled" in ok("key", "enable", "acme").stdout
    assert "enabled" in one_line_error(
        run("key", "schedule-destruction", "acme"), code=1
    )  # must be disabled first
    ok("key", "disable", "acme")
    assert "at least" in one_line_error(
        # below the minimum is bad input: exit 2 (issue 12; it was 1)
        run("key", "schedule-destruction", "acme", "--waiting-period", "1h")
    )
    scheduled = js("key", "schedule-destruction", "acme", "--waiting-period", "2d")
    assert scheduled["state"] == "pending_destruction"
    assert scheduled["destroy_at"] is not None
    assert "waiting period" in one_line_error(run("key", "destroy", "acme", "--yes"), code=1)
    assert "add --yes" in one_line_error(run("key", "destroy", "acme"))
    assert js("key", "cancel-destruction", "acme")["state"] == "disabled"


def test_key_bad_input(acme: Path) -> None:
    assert "unknown key kind" in one_line_error(run("key", "disable", "vault:acme"))
    assert "no key is registered for customer:globex" in one_line_error(
        run("key", "check", "globex")
    )
    assert "a duration like" in one_line_error(
        run("key", "schedule-destruction", "acme", "--waiting-period", "soon")
    )


# -- revocation ----------------------------------------------------------------------------------


def test_revoke_preview_add_list_lift(acme: Path, runtime: Runtime) -> None:
    from ownkey.errors import AccessDenied

    sealed = runtime.protector.seal(recording(), b"content")
    runtime.assets.put_asset(dict(recording(), asset_id="rec-2"), b"x" * 50_000)
    runtime.assets.put_asset(dict(recording(), asset_id="rec-3"), b"y" * 10)
    preview = js("revoke", "preview", "acme", "--service", "0001")
    assert (preview["scope_keys"], preview["assets"], preview["bytes"]) == (1, 2, 50_010)
    assert preview["scope_keys_by_service"] == {"0001": 1}
    assert preview["assets_by_service"] == {"0001": 2}
    assert preview["bytes_by_service"] == {"0001": 50_010}
    assert preview["rule"]["service_id"] == "0001"
    assert js("revoke", "preview", "acme", "--scope", "elsewhere")["scope_keys_by_service"] == {}
    human = ok("revoke", "preview", "acme", "--scope", "meeting-1").stdout
    assert "1 scope keys, 2 stored assets (50010 bytes) in all; nothing was changed" in human
    rows = [line.replace("│", " ").split() for line in human.splitlines()]
    assert ["0001", "1", "2", "50010"] in rows
    assert "no org 'globex'" in one_line_error(run("revoke", "preview", "globex"))
    rule = js("revoke", "add", "acme", "--service", "0001", "--scope", "meeting-1", "--note", "x")
    assert rule["rule_id"].startswith("r-")
    runtime.invalidate()
    with pytest.raises(AccessDenied):
        runtime.protector.open(recording(), sealed)
    assert [r["rule_id"] for r in js("revoke", "list")] == [rule["rule_id"]]
    assert [r["rule_id"] for r in js("revoke", "list", "acme")] == [rule["rule_id"]]
    assert "scope meeting-1" in ok("revoke", "list").stdout
    assert "opens again" in ok("revoke", "lift", rule["rule_id"]).stdout
    runtime.invalidate()
    assert runtime.protector.open(recording(), sealed) == b"content"
    window = js("revoke", "add", "acme", "--since", "2026-01-01", "--until", "2026-02-01T00:00:00Z")
    assert (window["since"], window["until"]) == (
        "2026-01-01T00:00:00+00:00",
        "2026-02-01T00:00:00+00:00",
    )
    assert "all of customer:acme" in ok("revoke", "add", "acme", "--yes").stdout


def test_revoke_bad_input(acme: Path) -> None:
    assert "unknown service ID" in one_line_error(run("revoke", "add", "acme", "--service", "8"))
    assert "ISO 8601" in one_line_error(run("revoke", "add", "acme", "--since", "yesterday"))
    assert "until: must be after since" in one_line_error(
        run("revoke", "add", "acme", "--since", "2026-02-01", "--until", "2026-01-01")
    )
    assert "no revocation rule r-nope" in one_line_error(run("revoke", "lift", "r-nope"))
    assert "no org 'globex'" in one_line_error(run("revoke", "add", "globex", "--yes"))
    assert "own org's key" in one_line_error(
        run("revoke", "add", "acme", "--key", "globex", "--yes")
    )


# -- coverage and jobs ---------------------------------------------------------------------------


def test_coverage(acme: Path, runtime: Runtime) -> None:
    runtime.protector.seal(recording(), b"r")
    runtime.protector.seal(recording(AL), b"r")
    report = js("coverage", "acme")
    assert report["key"]["ref"] == "customer:acme"
    assert (report["users"], report["licensed_users"]) == (2, 1)
    rows = {row["service_id"]: row for row in report["services"]}
    assert len(rows) == len(ASSET_TYPES)
    assert rows["0001"]["scope_keys"] == {"customer": 1, "platform": 1, "shredded": 0}
    assert rows["0010"]["protection"] == "platform"
    human = ok("coverage", "acme").stdout
    assert (
        "coverage of acme: cmk on, key customer:acme (local, enabled), 1/2 users licensed" in human
    )
    assert "no org 'globex'" in one_line_error(run("coverage", "globex"))


def test_jobs_run_status_resume(acme: Path, runtime: Runtime) -> None:
    runtime.protector.seal(recording(), b"r")
    runtime.admin.rotate_key("customer:acme", rewrap=False)
    job = js("jobs", "run", "rewrap", "--key", "acme")
    assert (job["kind"], job["state"], job["total"], job["done"]) == ("rewrap", "done", 1, 1)
    assert [j["job_id"] for j in js("jobs", "status")] == [job["job_id"]]
    assert js("jobs", "status", job["job_id"])[0]["state"] == "done"
    assert js("jobs", "resume", job["job_id"])["done"] == 1
    assert "rewrap" in ok("jobs", "status", "--org", "acme").stdout
    backfill = js("jobs", "run", "backfill", "acme", "--service", "0001", "--disable")
    assert (backfill["state"], backfill["params"]["enable"]) == ("done", False)
    assert "done" in ok("jobs", "run", "backfill", "acme", "--service", "0001").stdout


def test_jobs_run_rekey_end_to_end_through_the_runtime(acme: Path, runtime: Runtime) -> None:
    """Assets sealed through ``runtime.assets`` (inline and as blobs under the home), rekeyed by
    the CLI's runtime, open afterwards in this runtime and in a fresh one."""
    assets = runtime.assets
    data = {"small": b"s" * 100, "blob": os.urandom(300_000), "chat": b"c" * 10}
    assets.put_asset(dict(recording(), asset_id="small"), data["small"])
    assets.put_asset(dict(recording(AL), scope="meeting-2", asset_id="blob"), data["blob"])
    chat = {
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "chat", "members": [{"user": ANN, "org": "acme"}]},
            "component": "message",
        },
        "scope": "chat-1",
        "asset_id": "chat",
    }
    assets.put_asset(chat, data["chat"])
    before = {a: assets.record(a).scope_key_id for a in data}
    job = js("jobs", "run", "rekey", "acme", "--service", "0001")
    assert (job["kind"], job["state"], job["total"], job["done"]) == ("rekey", "done", 4, 4)
    admin = runtime.admin
    for asset_id in ("small", "blob"):
        assert assets.record(asset_id).scope_key_id != before[asset_id]
        assert not admin.scope_key(before[asset_id]).shredded  # pending shred (RW-8)
    assert {p["scope_key_id"] for p in js("jobs", "shreds", "acme")} == {
        before["small"].hex(),
        before["blob"].hex(),
    }
    assert assets.record("chat").scope_key_id == before["chat"]  # another service: untouched
    for asset_id, payload in data.items():
        assert assets.get_asset(asset_id) == payload
    assert assets.get_asset_range("blob", 1000, 1010) == data["blob"][1000:1010]
    with Runtime.open(home=acme, env={}) as fresh:
        assert {a: fresh.assets.get_asset(a) for a in data} == data
    # This runtime still had the old scope key cached for sealing: new content avoids it.
    again = assets.put_asset(dict(recording(), asset_id="later"), b"later")
    assert again.scope_key_id not in before.values()
    assert assets.get_asset("later") == b"later"
    assert "acme: OK" in ok("audit", "verify", "acme").stdout


def test_jobs_bad_input(acme: Path) -> None:
    assert "rewrap, backfill, rekey, shred" in one_line_error(run("jobs", "run", "compress"))
    one_line_error(run("jobs", "run", "shred", "--key", "acme"), code=1)  # not due: refused
    assert "names a key" in one_line_error(run("jobs", "run", "rewrap"))
    assert "at least one service" in one_line_error(run("jobs", "run", "backfill", "acme"))
    assert "no job nope" in one_line_error(run("jobs", "status", "nope"))
    assert "no jobs" in ok("jobs", "status").stdout


# -- global options and the console script -------------------------------------------------------


def test_global_home_and_database_url(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "other"
    ok("--home", str(other), "org", "create", "initech")
    assert (other / "ownkey.db").exists()
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    ok("--database-url", url, "org", "create", "globex")
    assert [o["name"] for o in js("--database-url", url, "org", "list")] == ["globex"]


def test_an_unreachable_database_is_one_line_without_its_password(home: Path) -> None:
    url = "postgresql+psycopg://ownkey:s3cret-pw@127.0.0.1:9/ownkey?connect_timeout=2"
    result = run("--database-url", url, "org", "list")
    line = one_line_error(result, code=1)
    assert "the database failed (OperationalError)" in line
    assert "s3cret-pw" not in result.output


def test_console_script_one_line_no_traceback(home: Path) -> None:
    env = {**os.environ, "OWNKEY_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "ownkey", "org", "show", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "ownkey: no org 'nope'\n"
    assert result.stdout == ""
