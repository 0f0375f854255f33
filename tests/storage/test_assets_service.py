"""put_asset, get_asset, get_asset_range, rekey_asset, preview: the Protector on the asset store,
with SQL stores on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied, Conflict
from ownkey.keys import KeyRef, RevocationRule
from ownkey.service._assets import PlanChanged, compact_request, opening_request
from ownkey.storage import S3BlobStore
from tests.jobs._rig import Node, make_node
from tests.service._helpers import AL, ANN, BO, chat, single

ACME = KeyRef.customer("acme")


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Node]:
    made = make_node(database_url, tmp_path)
    try:
        yield made
    finally:
        made.close()


def recording(asset_id: str, scope: str = "meeting-1", **kw: object) -> dict[str, object]:
    return single("0001", "video", scope=scope, asset_id=asset_id, **kw)  # type: ignore[arg-type]


def test_small_asset_roundtrip(node: Node) -> None:
    request = chat("chat-1", "m1")
    record = node.assets.put_asset(request, b"hello globex")
    assert record.inline
    assert record.size == 12
    assert node.assets.get_asset("m1") == b"hello globex"
    assert node.assets.get_asset_range("m1", 6) == b"globex"
    stored = node.store.get("m1")
    assert stored.request == compact_request(request)
    assert dict(stored.context) == {
        "org": "acme",
        "service_id": "0008",
        "scope": "chat-1",
        "asset_id": "m1",
        "component": "message",
    }
    scope_key = node.admin.scope_key(stored.scope_key_id)
    assert scope_key.keys == (ACME, KeyRef.customer("globex"))


def test_stream_roundtrip_range_and_one_shot_source(node: Node) -> None:
    data = os.urandom(300_000)
    record = node.assets.put_asset(recording("rec-1"), data)
    assert not record.inline
    assert record.size == len(data)
    assert node.assets.get_asset("rec-1") == data
    assert node.assets.get_asset_range("rec-1", 123_456, 200_000) == data[123_456:200_000]
    assert node.assets.get_asset_range("rec-1", 299_990, 10**9) == data[299_990:]
    sink = io.BytesIO()
    assert node.assets.get_asset_range_into("rec-1", sink, 0, 10) == 10

    class OneShot:  # a network body: readinto only
        def __init__(self, payload: bytes) -> None:
            self._inner = io.BytesIO(payload)

        def readinto(self, buffer: memoryview, /) -> int | None:
            return self._inner.readinto(buffer)

    streamed = node.assets.put_asset(recording("rec-2"), OneShot(b"z" * 5000))
    assert streamed.size == 5000
    assert node.assets.get_asset("rec-2") == b"z" * 5000
    with pytest.raises(ValueError, match="range"):
        node.assets.get_asset_range("rec-2", 10, 5)


def test_the_stored_request_keeps_only_the_users_the_asset_names() -> None:
    request = single("0001", "video", licensed=(ANN, AL, "x@acme.test"))
    assert request["orgs"]["acme"]["licensed_users"] == [ANN, AL, "x@acme.test"]  # type: ignore[index]
    assert compact_request(request)["orgs"]["acme"]["licensed_users"] == [ANN]
    chat_request = chat(acme=(ANN, AL), globex=(BO,))
    compact = compact_request(chat_request)
    assert compact["orgs"]["acme"]["licensed_users"] == [ANN]
    assert compact["orgs"]["globex"]["licensed_users"] == [BO]


def test_a_retired_scope_key_cached_elsewhere_is_not_used_for_a_put(
    node: Node, database_url: str, tmp_path: Path
) -> None:
    """Node B still has the scope key cached for sealing when node A's rekey retires it: B's
    put is refused by the store, B drops the key and seals again under a fresh one."""
    other = make_node(database_url, tmp_path)
    try:
        first = other.assets.put_asset(chat("chat-9", "m1"), b"one")
        node.admin.retire_scope_key(first.scope_key_id)
        for asset_id, payload in (("m2", b"two"), ("big", os.urandom(50_000))):
            second = other.assets.put_asset(chat("chat-9", asset_id), payload)
            assert second.scope_key_id != first.scope_key_id
            assert other.assets.get_asset(asset_id) == payload
    finally:
        other.close()


def test_rekey_moves_content_to_a_fresh_scope_key(node: Node) -> None:
    data = os.urandom(70_000)
    old = node.assets.put_asset(recording("rec-1"), data)
    small = node.assets.put_asset(recording("note-1"), b"small note")
    assert small.scope_key_id == old.scope_key_id
    assert node.assets.rekey_asset("rec-1", only_from={old.scope_key_id}) is True
    moved = node.store.get("rec-1")
    assert moved.scope_key_id != old.scope_key_id
    assert moved.location != old.location
    assert node.admin.scope_key(old.scope_key_id).sealable is False  # retired
    assert node.assets.get_asset("rec-1") == data
    assert node.assets.rekey_asset("rec-1", only_from={old.scope_key_id}) is False  # idempotent
    assert node.assets.rekey_asset("note-1") is True
    assert node.store.get("note-1").scope_key_id == moved.scope_key_id  # same fresh key
    assert node.assets.get_asset("note-1") == b"small note"
    assert node.assets.rekey_asset("no-such-asset") is False


def test_rekey_refuses_to_change_keys(node: Node) -> None:
    node.assets.put_asset(recording("rec-1"), b"data")
    # The org's current settings say 0001 is no longer enabled: the content would go to the
    # platform key. A rekey never does that (a backfill does), it refuses and says why.
    settings = {"acme": {"cmk": True, "services": [], "licensed_users": [ANN]}}
    with pytest.raises(PlanChanged, match="run the backfill first"):
        node.assets.rekey_asset("rec-1", orgs=settings)
    assert node.assets.get_asset("rec-1") == b"data"


def test_rekey_needs_the_stored_request(node: Node) -> None:
    record = node.assets.put_asset(recording("rec-1"), b"data")
    key_id = record.scope_key_id
    sealed = node.store.read("rec-1")[1]
    node.store.put(context=record.context, sealed=sealed, size=4)  # stored without a request
    assert peek_key_id(sealed) == key_id
    with pytest.raises(Conflict, match="without its request"):
        node.assets.rekey_asset("rec-1")


def test_get_after_revocation_is_a_tombstone(node: Node) -> None:
    node.assets.put_asset(recording("rec-1"), os.urandom(20_000))
    rule = node.admin.revoke(RevocationRule(org="acme", service_id="0001"))
    with pytest.raises(AccessDenied):
        node.assets.get_asset_range("rec-1", 0, 10)
    node.admin.lift(rule.rule_id)
    assert len(node.assets.get_asset_range("rec-1", 0, 10)) == 10


def test_preview_counts_assets_and_bytes_by_service(node: Node) -> None:
    node.assets.put_asset(recording("rec-1", scope="m-1"), b"a" * 10_000)
    node.assets.put_asset(recording("rec-2", scope="m-2"), b"b" * 500)
    node.assets.put_asset(chat("chat-1", "m1"), b"hi")
    node.assets.put_asset(chat("chat-1", "m2"), b"there")
    node.protector.seal(single("0002", "recording", scope="call-1"), b"elsewhere")
    whole = node.assets.preview(RevocationRule(org="acme"))
    assert whole.scope_keys_by_service == {"0001": 2, "0002": 1, "0008": 1}
    assert whole.assets_by_service == {"0001": 2, "0008": 2}
    assert whole.bytes_by_service == {"0001": 10_500, "0008": 7}
    assert (whole.scope_keys, whole.assets, whole.bytes) == (4, 4, 10_507)
    one = node.assets.preview(RevocationRule(org="acme", service_id="0001", scope="m-2"))
    assert one.to_json()["by_service"] == {"0001": {"scope_keys": 1, "assets": 1, "bytes": 500}}
    assert node.store.count() == 4  # a preview changes nothing


def test_opening_request_comes_from_the_stored_context(node: Node) -> None:
    record = node.assets.put_asset(recording("rec-1"), b"x")
    assert opening_request(record) == {
        "asset": {"service_id": "0001", "org": "acme", "component": "video"},
        "scope": "meeting-1",
        "asset_id": "rec-1",
    }


def test_assets_in_s3(sqlite_url: str, tmp_path: Path, s3_client: object, s3_bucket: str) -> None:
    """The same service over S3 blobs (moto's server): a streamed put in parts, ranged reads by
    ranged GETs, a rekey that swaps the object."""
    node = make_node(sqlite_url, tmp_path)
    try:
        node.store.blobs = S3BlobStore(s3_client, s3_bucket, part_size=5 << 20, read_block=1 << 16)
        data = os.urandom(6 << 20)
        record = node.assets.put_asset(recording("rec-s3"), io.BytesIO(data))
        assert record.location.startswith("s3:")
        assert (
            node.assets.get_asset_range("rec-s3", 5_000_000, 5_000_100) == data[5_000_000:5_000_100]
        )
        assert node.assets.rekey_asset("rec-s3") is True
        moved = node.store.get("rec-s3")
        assert moved.location != record.location
        assert node.assets.get_asset("rec-s3") == data
        names = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]  # type: ignore[attr-defined]
        assert names == ["ownkey/" + moved.location.removeprefix("s3:")]  # the old one is gone
    finally:
        node.close()
