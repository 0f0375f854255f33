"""Issue 25, item 2, in the library: ``Protector.seal_batch`` / ``open_batch`` and the prepared
handle's ``seal_many`` / ``open_many``: each item's result on its own, in order."""

from __future__ import annotations

from ownkey.errors import AccessDenied, InvalidCiphertext, InvalidRequest
from ownkey.keys import RevocationRule
from tests.service._helpers import chat, make_node


def container() -> dict[str, object]:
    return {k: v for k, v in chat().items() if k != "asset_id"}


def test_a_batch_returns_each_items_envelope_or_error_in_order() -> None:
    node = make_node()
    items = [("m1", b"one"), ("", b"no id"), ("m3", b"three")]
    sealed = node.protector.seal_batch({**container(), "actor": "ann@acme.test"}, items)
    assert isinstance(sealed[0], bytes)
    assert isinstance(sealed[1], InvalidRequest)
    assert isinstance(sealed[2], bytes)
    assert node.protector.open(chat(asset_id="m3"), sealed[2]) == b"three"
    opened = node.protector.open_batch(container(), [("m1", sealed[0]), ("m1", sealed[2])])
    assert opened[0] == b"one"
    assert isinstance(opened[1], InvalidCiphertext)  # m3's envelope is not m1's


def test_a_denied_container_fails_every_item_and_each_is_counted() -> None:
    node = make_node()
    sealed = node.protector.seal(chat(), b"x")
    node.admin.revoke(RevocationRule(org="acme", scope="chat-1"))
    opened = node.protector.open_batch(
        {**container(), "actor": "bo@globex.test"}, [("m1", sealed)] * 3
    )
    assert all(isinstance(result, AccessDenied) for result in opened)
    node.protector.flush_access()
    denied = [
        event
        for event in node.sink.events
        if event.action.value == "content.access" and event.outcome.value == "denied"
    ]
    assert sum(int(event.detail["count"]) for event in denied if event.org == "acme") == 3
