"""The cache of unwrapped scope keys (CA-1 to CA-6)."""

from __future__ import annotations

import threading
import time

import pytest

from ownkey.envelope import ScopeKey
from ownkey.errors import AccessDenied, ConfigError
from ownkey.keys import CacheLimits, KeyRef, ScopeIdentity, ScopeKeyCache, Selector
from ownkey.testing.fakes import FakeClock, SeededRandom

ACME, PLATFORM = KeyRef.customer("acme"), KeyRef.platform()


def _identity(scope: str = "chat:1", *, org: str = "acme", service: str = "0008", start: int = 0):
    keys = (KeyRef.customer(org),)
    return ScopeIdentity((org,), service, scope, start, 3600, keys)


def _key(n: int) -> ScopeKey:
    return ScopeKey(n.to_bytes(16, "big"), bytes([n]) * 32)


def _cache(clock: FakeClock, **limits: float) -> ScopeKeyCache:
    return ScopeKeyCache(CacheLimits(**limits), clock=clock, random=SeededRandom(1))  # type: ignore[arg-type]


def _loader(n: int, identity: ScopeIdentity, calls: list[int]):
    def load() -> tuple[ScopeKey, ScopeIdentity]:
        calls.append(n)
        return _key(n), identity

    return load


def test_entries_expire_after_max_age() -> None:
    """CA-1: never used once max_age passed."""
    clock = FakeClock()
    cache = _cache(clock, max_age=10, refresh_after=10)
    calls: list[int] = []
    cache.load(_key(1).key_id, _loader(1, _identity(), calls))
    clock.advance(9.9)
    assert cache.get(_key(1).key_id)[0] is not None
    clock.advance(0.1)
    assert cache.get(_key(1).key_id) == (None, False)
    assert cache.report().expirations == 1


def test_entries_expire_after_max_uses() -> None:
    """CA-1: never used once it served max_uses seals and opens."""
    clock = FakeClock()
    cache = _cache(clock, max_uses=3)
    cache.load(_key(1).key_id, _loader(1, _identity(), []))  # use 1
    assert cache.get(_key(1).key_id)[0] is not None  # use 2
    assert cache.get(_key(1).key_id)[0] is not None  # use 3
    assert cache.get(_key(1).key_id)[0] is None


def test_least_recently_used_goes_first() -> None:
    """CA-1: at most max_entries."""
    clock = FakeClock()
    cache = _cache(clock, max_entries=2)
    for n in (1, 2):
        cache.load(_key(n).key_id, _loader(n, _identity(f"s{n}"), []))
    cache.get(_key(1).key_id)
    cache.load(_key(3).key_id, _loader(3, _identity("s3"), []))
    assert cache.get(_key(2).key_id)[0] is None
    assert cache.get(_key(1).key_id)[0] is not None
    assert cache.get(_key(3).key_id)[0] is not None
    assert len(cache) == 2


def test_one_caller_refreshes_past_refresh_after() -> None:
    """CA-3: exactly one caller is told to refresh; the others keep using the entry."""
    clock = FakeClock()
    cache = _cache(clock, max_age=10, refresh_after=5)
    cache.load(_key(1).key_id, _loader(1, _identity(), []))
    clock.advance(5)
    first = cache.get(_key(1).key_id)
    second = cache.get(_key(1).key_id)
    assert first[1] is True
    assert second == (first[0], False)
    assert first[0] is not None
    cache.refresh_failed(first[0])  # KMS unavailable: keep serving, try again later
    assert cache.get(_key(1).key_id) == (first[0], False)
    assert cache.report().stale_served == 1
    clock.advance(4.9)
    entry, refresh = cache.get(_key(1).key_id)
    assert entry is first[0]
    assert refresh is True
    fresh = cache.refreshed(entry, _key(1), _identity())
    assert fresh is not entry
    assert cache.get(_key(1).key_id) == (fresh, False)
    assert cache.report().refreshes == 1


def test_single_flight_makes_one_load_for_many_threads() -> None:
    """CA-2: concurrent misses share one load, result and error alike."""
    clock = FakeClock()
    cache = _cache(clock)
    gate = threading.Event()
    calls: list[int] = []

    def slow_load() -> tuple[ScopeKey, ScopeIdentity]:
        calls.append(1)
        gate.wait(5)
        return _key(1), _identity()

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.load(_key(1).key_id, slow_load)))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    while cache._flights.in_flight() == 0:  # wait until the leader is inside its load
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len({id(result) for result in results}) == 1

    def denied() -> tuple[ScopeKey, ScopeIdentity]:
        raise AccessDenied("no", reason="disabled")

    with pytest.raises(AccessDenied):
        cache.load(_key(2).key_id, denied)
    assert cache.get(_key(2).key_id)[0] is None
    assert cache.report().load_failures == 1


@pytest.mark.parametrize(
    ("selector", "left"),
    [
        (Selector(key=ACME), {"globex"}),
        (Selector(org="globex"), {"acme-a", "acme-b", "acme-old"}),
        (Selector(service_id="0001"), {"acme-a", "acme-old", "globex"}),
        (Selector(scope="a"), {"acme-b", "acme-old"}),
        (Selector(until=3600), {"acme-a", "acme-b", "globex"}),
        (Selector(key_id=(3).to_bytes(16, "big")), {"acme-a", "acme-b", "globex"}),
        (None, set()),
    ],
)
def test_eviction_by_key_org_service_scope_epoch_and_id(
    selector: Selector | None, left: set[str]
) -> None:
    """CA-4."""
    clock = FakeClock()
    cache = _cache(clock)
    entries = {
        "acme-a": (1, _identity("a", start=7200)),
        "acme-b": (2, _identity("b", service="0001", start=7200)),
        "acme-old": (3, _identity("c", start=0)),
        "globex": (4, _identity("a", org="globex", start=7200)),
    }
    for n, identity in entries.values():
        cache.load(_key(n).key_id, _loader(n, identity, []))
    evicted = cache.evict(selector)
    remaining = {name for name, (n, _) in entries.items() if cache.get(_key(n).key_id)[0]}
    assert remaining == left
    assert evicted == len(entries) - len(left)


def test_an_eviction_during_a_load_wins() -> None:
    """CA-5: a key loaded across a revocation is handed out once but not cached."""
    clock = FakeClock()
    cache = _cache(clock)

    def load_then_revoked() -> tuple[ScopeKey, ScopeIdentity]:
        cache.evict(Selector(key=ACME))
        return _key(1), _identity()

    assert cache.load(_key(1).key_id, load_then_revoked).key == _key(1)
    assert cache.get(_key(1).key_id)[0] is None


def test_seal_bindings_follow_entries() -> None:
    clock = FakeClock()
    cache = _cache(clock)
    identity = _identity()
    cache.put(_key(1), identity)
    cache.bind(identity, _key(1).key_id)
    assert cache.bound(identity) == _key(1).key_id
    cache.evict_id(_key(1).key_id)
    assert cache.bound(identity) is None
    cache.bind(identity, _key(1).key_id)  # not cached: not bound
    assert cache.bound(identity) is None


def test_limits_are_reported_and_checked() -> None:
    """CA-6."""
    clock = FakeClock()
    cache = _cache(clock, max_age=60, refresh_after=30, max_uses=5, max_entries=7)
    report = cache.report()
    assert report.limits == CacheLimits(60, 30, 5, 7)
    assert (report.entries, report.hits, report.misses) == (0, 0, 0)
    for bad in ({"max_age": 0}, {"refresh_after": 400}, {"max_uses": 0}, {"max_entries": 0}):
        with pytest.raises(ConfigError):
            CacheLimits(**bad)  # type: ignore[arg-type]
    assert "redacted" in repr(cache.put(_key(9), _identity()))
