"""The Protector: the one front door for sealing and opening content under the customer's key.

``seal`` asks the policy engine which keys must protect the asset, finds (or creates) the scope key
for those keys, this scope and this epoch, and seals with it; ``open`` reads the scope key id from
the envelope header, checks every key state and revocation rule, and opens. Both fail closed with
a typed error the platform renders as a tombstone (:class:`~ownkey.errors.AccessDenied`) or
retries later (:class:`~ownkey.errors.KeyUnavailable`); neither ever falls back to another key.
Streams and byte ranges take the same path; ``rekey`` re-encrypts content under a fresh scope key
for the jobs that need old wrapped copies to become useless.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from ownkey import envelope
from ownkey.audit import Outcome
from ownkey.envelope import Readable, SeekableReadable, Writable, peek_key_id
from ownkey.errors import AccessDenied, InvalidCiphertext, OwnkeyError
from ownkey.keys import (
    CacheEntry,
    KeyAdmin,
    KeyDeps,
    KeyRef,
    Lease,
    MasterKey,
    Rewrapper,
    ScopeIdentity,
    ScopeKeys,
)
from ownkey.policy import ProtectionPlan
from ownkey.service._access_log import AccessLog
from ownkey.service._admin import Administration
from ownkey.service._memo import LruMemo, request_key
from ownkey.service._plan import PlanView, PolicyFn, opening_plan, view_plan
from ownkey.service._prepared import PreparedScope
from ownkey.service._request import (
    AssetAddress,
    actor_of,
    address_of,
    asset_id_of,
    policy_part,
    scope_of,
)
from ownkey.service._restore import OpenGate
from ownkey.service._settings import ProtectorSettings
from ownkey.service._streams import CheckedRanges, PlaintextReader, peek_stream_key_id

__all__ = ["Protector"]

Request = Mapping[str, Any]
Held = TypeVar("Held", CacheEntry, Lease)


class Protector:
    """Seal, open and explain content per the policy, under keys the customer controls.

    Build it with :func:`~ownkey.service.build_protector`, which wires settings, providers,
    stores, the audit sink and the policy engine; ``admin`` holds the key lifecycle, revocation,
    rotation, backfill and cache operations. Thread-safe.
    """

    def __init__(
        self,
        settings: ProtectorSettings,
        deps: KeyDeps,
        policy: PolicyFn,
        *,
        admin_deps: KeyDeps | None = None,
    ) -> None:
        """``admin_deps``, when given, are what ``admin`` decides on: the same stores, but a
        registry and rules read as stored rather than from the data plane's caches."""
        self.settings = settings
        self._deps = deps
        self._policy = policy
        # A policy that says what its answer depends on besides the request (``revision``:
        # nothing for ownkey's engine, the orgs' revisions for the directory's) lets one
        # prepared handle serve every later call with an equal request and revision. Any other
        # policy gets a fresh handle per call.
        self._revision: Callable[[Request], Hashable] | None = getattr(policy, "revision", None)
        self._handles: LruMemo[Hashable, PreparedScope] = LruMemo()
        self._provision_lock = threading.Lock()
        admin_deps = deps if admin_deps is None else admin_deps
        self._key_admin = KeyAdmin(
            admin_deps,
            default_provider=settings.default_provider,
            min_waiting_period=settings.min_destruction_waiting_period,
            default_waiting_period=settings.destruction_waiting_period,
        )
        self._keys = ScopeKeys(
            deps, provision=self._provision if settings.auto_create_keys else None
        )
        self._rewrapper = Rewrapper(admin_deps, self._key_admin.get)
        self.admin = Administration(self._key_admin, self._rewrapper, admin_deps)
        self.access_log = AccessLog(deps.auditor, deps.clock)
        #: Shut while a restore waits for an operator: opens refused (service/_restore.py).
        self.open_gate = OpenGate()

    def flush_access(self) -> int:
        """Write the pending access records now (the data plane writes them within a second
        by itself); return how many audit events were written."""
        return self.access_log.flush()

    def close(self) -> None:
        """Write what the access log holds and stop its timer (a clean stop loses nothing)."""
        self.access_log.close()

    def __repr__(self) -> str:
        return f"<Protector providers={sorted(self._deps.providers)} keys=<redacted>>"

    def _provision(self, ref: KeyRef) -> MasterKey:
        with self._provision_lock:
            existing = self._deps.registry.get(ref)
            if existing is not None:
                return existing
            return self._key_admin.create(ref, actor="ownkey:auto-create")

    # -- policy ----------------------------------------------------------------------------------

    def explain(self, request: Request) -> ProtectionPlan:
        """The policy engine's plan for ``request`` (``scope`` and ``asset_id`` are ignored)."""
        return self._policy(policy_part(request))

    def _plan(self, request: Request) -> PlanView:
        return view_plan(self._policy(policy_part(request)))

    def _epoch(self, service_id: str) -> tuple[int, int]:
        """The epoch a scope key of ``service_id`` sealed now belongs to: (start, seconds)."""
        seconds = self.settings.epoch_for(service_id)
        return int(self._deps.clock() // seconds) * seconds, seconds

    def _identity(
        self,
        plan: PlanView,
        address: AssetAddress,
        *,
        epoch: tuple[int, int] | None = None,
    ) -> ScopeIdentity:
        """The scope key's identity: the orgs taking part, the plan's service and keys, the scope
        and the epoch (now, unless given)."""
        if epoch is None:
            epoch = self._epoch(plan.service_id)
        orgs = {address.org, *address.chat_orgs, *(key.org for key in plan.keys if key.org)}
        return ScopeIdentity(
            orgs=tuple(sorted(orgs)),
            service_id=plan.service_id,
            scope=address.scope,
            epoch_start=epoch[0],
            epoch_seconds=epoch[1],
            keys=plan.keys,
        )

    # -- the prepared path -----------------------------------------------------------------------

    def prepare(self, request: Request) -> PreparedScope:
        """A handle for the hot loop of one container: ``seal(asset_id, data)`` and
        ``open(asset_id, sealed)`` for every asset whose request is ``request`` but for its
        ``asset_id`` (which may be absent here). Every per-message check is kept; see
        :class:`~ownkey.service.PreparedScope`."""
        address = scope_of(request)
        return PreparedScope(
            self._keys,
            address,
            lambda: self._plan(request),
            self._epoch,
            self.access_log,
            self.open_gate,
        )

    def _handle(self, request: Request) -> PreparedScope:
        """The handle for ``request``, remembered when the policy is pure and the request is
        plain JSON data (then an equal request gets the same handle)."""
        if self._revision is not None:
            key = request_key(request, without=("asset_id", "actor"))
            if key is not None:
                try:
                    revision = self._revision(request)
                except OwnkeyError:  # the plain path reports it (seal) or needs no plan (open)
                    return self.prepare(request)
                return self._handles.get((key, revision), lambda: self.prepare(request))
        return self.prepare(request)

    # -- the key-usage log ------------------------------------------------------------------------

    def _accessed(
        self, request: Request, address: AssetAddress, operation: str, get: Callable[[], Held]
    ) -> Held:
        """``get()`` the scope key of a stream or range, counting the use (or the denial) in
        the orgs' key-usage log with the request's ``actor`` (service/_access_log.py)."""
        actor = actor_of(request)
        try:
            held = get()
        except AccessDenied:
            orgs = tuple(sorted({address.org, *address.chat_orgs}))
            self.access_log.note(
                orgs,
                address.service_id,
                address.scope,
                address.asset_id,
                actor,
                operation,
                Outcome.DENIED.value,
            )
            raise
        entry = held.entry if isinstance(held, Lease) else held
        self.access_log.note(
            entry.identity.orgs,
            address.service_id,
            address.scope,
            address.asset_id,
            actor,
            operation,
        )
        return held

    # -- sealing ---------------------------------------------------------------------------------

    def _sealing(self, request: Request) -> tuple[CacheEntry, AssetAddress, ScopeIdentity]:
        address = address_of(request)
        identity = self._identity(self._plan(request), address)
        return self._keys.for_seal(identity), address, identity

    def seal(self, request: Request, data: bytes) -> bytes:
        """Seal a small payload (a chat message, a token, up to 64 MiB) per the policy.

        A scope key has no message limit: its cipher moves to a fresh derived key every 2^20
        seals by itself (docs/spec/envelope-v2.md, ENV2-4.6).
        """
        handle = self._handle(request)
        return handle.seal(asset_id_of(request), data, actor=actor_of(request))

    def seal_batch(
        self, request: Request, items: Sequence[tuple[str, bytes]]
    ) -> list[bytes | OwnkeyError]:
        """Seal many assets of one container (``request`` without ``asset_id``; each item is
        ``(asset_id, data)``): one plan, one prepared handle, each item's result on its own
        (see :meth:`PreparedScope.seal_many`). The request's ``actor`` applies to every item."""
        return self._handle(request).seal_many(items, actor=actor_of(request))

    def open_batch(
        self, request: Request, items: Sequence[tuple[str, bytes]]
    ) -> list[bytes | OwnkeyError]:
        """Open many envelopes of one container (``(asset_id, sealed)`` pairs), as
        :meth:`seal_batch`."""
        return self._handle(request).open_many(items, actor=actor_of(request))

    def seal_stream(
        self,
        request: Request,
        source: Readable,
        sink: Writable,
        *,
        segment_size: int | None = None,
    ) -> int:
        """Seal a large asset from ``source`` into ``sink`` in bounded memory; return its size."""
        address = address_of(request)
        entry = self._accessed(request, address, "seal", lambda: self._sealing(request)[0])
        return envelope.seal_stream(
            entry.key,
            address.context,
            source,
            sink,
            segment_size=segment_size or self.settings.segment_size,
            random=self._deps.random,
        )

    # -- opening ---------------------------------------------------------------------------------

    def _opening(self, key_id: bytes, address: AssetAddress, request: Request | None) -> CacheEntry:
        """The scope key named by an envelope, checked against the request's scope and, when
        ``request`` is given, against the plan (SK-8; a rekey passes None: it moves content
        to the plan of now, so the keys of then may differ)."""
        self.open_gate.check()
        entry = self._keys.for_open(key_id)
        if entry.identity.scope != address.scope:
            raise InvalidCiphertext()  # sealed for another scope: indistinguishable from garbage
        if request is not None:
            plan = opening_plan(lambda: self._plan(request))
            if plan is not None:
                self._keys.check_opening(entry.identity, plan.keys, key_id)
        return entry

    def open(self, request: Request, sealed: bytes) -> bytes:
        """Open what :meth:`seal` returned, given the same request."""
        handle = self._handle(request)
        return handle.open(asset_id_of(request), sealed, actor=actor_of(request))

    def open_stream(self, request: Request, source: Readable, sink: Writable) -> int:
        """Open a whole sealed stream into ``sink``; return the plaintext bytes written.

        On any error, discard what ``sink`` received (the last segments may be missing).
        """
        address = address_of(request)
        key_id, replay = peek_stream_key_id(source)
        entry = self._accessed(
            request, address, "open", lambda: self._opening(key_id, address, request)
        )
        return envelope.open_stream(entry.key, address.context, replay, sink)

    def _seekable_entry(
        self, source: SeekableReadable, address: AssetAddress, request: Request | None
    ) -> CacheEntry:
        source.seek(0)
        key_id, _ = peek_stream_key_id(source)
        source.seek(0)
        return self._opening(key_id, address, request)

    def open_ranges(self, request: Request, source: SeekableReadable) -> CheckedRanges:
        """A sealed stream checked once (scope key, header, commitment, final segment), then
        read by ranges, each read checked again against key states and revocation rules."""
        handle = self._handle(request)
        address = address_of(request)
        source.seek(0)
        key_id, _ = peek_stream_key_id(source)
        lease = self._accessed(request, address, "open", lambda: handle.open_lease(key_id))
        opener = envelope.StreamOpener(lease.entry.key, address.context, source)
        return CheckedRanges(opener, lambda: handle.open_lease(key_id))

    def open_range(
        self, request: Request, source: SeekableReadable, start: int, end: int | None = None
    ) -> bytes:
        """Plaintext bytes ``[start, end)`` of a sealed stream, decrypting only what covers them."""
        address = address_of(request)
        entry = self._accessed(
            request, address, "open", lambda: self._seekable_entry(source, address, request)
        )
        return envelope.open_range(entry.key, address.context, source, start, end)

    def open_range_into(
        self,
        request: Request,
        source: SeekableReadable,
        sink: Writable,
        start: int,
        end: int | None = None,
    ) -> int:
        """Like :meth:`open_range`, writing into ``sink``; return the bytes written."""
        address = address_of(request)
        entry = self._accessed(
            request, address, "open", lambda: self._seekable_entry(source, address, request)
        )
        return envelope.open_range_into(entry.key, address.context, source, sink, start, end)

    # -- rekey -----------------------------------------------------------------------------------

    def _rekey_target(self, request: Request, address: AssetAddress, old: CacheEntry) -> CacheEntry:
        """A fresh scope key for the old one's epoch, under the keys the policy names now.

        The old scope key is retired first, so it is never handed out again for sealing; once a
        job moved all its content, it is shredded after the destruction waiting period (RW-6,
        RW-8: ``JobRunner`` schedules it, a shred job carries it out).
        """
        self._rewrapper.retire(old.key.key_id, actor="ownkey:rekey")
        epoch = (old.identity.epoch_start, old.identity.epoch_seconds)
        identity = self._identity(self._plan(request), address, epoch=epoch)
        new = self._keys.for_seal(identity)
        if new.key.key_id == old.key.key_id:  # pragma: no cover - retire makes this impossible
            raise RuntimeError("rekey would reuse the scope key it replaces")
        return new

    def rekey(self, request: Request, sealed: bytes) -> bytes:
        """Re-encrypt one sealed message under a fresh scope key; return the new envelope."""
        address = address_of(request)
        old = self._opening(peek_key_id(sealed), address, None)
        plaintext = old.cipher.open(sealed, address.context)
        new = self._rekey_target(request, address, old)
        return new.cipher.seal(plaintext, address.context)

    def rekey_stream(
        self,
        request: Request,
        source: SeekableReadable,
        sink: Writable,
        *,
        segment_size: int | None = None,
    ) -> int:
        """Re-encrypt a sealed stream under a fresh scope key, segment by segment."""
        address = address_of(request)
        old = self._seekable_entry(source, address, None)
        layout = envelope.stream_layout(old.key, address.context, source)
        reader = PlaintextReader(old.key, address.context, source, layout.plaintext_len)
        new = self._rekey_target(request, address, old)
        return envelope.seal_stream(
            new.key,
            address.context,
            reader,
            sink,
            segment_size=segment_size or layout.segment_size,
            random=self._deps.random,
        )
