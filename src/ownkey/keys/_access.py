"""The access path: the scope key to seal with, or to open with, after every check (KL-6, KL-7).

Order matters and is the same for seal and open: key states and revocation rules are checked
first, on every call, against ownkey's registry and rule store, so a change made through ownkey
acts on the very next call even when the scope key is cached (RV-2, KL-8). Only then is the cache
consulted, and only on a miss is the key manager called, once for all concurrent callers (CA-2),
with bounded retries (FS-2). A denial is recorded, evicts, and is never answered with another key
(FS-1). A cached scope key's own record is re-read at most every ``recheck_after`` seconds before
it is used, because another process may have shredded, retired or re-wrapped it (KL-8a).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ownkey._outage import OUTAGE_GRACE, RETRY_AFTER, is_outage
from ownkey._refs import KeyRef, KeyType
from ownkey.audit import AuditAction, Outcome
from ownkey.envelope import ScopeKey, combine_shares
from ownkey.errors import (
    AccessDenied,
    AuditUnavailable,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
)
from ownkey.keys._cache import CacheEntry
from ownkey.keys._calls import unwrap_share, verify_wrap, wrap_share
from ownkey.keys._deps import SCOPE_KEY_ID_BYTES, KeyDeps
from ownkey.keys._flight import SingleFlight
from ownkey.keys._lease import Lease
from ownkey.keys._records import (
    RECORD_FORMAT,
    MasterKey,
    ScopeIdentity,
    ScopeKeyRecord,
    Selector,
    record_binding,
    record_context,
    share_context,
)
from ownkey.keys._revocation import RevocationRule

__all__ = ["ScopeKeys"]

SHARE_BYTES = 32
Provision = Callable[[KeyRef], MasterKey]


class ScopeKeys:
    """Hands out cached scope keys for sealing and opening, creating and unwrapping on demand.

    ``provision`` (optional) creates a missing customer or platform key on first use; without it
    a plan that names an unregistered key is a :class:`ConfigError`, never a silent fallback.
    """

    def __init__(self, deps: KeyDeps, *, provision: Provision | None = None) -> None:
        self._deps = deps
        self._provision = provision
        self._creating: SingleFlight[CacheEntry] = SingleFlight()
        self._rechecks: SingleFlight[tuple[float, ScopeKeyRecord | None]] = SingleFlight()

    # -- checks ----------------------------------------------------------------------------------

    def master(self, ref: KeyRef) -> MasterKey:
        """ownkey's record of ``ref``; provisioned if allowed, else an explicit error."""
        master = self._deps.registry.get(ref)
        if master is not None:
            return master
        if ref.type is KeyType.HYBRID:
            raise self._denied(
                None,
                ref,
                "policy",
                f"{ref} is a client-side key: this deployment never holds it",
            )
        if self._provision is None:
            raise ConfigError(f"no key is registered for {ref}")
        return self._provision(ref)

    def check(self, identity: ScopeIdentity, key_id: bytes | None = None) -> None:
        """Raise AccessDenied unless every key is enabled and no revocation rule matches."""
        rules = self._deps.rules
        for ref in identity.keys:
            state = self.master(ref).state
            if not state.usable:
                raise self._denied(identity, ref, state.value, f"{ref} is {state.value}", key_id)
            for rule in rules.for_key(ref):
                if rule.matches(identity):
                    raise self._denied(
                        identity,
                        ref,
                        "revocation_rule",
                        f"{ref} is revoked for this content by rule {rule.rule_id}",
                        key_id,
                        rule,
                    )

    def _denied(
        self,
        identity: ScopeIdentity | None,
        ref: KeyRef | None,
        reason: str,
        message: str,
        key_id: bytes | None = None,
        rule: RevocationRule | None = None,
    ) -> AccessDenied:
        """Record a denial, drop what it concerns from the cache, and build the error."""
        detail = {"reason": reason}
        if identity is not None:
            detail.update(
                service_id=identity.service_id,
                scope=identity.scope,
                orgs=",".join(identity.orgs),
                epoch_start=str(identity.epoch_start),
            )
            self._deps.cache.unbind(identity)
        if key_id is not None:
            detail["scope_key_id"] = key_id.hex()
            self._deps.cache.evict_id(key_id)
        if rule is not None:
            detail["rule_id"] = rule.rule_id
        org = ref.org if ref is not None and ref.org else None
        if org is None and identity is not None and identity.orgs:
            org = identity.orgs[0]
        self._deps.auditor.emit(
            AuditAction.ACCESS_DENIED,
            Outcome.DENIED,
            org=org,
            key=None if ref is None else str(ref),
            detail=detail,
        )
        return AccessDenied(f"access denied: {message}", reason=reason)

    def check_opening(
        self, identity: ScopeIdentity, required: tuple[KeyRef, ...], key_id: bytes
    ) -> None:
        """Refuse (``integrity``, audited) a scope key that lacks a customer key the plan
        names: content under a record the platform alone could make (a planted platform-only
        record) must not open as the org's CMK asset (SK-8). Content sealed before CMK covered
        it opens again once its backfill moved it to the customer key."""
        for ref in required:
            if ref.type is KeyType.CUSTOMER and ref not in identity.keys:
                raise self._denied(
                    identity,
                    ref,
                    "integrity",
                    f"the scope key is not under {ref}, which the plan requires (content "
                    "sealed before CMK covered it opens after its backfill)",
                    key_id,
                )

    # -- sealing ---------------------------------------------------------------------------------

    def for_seal(self, identity: ScopeIdentity) -> CacheEntry:
        """The scope key that seals new content of ``identity``, created on first use (SK-1)."""
        self.check(identity)
        cache = self._deps.cache
        key_id = cache.bound(identity)
        if key_id is not None:
            entry, refresh = cache.get(key_id)
            if entry is not None and self._still_current(entry, sealing=True):
                return self._refresh(entry) if refresh else entry
        return self._creating.run(identity, lambda: self._current_or_create(identity))

    def _current_or_create(self, identity: ScopeIdentity) -> CacheEntry:
        read_at = self._deps.clock()
        record = self._deps.store.current(identity)
        if record is not None and record.format < RECORD_FORMAT:
            self._retire_outdated(record)  # new content only under format-2 bindings
            record = None
        entry = (
            self._create(identity)
            if record is None
            else self._load_for_seal(record, identity, read_at)
        )
        self._deps.cache.bind(identity, entry.key.key_id)
        return entry

    def _load_for_seal(
        self, record: ScopeKeyRecord, identity: ScopeIdentity, read_at: float | None = None
    ) -> CacheEntry:
        """Load a stored record to seal ``identity``'s content, only if it is exactly what the
        plan asks for: the record was found by a digest of the identity, a column anyone with
        write access to the database can set (issue 10, finding 2)."""
        same = (
            record.sealable
            and not record.shredded
            and record.orgs == identity.orgs
            and record.service_id == identity.service_id
            and record.scope == identity.scope
            and record.epoch_start == identity.epoch_start
            and record.epoch_seconds == identity.epoch_seconds
            and sorted(record.wrap_keys) == sorted(identity.keys)
        )
        if not same:
            raise self._denied(
                identity,
                None,
                "integrity",
                "the stored scope key does not match the protection plan",
                record.key_id,
            )
        if record.moved:
            # Created under other keys (SK-7): a key that wrapped it then may be the platform's,
            # and copies of that wrap outlive the move. The origin is in every share's context,
            # so a row edited to hide the move does not unwrap either.
            raise self._denied(
                identity,
                None,
                "integrity",
                "the stored scope key was moved from other keys and may not seal new content",
                record.key_id,
            )
        return self._load(record, read_at)

    def _retire_outdated(self, record: ScopeKeyRecord) -> None:
        self._deps.store.retire(record.key_id)
        self._deps.auditor.emit(
            AuditAction.SCOPE_KEY_RETIRE,
            detail={"scope_key_id": record.key_id.hex(), "reason": "record_format"},
        )

    def _create(self, identity: ScopeIdentity) -> CacheEntry:
        """New random shares, one per key, each wrapped under its key (SK-2, SK-3)."""
        deps = self._deps
        masters = [self.master(ref) for ref in identity.keys]
        key_id = deps.random(SCOPE_KEY_ID_BYTES)
        shares = [deps.random(SHARE_BYTES) for _ in masters]
        wraps = tuple(
            wrap_share(deps, master, share, share_context(identity, key_id, identity.keys, index))
            for index, (master, share) in enumerate(zip(masters, shares, strict=True))
        )
        record = ScopeKeyRecord(
            key_id=key_id,
            orgs=identity.orgs,
            service_id=identity.service_id,
            scope=identity.scope,
            epoch_start=identity.epoch_start,
            epoch_seconds=identity.epoch_seconds,
            wraps=wraps,
            created_at=deps.clock(),
            format=RECORD_FORMAT,
            origin=identity.keys,
        )
        stored = deps.store.create(record)
        if stored.key_id != key_id:  # another node created it first: use theirs
            return self._load_for_seal(stored, identity)
        material = combine_shares(shares, record_binding(record))
        return deps.cache.put(ScopeKey(key_id, material), identity)

    def _stamp(self) -> tuple[Callable[[], object], bool]:
        """What a lease compares per message, and whether it covers key states and rules."""
        cache, registry, rules = self._deps.cache, self._deps.registry, self._deps.rules
        if hasattr(type(registry), "version") and hasattr(type(rules), "version"):
            versioned: Any = (registry, rules)

            def stamp() -> object:
                return (cache.generation, versioned[0].version, versioned[1].version)

            return stamp, True
        return (lambda: cache.generation), False

    def _lease(self, get: Callable[[], CacheEntry], until: float) -> Lease:
        stamp, complete = self._stamp()
        stamped = stamp()  # before the check: a change racing with it ends the lease
        entry = get()
        return Lease(
            entry,
            cache=self._deps.cache,
            clock=self._deps.clock,
            stamp=stamp,
            stamped=stamped,
            until=until,
            check=None if complete else (lambda: self.check(entry.identity, entry.key.key_id)),
        )

    def seal_lease(self, identity: ScopeIdentity, *, until: float) -> Lease:
        """:meth:`for_seal` as a :class:`Lease`, valid at most until ``until`` (the epoch's end)."""
        return self._lease(lambda: self.for_seal(identity), until)

    # -- opening ---------------------------------------------------------------------------------

    def open_lease(self, key_id: bytes) -> Lease:
        """:meth:`for_open` as a :class:`Lease` (see :meth:`seal_lease`)."""
        return self._lease(lambda: self.for_open(key_id), float("inf"))

    def record(self, key_id: bytes) -> ScopeKeyRecord:
        """The stored record of ``key_id``; an unknown id is indistinguishable from garbage."""
        record = self._deps.store.get(key_id)
        if record is None:
            raise InvalidCiphertext()
        return record

    def for_open(self, key_id: bytes) -> CacheEntry:
        """The scope key named by an envelope header, after every check."""
        entry, refresh = self._deps.cache.get(key_id)
        if entry is not None and self._still_current(entry, sealing=False):
            self.check(entry.identity, key_id)
            return self._refresh(entry) if refresh else entry
        read_at = self._deps.clock()
        record = self.record(key_id)
        if record.shredded:
            raise self._denied(
                record.identity, None, "destroyed", "the scope key was destroyed", key_id
            )
        self.check(record.identity, key_id)
        return self._load(record, read_at)

    def _load(self, record: ScopeKeyRecord, read_at: float | None = None) -> CacheEntry:
        return self._deps.cache.load(
            record.key_id, lambda: self._unwrap(record, retry=True), checked_at=read_at
        )

    def _still_current(self, entry: CacheEntry, *, sealing: bool) -> bool:
        """Whether a cached entry may serve this call, its record re-read if due (KL-8a).

        Another process may have shredded the scope key, retired it, or re-wrapped it under
        other keys; nothing in this process hears of it on SQLite. So at most every
        ``recheck_after`` seconds the stored record is read again (once for all concurrent
        callers); if it no longer matches, the entry is evicted and False sends the caller down
        its miss path, which reads the record afresh: a shredded key is refused as *destroyed*,
        a moved one is checked against its new keys, a retired one is replaced for sealing.
        Any failure evicts too: an entry that could not be checked is not used.
        """
        cache = self._deps.cache
        if not cache.recheck_due(entry):
            return True
        key_id = entry.key.key_id

        def read() -> tuple[float, ScopeKeyRecord | None]:
            read_at = self._deps.clock()  # before the read: the window is never understated
            return read_at, self._deps.store.get(key_id)

        try:
            read_at, record = self._rechecks.run(key_id, read)
        except Exception as exc:
            # A short database outage: the entry, checked a moment ago, serves on (bounded by
            # OUTAGE_GRACE; nothing can change through ownkey meanwhile: ownkey/_outage.py).
            if is_outage(exc) and cache.recheck_failed(
                entry, retry_after=RETRY_AFTER, grace=OUTAGE_GRACE
            ):
                return True
            cache.evict_id(key_id)
            raise
        except BaseException:
            cache.evict_id(key_id)
            raise
        if (
            record is None
            or record.shredded
            or record.identity != entry.identity
            or (sealing and not record.sealable)
        ):
            cache.evict_id(key_id)
            return False
        if not record.sealable and cache.bound(entry.identity) == key_id:
            cache.unbind(entry.identity)  # retired elsewhere: opens still, seals no more
        cache.rechecked(entry, read_at)
        return True

    def _unwrap(self, record: ScopeKeyRecord, *, retry: bool) -> tuple[ScopeKey, ScopeIdentity]:
        """Unwrap every share (all are needed) and combine them; a denial evicts the key's uses."""
        identity = record.identity
        shares = []
        for index, wrap in enumerate(record.wraps):
            context = record_context(record, index)
            try:
                verify_wrap(self._deps, wrap)
            except AccessDenied as exc:
                raise self._denied(
                    identity, wrap.key, exc.reason, str(exc), record.key_id
                ) from None
            try:
                shares.append(unwrap_share(self._deps, wrap, context, retry=retry))
            except AccessDenied as exc:
                self._deps.cache.evict(Selector(key=wrap.key))
                raise self._denied(
                    identity,
                    wrap.key,
                    exc.reason,
                    f"the key manager refused {wrap.key}",
                    record.key_id,
                ) from exc
        return ScopeKey(record.key_id, combine_shares(shares, record_binding(record))), identity

    def _refresh(self, entry: CacheEntry) -> CacheEntry:
        """Re-unwrap an entry past ``refresh_after``; keep it if the manager is unavailable.

        Not if the *audit log* is: AuditUnavailable (a KeyUnavailable) replaces whatever the
        key manager answered, a denial included (the customer revoked its key), and a denial
        that could not be recorded must not leave the key serving until ``max_age`` (FS-3)."""
        cache = self._deps.cache
        key_id = entry.key.key_id
        try:
            read_at = self._deps.clock()
            record = self.record(key_id)
            if record.shredded:
                raise self._denied(
                    record.identity, None, "destroyed", "the scope key was destroyed", key_id
                )
            key, identity = self._unwrap(record, retry=False)
        except AuditUnavailable:
            cache.evict_id(key_id)
            raise
        except KeyUnavailable:
            cache.refresh_failed(entry)
            return entry
        except BaseException:
            cache.evict_id(key_id)
            raise
        return cache.refreshed(entry, key, identity, checked_at=read_at)
