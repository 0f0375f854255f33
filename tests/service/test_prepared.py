"""The prepared path (a handle per container) keeps every per-message check of the plain path.

Each test seals or opens through a warm handle, changes one thing the access path depends on,
and asserts that the very next message sees it: revocation rules and key states (RV-2, KL-6),
another node's change through a shared store, scope-key retirement and epochs (SK-1), the cache
limits (CA-1), and the asset id bound into every envelope (SK-6).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied, InvalidCiphertext, InvalidRequest
from ownkey.keys import LEASE_USES, KeyRef, MemoryRuleStore, RevocationRule
from ownkey.service import ProtectorSettings, build_protector
from tests.service._helpers import DAY, chat, make_node

ACME = KeyRef.customer("acme")


def _warm(node, request=None):  # type: ignore[no-untyped-def]
    handle = node.protector.prepare(request or chat())
    sealed = handle.seal("m1", b"hello")
    assert handle.open("m1", sealed) == b"hello"
    return handle, sealed


def test_handle_and_plain_path_are_interchangeable() -> None:
    node = make_node()
    handle, sealed = _warm(node)
    assert node.protector.open(chat(asset_id="m1"), sealed) == b"hello"
    plain = node.protector.seal(chat(asset_id="m2"), b"plain")
    assert handle.open("m2", plain) == b"plain"
    assert peek_key_id(plain) == peek_key_id(sealed)  # one scope key for the container


def test_the_asset_id_is_bound_and_checked_per_message() -> None:
    node = make_node()
    handle, sealed = _warm(node)
    with pytest.raises(InvalidCiphertext):
        handle.open("m2", sealed)
    for bad in ("", "x" * 257, None, 7):
        with pytest.raises(InvalidRequest):
            handle.seal(bad, b"x")  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest):
            handle.open(bad, sealed)  # type: ignore[arg-type]


def test_another_scope_does_not_open_with_this_handle() -> None:
    node = make_node()
    _, sealed = _warm(node)
    other = node.protector.prepare(chat(scope="chat-2"))
    with pytest.raises(InvalidCiphertext):
        other.open("m1", sealed)


def test_a_rule_denies_the_next_message_of_a_warm_handle() -> None:
    """RV-2 on the prepared path: seal and open are refused on the very next call."""
    node = make_node()
    handle, sealed = _warm(node)
    rule = node.admin.revoke(RevocationRule(org="acme", scope="chat-1"))
    with pytest.raises(AccessDenied):
        handle.seal("m2", b"x")
    with pytest.raises(AccessDenied):
        handle.open("m1", sealed)
    node.admin.lift(rule.rule_id)
    assert handle.open("m1", sealed) == b"hello"


def test_a_disabled_key_denies_the_next_message_of_a_warm_handle() -> None:
    node = make_node()
    handle, sealed = _warm(node)
    node.admin.disable_key(ACME)
    with pytest.raises(AccessDenied):
        handle.open("m1", sealed)
    with pytest.raises(AccessDenied):
        handle.seal("m2", b"x")


def test_a_rule_added_on_another_node_sharing_the_store_acts_at_once() -> None:
    """No eviction reaches this node's cache: the rule store's version ends the lease."""
    node = make_node()
    other = node.second_node()
    handle, sealed = _warm(other)
    node.admin.revoke(RevocationRule(org="acme", scope="chat-1"))
    with pytest.raises(AccessDenied):
        handle.open("m1", sealed)


class _PlainRules:
    """A rule store without a ``version``: the lease must check it on every message."""

    def __init__(self) -> None:
        self.inner = MemoryRuleStore()

    def add(self, rule: RevocationRule) -> None:
        self.inner.add(rule)

    def remove(self, rule_id: str) -> RevocationRule:
        return self.inner.remove(rule_id)

    def all(self) -> Sequence[RevocationRule]:
        return self.inner.all()

    def for_key(self, ref: KeyRef) -> Sequence[RevocationRule]:
        return self.inner.for_key(ref)


def test_a_store_without_version_is_checked_per_message() -> None:
    rules = _PlainRules()
    protector = build_protector(ProtectorSettings(auto_create_keys=True), rules=rules)
    handle = protector.prepare(chat())
    sealed = handle.seal("m1", b"hello")
    assert handle.open("m1", sealed) == b"hello"
    rules.add(RevocationRule(org="acme", scope="chat-1"))  # written behind ownkey's back
    with pytest.raises(AccessDenied):
        handle.open("m1", sealed)


def test_a_retired_scope_key_seals_no_more_on_the_next_message() -> None:
    node = make_node()
    handle, sealed = _warm(node)
    node.admin.retire_scope_key(peek_key_id(sealed))
    fresh = handle.seal("m2", b"x")
    assert peek_key_id(fresh) != peek_key_id(sealed)
    assert handle.open("m1", sealed) == b"hello"  # retired keys still open


def test_a_new_epoch_gets_a_new_scope_key() -> None:
    node = make_node()
    handle, sealed = _warm(node)
    node.clock.advance(DAY)
    later = handle.seal("m2", b"x")
    assert peek_key_id(later) != peek_key_id(sealed)
    assert handle.open("m1", sealed) == b"hello"


def test_uses_are_counted_against_max_uses() -> None:
    """CA-1: the lease reserves uses from the entry; past ``max_uses`` the key is reloaded."""
    settings = ProtectorSettings(auto_create_keys=True, cache_max_uses=LEASE_USES + 10)
    node = make_node(settings)
    handle, sealed = _warm(node)
    for _ in range(LEASE_USES + 20):
        handle.open("m1", sealed)
    report = node.admin.cache_report()
    assert report.expirations >= 1  # the entry ran out of uses and was dropped once


def test_equal_requests_share_one_handle_and_one_policy_call() -> None:
    calls = []
    node = make_node()
    engine = node.protector._policy
    node.protector._policy = lambda request: calls.append(1) or engine(request)  # type: ignore[assignment]
    for index in range(5):
        node.protector.seal(chat(asset_id=f"m{index}"), b"x")
    assert len(calls) == 1
    node.protector.seal(chat(asset_id="m9", component="file"), b"x")
    assert len(calls) == 2


def test_another_process_shredding_the_scope_key_acts_within_the_recheck_window() -> None:
    """KL-8a on the prepared path: nothing tells this node's cache; the lease ends at the
    record's re-check time, and the next message finds the key destroyed."""
    node = make_node()
    other = node.second_node()
    handle, sealed = _warm(node)
    other.admin.shred_scope_key(peek_key_id(sealed))
    node.clock.advance(1.5)  # past DEFAULT_RECHECK_AFTER (1 s)
    with pytest.raises(AccessDenied) as denied:
        handle.open("m1", sealed)
    assert denied.value.reason == "destroyed"
