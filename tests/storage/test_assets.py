"""The asset store: blobs (directory and S3 on moto's server) and metadata (SQLite, PostgreSQL).

Sealing is done here with the envelope directly and a fixed scope key; the Protector's side is
tested in test_assets_service.py.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest

from ownkey import envelope
from ownkey.envelope import EncryptionContext, ScopeKey
from ownkey.errors import InvalidCiphertext, NotFound
from ownkey.keys import ScopeKeyRecord
from ownkey.storage import (
    AssetStore,
    BlobStore,
    Database,
    DirectoryBlobStore,
    RetiredScopeKey,
    S3BlobStore,
    SqlScopeKeyStore,
)
from ownkey.storage._blobs import blob_key

KEY = ScopeKey(b"sk-one", bytes(range(32)))
OTHER = ScopeKey(b"sk-two", bytes(range(1, 33)))
SEGMENT = 4096


def context(asset_id: str, scope: str = "chat-1", service_id: str = "0008") -> EncryptionContext:
    return EncryptionContext(
        org="acme", service_id=service_id, scope=scope, asset_id=asset_id, component="message"
    )


def seal_into(store: AssetStore, key: ScopeKey, ctx: EncryptionContext, data: bytes) -> Any:
    with store.writer(ctx["asset_id"]) as blob:
        envelope.seal_stream(key, ctx, io.BytesIO(data), blob, segment_size=SEGMENT)
        return store.commit(blob, context=ctx, size=len(data), request={"note": "r"})


@pytest.fixture
def store(database: Database, blob_store: BlobStore) -> AssetStore:
    return AssetStore(database, blob_store, inline_limit=1024)


def test_small_asset_is_inline(store: AssetStore) -> None:
    ctx = context("m1")
    sealed = envelope.seal_message(KEY, b"hello", ctx)
    record = store.put(context=ctx, sealed=sealed, size=5, request={"scope": "chat-1"})
    assert record.inline
    assert record.location == "db:"
    assert (record.org, record.service_id, record.scope) == ("acme", "0008", "chat-1")
    assert (record.size, record.sealed_size, record.scope_key_id) == (5, len(sealed), b"sk-one")
    got, data = store.read("m1")
    assert got == record
    assert data == sealed
    assert got.request == {"scope": "chat-1"}
    assert dict(got.context) == dict(ctx)
    assert envelope.open_message(KEY, data, ctx) == b"hello"


def test_stream_roundtrip_and_range(store: AssetStore) -> None:
    ctx = context("rec-1")
    data = os.urandom(50_000)
    record = seal_into(store, KEY, ctx, data)
    assert not record.inline
    assert record.size == len(data)
    assert record.sealed_size == envelope.sealed_size(
        len(data), key_id_len=len(KEY.key_id), segment_size=SEGMENT
    )
    got, reader = store.open("rec-1")
    try:
        assert got.location == record.location
        assert envelope.open_range(KEY, ctx, reader, 12_345, 20_000) == data[12_345:20_000]
        sink = io.BytesIO()
        reader.seek(0)
        envelope.open_stream(KEY, ctx, reader, sink)
        assert sink.getvalue() == data
    finally:
        reader.close()


def test_large_put_goes_to_a_blob(store: AssetStore) -> None:
    ctx = context("big-msg")
    sealed = envelope.seal_message(KEY, os.urandom(5000), ctx)
    record = store.put(context=ctx, sealed=sealed, size=5000)
    assert not record.inline
    assert store.read("big-msg")[1] == sealed


def test_a_missing_blob_is_not_found_not_an_oserror(
    store: AssetStore, blob_store: BlobStore
) -> None:
    """A row whose blob is gone (removed outside ownkey) answers NotFound naming the missing
    content; no OSError of the blob store escapes storage."""
    ctx = context("gone-msg")
    store.put(context=ctx, sealed=envelope.seal_message(KEY, os.urandom(5000), ctx), size=5000)
    for key in list(blob_store.list(older_than=float("inf"))):
        blob_store.delete(key)
    with pytest.raises(NotFound) as caught:
        store.read("gone-msg")  # a directory store notices at open, S3 at the first read
    assert not isinstance(caught.value, OSError)


def test_replace_is_a_compare_and_set(store: AssetStore) -> None:
    ctx = context("a1")
    first = seal_into(store, KEY, ctx, b"x" * 9000)
    with store.writer("a1") as blob:
        envelope.seal_stream(OTHER, ctx, io.BytesIO(b"y" * 9000), blob, segment_size=SEGMENT)
        second = store.replace("a1", expected_location=first.location, blob=blob, size=9000)
    assert second is not None
    assert second.scope_key_id == b"sk-two"
    assert second.location != first.location
    assert second.request == {"note": "r"}  # kept from the row it replaced
    with pytest.raises(NotFound):
        store.blobs.open(first.location.removeprefix(store.blobs.scheme))  # old blob removed
    # A stale expectation changes nothing and leaves no blob behind.
    with store.writer("a1") as blob:
        envelope.seal_stream(KEY, ctx, io.BytesIO(b"z" * 9000), blob, segment_size=SEGMENT)
        lost = store.replace("a1", expected_location=first.location, blob=blob, size=9000)
        stale_key = blob.key
    assert lost is None
    assert store.get("a1").location == second.location
    with pytest.raises(NotFound):
        store.blobs.open(stale_key)
    _, reader = store.open("a1")
    with reader:  # type: ignore[attr-defined]
        assert envelope.open_range(OTHER, ctx, reader, 0) == b"y" * 9000


def test_put_replaces_and_removes_the_old_blob(store: AssetStore) -> None:
    ctx = context("a2")
    first = seal_into(store, KEY, ctx, b"1" * 5000)
    second = seal_into(store, KEY, ctx, b"2" * 5000)
    assert store.count() == 1
    assert store.get("a2").location == second.location
    with pytest.raises(NotFound):
        store.blobs.open(first.location.removeprefix(store.blobs.scheme))


def test_a_write_under_a_retired_scope_key_is_refused(
    database: Database, store: AssetStore
) -> None:
    keys = SqlScopeKeyStore(database)
    keys.create(ScopeKeyRecord(b"sk-one", ("acme",), "0008", "chat-1", 0, 3600, (), 0.0))
    ctx = context("late")
    seal_into(store, KEY, ctx, b"before")  # sealable: stored
    keys.retire(b"sk-one")
    with store.writer("late") as blob:
        envelope.seal_stream(KEY, ctx, io.BytesIO(b"after" * 999), blob, segment_size=SEGMENT)
        with pytest.raises(RetiredScopeKey) as caught:
            store.commit(blob, context=ctx, size=4995)
        refused = blob.key
    assert caught.value.scope_key_id == b"sk-one"
    with pytest.raises(NotFound):
        store.blobs.open(refused)  # nothing left behind
    with pytest.raises(RetiredScopeKey):
        store.put(context=ctx, sealed=envelope.seal_message(KEY, b"m", ctx), size=1)
    assert store.get("late").size == len(b"before")  # the stored version is untouched


def test_malformed_content_is_refused_before_anything_is_stored(store: AssetStore) -> None:
    with pytest.raises(InvalidCiphertext):
        store.put(context=context("bad"), sealed=b"\x09garbage", size=1)
    with pytest.raises(ValueError, match="context lacks"):
        store.put(context={"asset_id": "x"}, sealed=b"", size=0)
    with pytest.raises(NotFound):
        store.get("bad")


def test_delete_scan_and_totals(store: AssetStore) -> None:
    for i in range(7):
        ctx = context(f"m{i}", scope=f"s{i % 2}", service_id="0008" if i < 5 else "0001")
        key = KEY if i % 2 else OTHER
        store.put(context=ctx, sealed=envelope.seal_message(key, b"x" * i, ctx), size=i)
    assert [r.asset_id for r in store.scan(org="acme", scope="s1")] == ["m1", "m3", "m5"]
    assert sorted(store.ids_under([b"sk-one"])) == ["m1", "m3", "m5"]
    assert store.count_under(b"sk-two") == 4
    totals = store.totals([b"sk-one", b"sk-two"])
    assert totals.assets_by_service == {"0001": 2, "0008": 5}
    assert totals.bytes_by_service == {"0001": 11, "0008": 10}
    assert (totals.assets, totals.bytes) == (7, 21)
    assert store.delete("m3").asset_id == "m3"
    with pytest.raises(NotFound):
        store.delete("m3")
    assert store.totals([b"sk-one"]).assets == 2


def test_sweep_removes_orphans_and_partials_only_when_old(store: AssetStore) -> None:
    kept = seal_into(store, KEY, context("kept"), b"k" * 3000)
    orphan = store.writer("gone")
    orphan.write(b"orphan bytes")
    orphan.commit()  # a crash between the blob and the row: nobody names it
    assert store.sweep(min_age=3600).orphans == 0  # too young: a writer may still commit it
    report = store.sweep(min_age=-5)
    assert report.orphans == 1
    with pytest.raises(NotFound):
        store.blobs.open(orphan.key)
    assert store.read("kept")[0].location == kept.location


def test_directory_writes_are_atomic(tmp_path: Path) -> None:
    blobs = DirectoryBlobStore(tmp_path / "objects")
    key = blob_key("asset/with/../slashes")
    assert ".." not in key
    assert key.count("/") == 1
    writer = blobs.writer(key)
    writer.write(b"half")
    partial = tmp_path / "objects" / (key + ".partial")
    assert partial.exists()
    assert not (tmp_path / "objects" / key).exists()
    assert partial.stat().st_mode & 0o777 == 0o600
    writer.abort()
    assert not partial.exists()
    with blobs.writer(key) as writer:
        writer.write(b"whole")
        writer.commit()
    assert (tmp_path / "objects" / key).read_bytes() == b"whole"
    # An abandoned partial file (a writer killed mid-write) is swept once old.
    stale = blobs.writer(blob_key("killed"))
    stale.write(b"...")
    listed = list(blobs.list(older_than=time.time() + 10))
    assert any(name.endswith(".partial") for name in listed)
    stale.abort()
    with pytest.raises(ValueError, match="not a blob key"):
        blobs.open("../etc/passwd")


def test_s3_multipart_and_ranged_reads(s3_client: Any, s3_bucket: str) -> None:
    blobs = S3BlobStore(s3_client, s3_bucket, part_size=5 << 20, read_block=64 << 10)
    data = os.urandom(12 << 20)
    ctx = context("video")
    with blobs.writer(blob_key("video")) as blob:
        envelope.seal_stream(KEY, ctx, io.BytesIO(data), blob, segment_size=256 * 1024)
        blob.commit()
        key, size = blob.key, blob.size
    uploads = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert uploads == []  # completed, none left open
    reader = blobs.open(key, size)
    start, end = 7_000_000, 7_100_000
    assert envelope.open_range(KEY, ctx, reader, start, end) == data[start:end]
    # the header, the final segment and the two segments covering the range: 4 GETs, not 48
    assert reader.requests == 4  # type: ignore[attr-defined]
    whole = io.BytesIO()
    reader.seek(0)
    envelope.open_stream(KEY, ctx, reader, whole)
    assert whole.getvalue() == data
    assert blobs.open(key).seek(0, io.SEEK_END) == size  # size by HEAD
    blobs.delete(key)
    with pytest.raises(NotFound):
        blobs.open(key)
    blobs.delete(key)  # deleting twice is fine


def test_s3_aborted_write_leaves_nothing(s3_client: Any, s3_bucket: str) -> None:
    blobs = S3BlobStore(s3_client, s3_bucket, part_size=5 << 20)
    with blobs.writer(blob_key("never")) as blob:
        blob.write(os.urandom(6 << 20))  # one part uploaded
    listed = s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert listed == []
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
