"""Stored assets: seal into the asset store, open whole or by byte range, rekey in place.

:class:`AssetService` joins the :class:`~ownkey.service.Protector` (which seals and opens) and the
storage's :class:`~ownkey.storage.AssetStore` (which keeps ciphertext and metadata):

- ``put_asset(request, data)`` seals per the policy: bytes up to ``small_limit`` with the message
  suite (kept inline in the database), anything larger or any stream with the segmented stream
  suite, in bounded memory, straight into a new blob. The row records the scope key id read from
  the envelope, the content context, and the request in a compact form (``licensed_users``
  narrowed to the users the asset names: the policy only asks about those), so that jobs can
  evaluate the policy for stored content later.
- ``get_asset`` / ``get_asset_range`` rebuild the opening request from the stored context (open
  never consults the policy) and decrypt only the segments that cover the range.
- ``rekey_asset`` re-encrypts one asset under a fresh scope key and swaps the blob with a
  compare-and-set; it refuses when the policy now names other keys than those the content is
  under (moving content between keys is a backfill's job, never a side effect of a rekey).
- ``preview(rule)`` extends the key layer's preview with assets and bytes by service.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Container, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ownkey.envelope import SUITE_MESSAGE, Readable, Writable, blob_suite
from ownkey.errors import AccessDenied, Conflict, NotFound, PlanChanged, RetiredScopeKey
from ownkey.keys import KeyRef, RevocationRule
from ownkey.policy import check_id
from ownkey.service._plan import view_plan
from ownkey.service._protector import Protector
from ownkey.service._request import address_of
from ownkey.storage import AssetRecord, AssetStore, AssetTotals, BlobReader

__all__ = [
    "SMALL_LIMIT",
    "AssetPreview",
    "AssetService",
    "PlanChanged",
    "compact_request",
    "opening_request",
    "refuse_client_side",
]

#: ``put_asset`` seals bytes up to this size as one message (inline in the database).
SMALL_LIMIT = 32 * 1024
_SEAL_ATTEMPTS = 3
_REKEY_ATTEMPTS = 4

Request = Mapping[str, Any]
#: Turns a stored request into the one to evaluate now (e.g. fills ``orgs`` from the directory).
Completer = Callable[[Request], Request]


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetPreview(AssetTotals):
    """What a revocation rule would deny: the stored assets and their bytes by service (the
    :class:`~ownkey.storage.AssetTotals` under its scope keys), and those scope keys."""

    rule: RevocationRule
    scope_keys_by_service: dict[str, int] = field(default_factory=dict)

    @property
    def scope_keys(self) -> int:
        return sum(self.scope_keys_by_service.values())

    @property
    def services(self) -> list[str]:
        """Every service the preview counts anything for, sorted."""
        return sorted(
            {*self.scope_keys_by_service, *self.assets_by_service, *self.bytes_by_service}
        )

    def to_json(self) -> dict[str, Any]:
        services = self.services
        return {
            "rule": self.rule.describe(),
            "scope_keys": self.scope_keys,
            "assets": self.assets,
            "bytes": self.bytes,
            "by_service": {
                s: {
                    "scope_keys": self.scope_keys_by_service.get(s, 0),
                    "assets": self.assets_by_service.get(s, 0),
                    "bytes": self.bytes_by_service.get(s, 0),
                }
                for s in services
            },
        }


def _users(asset: Mapping[str, Any]) -> set[str]:
    users = {asset.get("owner"), asset.get("creator")}
    container = asset.get("container")
    if isinstance(container, Mapping) and isinstance(container.get("members"), list):
        users.update(m.get("user") for m in container["members"] if isinstance(m, Mapping))
    return {user for user in users if isinstance(user, str)}


def compact_request(request: Request) -> dict[str, Any]:
    """The request as stored with an asset: each org's ``licensed_users`` narrowed to the users
    the asset names (owner, creator, members), the only ones the policy asks about. The
    ``actor`` of the request that stored it is not kept: it belongs to that one use (the
    key-usage log has it)."""
    out = {name: value for name, value in request.items() if name != "actor"}
    orgs, asset = request.get("orgs"), request.get("asset")
    if isinstance(orgs, Mapping) and isinstance(asset, Mapping):
        named = _users(asset)
        compact: dict[str, Any] = {}
        for name, settings in orgs.items():
            if isinstance(settings, Mapping) and isinstance(settings.get("licensed_users"), list):
                licensed = [u for u in settings["licensed_users"] if u in named]
                compact[name] = {**settings, "licensed_users": sorted(set(licensed))}
            else:
                compact[name] = settings
        out["orgs"] = compact
    return out


def refuse_client_side(record: AssetRecord) -> None:
    """Fail closed on client-sealed ciphertext (CMK Hybrid, docs/hybrid.md): the platform holds
    no key to it, so no path of the asset service may try, and the caller gets the same typed
    answer as a seal (``AccessDenied``, reason ``policy``: render a tombstone)."""
    if record.context.get("client_side") == "true":
        raise AccessDenied(
            f"{record.service_id} content is client-side: the platform holds no key to open it",
            reason="policy",
        )


def opening_request(record: AssetRecord, actor: str | None = None) -> dict[str, Any]:
    """The Protector request that opens a stored asset: its content context, nothing more, and
    the ``actor`` the key-usage log records. Refuses client-sealed ciphertext
    (:func:`refuse_client_side`)."""
    refuse_client_side(record)
    context = record.context
    request: dict[str, Any] = {
        "asset": {
            "service_id": context["service_id"],
            "org": context["org"],
            "component": context.get("component", ""),
        },
        "scope": context["scope"],
        "asset_id": context["asset_id"],
    }
    if actor is not None:
        request["actor"] = actor
    return request


class _Counting:
    """Counts the plaintext bytes a source yields while it is sealed."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self.count = 0

    def readinto(self, buffer: memoryview, /) -> int | None:
        got = self._source.readinto(buffer)
        self.count += got or 0
        return got


@dataclass(slots=True)
class StoredObject:
    """A stored asset opened once: the record of the version that was opened, and its plaintext
    by ranges (each read checked against key states and rules), until :meth:`close`."""

    record: AssetRecord
    read: Callable[[int, int], bytes]
    close: Callable[[], None]


def _nothing() -> None:
    return None


class AssetService:
    """Seal into, open from and rekey within an :class:`~ownkey.storage.AssetStore`."""

    def __init__(
        self,
        protector: Protector,
        store: AssetStore,
        *,
        complete_request: Completer | None = None,
        small_limit: int = SMALL_LIMIT,
        actor: str = "ownkey:assets",
    ) -> None:
        self.protector = protector
        self.store = store
        self._complete = complete_request
        self.small_limit = small_limit
        self._actor = actor

    def __repr__(self) -> str:
        return f"<AssetService store={self.store!r}>"

    # -- put -----------------------------------------------------------------------------------

    def _retired(self, exc: RetiredScopeKey) -> None:
        """A rekey retired the scope key this node still had cached for sealing: drop it."""
        self.protector.admin.evict(scope_key_id=exc.scope_key_id, actor=self._actor)

    def put_asset(
        self,
        request: Request,
        data: bytes | bytearray | memoryview | Readable,
        *,
        segment_size: int | None = None,
    ) -> AssetRecord:
        """Seal ``data`` per the policy and store it under ``request['asset_id']`` (replacing
        what was stored under that id). Bytes up to ``small_limit`` become one message; larger
        bytes and any stream are sealed segment by segment without being held in memory."""
        address = address_of(request)
        stored = compact_request(request)
        if isinstance(data, bytes | bytearray | memoryview) and len(data) <= self.small_limit:
            payload = bytes(data)
            for attempt in range(_SEAL_ATTEMPTS):
                sealed = self.protector.seal(request, payload)
                try:
                    return self.store.put(
                        context=address.context, sealed=sealed, size=len(payload), request=stored
                    )
                except RetiredScopeKey as exc:
                    if attempt == _SEAL_ATTEMPTS - 1:
                        raise
                    self._retired(exc)
        source: Readable = (
            io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else data
        )
        for attempt in range(_SEAL_ATTEMPTS):
            counting = _Counting(source)
            with self.store.writer(address.asset_id) as blob:
                self.protector.seal_stream(request, counting, blob, segment_size=segment_size)
                try:
                    return self.store.commit(
                        blob, context=address.context, size=counting.count, request=stored
                    )
                except RetiredScopeKey as exc:
                    rewind = getattr(source, "seek", None)
                    if attempt == _SEAL_ATTEMPTS - 1 or rewind is None:
                        raise  # a one-shot stream cannot be sealed again: the caller retries
                    self._retired(exc)
                    rewind(0)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- get -----------------------------------------------------------------------------------

    def record(self, asset_id: str, org: str | None = None) -> AssetRecord:
        """The stored asset's metadata (NotFound if none, or if ``org`` is given and the asset
        is another org's: the same answer, so a caller scoped to one org learns nothing)."""
        return self.store.get(asset_id, org=org)

    def page(
        self,
        *,
        org: str | None = None,
        service_id: str | None = None,
        prefix: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[AssetRecord]:
        """One page of stored assets' metadata (no key is used), in asset-id order; ``prefix``
        and ``after`` are (parts of) asset ids, so the one id rule applies to them too."""
        for name, value in (("prefix", prefix), ("after", after)):
            if value is not None:
                check_id(name, value)
        return self.store.page(
            org=org, service_id=service_id, prefix=prefix, after=after, limit=limit
        )

    def open_object(
        self, asset_id: str, org: str | None = None, *, actor: str | None = None
    ) -> StoredObject:
        """Open a stored asset for ranged reads: one read of the store (record and blob of one
        version), the scope key checked and the layout verified before this returns. With
        ``org``, another org's asset is NotFound, before any key is used. ``actor``: the end
        user, for the key-usage log."""
        record, reader = self.store.open(asset_id)
        try:
            if org is not None and record.org != org:
                raise NotFound(f"no asset {asset_id}")
            request = opening_request(record, actor)
            if blob_suite(reader) == SUITE_MESSAGE:  # small content sealed as one message
                whole = self.protector.open(request, _read_all(reader))
                reader.close()
                return StoredObject(record, lambda start, stop: whole[start:stop], _nothing)
            ranges = self.protector.open_ranges(request, reader)
        except BaseException:
            reader.close()
            raise
        return StoredObject(record, ranges.read, reader.close)

    def get_asset_into(self, asset_id: str, sink: Writable) -> int:
        """Open the whole asset into ``sink``; return the plaintext bytes written.

        A stream is written segment by segment as each one authenticates: on an error, discard
        what ``sink`` received."""
        record, reader = self.store.open(asset_id)
        try:
            request = opening_request(record)
            if blob_suite(reader) == SUITE_MESSAGE:
                plaintext = self.protector.open(request, _read_all(reader))
                sink.write(memoryview(plaintext))
                return len(plaintext)
            return self.protector.open_stream(request, reader, sink)
        finally:
            reader.close()

    def get_asset(self, asset_id: str) -> bytes:
        """The whole plaintext of a stored asset."""
        sink = io.BytesIO()
        self.get_asset_into(asset_id, sink)
        return sink.getvalue()

    def get_asset_range_into(
        self, asset_id: str, sink: Writable, start: int, end: int | None = None
    ) -> int:
        """Plaintext bytes ``[start, end)`` into ``sink`` (``end`` clipped like an HTTP Range),
        decrypting only the segments that cover them; return the bytes written."""
        if start < 0 or (end is not None and end < start):
            raise ValueError("a range needs 0 <= start <= end")
        record, reader = self.store.open(asset_id)
        try:
            request = opening_request(record)
            if blob_suite(reader) == SUITE_MESSAGE:
                plaintext = self.protector.open(request, _read_all(reader))
                piece = plaintext[start:end]
                sink.write(memoryview(piece))
                return len(piece)
            return self.protector.open_range_into(request, reader, sink, start, end)
        finally:
            reader.close()

    def get_asset_range(self, asset_id: str, start: int, end: int | None = None) -> bytes:
        """Plaintext bytes ``[start, end)`` of a stored asset."""
        sink = io.BytesIO()
        self.get_asset_range_into(asset_id, sink, start, end)
        return sink.getvalue()

    def delete_asset(self, asset_id: str, org: str | None = None) -> AssetRecord:
        """Remove a stored asset (row and blob); with ``org``, only if it is that org's."""
        return self.store.delete(asset_id, org=org)

    # -- jobs ----------------------------------------------------------------------------------

    def current_request(
        self, record: AssetRecord, orgs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The request to evaluate the policy with for a stored asset *now*: the stored one,
        completed (e.g. from the org directory), with ``orgs`` overriding its org settings."""
        refuse_client_side(record)
        if record.request is None:
            raise Conflict(
                f"asset {record.asset_id} was stored without its request: the policy cannot be "
                "evaluated for it"
            )
        request: dict[str, Any] = dict(record.request)
        if self._complete is not None:
            request = dict(self._complete(request))
        if orgs:
            request["orgs"] = {**dict(request.get("orgs") or {}), **orgs}
        return request

    def plan_keys(self, request: Request) -> tuple[KeyRef, ...]:
        """The keys the policy names for ``request``, sorted and unique."""
        return tuple(sorted(set(view_plan(self.protector.explain(request)).keys)))

    def rekey_asset(
        self,
        asset_id: str,
        *,
        only_from: Container[bytes] | None = None,
        orgs: Mapping[str, Any] | None = None,
        known_keys: MutableMapping[bytes, tuple[KeyRef, ...]] | None = None,
    ) -> bool:
        """Re-encrypt one stored asset under a fresh scope key (its old one is retired) and swap
        its content atomically; say if it changed. Idempotent: an asset already moved away from
        ``only_from`` (or deleted) is left alone. ``known_keys`` caches the keys of old scope
        keys across calls (a job's step).

        Raises :class:`PlanChanged` if the policy now names other keys than the content's scope
        key is under, and what the Protector raises (a denied key, an outage)."""
        for _ in range(_REKEY_ATTEMPTS):
            try:
                record, reader = self.store.open(asset_id)
            except NotFound:
                if self.store.find(asset_id) is None:
                    return False  # deleted: nothing left to rekey
                raise  # its row names a blob that is gone: fail, do not count it as rekeyed
            try:
                if only_from is not None and record.scope_key_id not in only_from:
                    return False
                request = self.current_request(record, orgs)
                if address_of(request).context != record.context:
                    raise Conflict(f"asset {asset_id}: its stored request names another asset")
                self._check_keys(record, request, known_keys)
                try:
                    if self._rekey_once(record, reader, request):
                        return True
                except RetiredScopeKey as exc:
                    self._retired(exc)  # the fresh key was retired meanwhile: try once more
            finally:
                reader.close()
        raise Conflict(f"asset {asset_id} kept changing while it was rekeyed; run again")

    def _check_keys(
        self,
        record: AssetRecord,
        request: Request,
        known: MutableMapping[bytes, tuple[KeyRef, ...]] | None,
    ) -> None:
        old = None if known is None else known.get(record.scope_key_id)
        if old is None:
            scope_key = self.protector.admin.scope_key(record.scope_key_id)
            if scope_key is None or scope_key.shredded:
                return  # nothing to compare: opening it will say why it cannot be rekeyed
            old = scope_key.keys
            if known is not None:
                known[record.scope_key_id] = old
        keys = self.plan_keys(request)
        if keys != old:
            raise PlanChanged(
                f"asset {record.asset_id}: the policy now names "
                f"{', '.join(map(str, keys)) or 'no key'} but its scope key is under "
                f"{', '.join(map(str, old))}; run the backfill first"
            )

    def _rekey_once(self, record: AssetRecord, reader: BlobReader, request: Request) -> bool:
        if blob_suite(reader) == SUITE_MESSAGE:
            sealed = self.protector.rekey(request, _read_all(reader))
            replaced = self.store.replace(
                record.asset_id,
                expected_location=record.location,
                sealed=sealed,
                size=record.size,
                record=record,
            )
            return replaced is not None
        with self.store.writer(record.asset_id) as blob:
            self.protector.rekey_stream(request, reader, blob)
            replaced = self.store.replace(
                record.asset_id,
                expected_location=record.location,
                blob=blob,
                size=record.size,
                record=record,
            )
            return replaced is not None

    # -- preview -------------------------------------------------------------------------------

    def preview(self, rule: RevocationRule) -> AssetPreview:
        """What ``rule`` would deny, by service: scope keys (the key layer's count), and the
        stored assets and plaintext bytes under them. Changes nothing."""
        # One scan of the scope keys gives both the key layer's count and the ids to total.
        counts: dict[str, int] = {}
        ids: list[bytes] = []
        for record in self.protector.admin.scope_keys(rule.selector):
            counts[record.service_id] = counts.get(record.service_id, 0) + 1
            ids.append(record.key_id)
        totals = self.store.totals(ids)
        return AssetPreview(
            dict(totals.assets_by_service),
            dict(totals.bytes_by_service),
            rule=rule,
            scope_keys_by_service=dict(sorted(counts.items())),
        )


def _read_all(reader: Any) -> bytes:
    chunks: list[bytes] = []
    buffer = bytearray(1 << 16)
    view = memoryview(buffer)
    while True:
        got = reader.readinto(view)
        if not got:
            return b"".join(chunks)
        chunks.append(bytes(view[:got]))
