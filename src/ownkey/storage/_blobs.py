"""Where the asset store keeps sealed bytes: a directory (default) or S3-compatible storage.

A blob store knows nothing but keys and ciphertext. Keys come from :func:`blob_key`:
``<2 hex>/<sha256(asset_id)>-<16 hex random>``, so every write of an asset gets a new key and a
replacement never overwrites the bytes a reader may still be reading; the asset id itself (any
text) never becomes a path. The ``assets`` row says which key is current (docs/storage.md).

- :class:`DirectoryBlobStore` writes ``<key>.partial`` (``O_EXCL``, mode 0600), then on commit
  flushes, ``fsync``s the file, renames it to ``<key>`` and ``fsync``s the directory, so a
  committed blob survives a crash or power loss and a half-written one never carries a final name.
- :class:`S3BlobStore` streams into a multipart upload (one part buffered at a time) and commits
  by completing it; S3 makes the object visible whole or not at all. Reads are ranged ``GET`` s
  through :class:`S3RangeReader`, a seekable file-like object, so a byte range of a large asset
  fetches only the segments that cover it.

Failures of the storage itself surface as :class:`OSError` (the API maps them to 503); a missing
blob is :class:`~ownkey.errors.NotFound`. ``probe()`` lists, writes and deletes one small blob
(a node's readiness: a bucket that does not exist or cannot be listed or written is not ready).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from ownkey.envelope import sha256
from ownkey.errors import ConfigError, NotFound
from ownkey.storage._engine import ownkey_home
from ownkey.storage._files import private_dir

__all__ = [
    "BLOB_DIR_ENV",
    "S3_BUCKET_ENV",
    "S3_ENDPOINT_ENV",
    "S3_PREFIX_ENV",
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "DirectoryBlobStore",
    "S3BlobStore",
    "S3RangeReader",
    "blob_key",
    "blob_store_from_env",
]

BLOB_DIR_ENV = "OWNKEY_BLOB_DIR"
S3_BUCKET_ENV = "OWNKEY_S3_BUCKET"
S3_ENDPOINT_ENV = "OWNKEY_S3_ENDPOINT_URL"
S3_PREFIX_ENV = "OWNKEY_S3_PREFIX"

#: Enough of an envelope's beginning to read its suite and scope key id (3 + up to 255 bytes).
HEAD_BYTES = 258
_PARTIAL = ".partial"


def _probe_key() -> str:
    """A readiness probe's blob key: never an asset's (``blob_key`` names are 64+17 hex)."""
    return f"00/ownkey-probe-{secrets.token_hex(8)}"


_PROBE_BODY = b"ownkey readiness probe"


def blob_key(asset_id: str) -> str:
    """A fresh key for one write of ``asset_id``: ``ab/<sha256 hex>-<16 hex>``."""
    digest = sha256(asset_id.encode("utf-8")).hex()
    return f"{digest[:2]}/{digest}-{secrets.token_hex(8)}"


class BlobReader(Protocol):
    """A seekable binary reader (what ``envelope.open_range_into`` needs), closed by the caller."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def close(self) -> None: ...


class BlobWriter:
    """Receives one blob's bytes; nothing is visible under ``key`` until :meth:`commit`.

    Also remembers the first bytes written (``head``), from which the asset store reads the
    envelope's suite and scope key id, and counts them (``size``). Use it as a context manager:
    leaving the block without a commit aborts.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.size = 0
        self._head = bytearray()
        self.committed = False
        self.closed = False

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self.closed:
            raise ValueError("write to a closed blob")
        view = memoryview(data).cast("B")
        if len(self._head) < HEAD_BYTES:
            self._head += view[: HEAD_BYTES - len(self._head)]
        self._write(view)
        self.size += len(view)
        return len(view)

    def commit(self) -> None:
        """Make the blob durable and visible under ``key`` (idempotent)."""
        if self.committed:
            return
        if self.closed:
            raise ValueError("the blob was aborted")
        self._commit()
        self.committed = self.closed = True

    def abort(self) -> None:
        """Drop what was written (idempotent; a no-op after a commit)."""
        if self.closed:
            return
        self.closed = True
        self._abort()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def _write(self, data: memoryview) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _commit(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _abort(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class BlobStore(Protocol):
    """Ciphertext by key. Implementations: :class:`DirectoryBlobStore`, :class:`S3BlobStore`."""

    #: The prefix of locations in this store (``""`` for the directory, ``"s3:"`` for S3).
    scheme: str

    def writer(self, key: str) -> BlobWriter:
        """A writer for a new blob under ``key`` (a key from :func:`blob_key`)."""
        ...

    def open(self, key: str, size: int | None = None) -> BlobReader:
        """A seekable reader of the blob (NotFound if there is none)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; a missing one is not an error."""
        ...

    def list(self, *, older_than: float) -> Iterator[str]:
        """Keys of blobs (and abandoned partial writes) last written before ``older_than``."""
        ...


# -- directory ---------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_key(key: str) -> None:
    parts = key.split("/")
    if len(parts) != 2 or not all(p and p not in (".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"not a blob key: {key!r}")


class _FileWriter(BlobWriter):
    def __init__(self, key: str, final: Path) -> None:
        super().__init__(key)
        self._final = final
        self._partial = final.with_name(final.name + _PARTIAL)
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: IO[bytes] = os.fdopen(fd, "wb")

    def _write(self, data: memoryview) -> None:
        self._file.write(data)

    def _commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        os.replace(self._partial, self._final)
        _fsync_dir(self._final.parent)

    def _abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


class DirectoryBlobStore:
    """Blobs as files under ``root`` (default ``$OWNKEY_HOME/objects``), written atomically."""

    scheme = ""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else ownkey_home() / "objects"

    def __repr__(self) -> str:
        return f"DirectoryBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def _ensure_dir(self, directory: Path) -> None:
        if directory.is_dir():
            return
        created_root = not self.root.is_dir()
        private_dir(directory)  # objects/ and its fan-out 0700, whatever the umask
        # The new directory entries must survive a crash as much as the file inside them.
        if created_root and self.root.parent.is_dir():
            _fsync_dir(self.root.parent)
        _fsync_dir(self.root)

    def writer(self, key: str) -> BlobWriter:
        final = self._path(key)
        self._ensure_dir(final.parent)
        return _FileWriter(key, final)

    def open(self, key: str, size: int | None = None) -> BlobReader:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"no blob {key}") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def probe(self) -> None:
        """Raise unless blobs can be written, listed and deleted under the root (readiness)."""
        key = _probe_key()
        with self.writer(key) as writer:
            writer.write(_PROBE_BODY)
            writer.commit()
        try:
            next(iter(self.root.iterdir()), None)
        finally:
            self.delete(key)

    def list(self, *, older_than: float) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < older_than:
                        yield f"{directory.name}/{path.name}"


# -- S3 ----------------------------------------------------------------------------------------


def _s3_error(exc: Exception, what: str) -> Exception:
    response: Mapping[str, Any] = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":  # also a 404: never "no such blob", as if the data were gone
        return OSError(f"the S3 bucket for blobs does not exist ({what})")
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return NotFound(f"no blob {what}")
    return OSError(f"S3 failed on {what}: {code or type(exc).__name__}")


class _S3Writer(BlobWriter):
    def __init__(self, store: S3BlobStore, key: str) -> None:
        super().__init__(key)
        self._store = store
        self._object = store.object_name(key)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _flush_part(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None:
                created = client.create_multipart_upload(Bucket=bucket, Key=self._object)
                self._upload_id = str(created["UploadId"])
            number = len(self._parts) + 1
            answer = client.upload_part(
                Bucket=bucket,
                Key=self._object,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=bytes(self._buffer),
            )
        except Exception as exc:
            raise _s3_error(exc, self.key) from exc
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self._buffer.clear()

    def _write(self, data: memoryview) -> None:
        self._buffer += data
        while len(self._buffer) >= self._store.part_size:
            rest = bytes(self._buffer[self._store.part_size :])
            del self._buffer[self._store.part_size :]
            self._flush_part()
            self._buffer += rest

    def _commit(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            try:
                client.put_object(Bucket=bucket, Key=self._object, Body=bytes(self._buffer))
            except Exception as exc:
                raise _s3_error(exc, self.key) from exc
            self._buffer.clear()
            return
        if self._buffer or not self._parts:
            self._flush_part()
        try:
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._object,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except Exception as exc:
            raise _s3_error(exc, self.key) from exc

    def _abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._object, UploadId=self._upload_id
                )


class S3RangeReader(io.RawIOBase):
    """A seekable reader of one S3 object over ranged ``GET`` s.

    Each read that misses the buffered ranges fetches ``max(len(buffer), block)`` bytes from the
    current position with one ``GET Range``; seeking is free. The last ``keep`` ranges fetched
    stay buffered, so the header and the final segment, which every ranged open re-reads, are
    fetched once. ``open_range_into`` thus fetches the header, the final segment and the segments
    that cover the range, nothing else.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        name: str,
        size: int,
        *,
        block: int = 1 << 20,
        keep: int = 4,
    ) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._name = name
        self._size = size
        self._block_size = block
        self._keep = keep
        self._position = 0
        self._ranges: list[tuple[int, bytes]] = []  # most recently used last
        #: How many GETs this reader made (for tests and metrics).
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def _fetch(self, start: int, length: int) -> bytes:
        end = min(self._size, start + length) - 1
        try:
            answer = self._client.get_object(
                Bucket=self._bucket, Key=self._name, Range=f"bytes={start}-{end}"
            )
            body = answer["Body"]
            try:
                data = bytes(body.read())
            finally:
                body.close()
        except Exception as exc:
            raise _s3_error(exc, self._name) from exc
        self.requests += 1
        return data

    def readinto(self, buffer: Any, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or not len(view):
            return 0
        for index, (start, data) in enumerate(self._ranges):
            if start <= self._position < start + len(data):
                self._ranges.append(self._ranges.pop(index))
                break
        else:
            start = self._position
            data = self._fetch(start, max(len(view), self._block_size))
            if not data:
                return 0
            self._ranges.append((start, data))
            del self._ranges[: -self._keep]
        offset = self._position - start
        count = min(len(view), len(data) - offset)
        view[:count] = data[offset : offset + count]
        self._position += count
        return count


class S3BlobStore:
    """Blobs as objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, moto).

    ``client`` is a boto3 S3 client; :meth:`from_settings` builds one (the ``aws`` extra).
    Objects are named ``<prefix><key>``; parts of a streamed upload are ``part_size`` bytes
    (S3's minimum is 5 MiB), the only part of it held in memory.
    """

    scheme = "s3:"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "ownkey/",
        part_size: int = 8 << 20,
        read_block: int = 1 << 20,
    ) -> None:
        if part_size < 5 << 20:
            raise ConfigError("S3 multipart parts must be at least 5 MiB")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.read_block = read_block

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @classmethod
    def from_settings(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        prefix: str = "ownkey/",
        region: str | None = None,
    ) -> S3BlobStore:
        """A store with a boto3 client (credentials and region from the usual AWS settings)."""
        try:
            import boto3
        except ImportError as exc:
            raise ConfigError(
                "S3 blob storage needs the 'aws' extra: pip install 'ownkey[aws]'"
            ) from exc
        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        return cls(client, bucket, prefix=prefix)

    def object_name(self, key: str) -> str:
        _check_key(key)
        return self.prefix + key

    def writer(self, key: str) -> BlobWriter:
        return _S3Writer(self, key)

    def open(self, key: str, size: int | None = None) -> BlobReader:
        name = self.object_name(key)
        if size is None:
            try:
                size = int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
            except Exception as exc:
                raise _s3_error(exc, key) from exc
        return S3RangeReader(self.client, self.bucket, name, size, block=self.read_block)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_name(key))
        except Exception as exc:
            error = _s3_error(exc, key)
            if not isinstance(error, NotFound):
                raise error from exc

    def probe(self) -> None:
        """Raise :class:`OSError` unless the bucket exists and can be listed and written."""
        name = self.object_name(_probe_key())
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
            self.client.put_object(Bucket=self.bucket, Key=name, Body=_PROBE_BODY)
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            raise _s3_error(exc, self.bucket) from exc

    def list(self, *, older_than: float) -> Iterator[str]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self.client.list_objects_v2(**kwargs)
            except Exception as exc:
                raise _s3_error(exc, self.prefix) from exc
            for item in page.get("Contents", []):
                modified = item["LastModified"].timestamp()
                if modified < older_than:
                    yield str(item["Key"])[len(self.prefix) :]
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def abandoned_uploads(self, *, older_than: float) -> int:
        """Abort multipart uploads started before ``older_than`` (a crashed writer's parts)."""
        aborted = 0
        try:
            page = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        except Exception as exc:
            raise _s3_error(exc, self.prefix) from exc
        for upload in page.get("Uploads", []):
            if upload["Initiated"].timestamp() < older_than:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted


def blob_store_from_env(env: Mapping[str, str] | None = None) -> BlobStore:
    """``OWNKEY_S3_BUCKET`` (+ ``OWNKEY_S3_ENDPOINT_URL``, ``OWNKEY_S3_PREFIX``) selects S3;
    otherwise the directory ``OWNKEY_BLOB_DIR`` or ``$OWNKEY_HOME/objects``."""
    env = os.environ if env is None else env
    bucket = env.get(S3_BUCKET_ENV)
    if bucket:
        return S3BlobStore.from_settings(
            bucket,
            endpoint_url=env.get(S3_ENDPOINT_ENV) or None,
            prefix=env.get(S3_PREFIX_ENV, "ownkey/"),
        )
    directory = env.get(BLOB_DIR_ENV)
    return DirectoryBlobStore(Path(directory) if directory else ownkey_home(env) / "objects")
