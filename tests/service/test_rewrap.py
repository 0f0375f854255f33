"""Rotation re-wrap, backfill and rekey through the Protector (RW-1 to RW-6, KL-10)."""

from __future__ import annotations

import io

import pytest

from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied, NotFound
from ownkey.keys import KeyRef, RevocationRule, Selector
from tests.service._helpers import ANN, chat, make_node, single

ACME, GLOBEX, PLATFORM = KeyRef.customer("acme"), KeyRef.customer("globex"), KeyRef.platform()


def _versions(node, sealed: bytes) -> dict[str, str]:  # type: ignore[no-untyped-def]
    record = node.store.get(peek_key_id(sealed))
    assert record is not None
    return {str(wrap.key): wrap.version for wrap in record.wraps}


@pytest.mark.parametrize("ref", ["customer:acme", "platform"])
def test_rotation_rewraps_without_touching_content(ref: str) -> None:
    """KL-10, RW-1, RW-2: ciphertext bytes unchanged; still opens, also on a cold node."""
    node = make_node()
    p = node.protector
    messages = [(chat(f"chat-{n}"), p.seal(chat(f"chat-{n}"), f"m{n}".encode())) for n in range(5)]
    excluded = chat("chat-x", component="reaction")
    messages.append((excluded, p.seal(excluded, b"reaction")))
    before = [bytes(blob) for _, blob in messages]
    rotation = node.admin.rotate_key(ref)
    assert rotation.key.version == "v2"
    assert rotation.rewrap is not None
    assert rotation.rewrap.failed == {}
    assert rotation.rewrap.rewrapped == (5 if ref == "customer:acme" else 1)
    assert [blob for _, blob in messages] == before
    cold = node.second_node()
    for (request, blob), n in zip(messages, range(6), strict=True):
        assert cold.protector.open(request, blob) == (f"m{n}".encode() if n < 5 else b"reaction")
        if ref in _versions(node, blob):
            assert _versions(node, blob)[ref] == "v2"
    new = p.seal(chat("chat-new"), b"new")  # new scope keys wrap under the primary version
    assert _versions(node, new)["customer:acme"] == ("v2" if ref == "customer:acme" else "v1")
    assert node.admin.rewrap(ref).rewrapped == 0


def test_rotation_can_defer_the_rewrap() -> None:
    node = make_node()
    sealed = node.protector.seal(chat(), b"x")
    assert node.admin.rotate_key("customer:acme", rewrap=False).rewrap is None
    assert _versions(node, sealed)["customer:acme"] == "v1"
    assert node.second_node().protector.open(chat(), sealed) == b"x"  # old version still opens
    assert node.admin.rewrap("customer:acme").rewrapped == 1


def test_backfill_moves_existing_content_from_the_platform_key_to_the_customer_key_and_back() -> (
    None
):
    """RW-3, RW-4, RW-5: enabling CMK for a service protects content sealed before."""
    node = make_node()
    p = node.protector
    off = single("0001", "video", services=())  # acme has a CK but did not enable 0001
    sealed = p.seal(off, b"old recording")
    untouched = p.seal(single("0002", "recording", services=(), scope="phone"), b"call")
    before = bytes(sealed)
    record_id = peek_key_id(sealed)
    assert node.store.get(record_id).keys == (PLATFORM,)  # type: ignore[union-attr]
    node.admin.revoke(RevocationRule(org="acme", service_id="0001"))
    assert p.open(off, sealed) == b"old recording"  # acme's rules do not reach PK content

    with pytest.raises(NotFound):  # the org needs a customer key first
        node.admin.backfill("acme", "0001", enable=True)
    node.admin.create_key("customer:acme")
    report = node.admin.backfill("acme", "0001", enable=True)
    assert (report.rewrapped, report.failed) == (1, {})
    assert node.store.get(record_id).keys == (ACME,)  # type: ignore[union-attr]
    assert node.store.get(peek_key_id(untouched)).keys == (PLATFORM,)  # type: ignore[union-attr]
    with pytest.raises(AccessDenied):  # now acme's rule applies, on the very next call
        p.open(off, sealed)
    node.admin.lift(node.admin.rules("acme")[0].rule_id)
    assert p.open(off, sealed) == b"old recording"
    assert bytes(sealed) == before

    back = node.admin.backfill("acme", "0001", enable=False)
    assert back.rewrapped == 1
    assert node.store.get(record_id).keys == (PLATFORM,)  # type: ignore[union-attr]
    node.admin.disable_key("customer:acme")
    assert node.second_node().protector.open(off, sealed) == b"old recording"


def test_backfill_of_a_one_sided_chat_adds_the_other_orgs_key() -> None:
    """RW-3: globex licenses its member: its platform-key side moves to its customer key."""
    node = make_node()
    request = chat(globex=())  # globex has nobody licensed: acme CK + platform key
    sealed = node.protector.seal(request, b"x")
    assert node.store.get(peek_key_id(sealed)).keys == (ACME, PLATFORM)  # type: ignore[union-attr]
    node.admin.create_key("customer:globex")
    assert node.admin.backfill("globex", "0008", enable=True).rewrapped == 1
    assert node.store.get(peek_key_id(sealed)).keys == (ACME, GLOBEX)  # type: ignore[union-attr]
    node.admin.revoke(RevocationRule(org="globex"))
    with pytest.raises(AccessDenied):
        node.protector.open(request, sealed)


def test_rekey_moves_content_to_a_fresh_scope_key_and_the_old_one_can_be_shredded() -> None:
    """RW-6."""
    node = make_node()
    p = node.protector
    first, second = chat(asset_id="m1"), chat(asset_id="m2")
    old_1, old_2 = p.seal(first, b"one"), p.seal(second, b"two")
    old_id = peek_key_id(old_1)
    new_1, new_2 = p.rekey(first, old_1), p.rekey(second, old_2)
    new_id = peek_key_id(new_1)
    assert new_id != old_id
    assert peek_key_id(new_2) == new_id  # one replacement for all content of the old key
    new_record, old_record = node.store.get(new_id), node.store.get(old_id)
    assert new_record is not None
    assert old_record is not None
    assert (new_record.epoch_start, new_record.scope) == (old_record.epoch_start, "chat-1")
    assert not old_record.sealable
    assert peek_key_id(p.seal(chat(asset_id="m3"), b"three")) != old_id
    assert node.admin.shred_scope_key(old_id)
    with pytest.raises(AccessDenied) as denied:
        p.open(first, old_1)
    assert denied.value.reason == "destroyed"
    assert p.open(first, new_1) == b"one"
    assert p.open(second, new_2) == b"two"


def test_rekey_follows_the_current_plan() -> None:
    """RW-6: content re-encrypted under the keys the policy names now."""
    node = make_node()
    p = node.protector
    one_sided = chat(globex=())
    sealed = p.seal(one_sided, b"x")
    both = chat()  # globex licensed its member since
    rekeyed = p.rekey(both, sealed)
    assert node.store.get(peek_key_id(rekeyed)).keys == (ACME, GLOBEX)  # type: ignore[union-attr]
    assert p.open(both, rekeyed) == b"x"


def test_rekey_a_stream_in_bounded_memory() -> None:
    node = make_node()
    p = node.protector
    data = bytes(range(256)) * 1000
    request = single("0001", "video")
    old = io.BytesIO()
    p.seal_stream(request, io.BytesIO(data), old, segment_size=1000)
    new = io.BytesIO()
    p.rekey_stream(request, io.BytesIO(old.getvalue()), new)
    assert peek_key_id(new.getvalue()) != peek_key_id(old.getvalue())
    out = io.BytesIO()
    p.open_stream(request, io.BytesIO(new.getvalue()), out)
    assert out.getvalue() == data
    assert p.open_range(request, io.BytesIO(new.getvalue()), 999, 1003) == data[999:1003]
    node.admin.shred_scope_key(peek_key_id(old.getvalue()))
    with pytest.raises(AccessDenied):
        p.open_stream(request, io.BytesIO(old.getvalue()), io.BytesIO())


def test_admin_lists_scope_keys_without_material() -> None:
    node = make_node()
    node.protector.seal(chat(), b"x")
    node.protector.seal(single("0001", "video", owner=ANN), b"x")
    records = node.admin.scope_keys(Selector(service_id="0008"))
    assert [record.scope for record in records] == ["chat-1"]
    assert len(node.admin.scope_keys()) == 2
    assert "blob" not in repr(records[0].wraps[0])
    assert node.admin.scope_key(records[0].key_id) == records[0]


def test_per_scope_key_primitives_for_job_runners() -> None:
    node = make_node()
    sealed = node.protector.seal(chat(), b"x")
    node.admin.rotate_key("customer:acme", rewrap=False)
    assert node.admin.rewrap_scope_key("customer:acme", peek_key_id(sealed))
    assert _versions(node, sealed)["customer:acme"] == "v2"
    one_sided = node.protector.seal(chat("chat-2", globex=()), b"y")
    assert node.admin.backfill_scope_key("globex", peek_key_id(one_sided), enable=True)
    assert node.admin.backfill_scope_key("globex", peek_key_id(one_sided), enable=False)
    assert node.protector.open(chat("chat-2", globex=()), one_sided) == b"y"
