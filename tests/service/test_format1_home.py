"""A home written by ownkey before envelope v2 (``tests/fixtures/format1-home``: format-1
scope-key records, version 1 messages, a version 1 stream), opened by today's code.

Issue 23: no test created a format-1 record, so skipping their retirement or dropping their
share context passed. Opening this home migrates it; every message and stream the old code
sealed must open, and new content must go under a new record of today's format.
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
from pathlib import Path
from typing import Any

import pytest

from ownkey.envelope import peek_key_id
from ownkey.service import Runtime
from ownkey.storage import SqlScopeKeyStore

FIXTURE = Path(__file__).parents[1] / "fixtures" / "format1-home"
MANIFEST: dict[str, Any] = json.loads((FIXTURE / "manifest.json").read_text())
OLD_KEY_IDS = {
    "fa80d6c2e6daedeea9612efe3e1d7bb6",  # chat-1
    "e03360ba99c602dc5195264125a0695f",  # chat-2
    "f41ce7a22c24b618a77aca1d196cad77",  # meeting-1
}


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    """The old home, copied (the fixture is never written)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    for name in ("local-keys.json", "root.key", "audit-signing.key"):
        shutil.copyfile(FIXTURE / name, home / name)
        (home / name).chmod(0o600)
    database = home / "ownkey.db"
    with sqlite3.connect(database) as conn:
        conn.executescript((FIXTURE / "ownkey.sql").read_text())
    conn.close()
    database.chmod(0o600)
    return home


@pytest.fixture
def runtime(old_home: Path) -> Iterator[Runtime]:
    """The old home opened by today's code: migrated to head."""
    with Runtime.open(home=old_home, env={"OWNKEY_HOME": str(old_home)}) as rt:
        yield rt


def _old_records(rt: Runtime) -> dict[str, Any]:
    store = SqlScopeKeyStore(rt.database)
    found = {key_id: store.get(bytes.fromhex(key_id)) for key_id in OLD_KEY_IDS}
    assert all(record is not None for record in found.values())
    return found


def test_the_fixture_is_what_the_old_code_wrote(runtime: Runtime) -> None:
    records = _old_records(runtime)
    assert {record.format for record in records.values()} == {1}
    for message in MANIFEST["messages"]:
        assert base64.b64decode(message["sealed"])[:2] == b"\x01\x01"  # message v1
        assert peek_key_id(base64.b64decode(message["sealed"])).hex() in OLD_KEY_IDS


@pytest.mark.parametrize("index", range(3))
def test_every_message_the_old_code_sealed_opens(runtime: Runtime, index: int) -> None:
    message = MANIFEST["messages"][index]
    sealed = base64.b64decode(message["sealed"])
    assert runtime.protector.open(message["request"], sealed) == message["plaintext"].encode()


def test_the_stream_the_old_code_sealed_opens_whole_and_by_range(runtime: Runtime) -> None:
    stream = MANIFEST["streams"][0]
    sealed = base64.b64decode(stream["sealed"])
    sink = io.BytesIO()
    assert runtime.protector.open_stream(stream["request"], io.BytesIO(sealed), sink) == 10_240
    assert sink.getvalue() == bytes(range(256)) * 40


def test_new_content_goes_under_a_new_record_and_old_content_still_opens(
    runtime: Runtime,
) -> None:
    first = MANIFEST["messages"][0]
    request = dict(first["request"], asset_id="m-new")
    sealed = runtime.protector.seal(request, b"written after the upgrade")
    new_id = peek_key_id(sealed)
    assert new_id.hex() not in OLD_KEY_IDS
    record = SqlScopeKeyStore(runtime.database).get(new_id)
    assert record is not None
    assert record.format >= 2
    assert record.scope == "chat-1"
    assert not any(old.sealable for old in _old_records(runtime).values())
    assert runtime.protector.open(request, sealed) == b"written after the upgrade"
    old = base64.b64decode(first["sealed"])
    assert runtime.protector.open(first["request"], old) == first["plaintext"].encode()


def test_upgrading_the_old_database_keeps_every_row(runtime: Runtime) -> None:
    """Issue 23: on SQLite, a migration that recreates a table (0006: scope_keys, 0010:
    master_keys) deleted every row referencing it ON DELETE CASCADE (all wrapped shares, all key
    versions) while the foreign keys were on. Every row of the old database is still there (opening
    may only add: audit records)."""
    old = sqlite3.connect(":memory:")
    old.executescript((FIXTURE / "ownkey.sql").read_text())
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
