"""The platform's 1001 ciphertext in its asset store, in process (HYB-12, HYB-13): every asset
service path refuses to open it with platform keys, typed; writers own their message ids; the
directory answers a user's org only when exactly one org lists the user."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from ownkey.errors import AccessDenied, Conflict, InvalidRequest, NotFound
from ownkey.service import AssetCiphertexts, DirectoryOrgUsers, Objects, Runtime
from tests.hybrid.conftest import sealed_bytes

ORG, CONV = "acme", "room-1"
ANN, AL = "ann@acme.test", "al@acme.test"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    home = tmp_path / "home"
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        rt.create_org(ORG)
        yield rt


def _sealed(
    text: bytes, conversation: str = CONV, *, message: str = "m-1", author: str = ANN
) -> bytes:
    return sealed_bytes(text, conversation, ORG, message=message, author=author)


def test_no_asset_service_path_opens_client_side_ciphertext(runtime: Runtime) -> None:
    store = AssetCiphertexts(runtime.assets.store)
    record = store.put(ORG, "1001", CONV, "m-1", ANN, _sealed(b"secret"))
    assert record.service_id == "1001"
    assert record.scope_key_id.startswith(b"h1:")
    assets, objects = runtime.assets, Objects(runtime.assets)
    attempts = [
        lambda: assets.get_asset(record.asset_id),
        lambda: assets.get_asset_range(record.asset_id, 0, 3),
        lambda: assets.get_asset_into(record.asset_id, io.BytesIO()),
        lambda: assets.open_object(record.asset_id),
        lambda: objects.read(record.asset_id),
        lambda: assets.rekey_asset(record.asset_id),
    ]
    for attempt in attempts:
        with pytest.raises(AccessDenied, match="client-side") as denied:
            attempt()
        assert denied.value.reason == "policy"
    # another org asking gets NotFound first, as for any asset
    with pytest.raises(NotFound):
        assets.open_object(record.asset_id, "globex")


def test_a_writer_owns_its_message_id(runtime: Runtime) -> None:
    store = AssetCiphertexts(runtime.assets.store)
    first = _sealed(b"ann's")
    store.put(ORG, "1001", CONV, "m-1", ANN, first)
    with pytest.raises(Conflict, match="another member"):
        store.put(ORG, "1001", CONV, "m-1", AL, _sealed(b"al's", author=AL))
    assert store.get(ORG, CONV, "m-1") == first
    second = _sealed(b"ann edits")
    store.put(ORG, "1001", CONV, "m-1", ANN, second)
    assert store.get(ORG, CONV, "m-1") == second


def test_conversations_with_dotted_ids_do_not_share_a_prefix(runtime: Runtime) -> None:
    store = AssetCiphertexts(runtime.assets.store)
    store.put(ORG, "1001", "a", "b.m", ANN, _sealed(b"1", "a", message="b.m"))
    store.put(ORG, "1001", "a.b", "m", ANN, _sealed(b"2", "a.b", message="m"))
    assert store.list(ORG, "a") == ["b.m"]
    assert store.list(ORG, "a.b") == ["m"]
    assert store.delete_conversation(ORG, "a") == 1
    assert store.list(ORG, "a.b") == ["m"]


def test_only_sealed_messages_are_stored(runtime: Runtime) -> None:
    store = AssetCiphertexts(runtime.assets.store)
    junk_list = (
        b"hello",
        b"OKH2\x00\x00",
        b"OKH2\x00\x02ab",
        b"OKH2\x00\x02ab\x03m-x\x0cann@acme.testnot-an-envelope",
        b"OKH1" + _sealed(b"x", message="m-x")[4:],  # the format before issue 23
    )
    for junk in junk_list:
        with pytest.raises(InvalidRequest):
            store.put(ORG, "1001", CONV, "m-x", ANN, junk)
    assert store.list(ORG, CONV) == []


def test_the_platform_stores_a_message_only_in_its_own_slot_by_its_own_author(
    runtime: Runtime,
) -> None:
    """Issue 23 s4, the platform's half: bytes sealed as m-1 by ann are refused as m-2 (a
    replay) and from al (a re-attribution). The reader's protection is the key service's
    binding (tests/hybrid/test_flow.py); this refuses a client bug or a member at once."""
    store = AssetCiphertexts(runtime.assets.store)
    sealed = _sealed(b"ann's", message="m-1", author=ANN)
    with pytest.raises(InvalidRequest, match="sealed as message 'm-1', not 'm-2'"):
        store.put(ORG, "1001", CONV, "m-2", ANN, sealed)
    with pytest.raises(InvalidRequest, match="another author"):
        store.put(ORG, "1001", CONV, "m-1", AL, sealed)
    store.put(ORG, "1001", CONV, "m-1", "Ann@Acme.test", sealed)  # the writer, canonical
    assert store.list(ORG, CONV) == ["m-1"]


def test_a_users_org_comes_from_the_directory_and_is_unique(runtime: Runtime) -> None:
    users = DirectoryOrgUsers(runtime.directory)
    assert users.org_of_user(ANN) is None
    runtime.add_users(ORG, ["Ann@Acme.test"])  # stored as ann@acme.test: one user, one spelling
    assert [u.user for u in runtime.users(ORG)] == [ANN]
    assert users.org_of_user(ANN) == ORG
    assert users.org_of_user(ANN.upper()) == ORG
    assert users.org_of_user("\u212aim@acme.test") is None  # no look-alike is anyone


def test_another_org_cannot_claim_or_shadow_a_user(runtime: Runtime) -> None:
    """Issue 23 s4: globex added ``BOB@ACME.TEST`` to its users; bob, now listed by two orgs,
    was a member of neither and lost every grant in acme's conversations (acme saw nothing)."""
    users = DirectoryOrgUsers(runtime.directory)
    runtime.add_users(ORG, ["bob@acme.test"])
    runtime.create_org("globex")
    for spelling in ("BOB@ACME.TEST", "bob@acme.test", "Bob@Acme.Test"):
        with pytest.raises(Conflict, match="belongs to another org"):
            runtime.add_users("globex", [spelling])
        with pytest.raises(Conflict):
            runtime.add_users("globex", ["new@globex.test", spelling])  # nothing of it is added
    assert runtime.users("globex") == []
    assert users.org_of_user("bob@acme.test") == ORG
    # acme's log shows each refused claim (it showed nothing), naming the claimant.
    from ownkey.storage import AuditQuery

    claims = [
        e.body["detail"]
        for e in runtime.audit_log.query(ORG, AuditQuery())
        if e.body["detail"].get("operation") == "claim_refused"
    ]
    assert len(claims) == 6
    assert {(c["first"], c["by_org"]) for c in claims} == {("bob@acme.test", "globex")}
    runtime.add_users(ORG, ["BOB@acme.test"], licensed=True)  # its own org may re-add it
    assert [(u.user, u.licensed) for u in runtime.users(ORG)] == [("bob@acme.test", True)]


@pytest.mark.parametrize("user", ["ann", "Ann@Acme", "\u212aim@acme.test", "a b@acme.test"])
def test_the_directory_takes_only_valid_ascii_addresses(runtime: Runtime, user: str) -> None:
    """``ownkey user add acme ann`` made a user ``ann`` beside ``ann@acme.test``."""
    with pytest.raises(InvalidRequest, match="not a user's email address"):
        runtime.add_users(ORG, [user])
    assert runtime.users(ORG) == []


def test_org_flags_come_from_the_directory(runtime: Runtime) -> None:
    users = DirectoryOrgUsers(runtime.directory)
    assert users.advanced_chat_encryption(ORG) is False
    assert users.advanced_chat_encryption("nobody") is False
