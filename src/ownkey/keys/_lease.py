"""A lease: one checked answer of the access path, reused for many messages of one hot loop.

Checking every key state and revocation rule costs more than the cipher (KL-6, RV-2). A lease
keeps the answer of one full check (a :class:`CacheEntry`) and, per message, compares a stamp of
everything that answer depended on: the key registry's and the rule store's ``version`` (a
number each changes on every write; the SQL stores' read caches also on every re-read), and the
cache's generation (bumped by every eviction and unbinding: a scope key retired, shredded or
moved, here or relayed by ``NodeSync``). It also compares the clock with the earliest of the
entry's expiry, its refresh time and its record's re-check time (KL-8a, the bound for a change
another process makes to the scope key itself), and takes one of the uses it reserved from
``max_uses``. Any of them moving sends the caller back to the full path, which checks again and
denies, refreshes or re-reads as that path always does. With a store that keeps no ``version``,
the lease runs the key-state and rule check itself on every message.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from ownkey.keys._cache import CacheEntry, ScopeKeyCache

__all__ = ["LEASE_USES", "Lease"]

#: Uses a lease reserves from the entry's ``max_uses`` at once.
LEASE_USES = 4096


class Lease:
    """A checked cache entry, valid while :meth:`valid` says so (see the module docstring)."""

    __slots__ = ("_check", "_clock", "_slots", "_stamp", "_stamped", "_until", "entry")

    def __init__(
        self,
        entry: CacheEntry,
        *,
        cache: ScopeKeyCache,
        clock: Callable[[], float],
        stamp: Callable[[], object],
        stamped: object,
        until: float,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.entry = entry
        self._clock = clock
        self._stamp = stamp
        self._stamped = stamped
        self._check = check
        self._until = min(
            until, entry.expires_at, entry.refresh_at, entry.checked_at + cache.recheck_after
        )
        self._slots: Iterator[bool] = itertools.repeat(True, cache.reserve(entry, LEASE_USES))

    def __repr__(self) -> str:
        return f"<Lease id={self.entry.key.key_id.hex()} key=<redacted>>"

    def valid(self) -> bool:
        """Whether this message may use the entry without the full path: nothing it depended on
        changed, no deadline passed, and a reserved use is left (consumed by this call).

        Raises :class:`~ownkey.errors.AccessDenied` from the per-message check of a lease over
        stores without a version.
        """
        if (
            self._clock() >= self._until
            or self._stamp() != self._stamped
            or not next(self._slots, False)
        ):
            return False
        if self._check is not None:
            self._check()
        return True
