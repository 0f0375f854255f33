"""KL-8a at the key layer: a cached scope key's record is re-read every ``recheck_after`` s.

"Another process" is a write straight into the store, behind the cache's back, as a process
sharing the database does it; the clock is the rig's fake one.
"""

from __future__ import annotations

import pytest

from ownkey.envelope import RandomSource
from ownkey.errors import AccessDenied, ConfigError
from ownkey.keys import CacheLimits, ScopeKeyCache, ScopeKeyRecord
from ownkey.testing.fakes import FakeClock, SeededRandom
from tests.keys._rig import ACME, make_rig


def test_a_shred_behind_the_cache_is_refused_after_the_interval_and_not_before() -> None:
    rig = make_rig()
    key_id = rig.keys.for_seal(rig.identity(ACME)).key.key_id
    rig.store.shred(key_id, rig.clock())
    rig.clock.advance(0.9)
    assert rig.keys.for_open(key_id).key.key_id == key_id  # inside the window: the stated bound
    rig.clock.advance(0.1)
    with pytest.raises(AccessDenied) as denied:
        rig.keys.for_open(key_id)
    assert denied.value.reason == "destroyed"
    assert rig.keys.for_seal(rig.identity(ACME)).key.key_id != key_id


def test_a_retirement_behind_the_cache_stops_sealing_but_not_opening() -> None:
    rig = make_rig()
    key_id = rig.keys.for_seal(rig.identity(ACME)).key.key_id
    rig.store.retire(key_id)
    rig.clock.advance(1.0)
    assert rig.keys.for_open(key_id).key.key_id == key_id
    assert rig.keys.for_seal(rig.identity(ACME)).key.key_id != key_id


def test_no_store_read_inside_the_interval() -> None:
    """The hot path stays free of store reads between re-checks (one read per key per second)."""
    rig = make_rig()
    key_id = rig.keys.for_seal(rig.identity(ACME)).key.key_id
    reads: list[bytes] = []
    get = rig.store.get

    def counting(wanted: bytes) -> ScopeKeyRecord | None:
        reads.append(wanted)
        return get(wanted)

    rig.store.get = counting  # type: ignore[method-assign]
    for _ in range(100):
        rig.keys.for_open(key_id)
        rig.keys.for_seal(rig.identity(ACME))
    assert reads == []
    rig.clock.advance(1.0)
    for _ in range(100):
        rig.keys.for_open(key_id)
    assert reads == [key_id]


def test_recheck_after_cannot_be_negative() -> None:
    random: RandomSource = SeededRandom(b"r")
    with pytest.raises(ConfigError):
        ScopeKeyCache(CacheLimits(), clock=FakeClock(), random=random, recheck_after=-1)
