"""Crypto-shredding leaves no copy under ``OWNKEY_HOME`` (KL-9, "What survives a shred").

The attack: an attacker who later reads the files of a deployment (a stolen disk, a backup of
the home) greps them for the wrapped shares of a scope key that was shredded. On the rekey path
the customer key is still alive, so one surviving wrap blob is the old scope key recovered. On
SQLite in WAL mode a deleted row stays in the free pages of ``ownkey.db`` and in
``ownkey.db-wal`` (a checkpoint copies pages, it does not truncate the log), so the test reads
every file under the home, database, WAL, shared memory, blobs and key file, while the runtime is
still open (the WAL exists then), and counts the bytes of each shredded wrap blob and of the
scope key's material (never stored; checked all the same): 0 hits.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ownkey.envelope import SECRET_KEY_ACCESS
from ownkey.errors import AccessDenied
from ownkey.service import Runtime
from ownkey.storage import AuditQuery, FleetStore
from ownkey.testing.fakes import FakeClock

ANN = "ann@acme.test"
START = 1_700_006_400.0


def recording(asset_id: str = "rec-1", scope: str = "meeting-1") -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": scope,
        "asset_id": asset_id,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def runtime(home: Path, clock: FakeClock) -> Iterator[Runtime]:
    url = f"sqlite:///{home / 'ownkey.db'}"
    with Runtime.open(home=home, url=url, clock=clock, sleep=clock.sleep, env={}) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.update_org("acme", cmk=True, enable=["0001"], actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        yield rt


def hits(home: Path, needles: list[bytes]) -> dict[str, int]:
    """How often each needle occurs in each file under ``home`` (files with hits only)."""
    found: dict[str, int] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        count = sum(data.count(needle) for needle in needles)
        if count:
            found[str(path.relative_to(home))] = count
    return found


def secrets_of(rt: Runtime, key_ids: set[bytes]) -> list[bytes]:
    """The wrap blobs of the scope keys and their material (read from this node's cache)."""
    needles: list[bytes] = []
    cache = rt._deps.cache
    for key_id in key_ids:
        record = rt.admin.scope_key(key_id)
        assert record is not None
        assert record.wraps
        needles.extend(wrap.blob for wrap in record.wraps)
        entry, _ = cache.get(key_id)
        assert entry is not None
        needles.append(entry.key.material(SECRET_KEY_ACCESS))
    return needles


def seal_some(rt: Runtime) -> set[bytes]:
    """Store a blob asset and an inline one; the scope keys they are under."""
    rt.assets.put_asset(recording("rec-big"), b"v" * 100_000)
    rt.assets.put_asset(recording("rec-small"), b"small")
    return {rt.assets.record(a).scope_key_id for a in ("rec-big", "rec-small")}


def test_no_wrap_blob_survives_a_key_destruction(
    runtime: Runtime, home: Path, clock: FakeClock
) -> None:
    """KL-9: after destroy_key no file under the home holds a shredded wrap blob."""
    key_ids = seal_some(runtime)
    blobs = secrets_of(runtime, key_ids)
    assert hits(home, blobs)  # the probe finds them before the shred
    admin = runtime.admin
    master = admin.key("customer:acme")
    # the embedded store's record of the customer key, a row of the database (issue 28)
    stored = json.loads(FleetStore(runtime.database).get_key(master.key_id) or "{}")
    sealed = [v["sealed"].encode("ascii") for v in stored["versions"]]  # the customer key
    sealed += [base64.b64decode(v["sealed"]) for v in stored["versions"]]  # and its bytes
    assert hits(home, sealed)
    admin.disable_key("customer:acme")
    admin.schedule_key_destruction("customer:acme", waiting_period=86_400)
    clock.advance(86_400)
    evidence = admin.destroy_key("customer:acme")
    assert hits(home, blobs) == {}
    assert hits(home, sealed) == {}  # the embedded store destroys its own key material
    with pytest.raises(AccessDenied):
        runtime.assets.get_asset("rec-big")
    # The evidence in the org's audit chain carries the key manager's answer.
    [shred] = [
        e.body
        for e in runtime.audit_log.query("acme", AuditQuery())
        if e.body["action"] == "scope_key.shred"
    ]
    assert shred["detail"]["scope_keys"] == str(len(key_ids))
    assert shred["detail"]["key_manager"] == evidence.key_manager.outcome.value == "destroyed"
    assert shred["detail"]["key_manager.versions_left"] == "0"


def test_no_wrap_blob_survives_a_rekey_shred(
    runtime: Runtime, home: Path, clock: FakeClock
) -> None:
    """RW-6, RW-8 and KL-9: the rekey path shreds old scope keys (once their waiting period is
    over) while the customer key lives on, so a surviving wrap blob would be the old scope key
    recovered; none survives."""
    key_ids = seal_some(runtime)
    blobs = secrets_of(runtime, key_ids)
    assert hits(home, blobs)
    job = runtime.create_job("rekey", org="acme", services=["0001"])
    assert runtime.run_job(job.job_id).state == "done"
    assert not any(runtime.admin.scope_key(key_id).shredded for key_id in key_ids)  # pending
    clock.advance(runtime.settings.destruction_waiting_period + 1)
    shred = runtime.create_job("shred", org="acme")
    assert runtime.run_job(shred.job_id).state == "done"
    assert all(runtime.admin.scope_key(key_id).shredded for key_id in key_ids)
    assert hits(home, blobs) == {}
    assert runtime.assets.get_asset("rec-big") == b"v" * 100_000


def test_no_platform_wrap_survives_a_backfill(home: Path, clock: FakeClock) -> None:
    """RW-3: a backfill moves a share from the platform key to the customer key; the platform
    key's old wrap of it must not stay in the files, or the platform (which holds its own key)
    recovers the share without the customer's key."""
    url = f"sqlite:///{home / 'ownkey.db'}"
    with Runtime.open(home=home, url=url, clock=clock, sleep=clock.sleep, env={}) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.update_org("acme", cmk=True, actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        rt.assets.put_asset(recording("rec-small"), b"small")  # 0001 off: platform key only
        key_id = rt.assets.record("rec-small").scope_key_id
        record = rt.admin.scope_key(key_id)
        assert record is not None
        old = [wrap.blob for wrap in record.wraps]
        assert hits(home, old)
        update = rt.update_org("acme", enable=["0001"], actor="test")
        job = rt.create_job("backfill", org="acme", services=update.now_customer)
        assert rt.run_job(job.job_id).state == "done"
        moved = rt.admin.scope_key(key_id)
        assert moved is not None
        assert [str(w.key) for w in moved.wraps] == ["customer:acme"]
        assert hits(home, old) == {}
        assert rt.assets.get_asset("rec-small") == b"small"
