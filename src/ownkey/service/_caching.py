"""Read caches in front of the key registry and the rule store: the hot path asks them per call.

The access path checks every key's state and every revocation rule on every seal and open
(KL-6, RV-2). Against SQL stores that would be two database round trips per key per message;
these adapters answer from memory instead and re-read the whole (small) table:

- at once in this process after any write made through them (write-through, then invalidate);
- when :meth:`invalidate` is called: the hook for a change notification from another node
  (PostgreSQL ``LISTEN/NOTIFY``);
- at the latest ``max_age`` seconds after the last read of the table, which bounds how long a
  change made through another process goes unseen when no notification arrives.

``max_age=0`` reads through on every call. :meth:`CachedKeyRegistry.read_through` and
:meth:`CachedRuleStore.read_through` are views for decisions that must see the records as
stored (the admin operations): they read the store itself and write through the cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ownkey._outage import OUTAGE_GRACE, RETRY_AFTER, is_outage
from ownkey.keys import KeyRef, KeyRegistry, MasterKey, RevocationRule, RuleStore

__all__ = ["CachedKeyRegistry", "CachedRuleStore", "FreshKeyRegistry", "FreshRuleStore"]


class _Snapshot:
    """A value re-read by ``load`` when invalidated or older than ``max_age``; through a short
    database outage the last value keeps serving (service/_outage.py)."""

    def __init__(self, max_age: float, clock: Callable[[], float]) -> None:
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._good_at: float | None = None  # when the last successful load started
        self._generation = 0
        self._loads = 0

    @property
    def version(self) -> int:
        """Changes with every invalidation and every reload (a reload may bring news)."""
        return self._generation + self._loads

    def fresh(self) -> bool:
        loaded = self._loaded_at
        return loaded is not None and self._clock() - loaded < self._max_age

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None
            self._generation += 1

    def reload(self, load: Callable[[], None]) -> None:
        with self._lock:
            generation = self._generation
            started = self._clock()
        try:
            load()
        except Exception as exc:
            good = self._good_at
            if not is_outage(exc) or good is None or started - good >= OUTAGE_GRACE:
                raise
            with self._lock:  # the last answer serves on; the next read in RETRY_AFTER
                self._loaded_at = started - self._max_age + RETRY_AFTER
            return
        with self._lock:
            self._loads += 1
            self._good_at = started
            if generation == self._generation:  # no invalidation raced with the load
                self._loaded_at = started


class CachedKeyRegistry:
    """A :class:`~ownkey.keys.KeyRegistry` answering ``get``/``all`` from a snapshot."""

    def __init__(self, inner: KeyRegistry, *, max_age: float, clock: Callable[[], float]) -> None:
        self._inner = inner
        self._snapshot = _Snapshot(max_age, clock)
        self._keys: dict[KeyRef, MasterKey] = {}

    def __repr__(self) -> str:
        return f"<CachedKeyRegistry {self._inner!r}>"

    def _load(self) -> None:
        self._keys = {key.ref: key for key in self._inner.all()}

    def _current(self) -> dict[KeyRef, MasterKey]:
        if not self._snapshot.fresh():
            self._snapshot.reload(self._load)
        return self._keys

    @property
    def version(self) -> int:
        """Changes whenever the answers may have: re-reads the table first if it is due."""
        self._current()
        return self._snapshot.version

    def get(self, ref: KeyRef) -> MasterKey | None:
        return self._current().get(ref)

    def put(self, key: MasterKey) -> None:
        try:
            self._inner.put(key)
        finally:
            self.invalidate()

    def all(self) -> Sequence[MasterKey]:
        return sorted(self._current().values(), key=lambda key: key.ref.sort_key)

    def versions(self, ref: KeyRef) -> Sequence[str]:
        """Asked only on a scope-key load (a key-manager call follows), so not mirrored."""
        return self._inner.versions(ref)

    def invalidate(self) -> None:
        """Re-read the registry on the next call."""
        self._snapshot.invalidate()

    def read_through(self) -> FreshKeyRegistry:
        """A view that reads the registry itself (fresh records) and writes through this cache."""
        return FreshKeyRegistry(self._inner, self)


class FreshKeyRegistry:
    """A :class:`~ownkey.keys.KeyRegistry` reading the store itself; a write also invalidates
    the cache in front of it, so the data plane sees it on its next call."""

    def __init__(self, inner: KeyRegistry, cache: CachedKeyRegistry) -> None:
        self._inner = inner
        self._cache = cache

    def get(self, ref: KeyRef) -> MasterKey | None:
        return self._inner.get(ref)

    def put(self, key: MasterKey) -> None:
        self._cache.put(key)

    def all(self) -> Sequence[MasterKey]:
        return self._inner.all()

    def versions(self, ref: KeyRef) -> Sequence[str]:
        return self._inner.versions(ref)


class CachedRuleStore:
    """A :class:`~ownkey.keys.RuleStore` answering ``for_key``/``all`` from a snapshot."""

    def __init__(self, inner: RuleStore, *, max_age: float, clock: Callable[[], float]) -> None:
        self._inner = inner
        self._snapshot = _Snapshot(max_age, clock)
        self._rules: tuple[RevocationRule, ...] = ()
        self._by_key: dict[KeyRef, tuple[RevocationRule, ...]] = {}

    def __repr__(self) -> str:
        return f"<CachedRuleStore {self._inner!r}>"

    def _load(self) -> None:
        rules = tuple(self._inner.all())
        by_key: dict[KeyRef, list[RevocationRule]] = {}
        for rule in rules:
            by_key.setdefault(rule.wrapping_key, []).append(rule)
        self._by_key = {ref: tuple(found) for ref, found in by_key.items()}
        self._rules = rules

    def _fresh(self) -> None:
        if not self._snapshot.fresh():
            self._snapshot.reload(self._load)

    @property
    def version(self) -> int:
        """Changes whenever the answers may have: re-reads the rules first if they are due."""
        self._fresh()
        return self._snapshot.version

    def add(self, rule: RevocationRule) -> None:
        try:
            self._inner.add(rule)
        finally:
            self.invalidate()

    def remove(self, rule_id: str) -> RevocationRule:
        try:
            return self._inner.remove(rule_id)
        finally:
            self.invalidate()

    def all(self) -> Sequence[RevocationRule]:
        self._fresh()
        return self._rules

    def for_key(self, ref: KeyRef) -> Sequence[RevocationRule]:
        self._fresh()
        return self._by_key.get(ref, ())

    def invalidate(self) -> None:
        """Re-read the rules on the next call."""
        self._snapshot.invalidate()

    def read_through(self) -> FreshRuleStore:
        """A view that reads the rules themselves and writes through this cache."""
        return FreshRuleStore(self._inner, self)


class FreshRuleStore:
    """A :class:`~ownkey.keys.RuleStore` reading the store itself; a write also invalidates
    the cache in front of it."""

    def __init__(self, inner: RuleStore, cache: CachedRuleStore) -> None:
        self._inner = inner
        self._cache = cache

    def add(self, rule: RevocationRule) -> None:
        self._cache.add(rule)

    def remove(self, rule_id: str) -> RevocationRule:
        return self._cache.remove(rule_id)

    def all(self) -> Sequence[RevocationRule]:
        return self._inner.all()

    def for_key(self, ref: KeyRef) -> Sequence[RevocationRule]:
        return self._inner.for_key(ref)
