"""Issue 10, finding 6: every tuple that becomes bytes or text above the envelope is encoded
injectively (ENV2-3.6), so two different identities, org lists or contexts never meet.

Before: the identity digest and the stored org/key columns joined with ``|``, the wrap context
joined orgs with ``,``, and long values became ``sha256:<hex>``, which a literal value could
imitate. Chat members with a non-text org were silently dropped from the identity.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ownkey.envelope import encode_fields
from ownkey.errors import InvalidRequest
from ownkey.keys import KeyRef, ScopeIdentity, ScopeKeyRecord, Wrap, share_context
from ownkey.service._request import address_of
from ownkey.storage import Database, SqlScopeKeyStore
from ownkey.storage._keys import identity_digest

ACME = KeyRef.customer("acme")


def identity(orgs: tuple[str, ...], scope: str = "chat-1") -> ScopeIdentity:
    return ScopeIdentity(orgs, "0008", scope, 0, 3600, (ACME,))


def test_orgs_that_joined_alike_have_different_digests_and_contexts() -> None:
    one, two = identity(("a|b",)), identity(("a", "b"))
    assert identity_digest(one) != identity_digest(two)
    comma_one, comma_two = identity(("a,b",)), identity(("a", "b"))
    kid = bytes(16)
    assert share_context(comma_one, kid, (ACME,), 0) != share_context(comma_two, kid, (ACME,), 0)


def test_a_literal_value_cannot_pass_for_the_digest_of_a_long_one() -> None:
    long_scope = "s" * 600
    imitation = "sha256:" + hashlib.sha256(long_scope.encode()).hexdigest()
    kid = bytes(16)
    long_ctx = share_context(identity(("acme",), long_scope), kid, (ACME,), 0)
    imitation_ctx = share_context(identity(("acme",), imitation), kid, (ACME,), 0)
    assert "scope" not in long_ctx
    assert "scope_sha256" in long_ctx
    assert long_ctx != imitation_ctx


@given(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4),
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4),
)
def test_identity_digests_are_injective_in_the_org_list(a: list[str], b: list[str]) -> None:
    """A property: different org tuples, different digests (and the encoding is injective)."""
    if tuple(a) != tuple(b):
        assert identity_digest(identity(tuple(a))) != identity_digest(identity(tuple(b)))
        assert encode_fields(*a) != encode_fields(*b)


def test_stored_org_lists_read_back_exactly(tmp_path: Path) -> None:
    """``|`` and ``%`` inside an org name survive the stored column, and a scan by org finds
    exactly the record that has it."""
    database = Database.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        store = SqlScopeKeyStore(database)
        odd = KeyRef.customer("a|b%7C")
        orgs = ("a|b%7C", "c")
        record = ScopeKeyRecord(
            key_id=bytes(range(16)),
            orgs=orgs,
            service_id="0008",
            scope="chat-1",
            epoch_start=0,
            epoch_seconds=3600,
            wraps=(Wrap(odd, "local", "k1", "v1", b"blob"),),
            created_at=0.0,
            format=2,
        )
        store.create(record)
        got = store.get(record.key_id)
        assert got is not None
        assert (got.orgs, got.keys, got.format) == (orgs, (odd,), 2)
        assert store.current(got.identity) == got
        from ownkey.keys import Selector

        assert [r.key_id for r in store.scan(Selector(org="a|b%7C"))] == [record.key_id]
        assert list(store.scan(Selector(org="a"))) == []
        assert [r.key_id for r in store.scan(Selector(key=odd))] == [record.key_id]
    finally:
        database.close()


def _chat(members: Any) -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "component": "message",
            "container": {"kind": "chat", "members": members},
        },
        "scope": "chat-1",
        "asset_id": "m1",
    }


@pytest.mark.parametrize(
    "member",
    [{"user": "x"}, {"user": "x", "org": ""}, {"user": "x", "org": 7}, "bob", {"org": "o" * 300}],
)
def test_a_chat_member_with_a_bad_org_is_refused_not_dropped(member: Any) -> None:
    with pytest.raises(InvalidRequest, match=r"members\[1\]"):
        address_of(_chat([{"user": "a", "org": "acme"}, member]))


def test_chat_member_orgs_are_collected() -> None:
    members = [{"user": "a", "org": "acme"}, {"user": "b", "org": "glo|bex"}]
    assert address_of(_chat(members)).chat_orgs == ("acme", "glo|bex")
