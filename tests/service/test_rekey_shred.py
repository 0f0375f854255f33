"""A rekey job's old scope keys wait out the destruction waiting period before they are shredded
(RW-6, RW-8), on SQLite and PostgreSQL, through the Runtime with its default settings.

The attack this guards against: an org admin's rekey job (``shred_old`` on by default) used to
shred the old scope keys as its last step, so content sealed under them that the job does not
move (here a recording kept by the platform itself, sealed with ``/v1/seal``) became
``AccessDenied(destroyed)`` at once, with no waiting period and no warning in any preview.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ownkey.errors import AccessDenied, LifecycleError, NotFound
from ownkey.service import Runtime
from ownkey.storage import AuditQuery
from ownkey.testing.fakes import FakeClock

ANN = "ann@acme.test"
START = 1_700_006_400.0  # midnight UTC
WEEK = 7 * 86_400.0  # the default destruction waiting period (KL-4)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def runtime(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Runtime]:
    home = tmp_path / "home"
    with Runtime.open(home=home, url=database_url, clock=clock, sleep=clock.sleep, env={}) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.update_org("acme", cmk=True, enable=["0001"], actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        yield rt


def recording(asset_id: str) -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "meeting-1",
        "asset_id": asset_id,
    }


def _stored_and_kept(rt: Runtime) -> tuple[bytes, bytes]:
    """One asset in ownkey's asset store and one kept by the platform, under one scope key."""
    rt.assets.put_asset(recording("stored"), b"in the asset store")
    kept = rt.protector.seal(recording("kept"), b"kept by the platform")
    old = rt.assets.record("stored").scope_key_id
    return old, kept


def _actions(rt: Runtime, operation: str) -> list[dict[str, Any]]:
    return [e.body for e in rt.audit_log.query("acme", AuditQuery(operation=operation))]


def test_a_rekey_job_shreds_its_old_scope_keys_only_after_the_waiting_period(
    runtime: Runtime, clock: FakeClock
) -> None:
    """RW-8: the old key is pending shred (audited, due in the waiting period), retired for
    sealing at once, still opening until due; a shred job carries it out once due."""
    old, kept = _stored_and_kept(runtime)
    job = runtime.create_job("rekey", org="acme", scope="meeting-1")
    assert runtime.run_job(job.job_id).state == "done"
    assert runtime.assets.get_asset("stored") == b"in the asset store"
    # Not shredded: what the job did not move still opens during the waiting period.
    assert runtime.protector.open(recording("kept"), kept) == b"kept by the platform"
    record = runtime.admin.scope_key(old)
    assert record is not None
    assert (record.shredded, record.sealable) == (False, False)
    [pending] = runtime.pending_shreds("acme")
    assert (pending.scope_key_id, pending.due_at, pending.job_id) == (old, START + WEEK, job.job_id)
    [scheduled] = _actions(runtime, "scope_key.schedule_shred")
    assert scheduled["detail"]["scope_key_id"] == old.hex()
    assert scheduled["detail"]["due_at"] == repr(START + WEEK)
    assert _actions(runtime, "scope_key.shred") == []
    # Before the due time the maintenance job finds nothing to do.
    clock.advance(WEEK - 1)
    early = runtime.create_job("shred", org="acme")
    assert (early.total, runtime.run_job(early.job_id).state) == (0, "done")
    assert runtime.protector.open(recording("kept"), kept) == b"kept by the platform"
    # Once due, the shred job of the org carries it out, with the evidence in the audit chain.
    clock.advance(1)
    due = runtime.create_job("shred", org="acme")
    assert (due.total, runtime.run_job(due.job_id).state) == (1, "done")
    with pytest.raises(AccessDenied) as denied:
        runtime.protector.open(recording("kept"), kept)
    assert denied.value.reason == "destroyed"
    assert runtime.pending_shreds("acme") == []
    [shred] = _actions(runtime, "scope_key.shred")
    assert (shred["detail"]["scope_key_id"], shred["detail"]["reason"]) == (old.hex(), "rekey")
    assert runtime.assets.get_asset("stored") == b"in the asset store"


def test_a_pending_shred_can_be_cancelled_during_the_waiting_period(
    runtime: Runtime, clock: FakeClock
) -> None:
    """RW-8: cancelling is audited and final for that shred; the key stays retired."""
    old, kept = _stored_and_kept(runtime)
    job = runtime.create_job("rekey", org="acme")
    assert runtime.run_job(job.job_id).state == "done"
    with pytest.raises(NotFound):
        runtime.cancel_shred(old, org="globex", actor="test")  # not that org's
    cancelled = runtime.cancel_shred(old, org="acme", actor="test")
    assert cancelled.state == "cancelled"
    assert runtime.pending_shreds("acme") == []
    [event] = _actions(runtime, "scope_key.cancel_shred")
    assert (event["actor"], event["detail"]["scope_key_id"]) == ("test", old.hex())
    with pytest.raises(NotFound):
        runtime.cancel_shred(old, org="acme")  # nothing pending any more
    # A worker that redoes the job's last step (a crash before it was marked done) does not
    # schedule the cancelled shred again.
    step = runtime.job_runner.step(job.job_id)
    step("s:" + old.hex())
    assert runtime.pending_shreds("acme") == []
    clock.advance(2 * WEEK)
    assert runtime.create_job("shred", org="acme").total == 0
    assert runtime.protector.open(recording("kept"), kept) == b"kept by the platform"
    record = runtime.admin.scope_key(old)
    assert record is not None
    assert not record.sealable


def test_a_pending_shred_cannot_be_cancelled_once_due(runtime: Runtime, clock: FakeClock) -> None:
    """As KL-4 for keys: from the due time on, the shred may already have been carried out."""
    old, _ = _stored_and_kept(runtime)
    assert runtime.run_job(runtime.create_job("rekey", org="acme").job_id).state == "done"
    clock.advance(WEEK)
    with pytest.raises(LifecycleError, match="cannot be cancelled"):
        runtime.cancel_shred(old, org="acme")


def test_the_rekey_preview_lists_the_scope_keys_to_shred_and_when(runtime: Runtime) -> None:
    """RW-8: scope keys, the stored assets and bytes the job moves, the due time, and a warning
    that content kept outside the asset store becomes unreadable then. Nothing changes."""
    old, kept = _stored_and_kept(runtime)
    preview = runtime.rekey_preview("acme", scope="meeting-1")
    [candidate] = preview.scope_keys
    assert (candidate.scope_key_id, candidate.assets, candidate.bytes) == (old, 1, 18)
    assert (preview.due_at, preview.waiting_period) == (START + WEEK, WEEK)
    assert preview.warning is not None
    assert "outside the asset store" in preview.warning
    out = preview.to_json()
    assert out["scope_keys"][0]["scope_key_id"] == old.hex()
    assert out["due_at"] == START + WEEK
    record = runtime.admin.scope_key(old)
    assert record is not None
    assert record.sealable  # a preview retires nothing
    assert runtime.rekey_preview("acme", scope="meeting-1", shred_old=False).scope_keys == ()
    assert runtime.protector.open(recording("kept"), kept) == b"kept by the platform"


def test_a_rekey_job_that_keeps_its_old_keys_schedules_nothing(runtime: Runtime) -> None:
    old, _ = _stored_and_kept(runtime)
    job = runtime.create_job("rekey", org="acme", shred_old=False)
    assert runtime.run_job(job.job_id).state == "done"
    assert runtime.pending_shreds("acme") == []
    assert _actions(runtime, "scope_key.schedule_shred") == []
    record = runtime.admin.scope_key(old)
    assert record is not None
    assert not record.shredded


def test_a_shred_interrupted_between_the_deletion_and_its_mark_is_finished_by_the_next_run(
    runtime: Runtime, clock: FakeClock
) -> None:
    """Crash safety: the pending row outlives the deletion until it is marked, so the next shred
    job finishes it without a second deletion; a worker failing before the row is written
    shreds nothing (RW-8)."""
    old, kept = _stored_and_kept(runtime)
    job = runtime.create_job("rekey", org="acme")
    runner = runtime.job_runner
    step = runner.step(job.job_id)
    failing = runner.shreds

    def no_row(*_: object, **__: object) -> None:
        raise RuntimeError("the database went away")

    failing.schedule = no_row  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        step("s:" + old.hex())
    assert runtime.pending_shreds("acme") == []
    assert runtime.protector.open(recording("kept"), kept) == b"kept by the platform"
    assert runtime.run_job(job.job_id).state == "done"  # a fresh worker: the row is written
    clock.advance(WEEK)
    runtime.admin.shred_scope_key(old, actor="test", reason="rekey")  # ... then the worker died
    [pending] = runtime.pending_shreds("acme")
    assert pending.state == "pending"
    assert runtime.run_job(runtime.create_job("shred", org="acme").job_id).state == "done"
    assert runtime.pending_shreds("acme") == []
    assert len(_actions(runtime, "scope_key.shred")) == 1
