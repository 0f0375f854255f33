"""The asset store: sealed content by asset id, its metadata in ``assets``, its bytes in blobs.

Only ciphertext and public metadata are stored here; sealing and opening is the Protector's job
(``service/_assets.py`` joins the two). An asset is one row (org, service ID, scope, plaintext
and sealed sizes, the scope key id read from the envelope header, where the bytes are, the
content context, the sealing request) and one of:

- ``location = "db:"``: small sealed content kept inline in the row (``data``), up to
  ``inline_limit`` bytes (default 64 KiB): chat messages and tokens cost one row, no file;
- ``location = "<2 hex>/<sha256(asset_id)>-<random>"``: a file of the :class:`DirectoryBlobStore`;
- ``location = "s3:<same key>"``: an object of the :class:`S3BlobStore`.

Writes never overwrite: each write goes to a new blob, committed durably (file: fsync, rename,
directory fsync; S3: a completed upload) *before* the row that names it is inserted or updated
in one transaction; only then is the blob it replaced removed. So at any instant the row names a
complete blob: a crash can leave an orphan blob (removed by :meth:`AssetStore.sweep`), never a
row without its bytes. :meth:`AssetStore.replace` is the compare-and-set a rekey uses: it swaps
the blob only if the row still names the blob the rekey read.

A row is committed only while the scope key that sealed it is still *sealable* (checked under a
row lock on the scope key, in the same transaction): once a rekey job has retired a scope key, no
late writer can add content under it, so the job's final check ("no asset left under this key")
cannot be raced before it shreds the key. A refused write raises :class:`RetiredScopeKey`; the
service layer evicts its cache entry and seals again.

An asset id belongs to the org that first stored it: a write of the same id for another org is
refused with :class:`~ownkey.errors.Conflict` (issue 11, finding 2), so one tenant's upload can
never replace another's content, and a read or delete may name the org it expects.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from ownkey.envelope import peek_key_id
from ownkey.errors import ConfigError, Conflict, InvalidCiphertext, NotFound, RetiredScopeKey
from ownkey.storage._blobs import BlobReader, BlobStore, BlobWriter, DirectoryBlobStore, blob_key
from ownkey.storage._engine import Database
from ownkey.storage._schema import assets, scope_keys

__all__ = [
    "INLINE",
    "INLINE_LIMIT",
    "AssetRecord",
    "AssetStore",
    "AssetTotals",
    "RetiredScopeKey",
    "SweepReport",
]

#: The location of content kept inline in its row.
INLINE = "db:"
#: Sealed content up to this many bytes is kept inline by default.
INLINE_LIMIT = 64 * 1024
_BATCH = 500
#: Judges a write inside its transaction from the replaced asset's stored request (None: new).
Guard = Callable[[Mapping[str, Any] | None], None]
_REQUIRED = ("asset_id", "org", "service_id", "scope")


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """A stored asset's metadata. ``size`` is the plaintext length, ``sealed_size`` the stored."""

    asset_id: str
    org: str
    service_id: str
    scope: str
    size: int
    sealed_size: int
    scope_key_id: bytes
    location: str
    context: Mapping[str, str]
    request: Mapping[str, Any] | None
    created_at_ms: int

    @property
    def inline(self) -> bool:
        return self.location == INLINE


@dataclass(frozen=True, slots=True)
class AssetTotals:
    """Assets and their plaintext bytes, by service ID."""

    assets_by_service: dict[str, int] = field(default_factory=dict)
    bytes_by_service: dict[str, int] = field(default_factory=dict)

    @property
    def assets(self) -> int:
        return sum(self.assets_by_service.values())

    @property
    def bytes(self) -> int:
        return sum(self.bytes_by_service.values())


@dataclass(slots=True)
class SweepReport:
    """What :meth:`AssetStore.sweep` removed: orphan blobs and abandoned partial writes."""

    examined: int = 0
    orphans: int = 0
    partials: int = 0


def _canonical(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def _record(row: Row[Any]) -> AssetRecord:
    return AssetRecord(
        asset_id=row.asset_id,
        org=row.org,
        service_id=row.service_id,
        scope=row.scope,
        size=int(row.size),
        sealed_size=int(row.sealed_size),
        scope_key_id=bytes(row.scope_key_id),
        location=row.location,
        context=json.loads(row.context),
        request=None if row.request is None else json.loads(row.request),
        created_at_ms=int(row.created_at_ms),
    )


def _scope_key_id(head: bytes) -> bytes:
    """The scope key id in an envelope's first bytes; InvalidCiphertext if malformed."""
    return peek_key_id(head)


_META = [c for c in assets.c if c.name != "data"]


class AssetStore:
    """Sealed assets by id: rows in ``assets``, bytes inline or in a :class:`BlobStore`.

    Thread-safe and shareable between processes and nodes (the database settles races).
    """

    def __init__(
        self,
        database: Database,
        blobs: BlobStore | None = None,
        *,
        inline_limit: int = INLINE_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = database
        self.blobs: BlobStore = blobs if blobs is not None else DirectoryBlobStore()
        self.inline_limit = inline_limit
        self._clock = clock

    def __repr__(self) -> str:
        return f"<AssetStore blobs={self.blobs!r} inline_limit={self.inline_limit}>"

    # -- locations ---------------------------------------------------------------------------

    def _location(self, key: str) -> str:
        return self.blobs.scheme + key

    def _key(self, location: str) -> str:
        scheme = self.blobs.scheme
        if scheme and not location.startswith(scheme):
            raise ConfigError(f"blob {location!r} is not in this asset store's {self.blobs!r}")
        if not scheme and location.startswith(("s3:", INLINE)):
            raise ConfigError(f"blob {location!r} is not in this asset store's {self.blobs!r}")
        return location[len(scheme) :]

    def _drop(self, location: str | None) -> None:
        if location is not None and location != INLINE:
            self.blobs.delete(self._key(location))

    # -- writing -----------------------------------------------------------------------------

    def writer(self, asset_id: str) -> BlobWriter:
        """A new blob for one write of ``asset_id``; pass it to :meth:`commit` (or abort it)."""
        return self.blobs.writer(blob_key(asset_id))

    def commit(
        self,
        blob: BlobWriter,
        *,
        context: Mapping[str, str],
        size: int,
        request: Mapping[str, Any] | None = None,
    ) -> AssetRecord:
        """Make a fully written blob the content of ``context['asset_id']`` (insert or replace).

        The blob is committed (durable) first, then the row; the replaced blob is removed last.
        """
        return _stored(self._store(blob, None, context, size, request, expected=None))

    def put(
        self,
        *,
        context: Mapping[str, str],
        sealed: bytes,
        size: int,
        request: Mapping[str, Any] | None = None,
        scope_key_id: bytes | None = None,
        guard: Guard | None = None,
    ) -> AssetRecord:
        """Store small sealed content (inline up to ``inline_limit`` bytes, else as a blob).

        ``scope_key_id`` is for opaque client-side ciphertext (CMK Hybrid, 1001), whose key id
        only its own format knows; ``guard`` is called inside the write's transaction, under the
        row lock, with the stored request of the asset being replaced (None for a new id) and
        refuses the write by raising (e.g. another member's message id, docs/hybrid.md)."""
        key_id, check = scope_key_id, guard
        if len(sealed) <= self.inline_limit:
            return _stored(
                self._store(
                    None, sealed, context, size, request, expected=None, key_id=key_id, guard=check
                )
            )
        with self.writer(context["asset_id"]) as blob:
            blob.write(sealed)
            return _stored(
                self._store(
                    blob, None, context, size, request, expected=None, key_id=key_id, guard=check
                )
            )

    def replace(
        self,
        asset_id: str,
        *,
        expected_location: str,
        blob: BlobWriter | None = None,
        sealed: bytes | None = None,
        size: int,
        record: AssetRecord | None = None,
    ) -> AssetRecord | None:
        """Swap an asset's content if its row still names ``expected_location`` (a rekey's
        compare-and-set); return the new record, or None (and drop the new blob) if not.
        ``record`` (the row as read before) saves a read; context and request are kept."""
        if record is None or record.asset_id != asset_id:
            record = self.get(asset_id)
        if blob is None and sealed is not None and len(sealed) > self.inline_limit:
            with self.writer(asset_id) as big:
                big.write(sealed)
                return self._store(
                    big, None, record.context, size, record.request, expected=expected_location
                )
        return self._store(
            blob, sealed, record.context, size, record.request, expected=expected_location
        )

    def _store(
        self,
        blob: BlobWriter | None,
        sealed: bytes | None,
        context: Mapping[str, str],
        size: int,
        request: Mapping[str, Any] | None,
        *,
        expected: str | None,
        key_id: bytes | None = None,
        guard: Guard | None = None,
    ) -> AssetRecord | None:
        missing = [name for name in _REQUIRED if not context.get(name)]
        if missing:
            raise ValueError(f"the content context lacks {', '.join(missing)}")
        if blob is not None:
            key_id = key_id if key_id is not None else _scope_key_id(blob.head)
            blob.commit()
            location, sealed_size, data = self._location(blob.key), blob.size, None
        elif sealed is not None:
            key_id = key_id if key_id is not None else _scope_key_id(sealed)
            location, sealed_size, data = INLINE, len(sealed), sealed
        else:
            raise ValueError("nothing to store")
        record = AssetRecord(
            asset_id=context["asset_id"],
            org=context["org"],
            service_id=context["service_id"],
            scope=context["scope"],
            size=size,
            sealed_size=sealed_size,
            scope_key_id=key_id,
            location=location,
            context=dict(context),
            request=None if request is None else dict(request),
            created_at_ms=round(self._clock() * 1000),
        )
        values = {
            "org": record.org,
            "service_id": record.service_id,
            "scope": record.scope,
            "size": size,
            "sealed_size": sealed_size,
            "scope_key_id": key_id,
            "location": location,
            "context": _canonical(record.context),
            "request": None if request is None else _canonical(request),
            "data": data,
            "created_at_ms": record.created_at_ms,
        }
        try:
            old, stored = self._upsert(record.asset_id, key_id, values, expected, guard)
        except (RetiredScopeKey, Conflict):
            self._drop(location)  # known not stored; other failures leave an orphan to sweep
            raise
        if not stored:
            self._drop(location)
            return None
        if old is not None and old != location:
            self._drop(old)
        return record

    def _upsert(
        self,
        asset_id: str,
        key_id: bytes,
        values: dict[str, Any],
        expected: str | None,
        guard: Guard | None = None,
    ) -> tuple[str | None, bool]:
        """Insert or update the row in one transaction; (replaced location, stored?)."""
        for attempt in range(2):
            try:
                with self._db.engine.begin() as conn:
                    self._check_sealable(conn, key_id)
                    row = conn.execute(
                        select(assets.c.location, assets.c.org, assets.c.request)
                        .where(assets.c.asset_id == asset_id)
                        .with_for_update()
                    ).first()
                    if row is not None and row.org != values["org"]:
                        raise Conflict(f"asset id {asset_id!r} belongs to another org")
                    if guard is not None:
                        guard(None if row is None else json.loads(row.request or "null"))
                    old = None if row is None else str(row.location)
                    if expected is not None and old != expected:
                        return old, False
                    if row is None:
                        conn.execute(insert(assets).values(asset_id=asset_id, **values))
                    else:
                        conn.execute(
                            update(assets).where(assets.c.asset_id == asset_id).values(**values)
                        )
                    return old, True
            except IntegrityError:
                if attempt:  # pragma: no cover - a second concurrent insert of a new id
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _check_sealable(conn: Connection, key_id: bytes) -> None:
        row = conn.execute(
            select(scope_keys.c.sealable, scope_keys.c.shredded_at)
            .where(scope_keys.c.key_id == key_id)
            .with_for_update(read=True)
        ).first()
        # No row: the scope keys live elsewhere (an in-memory store); nothing to check here.
        if row is not None and (not row.sealable or row.shredded_at is not None):
            raise RetiredScopeKey(key_id)

    # -- reading -----------------------------------------------------------------------------

    def get(self, asset_id: str, *, org: str | None = None) -> AssetRecord:
        """The asset's metadata; NotFound if there is none (or, with ``org``, if it is another
        org's: the same answer, so a caller scoped to one org learns nothing of others)."""
        with self._db.engine.connect() as conn:
            row = conn.execute(select(*_META).where(assets.c.asset_id == asset_id)).first()
        if row is None or (org is not None and row.org != org):
            raise NotFound(f"no asset {asset_id}")
        return _record(row)

    def page(
        self,
        *,
        org: str | None = None,
        service_id: str | None = None,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[AssetRecord]:
        """One page of assets in asset-id order: those after ``after`` (the last id of the
        previous page), at most ``limit``, filtered by org, service ID and id prefix."""
        if not 1 <= limit <= 10_000:
            raise ValueError("limit: 1 to 10000")
        where: list[Any] = []
        if org is not None:
            where.append(assets.c.org == org)
        if service_id is not None:
            where.append(assets.c.service_id == service_id)
        if prefix:
            where.append(assets.c.asset_id >= prefix)
            where.append(func.substr(assets.c.asset_id, 1, len(prefix)) == prefix)
        if after is not None:
            where.append(assets.c.asset_id > after)
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(*_META).where(and_(True, *where)).order_by(assets.c.asset_id).limit(limit)
            )
            return [_record(row) for row in rows]

    def find(self, asset_id: str) -> AssetRecord | None:
        """The asset's metadata, or None."""
        try:
            return self.get(asset_id)
        except NotFound:
            return None

    def open(self, asset_id: str) -> tuple[AssetRecord, BlobReader]:
        """The asset's metadata and a seekable reader of its sealed bytes (the caller closes).

        NotFound if there is no such asset, or if its row names a blob that is gone (the
        message says which): no ``OSError`` of the blob store escapes.
        """
        for _ in range(3):  # a concurrent replace may remove the blob between the two reads
            with self._db.engine.connect() as conn:
                row = conn.execute(select(assets).where(assets.c.asset_id == asset_id)).first()
            if row is None:
                raise NotFound(f"no asset {asset_id}")
            record = _record(row)
            if record.inline:
                return record, io.BytesIO(bytes(row.data))
            try:
                return record, self.blobs.open(self._key(record.location), record.sealed_size)
            except NotFound:
                continue
        # Not "no such asset": its row names a blob that is gone (never by ownkey's own writes).
        raise NotFound(f"the content of asset {asset_id} is missing from {self.blobs!r}")

    def read(self, asset_id: str) -> tuple[AssetRecord, bytes]:
        """The asset's metadata and all its sealed bytes (for small assets)."""
        record, reader = self.open(asset_id)
        try:
            out = bytearray(record.sealed_size)
            view = memoryview(out)
            filled = 0
            while filled < len(out):
                count = reader.readinto(view[filled:])
                if not count:
                    raise InvalidCiphertext()  # shorter than recorded: never hand out a part
                filled += count
            return record, bytes(out)
        finally:
            reader.close()

    def delete(self, asset_id: str, *, org: str | None = None) -> AssetRecord:
        """Remove the asset (with ``org``: only if it is that org's): its row, then its blob."""
        with self._db.engine.begin() as conn:
            row = conn.execute(select(*_META).where(assets.c.asset_id == asset_id)).first()
            if row is None or (org is not None and row.org != org):
                raise NotFound(f"no asset {asset_id}")
            conn.execute(delete(assets).where(assets.c.asset_id == asset_id))
        record = _record(row)
        self._drop(record.location)
        return record

    # -- selecting ---------------------------------------------------------------------------

    def scan(
        self,
        *,
        org: str | None = None,
        service_id: str | None = None,
        scope: str | None = None,
        scope_key_id: bytes | None = None,
    ) -> Iterator[AssetRecord]:
        """Matching assets in asset-id order, read in batches (writes meanwhile are safe)."""
        clauses: list[Any] = []
        if org is not None:
            clauses.append(assets.c.org == org)
        if service_id is not None:
            clauses.append(assets.c.service_id == service_id)
        if scope is not None:
            clauses.append(assets.c.scope == scope)
        if scope_key_id is not None:
            clauses.append(assets.c.scope_key_id == scope_key_id)
        after: str | None = None
        while True:
            where = list(clauses)
            if after is not None:
                where.append(assets.c.asset_id > after)
            with self._db.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(*_META)
                        .where(and_(True, *where))
                        .order_by(assets.c.asset_id)
                        .limit(_BATCH)
                    )
                )
            for row in rows:
                yield _record(row)
            if len(rows) < _BATCH:
                return
            after = rows[-1].asset_id

    def ids_under(self, scope_key_ids: Iterable[bytes]) -> Iterator[str]:
        """Ids of the assets sealed under any of these scope keys."""
        for chunk in _chunks(list(scope_key_ids)):
            with self._db.engine.connect() as conn:
                yield from (
                    row.asset_id
                    for row in conn.execute(
                        select(assets.c.asset_id)
                        .where(assets.c.scope_key_id.in_(chunk))
                        .order_by(assets.c.asset_id)
                    )
                )

    def count_under(self, scope_key_id: bytes) -> int:
        """How many assets are sealed under this scope key."""
        with self._db.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(assets)
                    .where(assets.c.scope_key_id == scope_key_id)
                ).scalar_one()
            )

    def totals(self, scope_key_ids: Iterable[bytes]) -> AssetTotals:
        """Assets and plaintext bytes by service, over the assets under these scope keys."""
        count: dict[str, int] = {}
        size: dict[str, int] = {}
        for chunk in _chunks(list(scope_key_ids)):
            with self._db.engine.connect() as conn:
                rows = conn.execute(
                    select(assets.c.service_id, func.count(), func.sum(assets.c.size))
                    .where(assets.c.scope_key_id.in_(chunk))
                    .group_by(assets.c.service_id)
                )
                for service_id, n, total in rows:
                    count[service_id] = count.get(service_id, 0) + int(n)
                    size[service_id] = size.get(service_id, 0) + int(total or 0)
        return AssetTotals(dict(sorted(count.items())), dict(sorted(size.items())))

    def count(self) -> int:
        with self._db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(assets)).scalar_one())

    # -- housekeeping ------------------------------------------------------------------------

    def sweep(self, *, min_age: float = 3600.0, now: float | None = None) -> SweepReport:
        """Remove blobs no row names and abandoned partial writes, older than ``min_age``
        (at ``now``, by default this store's clock).

        Younger ones are left alone: a writer may be between committing its blob and its row.
        """
        report = SweepReport()
        cutoff = (self._clock() if now is None else now) - min_age
        keys = self.blobs.list(older_than=cutoff)
        while True:
            chunk = [key for _, key in zip(range(_BATCH), keys, strict=False)]
            if not chunk:
                break
            report.examined += len(chunk)
            partial = [key for key in chunk if key.endswith(".partial")]
            for key in partial:
                self.blobs.delete(key)
            report.partials += len(partial)
            candidates = {self._location(key): key for key in chunk if key not in partial}
            with self._db.engine.connect() as conn:
                named = {
                    row.location
                    for row in conn.execute(
                        select(assets.c.location).where(assets.c.location.in_(list(candidates)))
                    )
                }
            for location, key in candidates.items():
                if location not in named:
                    self.blobs.delete(key)
                    report.orphans += 1
        abandoned = getattr(self.blobs, "abandoned_uploads", None)
        if abandoned is not None:
            report.partials += int(abandoned(older_than=cutoff))
        return report


def _stored(record: AssetRecord | None) -> AssetRecord:
    if record is None:  # pragma: no cover - only a compare-and-set returns None
        raise AssertionError("an unconditional store did not store")
    return record


def _chunks(values: Sequence[bytes]) -> Iterator[list[bytes]]:
    for start in range(0, len(values), _BATCH):
        yield list(values[start : start + _BATCH])
