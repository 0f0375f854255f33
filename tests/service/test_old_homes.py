"""Homes written by older ownkey code, opened by today's (``tests/fixtures/*-home``, each made
once by the old code and never regenerated; their READMEs say how):

- ``format1-home``: before envelope v2, format-1 scope-key records (no key list in the wrap
  contexts, shares combined without a binding), version 1 messages; Alembic revision 0005;
- ``format2-home``: before format-3 records (no origin), version 2 messages; revision 0010.

Issue 23: no test created a format-1 record, so skipping their retirement or dropping their
share context passed. Opening a home migrates it; every message and stream the old code sealed
must open, every row must survive the migrations, and new content must go under a new record
of today's format (the old one retired for sealing).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ownkey.audit import AuditAction
from ownkey.envelope import peek_key_id
from ownkey.keys import ScopeKeyRecord
from ownkey.service import Runtime
from ownkey.storage import SqlScopeKeyStore
from ownkey.testing.fakes import FakeClock

FIXTURES = Path(__file__).parents[1] / "fixtures"


@dataclass(frozen=True)
class Home:
    name: str
    record_format: int
    message_version: bytes
    #: The scope-key ids of chat-1, chat-2 and meeting-1, as the old code wrote them.
    key_ids: tuple[str, str, str]

    @property
    def folder(self) -> Path:
        return FIXTURES / self.name

    @property
    def manifest(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads((self.folder / "manifest.json").read_text())
        return found


HOMES = {
    "format1": Home(
        "format1-home",
        1,
        b"\x01\x01",
        (
            "fa80d6c2e6daedeea9612efe3e1d7bb6",
            "e03360ba99c602dc5195264125a0695f",
            "f41ce7a22c24b618a77aca1d196cad77",
        ),
    ),
    "format2": Home(
        "format2-home",
        2,
        b"\x02\x01",
        (
            "007e45bfea603aa55c1eb05e8a401f40",
            "a4c060e4f4d0562ec0ec8a7c00daa035",
            "26eebc7599add33cc6b382806659b6fd",
        ),
    ),
}


@pytest.fixture(params=sorted(HOMES))
def home(request: pytest.FixtureRequest) -> Home:
    found: Home = HOMES[request.param]
    return found


@pytest.fixture
def old_home(tmp_path: Path, home: Home) -> Path:
    """The old home, copied (the fixture is never written)."""
    folder = tmp_path / "home"
    folder.mkdir(mode=0o700)
    for name in ("local-keys.json", "root.key", "audit-signing.key"):
        shutil.copyfile(home.folder / name, folder / name)
        (folder / name).chmod(0o600)
    database = folder / "ownkey.db"
    with sqlite3.connect(database) as conn:
        conn.executescript((home.folder / "ownkey.sql").read_text())
    conn.close()
    database.chmod(0o600)
    return folder


@pytest.fixture
def runtime(old_home: Path) -> Iterator[Runtime]:
    """The old home opened by today's code: migrated to head, on a clock inside the epochs the
    old code sealed in (a chat scope key covers one hour: on today's clock a new seal would
    fall in another epoch, and whether it met the old record would depend on the time of day)."""
    with sqlite3.connect(old_home / "ownkey.db") as conn:
        (start,) = conn.execute("SELECT max(epoch_start) FROM scope_keys").fetchone()
    conn.close()
    clock = FakeClock(float(start) + 1)
    with Runtime.open(
        home=old_home,
        env={"OWNKEY_HOME": str(old_home)},
        clock=clock,
        sleep=clock.sleep,
    ) as rt:
        yield rt


def _record(rt: Runtime, key_id: str | bytes) -> ScopeKeyRecord:
    raw = bytes.fromhex(key_id) if isinstance(key_id, str) else key_id
    record = SqlScopeKeyStore(rt.database).get(raw)
    assert record is not None
    return record


def test_the_fixture_is_what_the_old_code_wrote(runtime: Runtime, home: Home) -> None:
    assert {_record(runtime, key_id).format for key_id in home.key_ids} == {home.record_format}
    for message in home.manifest["messages"]:
        sealed = base64.b64decode(message["sealed"])
        assert sealed[:2] == home.message_version
        assert peek_key_id(sealed).hex() in home.key_ids


@pytest.mark.parametrize("index", range(3))
def test_every_message_the_old_code_sealed_opens(runtime: Runtime, home: Home, index: int) -> None:
    message = home.manifest["messages"][index]
    sealed = base64.b64decode(message["sealed"])
    assert runtime.protector.open(message["request"], sealed) == message["plaintext"].encode()


def test_the_stream_the_old_code_sealed_opens(runtime: Runtime, home: Home) -> None:
    stream = home.manifest["streams"][0]
    sealed = base64.b64decode(stream["sealed"])
    sink = io.BytesIO()
    assert runtime.protector.open_stream(stream["request"], io.BytesIO(sealed), sink) == 10_240
    assert sink.getvalue() == bytes(range(256)) * 40


def test_new_content_goes_under_a_new_record_and_old_content_still_opens(
    runtime: Runtime, home: Home
) -> None:
    first = home.manifest["messages"][0]
    request = dict(first["request"], asset_id="m-new")
    sealed = runtime.protector.seal(request, b"written after the upgrade")
    new_id = peek_key_id(sealed)
    assert new_id.hex() not in home.key_ids
    record = _record(runtime, new_id)
    assert record.format > home.record_format
    assert record.scope == "chat-1"
    assert not _record(runtime, home.key_ids[0]).sealable  # chat-1's old record: retired
    assert runtime.protector.open(request, sealed) == b"written after the upgrade"
    old = base64.b64decode(first["sealed"])
    assert runtime.protector.open(first["request"], old) == first["plaintext"].encode()


@pytest.mark.parametrize("home", ["format2"], indirect=True)
def test_a_format2_record_is_retired_at_its_next_seal_and_audited(
    runtime: Runtime, home: Home
) -> None:
    """Format-2 records stay current through migration 0011 (format 1 lost ``current_for`` in
    0006): the first seal finds one, retires it (audited, ``record_format``) and makes a new
    record of today's format."""
    chat2 = home.key_ids[1]
    assert _record(runtime, chat2).sealable
    message = home.manifest["messages"][2]
    assert peek_key_id(base64.b64decode(message["sealed"])).hex() == chat2
    sealed = runtime.protector.seal(dict(message["request"], asset_id="m-new"), b"new")
    assert peek_key_id(sealed).hex() != chat2
    assert not _record(runtime, chat2).sealable
    retired = [
        body
        for org in runtime.audit_log.orgs()
        for record in runtime.audit_log.records(org)
        if (body := json.loads(record.body))["action"] == AuditAction.SCOPE_KEY_RETIRE.value
    ]
    assert [(b["detail"]["scope_key_id"], b["detail"]["reason"]) for b in retired] == [
        (chat2, "record_format")
    ]


def test_upgrading_the_old_database_keeps_every_row(runtime: Runtime, home: Home) -> None:
    """Issue 23: on SQLite, a migration that recreates a table (0006 and 0011: scope_keys, 0010:
    master_keys) deleted every row referencing it ON DELETE CASCADE (all wrapped shares, all
    key versions) while the foreign keys were on. Every row of the old database is still there
    (opening may only add: audit records)."""
    old = sqlite3.connect(":memory:")
    old.executescript((home.folder / "ownkey.sql").read_text())
    tables = [row[0] for row in old.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    before = {table: old.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
    old.close()
    with runtime.database.engine.connect() as conn:
        after = {
            table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            for table in tables
            if table != "alembic_version"
        }
    assert before["scope_key_wraps"] == 5
    assert all(after[table] >= before[table] for table in after), (before, after)


@pytest.mark.parametrize("org", ["acme", "globex"])
def test_the_audit_chain_the_old_code_wrote_verifies_after_the_upgrade(
    old_home: Path, org: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    done = subprocess.run(
        [sys.executable, "-m", "ownkey", "audit", "verify", org],
        capture_output=True,
        text=True,
        env={**env, "OWNKEY_HOME": str(old_home)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{org}: OK" in done.stdout + done.stderr
