"""Key states through the Protector: disable, destruction, no fallback (KL-6 to KL-9)."""

from __future__ import annotations

import pytest

from ownkey.audit import AuditAction
from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied, LifecycleError
from ownkey.keys import KeyState
from tests.service._helpers import AL, DAY, chat, make_node, single


def _reason(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDenied) as denied:
        call()
    return denied.value.reason


def test_a_disabled_key_denies_seal_and_open_at_once_and_never_falls_back() -> None:
    """KL-6, KL-7, KL-8, FS-1."""
    node = make_node()
    p = node.protector
    sealed = p.seal(chat(), b"x")
    p.open(chat(), sealed)  # cached
    stored = len(node.store)
    node.admin.disable_key("customer:acme")
    assert _reason(lambda: p.open(chat(), sealed)) == "disabled"
    assert _reason(lambda: p.seal(chat("chat-new"), b"y")) == "disabled"
    assert len(node.store) == stored  # no scope key under the platform key instead
    assert node.provider.calls["wrap"] == 2  # the two shares of the first scope key, no more
    assert node.admin.cache_report().entries == 0  # KL-8: evicted
    node.admin.enable_key("customer:acme")
    assert p.open(chat(), sealed) == b"x"


def test_pending_destruction_denies_and_cancel_needs_a_second_step() -> None:
    """KL-4, KL-5."""
    node = make_node()
    p = node.protector
    sealed = p.seal(chat(), b"x")
    node.admin.disable_key("customer:globex")
    node.admin.schedule_key_destruction("customer:globex")
    assert _reason(lambda: p.open(chat(), sealed)) == "pending_destruction"
    node.admin.cancel_key_destruction("customer:globex")
    assert _reason(lambda: p.open(chat(), sealed)) == "disabled"
    node.admin.enable_key("customer:globex")
    assert p.open(chat(), sealed) == b"x"


def test_destroy_then_open_is_denied_forever() -> None:
    """KL-9, KL-11: crypto-shredded; even a new key for the org, a new node or time won't help."""
    node = make_node()
    p = node.protector
    sealed = p.seal(chat(), b"secret")
    recording = single("0001", "video")
    sealed_recording = p.seal(recording, b"film")
    platform_only = single("0001", "video", owner=AL, scope="s-2")
    sealed_platform = p.seal(platform_only, b"not acme's")
    node.admin.disable_key("customer:acme")
    node.admin.schedule_key_destruction("customer:acme")
    with pytest.raises(LifecycleError):
        node.admin.destroy_key("customer:acme")
    node.clock.advance(7 * DAY)
    evidence = node.admin.destroy_key("customer:acme")
    assert evidence.scope_keys == 2
    for record_id in (peek_key_id(sealed), peek_key_id(sealed_recording)):
        record = node.store.get(record_id)
        assert record is not None
        assert record.shredded
    assert node.protector.open(platform_only, sealed_platform) == b"not acme's"

    node.admin.create_key("customer:acme")  # a new key for new content
    assert node.admin.key("customer:acme").state is KeyState.ENABLED
    other = node.second_node()
    for _ in range(3):
        for protector in (p, other.protector):
            assert _reason(lambda p=protector: p.open(chat(), sealed)) == "destroyed"
            assert _reason(lambda p=protector: p.open(recording, sealed_recording)) == "destroyed"
        node.clock.advance(365 * DAY)
    fresh = p.seal(chat(), b"new")
    assert p.open(chat(), fresh) == b"new"
    assert peek_key_id(fresh) != peek_key_id(sealed)
    [shred] = node.sink.of(AuditAction.SCOPE_KEY_SHRED)
    assert shred.detail["scope_keys"] == "2"


def test_destroy_due_runs_from_a_timer() -> None:
    node = make_node()
    node.protector.seal(chat(), b"x")
    node.admin.disable_key("customer:acme")
    node.admin.schedule_key_destruction("customer:acme", waiting_period=2 * DAY)
    node.clock.advance(DAY)
    assert node.admin.destroy_due() == []
    node.clock.advance(DAY)
    [evidence] = node.admin.destroy_due()
    assert evidence.scope_keys == 1
    assert node.admin.key("customer:acme").state is KeyState.DESTROYED
