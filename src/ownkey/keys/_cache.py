"""The bounded cache of unwrapped scope keys (docs/spec/key-lifecycle.md, CA-1 to CA-5).

Chat at 100k messages/s cannot call a key manager per message, so an unwrapped scope key is kept
for a while, with its :class:`~ownkey.envelope.MessageCipher` (whose HKDF runs once). Four limits,
all settings, bound what a cached key can do after its customer changed their mind in their own
KMS: ``max_age`` (after it, the entry is never used), ``max_uses``, ``max_entries`` (least
recently used goes first), and ``refresh_after``: past it, one caller re-unwraps while the others
keep using the entry; if the key manager is unavailable the entry keeps serving until
``max_age``, and if it denies, the entry is evicted at once.

Revocations and key-state changes made through ownkey do not wait for any of this: the key layer
checks them before every use and evicts what they select. What another process does to a cached
scope key itself (shred, retire, re-wrap to other keys) is seen through ``recheck_after``: an entry
whose stored record was last read longer ago than that is re-read before its next use (KL-8a).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ownkey.envelope import MessageCipher, RandomSource, ScopeKey
from ownkey.errors import ConfigError
from ownkey.keys._flight import SingleFlight
from ownkey.keys._records import ScopeIdentity, Selector

__all__ = ["CacheEntry", "CacheLimits", "CacheReport", "ScopeKeyCache"]

Loader = Callable[[], tuple[ScopeKey, ScopeIdentity]]
_MIN_REFRESH_RETRY = 1.0
DEFAULT_RECHECK_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """The cache's limits; every one is a setting and reported by the admin API."""

    max_age: float = 300.0
    refresh_after: float = 240.0
    max_uses: int = 2**24
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        if self.max_age <= 0:
            raise ConfigError("cache max_age must be positive")
        if not 0 < self.refresh_after <= self.max_age:
            raise ConfigError("cache refresh_after must be in (0, max_age]")
        if self.max_uses < 1 or self.max_entries < 1:
            raise ConfigError("cache max_uses and max_entries must be at least 1")


@dataclass(frozen=True, slots=True)
class CacheReport:
    """The cache's limits and counters, as the admin API reports them."""

    limits: CacheLimits
    entries: int
    hits: int
    misses: int
    loads: int
    load_failures: int
    expirations: int
    evictions: int
    refreshes: int
    stale_served: int


class CacheEntry:
    """One unwrapped scope key with what it covers and its ready-to-use message cipher."""

    __slots__ = (
        "checked_at",
        "cipher",
        "deferred_until",
        "expires_at",
        "identity",
        "key",
        "loaded_at",
        "refresh_at",
        "refreshing",
        "uses",
    )

    def __init__(
        self,
        key: ScopeKey,
        identity: ScopeIdentity,
        *,
        now: float,
        limits: CacheLimits,
        random: RandomSource,
        checked_at: float | None = None,
    ) -> None:
        self.key = key
        self.identity = identity
        self.cipher = MessageCipher(key, random=random)
        self.loaded_at = now
        self.expires_at = now + limits.max_age
        self.refresh_at = now + limits.refresh_after
        self.refreshing = False
        self.uses = 0
        # When the stored record was read (before the unwrap, so the window is never understated).
        self.checked_at = now if checked_at is None else checked_at
        # A re-check the database could not answer (an outage) is not tried before this.
        self.deferred_until = 0.0

    def __repr__(self) -> str:
        return f"<CacheEntry id={self.key.key_id.hex()} uses={self.uses} key=<redacted>>"


class ScopeKeyCache:
    """Unwrapped scope keys by id, plus which id is current for sealing each identity."""

    def __init__(
        self,
        limits: CacheLimits,
        *,
        clock: Callable[[], float],
        random: RandomSource,
        recheck_after: float = DEFAULT_RECHECK_AFTER,
    ) -> None:
        if recheck_after < 0:
            raise ConfigError("cache recheck_after cannot be negative")
        self.limits = limits
        self.recheck_after = recheck_after
        self._clock = clock
        self._random = random
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._bindings: dict[ScopeIdentity, bytes] = {}
        self._lock = threading.Lock()
        self._flights: SingleFlight[CacheEntry] = SingleFlight()
        self._generation = 0
        self._hits = self._misses = self._loads = self._load_failures = 0
        self._expirations = self._evictions = self._refreshes = self._stale = 0

    # -- reading ---------------------------------------------------------------------------------

    def get(self, key_id: bytes) -> tuple[CacheEntry | None, bool]:
        """A usable entry (counted as one use) and whether this caller must refresh it.

        Exactly one caller is told to refresh an entry past ``refresh_after`` (CA-3); it must
        then call :meth:`refreshed` or :meth:`refresh_failed`, or :meth:`evict_id`.
        """
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is None:
                self._misses += 1
                return None, False
            now = self._clock()
            if now >= entry.expires_at or entry.uses >= self.limits.max_uses:
                self._drop(key_id)
                self._expirations += 1
                self._misses += 1
                return None, False
            entry.uses += 1
            self._entries.move_to_end(key_id)
            self._hits += 1
            if now >= entry.refresh_at and not entry.refreshing:
                entry.refreshing = True
                return entry, True
            return entry, False

    def recheck_due(self, entry: CacheEntry) -> bool:
        """Whether ``entry``'s stored record must be read again before this use (KL-8a).

        Another process may have shredded, retired or re-wrapped the scope key; on SQLite
        nothing tells this one, so the record is re-read at most ``recheck_after`` seconds
        after the last read. ``0`` re-reads on every use.
        """
        now = self._clock()
        return now >= entry.checked_at + self.recheck_after and now >= entry.deferred_until

    def recheck_failed(self, entry: CacheEntry, *, retry_after: float, grace: float) -> bool:
        """The record could not be read because the database is unreachable: say whether the
        entry may still serve (its last good check is younger than ``recheck_after + grace``),
        and if so defer the next re-check by ``retry_after`` (one attempt a second, not one a
        call). ``_outage.py`` says why the bound is safe."""
        now = self._clock()
        if now - entry.checked_at >= self.recheck_after + grace:
            return False
        with self._lock:
            entry.deferred_until = now + retry_after
        return True

    def rechecked(self, entry: CacheEntry, at: float) -> None:
        """The record read at ``at`` (taken before the read) still says what ``entry`` assumes."""
        with self._lock:
            entry.checked_at = max(entry.checked_at, at)

    @property
    def generation(self) -> int:
        """A number that changes whenever an eviction or an unbinding happens here.

        Every change made through ownkey that can turn an answer of the access path into a
        denial (a rule added, a key disabled or destroyed, a scope key retired, shredded or moved)
        evicts or unbinds, so a :class:`~ownkey.keys.Lease` compares this number per message.
        """
        return self._generation

    def reserve(self, entry: CacheEntry, count: int) -> int:
        """Count up to ``count`` more uses of ``entry`` at once (``max_uses`` still bounds them);
        return how many were granted: 0 when the entry is no longer the cached one."""
        with self._lock:
            if self._entries.get(entry.key.key_id) is not entry:
                return 0
            granted = max(0, min(count, self.limits.max_uses - entry.uses))
            entry.uses += granted
            return granted

    def bound(self, identity: ScopeIdentity) -> bytes | None:
        """The id of the scope key that seals new content of ``identity`` here, if cached."""
        return self._bindings.get(identity)

    # -- filling ---------------------------------------------------------------------------------

    def load(self, key_id: bytes, loader: Loader, *, checked_at: float | None = None) -> CacheEntry:
        """Unwrap through ``loader`` once for all concurrent callers, cache and return the entry.

        An eviction that happens while the loader runs wins: the entry is handed to the callers
        already waiting but not cached (CA-5). ``checked_at`` is when the caller read the record
        the loader unwraps (the re-check window counts from it, KL-8a).
        """

        def leader() -> CacheEntry:
            with self._lock:
                generation = self._generation
                started = self._clock()
                self._loads += 1
            try:
                key, identity = loader()
            except BaseException:
                with self._lock:
                    self._load_failures += 1
                raise
            read_at = started if checked_at is None else min(started, checked_at)
            return self._insert(key, identity, generation, read_at)

        entry = self._flights.run(key_id, leader)
        with self._lock:
            entry.uses += 1
        return entry

    def put(self, key: ScopeKey, identity: ScopeIdentity) -> CacheEntry:
        """Cache a scope key that was just created here (no unwrap needed)."""
        with self._lock:
            generation = self._generation
        entry = self._insert(key, identity, generation)
        with self._lock:
            entry.uses += 1
        return entry

    def bind(self, identity: ScopeIdentity, key_id: bytes) -> None:
        """Remember that ``key_id`` seals new content of ``identity`` (while it is cached)."""
        with self._lock:
            if key_id in self._entries:
                self._bindings[identity] = key_id

    def refreshed(
        self,
        old: CacheEntry,
        key: ScopeKey,
        identity: ScopeIdentity,
        *,
        checked_at: float | None = None,
    ) -> CacheEntry:
        """Replace ``old`` by a freshly unwrapped entry, its record read at ``checked_at``."""
        with self._lock:
            generation = self._generation
            self._refreshes += 1
        old.refreshing = False
        return self._insert(key, identity, generation, checked_at)

    def refresh_failed(self, entry: CacheEntry) -> None:
        """The key manager was unavailable: keep serving ``entry`` until it expires (CA-3)."""
        with self._lock:
            now = self._clock()
            entry.refreshing = False
            entry.refresh_at = now + max(_MIN_REFRESH_RETRY, (entry.expires_at - now) / 2)
            self._stale += 1

    def _insert(
        self,
        key: ScopeKey,
        identity: ScopeIdentity,
        generation: int,
        checked_at: float | None = None,
    ) -> CacheEntry:
        with self._lock:
            entry = CacheEntry(
                key,
                identity,
                now=self._clock(),
                limits=self.limits,
                random=self._random,
                checked_at=checked_at,
            )
            if generation != self._generation:
                return entry
            key_id = key.key_id
            self._drop(key_id)
            self._entries[key_id] = entry
            while len(self._entries) > self.limits.max_entries:
                oldest = next(iter(self._entries))
                self._drop(oldest)
                self._evictions += 1
            return entry

    # -- eviction --------------------------------------------------------------------------------

    def _drop(self, key_id: bytes) -> None:
        entry = self._entries.pop(key_id, None)
        if entry is not None and self._bindings.get(entry.identity) == key_id:
            del self._bindings[entry.identity]

    def evict(self, selector: Selector | None = None) -> int:
        """Drop every entry the selector matches (all of them for ``None``); return the count.

        Selects by key, org, service, scope, epoch range or scope-key id (CA-4).
        """
        with self._lock:
            self._generation += 1
            if selector is None:
                doomed = list(self._entries)
            else:
                doomed = [
                    key_id
                    for key_id, entry in self._entries.items()
                    if selector.matches(entry.identity, key_id)
                ]
            for key_id in doomed:
                self._drop(key_id)
            self._evictions += len(doomed)
            return len(doomed)

    def evict_id(self, key_id: bytes) -> int:
        """Drop one scope key; return 1 if it was cached (constant time, for the hot path)."""
        with self._lock:
            self._generation += 1
            if key_id not in self._entries:
                return 0
            self._drop(key_id)
            self._evictions += 1
            return 1

    def unbind(self, identity: ScopeIdentity) -> None:
        """Stop sealing ``identity`` with its current scope key (it was retired)."""
        with self._lock:
            self._generation += 1
            self._bindings.pop(identity, None)

    # -- reporting -------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def report(self) -> CacheReport:
        """Limits and counters since start."""
        with self._lock:
            return CacheReport(
                limits=self.limits,
                entries=len(self._entries),
                hits=self._hits,
                misses=self._misses,
                loads=self._loads,
                load_failures=self._load_failures,
                expirations=self._expirations,
                evictions=self._evictions,
                refreshes=self._refreshes,
                stale_served=self._stale,
            )
