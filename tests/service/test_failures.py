"""Outages, denials from the key manager, audit failures, through the Protector (FS-1 to FS-3)."""

from __future__ import annotations

import pytest

from ownkey.audit import AuditAction, Outcome
from ownkey.errors import AccessDenied, AuditUnavailable, KeyUnavailable
from ownkey.keys import RevocationRule
from ownkey.service import ProtectorSettings
from tests.service._helpers import chat, make_node

SETTINGS = ProtectorSettings(
    auto_create_keys=True,
    cache_max_age=300,
    cache_refresh_after=240,
    retry_attempts=4,
    retry_base_delay=0.05,
    retry_deadline=2.0,
)


def test_a_short_outage_is_ridden_out_by_retries() -> None:
    """FS-2: the caller sees nothing but latency."""
    node = make_node(SETTINGS)
    sealed = node.protector.seal(chat(), b"x")
    cold = node.second_node()
    node.provider.fail_next("unwrap", KeyUnavailable("503"), times=2)
    assert cold.protector.open(chat(), sealed) == b"x"
    assert len(node.clock.slept) == 2
    assert sum(node.clock.slept) <= 2.0


def test_a_long_outage_is_a_key_unavailable_within_the_deadline() -> None:
    """FS-2: bounded attempts inside the deadline, then a typed error; nothing else is tried."""
    node = make_node(SETTINGS)
    sealed = node.protector.seal(chat(), b"x")
    cold = node.second_node()
    node.provider.down = True
    start = node.clock()
    with pytest.raises(KeyUnavailable):
        cold.protector.open(chat(), sealed)
    assert node.clock() - start <= SETTINGS.retry_deadline
    assert node.provider.calls["unwrap"] <= SETTINGS.retry_attempts
    unavailable = [e for e in cold.sink.of(AuditAction.UNWRAP) if e.outcome is Outcome.UNAVAILABLE]
    assert len(unavailable) == node.provider.calls["unwrap"]


def test_a_cached_key_serves_through_an_outage_until_max_age() -> None:
    """CA-3: an outage is not a denial; the bound is the cache's max age."""
    node = make_node(SETTINGS)
    p = node.protector
    sealed = p.seal(chat(), b"x")
    node.provider.down = True
    node.clock.advance(250)  # past refresh_after: one refresh attempt fails, entry kept
    assert p.open(chat(), sealed) == b"x"
    assert p.open(chat(asset_id="m2"), p.seal(chat(asset_id="m2"), b"y")) == b"y"
    node.clock.advance(50)  # max age reached
    with pytest.raises(KeyUnavailable):
        p.open(chat(), sealed)
    node.provider.down = False
    assert p.open(chat(), sealed) == b"x"
    assert node.admin.cache_report().stale_served >= 1


def test_a_revocation_in_the_customers_kms_is_seen_at_the_latest_at_max_age() -> None:
    """Bounds of docs/revocation.md: refresh_after for keys in use, max_age at most."""
    node = make_node(SETTINGS)
    p = node.protector
    sealed = p.seal(chat(), b"x")
    node.provider.deny = True  # the customer disabled the key in its own KMS
    node.clock.advance(239)
    assert p.open(chat(), sealed) == b"x"  # still within refresh_after
    node.clock.advance(1)
    with pytest.raises(AccessDenied) as denied:
        p.open(chat(), sealed)
    assert denied.value.reason == "provider_denied"
    idle = node.second_node()
    node.provider.deny = False
    assert idle.protector.open(chat(), sealed) == b"x"
    node.provider.deny = True
    node.clock.advance(300)
    with pytest.raises(AccessDenied):
        idle.protector.open(chat(), sealed)


def test_a_denied_open_is_never_retried_nor_answered_with_another_key() -> None:
    """FS-1."""
    node = make_node(SETTINGS)
    sealed = node.protector.seal(chat(), b"x")
    cold = node.second_node()
    node.provider.deny = True
    with pytest.raises(AccessDenied):
        cold.protector.open(chat(), sealed)
    assert node.provider.calls["unwrap"] == 1
    assert node.clock.slept == []


def test_audit_failures_fail_closed() -> None:
    """FS-3, KL-12: no record, no key operation."""
    node = make_node(SETTINGS)
    p = node.protector
    sealed = p.seal(chat(), b"x")
    node.sink.failing = True
    assert p.open(chat(), sealed) == b"x"  # a cache hit calls no key manager: nothing to record
    with pytest.raises(AuditUnavailable):
        p.seal(chat("chat-2"), b"y")  # a new scope key: its wraps must be recorded
    with pytest.raises(AuditUnavailable):
        node.admin.revoke(RevocationRule(org="acme"))
    assert node.admin.rules() == []
    with pytest.raises(AuditUnavailable):
        node.admin.disable_key("customer:acme")
    cold = node.second_node()
    cold.sink.failing = True
    with pytest.raises(AuditUnavailable):
        cold.protector.open(chat(), sealed)
    assert cold.admin.cache_report().entries == 0
    node.sink.failing = False
    node.admin.revoke(RevocationRule(org="acme", scope="chat-1"))
    node.sink.failing = True
    with pytest.raises(AuditUnavailable):  # a denial that cannot be recorded is still no access
        p.open(chat(), sealed)
