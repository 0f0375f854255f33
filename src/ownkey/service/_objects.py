"""Large objects over HTTP: a sealed upload from a stream, a byte range back as checked chunks.

:class:`Objects` adds to the :class:`~ownkey.service.AssetService` what a streaming HTTP answer
needs. :meth:`Objects.open` reads the store once (the record and the blob of one version, even
if the asset is replaced meanwhile, so ``Content-Range``'s total and the body agree), checks every
key and rule and verifies the stream's layout once; :meth:`OpenObject.range` then decrypts the
first chunk *before* returning, so a denial or a broken object is still an error the caller can
turn into a status code, and yields the rest chunk by chunk, re-checking keys and rules before
each one (a revocation made while a long download runs stops it at the next chunk). Only the
segments covering the range are decrypted; memory stays bounded by one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ownkey.envelope import Readable
from ownkey.service._assets import AssetService, StoredObject
from ownkey.storage import AssetRecord

__all__ = ["READ_CHUNK", "ObjectRange", "Objects", "OpenObject"]

#: Plaintext bytes decrypted per chunk of a read (four segments of the default size).
READ_CHUNK = 1 << 20


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


class OpenObject:
    """A stored object opened once; :meth:`range` hands its chunks out, :meth:`close` ends it."""

    def __init__(self, stored: StoredObject, chunk: int) -> None:
        self._stored = stored
        self._chunk = chunk

    @property
    def record(self) -> AssetRecord:
        """The record of the version that was opened."""
        return self._stored.record

    def close(self) -> None:
        self._stored.close()

    def range(self, start: int = 0, end: int | None = None) -> ObjectRange:
        """Plaintext bytes ``[start, end)`` (``end`` clipped to the size) as checked chunks; the
        first is decrypted before this returns. The chunks close the object when exhausted or
        closed; on an error here the object is closed too."""
        size = self.record.size
        stop = max(start, size if end is None else min(end, size))
        try:
            first_stop = min(stop, start + self._chunk)
            first = self._stored.read(start, first_stop)
        except BaseException:
            self.close()
            raise
        return ObjectRange(self.record, start, stop, self._chunks(first, first_stop, stop))

    def _chunks(self, first: bytes, position: int, stop: int) -> Iterator[bytes]:
        try:
            if first:
                yield first
            while position < stop:
                upto = min(stop, position + self._chunk)
                yield self._stored.read(position, upto)
                position = upto
        finally:
            self.close()


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
        return self.assets.record(asset_id, org)

    def delete(self, asset_id: str, org: str | None = None) -> AssetRecord:
        """Remove the object; with ``org``, only if it is that org's (NotFound otherwise)."""
        return self.assets.delete_asset(asset_id, org)

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
        return self.assets.page(
            org=org, service_id=service_id, prefix=prefix, after=after, limit=limit
        )

    def open(
        self, asset_id: str, org: str | None = None, *, actor: str | None = None
    ) -> OpenObject:
        """Open a stored object once for ranged reads (raises before returning if access is
        denied, a key is unavailable or the object does not open; NotFound if ``org`` is given
        and the object is another org's). ``actor`` is recorded in the key-usage log."""
        return OpenObject(self.assets.open_object(asset_id, org, actor=actor), self._chunk)

    def read(
        self, asset_id: str, start: int = 0, end: int | None = None, org: str | None = None
    ) -> ObjectRange:
        """Plaintext bytes ``[start, end)`` (``end`` clipped to the size) as checked chunks.

        Raises before returning if access is denied, a key is unavailable or the object does
        not open; the chunks close the stored object when exhausted or closed.
        """
        return self.open(asset_id, org).range(start, end)
