"""Large objects over HTTP: a sealed upload from a stream, a byte range back as checked chunks.

:class:`Objects` adds to the :class:`~ownkey.service.AssetService` what a streaming HTTP answer
needs: ``read`` opens the stored asset once (one version, even if it is replaced meanwhile),
checks every key and rule and decrypts the first chunk *before* returning, so a denial or a
broken object is still an error the caller can turn into a status code; then it yields the rest
chunk by chunk, re-checking keys and rules before each one (a revocation made while a long
download runs stops it at the next chunk). Memory stays bounded by one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ownkey.envelope import Readable
from ownkey.service._assets import AssetService, opening_request
from ownkey.storage import AssetRecord, BlobReader

__all__ = ["READ_CHUNK", "ObjectRange", "Objects"]

#: Plaintext bytes decrypted per chunk of a read (four segments of the default size).
READ_CHUNK = 1 << 20
_MESSAGE_SUITE = 0x01


@dataclass(slots=True)
class ObjectRange:
    """An open byte range of a stored object: its record, ``[start, end)``, its chunks."""

    record: AssetRecord
    start: int
    end: int
    chunks: Iterator[bytes]

    @property
    def length(self) -> int:
        return self.end - self.start


def _suite(reader: BlobReader) -> int:
    """The envelope's suite: its second byte (the first is the format version)."""
    head = bytearray(2)
    view = memoryview(head)
    filled = 0
    while filled < 2:
        got = reader.readinto(view[filled:])
        if not got:
            break
        filled += got
    reader.seek(0)
    return head[1] if filled == 2 else -1


def _read_all(reader: BlobReader, size: int) -> bytes:
    out = bytearray(size)
    view = memoryview(out)
    filled = 0
    while filled < size:
        got = reader.readinto(view[filled:])
        if not got:
            break
        filled += got
    return bytes(out[:filled])


class Objects:
    """Stored objects for the API: put a stream, read a range as chunks, stat, delete."""

    def __init__(self, assets: AssetService, *, chunk: int = READ_CHUNK) -> None:
        self.assets = assets
        self._chunk = chunk

    def put(self, request: Mapping[str, Any], source: Readable) -> AssetRecord:
        """Seal ``source`` per the policy (bounded memory) and store it as ``asset_id``."""
        return self.assets.put_asset(request, source)

    def stat(self, asset_id: str, org: str | None = None) -> AssetRecord:
        """The object's metadata (no key is used; NotFound if there is none, or if ``org`` is
        given and the object is another org's)."""
        return self.assets.store.get(asset_id, org=org)

    def delete(self, asset_id: str, org: str | None = None) -> AssetRecord:
        return self.assets.store.delete(asset_id, org=org)

    def page(
        self,
        *,
        org: str | None = None,
        service_id: str | None = None,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[AssetRecord]:
        """One page of stored objects' metadata (no key is used), in asset-id order."""
        return self.assets.store.page(
            org=org, service_id=service_id, prefix=prefix, after=after, limit=limit
        )

    def read(self, asset_id: str, start: int = 0, end: int | None = None) -> ObjectRange:
        """Plaintext bytes ``[start, end)`` (``end`` clipped to the size) as checked chunks.

        Raises before returning if access is denied, a key is unavailable or the object does
        not open; the chunks close the stored object when exhausted or closed.
        """
        record, reader = self.assets.store.open(asset_id)
        try:
            stop = max(start, record.size if end is None else min(end, record.size))
            request = opening_request(record)
            protector = self.assets.protector
            if _suite(reader) == _MESSAGE_SUITE:  # small content sealed as one message
                whole = protector.open(request, _read_all(reader, record.sealed_size))
                reader.close()
                return ObjectRange(record, start, stop, iter([whole[start:stop]]))
            first_stop = min(stop, start + self._chunk)
            first = protector.open_range(request, reader, start, first_stop)
        except BaseException:
            reader.close()
            raise
        chunks = self._chunks(request, reader, first, first_stop, stop)
        return ObjectRange(record, start, stop, chunks)

    def _chunks(
        self,
        request: Mapping[str, Any],
        reader: BlobReader,
        first: bytes,
        position: int,
        stop: int,
    ) -> Iterator[bytes]:
        protector = self.assets.protector
        try:
            if first:
                yield first
            while position < stop:
                upto = min(stop, position + self._chunk)
                yield protector.open_range(request, reader, position, upto)
                position = upto
        finally:
            reader.close()
