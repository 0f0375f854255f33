"""The access path: scope keys for sealing and opening, with every check (ScopeKeys)."""

from __future__ import annotations

import threading

import pytest

from ownkey.audit import AuditAction, Outcome
from ownkey.envelope import SECRET_KEY_ACCESS, combine_shares
from ownkey.errors import (
    AccessDenied,
    AuditUnavailable,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
)
from ownkey.keys import CacheLimits, KeyRef, RetryPolicy, ScopeKeys
from ownkey.keys._records import record_binding, share_context
from tests.keys._rig import ACME, GLOBEX, PLATFORM, make_rig


def test_one_share_per_key_in_plan_order_combined() -> None:
    """SK-2: n random shares, each wrapped under its key; the scope key is their combination."""
    rig = make_rig()
    identity = rig.identity(ACME, GLOBEX, PLATFORM)
    entry = rig.keys.for_seal(identity)
    record = rig.store.get(entry.key.key_id)
    assert record is not None
    assert [wrap.key for wrap in record.wraps] == [ACME, GLOBEX, PLATFORM]
    shares = [
        rig.provider.unwrap(
            w.key_id, w.blob, share_context(identity, record.key_id, record.wrap_keys, index)
        )
        for index, w in enumerate(record.wraps)
    ]
    assert len(set(shares)) == 3
    assert entry.key.material(SECRET_KEY_ACCESS) == combine_shares(shares, record_binding(record))
    assert len(entry.key.key_id) == 16  # SK-4


def test_one_scope_key_per_identity_reused_across_the_cache() -> None:
    """SK-1: created on first use, reused after, reloaded (not recreated) after eviction."""
    rig = make_rig()
    identity = rig.identity(ACME)
    first = rig.keys.for_seal(identity)
    assert rig.keys.for_seal(identity).key == first.key
    rig.deps.cache.evict()
    unwraps = rig.provider.calls["unwrap"]
    assert rig.keys.for_seal(identity).key == first.key
    assert rig.provider.calls["unwrap"] == unwraps + 1
    assert rig.keys.for_seal(rig.identity(ACME, scope="other")).key != first.key
    assert len(rig.store) == 2


def test_concurrent_first_seals_create_one_scope_key() -> None:
    """CA-2: concurrent first seals of one identity create (and wrap) once."""
    rig = make_rig()
    identity = rig.identity(ACME, GLOBEX)
    keys: list[bytes] = []
    barrier = threading.Barrier(12)

    def seal() -> None:
        barrier.wait()
        keys.append(rig.keys.for_seal(identity).key.key_id)

    threads = [threading.Thread(target=seal) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert len(rig.store) == 1
    assert rig.provider.calls["wrap"] == 2


def test_a_key_manager_denial_is_final_evicts_and_is_recorded() -> None:
    """FS-1: not retried; every cached scope key under the key is evicted; both events logged."""
    rig = make_rig()
    a = rig.keys.for_seal(rig.identity(ACME, scope="a"))
    b = rig.keys.for_seal(rig.identity(ACME, scope="b"))
    g = rig.keys.for_seal(rig.identity(GLOBEX, scope="g"))
    rig.deps.cache.evict_id(a.key.key_id)
    rig.provider.deny = True
    with pytest.raises(AccessDenied) as denied:
        rig.keys.for_open(a.key.key_id)
    assert denied.value.reason == "provider_denied"
    assert rig.provider.calls["unwrap"] == 1
    assert rig.deps.cache.get(b.key.key_id)[0] is None
    assert rig.deps.cache.get(g.key.key_id)[0] is not None
    [unwrap] = rig.sink.of(AuditAction.UNWRAP)
    assert unwrap.outcome is Outcome.DENIED
    assert unwrap.detail["scope"] == "a"
    [denial] = rig.sink.of(AuditAction.ACCESS_DENIED)
    assert denial.detail["reason"] == "provider_denied"


def test_outage_is_retried_then_raised() -> None:
    """FS-2: KeyUnavailable retried within the deadline; then raised, nothing cached."""
    rig = make_rig(retry=RetryPolicy(attempts=3, base_delay=0.1, deadline=5))
    entry = rig.keys.for_seal(rig.identity(ACME))
    rig.deps.cache.evict()
    rig.provider.fail_next("unwrap", KeyUnavailable("timeout"), times=2)
    assert rig.keys.for_open(entry.key.key_id).key == entry.key
    assert len(rig.clock.slept) == 2
    rig.deps.cache.evict()
    rig.provider.down = True
    with pytest.raises(KeyUnavailable):
        rig.keys.for_open(entry.key.key_id)
    outcomes = [event.outcome for event in rig.sink.of(AuditAction.UNWRAP)]
    assert outcomes.count(Outcome.UNAVAILABLE) == 5  # every attempt is a key-manager call


def test_stale_entry_serves_through_an_outage_until_max_age() -> None:
    """CA-3: refresh fails on an outage: keep serving until max_age, then KeyUnavailable."""
    rig = make_rig(limits=CacheLimits(max_age=100, refresh_after=60))
    entry = rig.keys.for_seal(rig.identity(ACME, epoch_start=0))
    key_id = entry.key.key_id
    rig.provider.down = True
    rig.clock.advance(60)
    assert rig.keys.for_open(key_id).key == entry.key
    assert rig.provider.calls["unwrap"] == 1  # one refresh attempt, no retries
    assert rig.keys.for_open(key_id).key == entry.key
    rig.clock.advance(40)
    with pytest.raises(KeyUnavailable):
        rig.keys.for_open(key_id)
    rig.provider.down = False
    assert rig.keys.for_open(key_id).key == entry.key
    assert rig.deps.cache.report().stale_served == 1


def test_refresh_that_is_denied_evicts_at_once() -> None:
    """CA-3: a revocation made in the customer's KMS is seen at refresh_after."""
    rig = make_rig(limits=CacheLimits(max_age=100, refresh_after=60))
    entry = rig.keys.for_seal(rig.identity(ACME, epoch_start=0))
    rig.provider.deny = True
    rig.clock.advance(59)
    assert rig.keys.for_open(entry.key.key_id).key == entry.key
    rig.clock.advance(1)
    with pytest.raises(AccessDenied):
        rig.keys.for_open(entry.key.key_id)
    assert rig.deps.cache.get(entry.key.key_id)[0] is None


def test_a_refresh_denied_while_the_audit_log_is_down_does_not_keep_the_key() -> None:
    """CA-3 with FS-3: the customer revoked the key in its KMS and the audit log is down, so
    the denial cannot be recorded. The cached key must not go on serving as if the KMS were
    merely unreachable (it did before: AuditUnavailable is a KeyUnavailable)."""
    rig = make_rig(limits=CacheLimits(max_age=100, refresh_after=60))
    entry = rig.keys.for_seal(rig.identity(ACME, epoch_start=0))
    rig.provider.deny = True
    rig.sink.failing = True
    rig.clock.advance(60)
    with pytest.raises(AuditUnavailable):
        rig.keys.for_open(entry.key.key_id)
    assert rig.deps.cache.get(entry.key.key_id)[0] is None
    with pytest.raises(AuditUnavailable):
        rig.keys.for_open(entry.key.key_id)
    rig.sink.failing = False
    with pytest.raises(AccessDenied):
        rig.keys.for_open(entry.key.key_id)


def test_a_refresh_that_cannot_be_audited_stops_serving_the_key() -> None:
    """FS-3: past refresh_after the key is used only after an audited unwrap; with the audit
    log down the refresh fails closed instead of serving the old entry until max_age."""
    rig = make_rig(limits=CacheLimits(max_age=100, refresh_after=60))
    entry = rig.keys.for_seal(rig.identity(ACME, epoch_start=0))
    rig.sink.failing = True
    rig.clock.advance(59)
    assert rig.keys.for_open(entry.key.key_id).key == entry.key  # not yet due: the cache
    rig.clock.advance(1)
    with pytest.raises(AuditUnavailable):
        rig.keys.for_open(entry.key.key_id)
    rig.sink.failing = False
    assert rig.keys.for_open(entry.key.key_id).key == entry.key


def test_refresh_replaces_the_entry_when_the_kms_answers() -> None:
    rig = make_rig(limits=CacheLimits(max_age=100, refresh_after=60))
    entry = rig.keys.for_seal(rig.identity(ACME, epoch_start=0))
    rig.clock.advance(60)
    refreshed = rig.keys.for_open(entry.key.key_id)
    assert refreshed is not entry
    assert refreshed.key == entry.key
    rig.clock.advance(50)
    assert rig.keys.for_open(entry.key.key_id) is refreshed


def test_audit_failure_discards_an_unwrapped_key() -> None:
    """FS-3: the unwrap happened but could not be recorded: nothing cached, AuditUnavailable."""
    rig = make_rig()
    entry = rig.keys.for_seal(rig.identity(ACME))
    rig.deps.cache.evict()
    rig.sink.failing = True
    with pytest.raises(AuditUnavailable):
        rig.keys.for_open(entry.key.key_id)
    assert rig.deps.cache.get(entry.key.key_id)[0] is None
    assert rig.provider.calls["unwrap"] == 1
    with pytest.raises(AuditUnavailable):
        rig.keys.for_seal(rig.identity(ACME, scope="new"))
    assert len(rig.store) == 1


def test_client_side_keys_are_refused_and_unknown_keys_are_config_errors() -> None:
    """FS-4, FS-5, SK-4."""
    rig = make_rig()
    with pytest.raises(AccessDenied) as denied:
        rig.keys.for_seal(rig.identity(KeyRef.hybrid("acme")))
    assert denied.value.reason == "policy"
    with pytest.raises(ConfigError, match="initech"):
        rig.keys.for_seal(rig.identity(KeyRef.customer("initech")))
    with pytest.raises(InvalidCiphertext):
        rig.keys.for_open(b"\x00" * 16)


def test_provisioning_creates_a_missing_key_on_first_use() -> None:
    rig = make_rig(keys=(PLATFORM,))
    keys = ScopeKeys(rig.deps, provision=lambda ref: rig.admin.create(ref))
    keys.for_seal(rig.identity(ACME))
    assert rig.admin.get(ACME).ref == ACME
