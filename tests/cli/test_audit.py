"""``ownkey audit verify|export`` over the Runtime: the global ``--home`` / ``--database-url``,
and failures as one line on stderr (exit 1; bad input exit 2), never a traceback or a password.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from ownkey.service import Runtime
from ownkey.storage._schema import audit_records
from tests.cli.test_admin import acme, home, ok, one_line_error, run

__all__ = ["acme", "home"]  # fixtures used by name

PASSWORD = "s3cret-pw"
UNREACHABLE = f"postgresql+psycopg://ownkey:{PASSWORD}@127.0.0.1:9/ownkey?connect_timeout=2"


@pytest.mark.parametrize(
    "command",
    [
        ["audit", "verify", "acme"],
        ["audit", "verify", "acme", "--json"],
        ["audit", "export", "acme"],
        ["audit", "export", "acme", "--format", "csv"],
    ],
)
def test_an_unreachable_database_is_one_line_without_its_password(
    home: Path, command: list[str]
) -> None:
    result = run("--database-url", UNREACHABLE, *command)
    line = one_line_error(result, code=1)
    assert "the database failed (OperationalError)" in line
    assert PASSWORD not in result.output
    assert result.stdout == ""


def test_the_console_script_says_one_line_too(home: Path) -> None:
    env = {**os.environ, "OWNKEY_HOME": str(home), "OWNKEY_DATABASE_URL": UNREACHABLE}
    result = subprocess.run(
        [sys.executable, "-m", "ownkey", "audit", "verify", "acme"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("ownkey: the database failed (OperationalError)")
    assert result.stderr.count("\n") == 1
    assert PASSWORD not in result.stderr + result.stdout
    assert result.stdout == ""


def test_verify_and_export_use_the_home_and_the_database_url(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "other"
    ok("--home", str(other), "org", "create", "initech")
    assert "initech: OK" in ok("--home", str(other), "audit", "verify", "initech").stdout
    elsewhere = run("--home", str(home), "audit", "verify", "initech")
    assert "no audit log for org 'initech'" in one_line_error(elsewhere)
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    ok("--database-url", url, "org", "create", "globex")
    assert "globex: OK" in ok("--database-url", url, "audit", "verify", "globex").stdout
    lines = ok("--database-url", url, "audit", "export", "globex").stdout.splitlines()
    assert [json.loads(line)["event"]["action"] for line in lines] == ["org.create"]


def test_bad_input_exits_2_before_opening_anything(home: Path) -> None:
    assert "not hex" in one_line_error(run("audit", "verify", "acme", "--public-key", "zz"))
    assert "32 bytes" in one_line_error(run("audit", "verify", "acme", "--public-key", "00"))
    assert "ISO 8601" in one_line_error(run("audit", "export", "acme", "--since", "yesterday"))
    assert "unknown service ID" in one_line_error(
        run("audit", "export", "acme", "--service-id", "8")
    )
    assert not (home / "ownkey.db").exists()


@pytest.mark.parametrize(
    ("body", "formats"),
    [
        (b"not json", ("jsonl", "csv")),
        (b"[1, 2]", ("jsonl", "csv")),  # JSON, but not an event the filters can read
        (b'{"seq": 1}', ("csv",)),  # an object: JSON lines print it; CSV has no columns for it
    ],
)
def test_an_event_that_cannot_be_read_is_one_line(
    acme: Path, body: bytes, formats: tuple[str, ...]
) -> None:
    with Runtime.open(home=acme, env={}) as rt, rt.database.engine.begin() as conn:
        conn.execute(
            update(audit_records)
            .where(audit_records.c.org == "acme", audit_records.c.seq == 2)
            .values(body=body)
        )
    for fmt in formats:
        line = one_line_error(run("audit", "export", "acme", "--format", fmt), code=1)
        assert "the audit log of 'acme' holds an event that cannot be read" in line
        assert "run ownkey audit verify acme" in line
    verified = run("audit", "verify", "acme")
    assert verified.exit_code == 1
    assert "acme: TAMPERED at seq 2" in verified.stdout
    assert "Traceback" not in verified.output


def test_audit_events_names_who_sealed_and_opened_which_asset(acme: Path) -> None:
    """Issue 23: ``--user`` and ``--asset-id`` find the data plane's uses; the table shows the
    scope, the asset and the actor as the console does."""
    from tests.cli.test_admin import ANN, recording

    with Runtime.open(env={}, home=acme) as rt:
        sealed = rt.protector.seal({**recording(), "actor": ANN}, b"minutes")
        for _ in range(3):
            rt.protector.open({**recording(), "actor": "bo@acme.test"}, sealed)
    found = json.loads(ok("audit", "events", "acme", "--user", "bo@acme.test", "--json").stdout)
    [row] = found["events"]
    assert (row["action"], row["actor"], row["operation"], row["count"]) == (
        "content.access",
        "bo@acme.test",
        "open",
        "3",
    )
    assert (row["service_id"], row["scope"], row["asset_id"]) == ("0001", "meeting-1", "rec-1")
    by_asset = json.loads(ok("audit", "events", "acme", "--asset-id", "rec-1", "--json").stdout)
    assert sorted(e["actor"] for e in by_asset["events"]) == [ANN, "bo@acme.test"]
    table = ok("audit", "events", "acme", "--asset-id", "rec-1").stdout
    assert "meeting-1" in table
    assert "bo@acme.test" in table
