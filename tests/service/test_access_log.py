"""Issue 23, section 2: the key-usage log says who used the key on which asset.

Before: alice and bob sealed and opened messages and a recording; ``audit events --user`` and
``--asset-id`` found nothing (key-manager events carry neither), and opens served from the cache
left no record at all. Now every seal and open through the service, cached or not, allowed or
denied, is counted per (org, service, scope, asset, actor, operation, outcome, minute) and lands
in the org's chain as ``content.access`` (service/_access_log.py).
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest

from ownkey.audit import AuditAction, AuditEvent, Auditor, MemoryAuditSink, Outcome
from ownkey.errors import AccessDenied, InvalidRequest
from ownkey.keys import RevocationRule
from ownkey.service import Runtime
from ownkey.service._access_log import AccessLog
from ownkey.storage import AuditQuery
from ownkey.testing.fakes import FakeClock

ALICE, BOB = "alice@acme.test", "bob@acme.test"
START = 1_700_006_400.0


def message(asset_id: str, actor: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "owner": ALICE,
            "owner_kind": "user",
            "container": {"kind": "channel", "members": [{"user": ALICE, "org": "acme"}]},
            "component": "message",
        },
        "scope": "channel:eng",
        "asset_id": asset_id,
    }
    if actor is not None:
        request["actor"] = actor
    return request


def recording(actor: str) -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": ALICE,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "meeting-1",
        "asset_id": "rec-1",
        "actor": actor,
    }


@pytest.fixture
def rt(tmp_path: Path) -> Any:
    clock = FakeClock(START)
    runtime = Runtime.open(
        home=tmp_path / "home",
        url=f"sqlite:///{tmp_path / 'ownkey.db'}",
        clock=clock,
        sleep=clock.sleep,
        env={},
    )
    runtime.create_org("acme")
    runtime.create_key("acme", actor="test")
    runtime.update_org("acme", cmk=True, enable=["0001", "0008"], actor="test")
    runtime.add_users("acme", [ALICE, BOB], licensed=True)
    with runtime:
        yield runtime


def accesses(rt: Runtime, **query: Any) -> list[dict[str, Any]]:
    rt.protector.flush_access()
    found = rt.audit_log.query("acme", AuditQuery(**query))
    return [
        event.body for event in found if event.body["action"] == AuditAction.CONTENT_ACCESS.value
    ]


def total(events: list[dict[str, Any]]) -> int:
    return sum(int(event["detail"]["count"]) for event in events)


def test_who_sealed_and_opened_which_asset_is_found_by_user_and_asset(rt: Runtime) -> None:
    """8 messages and a 5 MB recording, sealed by alice and opened by bob, through the plain
    path, the prepared path (cached opens) and streams: 19 uses, every one counted."""
    protector = rt.protector
    sealed = [protector.seal(message(f"m{n}", ALICE), b"hi %d" % n) for n in range(4)]
    handle = protector.prepare(message("any"))
    sealed += [handle.seal(f"m{n}", b"hi %d" % n, actor=ALICE) for n in range(4, 8)]
    for n, envelope in enumerate(sealed):  # all but the first served from the cache
        assert protector.open(message(f"m{n}", BOB), envelope) == b"hi %d" % n
    assert handle.open("m0", sealed[0], actor=BOB) == b"hi 0"
    data = bytes(5 * 2**20)
    out = io.BytesIO()
    protector.seal_stream(recording(ALICE), io.BytesIO(data), out)
    plain = io.BytesIO()
    protector.open_stream(recording(BOB), io.BytesIO(out.getvalue()), plain)
    assert plain.getvalue() == data
    assert protector.open_range(recording(BOB), io.BytesIO(out.getvalue()), 10, 20) == bytes(10)

    by_alice = accesses(rt, user=ALICE)
    assert total(by_alice) == 9
    assert {e["detail"]["operation"] for e in by_alice} == {"seal"}
    by_bob = accesses(rt, user=BOB)
    assert total(by_bob) == 11
    assert {e["detail"]["operation"] for e in by_bob} == {"open"}
    m0 = accesses(rt, asset_id="m0")
    assert sorted((e["actor"], e["detail"]["operation"], e["detail"]["count"]) for e in m0) == [
        (ALICE, "seal", "1"),
        (BOB, "open", "2"),
    ]
    assert {e["detail"]["scope"] for e in m0} == {"channel:eng"}
    assert {e["detail"]["service_id"] for e in m0} == {"0008"}
    rec = accesses(rt, asset_id="rec-1", service_id="0001")
    assert total(rec) == 3


def test_a_denied_open_is_recorded_with_its_actor_and_asset(rt: Runtime) -> None:
    sealed = rt.protector.seal(message("m1", ALICE), b"x")
    rt.admin.revoke(RevocationRule(org="acme", service_id="0008"), actor="test")
    with pytest.raises(AccessDenied):
        rt.protector.open(message("m1", BOB), sealed)
    denied = [e for e in accesses(rt, user=BOB) if e["outcome"] == Outcome.DENIED.value]
    assert [(e["detail"]["asset_id"], e["detail"]["operation"]) for e in denied] == [("m1", "open")]


def test_uses_without_an_actor_are_still_counted(rt: Runtime) -> None:
    rt.protector.seal(message("m1"), b"x")
    (event,) = accesses(rt, asset_id="m1")
    assert event["actor"] is None
    assert event["detail"]["count"] == "1"


@pytest.mark.parametrize("actor", ["", "a" * 321, "bob\n", 7])
def test_a_bad_actor_is_refused_naming_the_field(rt: Runtime, actor: object) -> None:
    with pytest.raises(InvalidRequest) as refused:
        rt.protector.seal({**message("m1"), "actor": actor}, b"x")
    assert refused.value.field == "actor"


def test_the_actor_does_not_split_the_prepared_handle(rt: Runtime) -> None:
    """One handle serves every actor of a container (the memo key leaves ``actor`` out)."""
    rt.protector.seal(message("m1", ALICE), b"x")
    rt.protector.seal(message("m2", BOB), b"x")
    assert len(rt.protector._handles) == 1


class _Failing(MemoryAuditSink):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def record(self, event: AuditEvent) -> None:
        if self.down:
            raise OSError("audit store down")
        super().record(event)


def test_counts_aggregate_per_minute_and_survive_a_refused_flush() -> None:
    clock = FakeClock(START)
    sink = _Failing()
    log = AccessLog(Auditor(sink, clock), clock, timers=False)
    for _ in range(3):
        log.note(("acme",), "0008", "c", "m1", ALICE, "open")
    clock.advance(60)
    log.note(("acme",), "0008", "c", "m1", ALICE, "open")
    assert log.flush() == 0  # refused: kept
    sink.down = False
    assert log.flush() == 2
    counts = sorted(int(event.detail["count"]) for event in sink.events)
    assert counts == [1, 3]
    assert log.flush() == 0  # nothing twice


def test_a_full_batch_is_written_by_the_caller_that_fills_it() -> None:
    clock = FakeClock(START)
    sink = MemoryAuditSink()
    log = AccessLog(Auditor(sink, clock), clock, timers=False, max_pending=3)
    for n in range(3):
        log.note(("acme",), "0008", "c", f"m{n}", None, "seal")
    assert len(sink.events) == 3


def test_the_timer_writes_within_the_flush_interval() -> None:
    """No later use needed: the first use of a batch arms a timer (flush_after)."""
    clock = FakeClock(START)
    written = threading.Event()

    class Signalling(MemoryAuditSink):
        def record(self, event: AuditEvent) -> None:
            super().record(event)
            written.set()

    log = AccessLog(Auditor(Signalling(), clock), clock, flush_after=0.01)
    log.note(("acme",), "0008", "c", "m1", None, "seal")
    assert written.wait(30)
    log.close()


def test_close_writes_what_is_pending() -> None:
    clock = FakeClock(START)
    sink = MemoryAuditSink()
    log = AccessLog(Auditor(sink, clock), clock, flush_after=3600)
    log.note(("acme", "globex"), "0008", "c", "m1", BOB, "open")
    log.close()
    assert sorted(event.org or "" for event in sink.events) == ["acme", "globex"]
