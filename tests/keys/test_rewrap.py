"""Re-wrap jobs at the key layer: reports, failures, resumption."""

from __future__ import annotations

import pytest

from ownkey.audit import AuditAction
from ownkey.errors import AccessDenied, AuditUnavailable
from ownkey.keys import CacheEntry, KeyRef, Selector
from tests.keys._rig import ACME, GLOBEX, PLATFORM, Rig, make_rig


def _keys(rig: Rig, entry: CacheEntry) -> tuple[KeyRef, ...]:
    record = rig.store.get(entry.key.key_id)
    assert record is not None
    return record.keys


def test_rotation_rewrap_moves_only_older_versions_and_is_idempotent() -> None:
    """RW-2."""
    rig = make_rig()
    for n in range(3):
        rig.keys.for_seal(rig.identity(ACME, GLOBEX, scope=f"s{n}"))
    rig.keys.for_seal(rig.identity(GLOBEX, scope="g"))
    rig.admin.rotate(ACME)
    report = rig.rewrapper.rewrap(ACME)
    assert (report.scanned, report.rewrapped, report.unchanged, report.failed) == (3, 3, 0, {})
    for record in rig.store.scan(Selector()):
        for wrap in record.wraps:
            assert wrap.version == ("v2" if wrap.key == ACME else "v1")
    again = rig.rewrapper.rewrap(ACME)
    assert (again.rewrapped, again.unchanged) == (0, 3)
    events = rig.sink.of(AuditAction.SCOPE_KEY_REWRAP)
    assert events[0].detail["rewrapped"] == "3"
    assert events[0].detail["to_version"] == "v2"


def test_a_failing_record_is_reported_and_the_job_goes_on() -> None:
    """RW-7: failures are per record; a second run finishes the rest."""
    rig = make_rig()
    for n in range(4):
        rig.keys.for_seal(rig.identity(ACME, scope=f"s{n}"))
    rig.admin.rotate(ACME)
    rig.provider.fail_next("unwrap", AccessDenied("flaky grant", reason="provider_denied"))
    report = rig.rewrapper.rewrap(ACME)
    assert report.rewrapped == 3
    assert len(report.failed) == 1
    [reason] = report.failed.values()
    assert reason == "flaky grant"
    assert rig.rewrapper.rewrap(ACME).rewrapped == 1


def test_an_audit_failure_stops_the_job() -> None:
    """RW-7, FS-3."""
    rig = make_rig()
    for n in range(2):
        rig.keys.for_seal(rig.identity(ACME, scope=f"s{n}"))
    rig.admin.rotate(ACME)
    rig.sink.failing = True
    with pytest.raises(AuditUnavailable):
        rig.rewrapper.rewrap(ACME)


def test_backfill_moves_the_platform_share_standing_for_the_org() -> None:
    """RW-3, RW-4, RW-5."""
    rig = make_rig()
    alone = rig.keys.for_seal(rig.identity(PLATFORM, orgs=("acme",), scope="a"))
    chat = rig.keys.for_seal(rig.identity(GLOBEX, PLATFORM, orgs=("acme", "globex"), scope="c"))
    elsewhere = rig.keys.for_seal(
        rig.identity(PLATFORM, orgs=("acme",), scope="z", service_id="0001")
    )
    report = rig.rewrapper.backfill("acme", "0008", to_customer=True)
    assert (report.rewrapped, report.failed) == (2, {})
    assert _keys(rig, alone) == (ACME,)
    assert _keys(rig, chat) == (ACME, GLOBEX)
    assert _keys(rig, elsewhere) == (PLATFORM,)
    assert rig.deps.cache.get(alone.key.key_id)[0] is None  # RW-5: checks must see the new keys
    assert rig.keys.for_open(alone.key.key_id).key == alone.key  # RW-1: same material
    assert rig.rewrapper.backfill("acme", "0008", to_customer=True).rewrapped == 0
    back = rig.rewrapper.backfill("acme", "0008", to_customer=False, scopes={"a"})
    assert back.rewrapped == 1
    assert _keys(rig, alone) == (PLATFORM,)
    assert _keys(rig, chat) == (ACME, GLOBEX)


def test_retire_and_shred_one_scope_key() -> None:
    """RW-6 at the key layer."""
    rig = make_rig()
    entry = rig.keys.for_seal(rig.identity(ACME))
    rig.rewrapper.retire(entry.key.key_id)
    rig.rewrapper.retire(entry.key.key_id)  # idempotent, recorded once
    assert len(rig.sink.of(AuditAction.SCOPE_KEY_RETIRE)) == 1
    assert rig.keys.for_seal(rig.identity(ACME)).key != entry.key
    assert rig.rewrapper.shred(entry.key.key_id)
    assert not rig.rewrapper.shred(b"\x00" * 16)
    with pytest.raises(AccessDenied) as denied:
        rig.keys.for_open(entry.key.key_id)
    assert denied.value.reason == "destroyed"


def test_one_scope_key_at_a_time_for_resumable_jobs() -> None:
    """RW-2, RW-3: per-record primitives are idempotent and survive a concurrent writer."""
    rig = make_rig()
    a = rig.keys.for_seal(rig.identity(ACME, scope="a"))
    rig.admin.rotate(ACME)
    assert rig.rewrapper.rewrap_one(ACME, a.key.key_id)
    assert not rig.rewrapper.rewrap_one(ACME, a.key.key_id)  # done already: a repeat is harmless
    assert not rig.rewrapper.rewrap_one(ACME, b"\x00" * 16)
    assert rig.keys.for_open(a.key.key_id).key == a.key

    p = rig.keys.for_seal(rig.identity(PLATFORM, orgs=("acme",), scope="p"))
    store = rig.store
    original = store.replace_wraps
    raced: list[bool] = []

    def lose_the_first_race(key_id: bytes, expected: tuple, wraps: tuple, **options: bool) -> bool:  # type: ignore[type-arg]
        if not raced:
            raced.append(True)
            return False
        return original(key_id, expected, wraps, **options)

    store.replace_wraps = lose_the_first_race  # type: ignore[method-assign]
    assert rig.rewrapper.backfill_one("acme", p.key.key_id, to_customer=True)
    assert raced == [True]
    assert _keys(rig, p) == (ACME,)
    assert not rig.rewrapper.backfill_one("globex", p.key.key_id, to_customer=True)


def test_a_shred_waits_until_no_process_can_seal_under_the_key() -> None:
    """KL-8a: a sealable scope key is retired first and its shares deleted only once the other
    processes' re-check window (1 s) plus 0.5 s has passed; a known retirement time counts."""
    rig = make_rig()
    live = rig.keys.for_seal(rig.identity(ACME)).key.key_id
    assert rig.rewrapper.shred(live)
    assert rig.clock.slept == [1.5]
    retire = rig.sink.of(AuditAction.SCOPE_KEY_RETIRE)
    assert [event.detail["reason"] for event in retire] == ["shred"]
    retired = rig.keys.for_seal(rig.identity(ACME, scope="b")).key.key_id
    rig.rewrapper.retire(retired)
    at = rig.clock()
    rig.clock.advance(1.0)
    assert rig.rewrapper.shred(retired, retired_at=at)
    assert rig.clock.slept == [1.5, 0.5]


def test_a_shred_under_a_long_unusable_key_does_not_wait() -> None:
    """KL-8a: nobody seals under a key disabled for longer than the window (a destruction)."""
    rig = make_rig()
    key_id = rig.keys.for_seal(rig.identity(ACME)).key.key_id
    rig.admin.disable(ACME)
    rig.clock.advance(1.5)
    assert rig.rewrapper.shred(key_id)
    assert rig.clock.slept == []
