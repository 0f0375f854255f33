"""Several nodes on one database: what one node changes, every other node acts on within 1 s.

Each node caches, for the hot path, key records, revocation rules and org settings (the
runtime's read caches) and unwrapped scope keys (the scope-key cache). :class:`NodeSync` keeps
them honest:

- **Notifications** (PostgreSQL): :class:`~ownkey.storage.ChangeListener` hears every committed
  change to rules, keys, orgs and scope keys, from any process. A new rule invalidates the rule
  cache and drops the cached scope keys it selects; a key that is no longer usable invalidates
  the key cache and drops every scope key it wraps; an org change invalidates that org's
  settings; a key's provider row re-configured (migration 0010) makes the next call rebuild
  that provider; a shredded, retired or re-keyed scope key is dropped from the cache. Measured by
  ``tests/api/test_nodes.py``: a revocation made through one node is refused by another within
  a few tens of milliseconds.
- **Periodic re-check**: the runtime's caches re-read keys, rules and org revisions at least
  every ``recheck_interval`` (:meth:`Runtime.open`, 1 s by default), and a cached scope key's own
  record before its first use after that interval (KL-8a), which bounds a change whose
  notification was lost; after the listener (re)connects, everything is re-read and the
  scope-key cache is emptied, since notifications sent meanwhile are gone. On SQLite (one
  machine, no notifications) the re-check is all there is and this class does nothing.
"""

from __future__ import annotations

from ownkey.keys import KeyRef, KeyState, RevocationRule, Selector
from ownkey.service._runtime import Runtime
from ownkey.storage import Change, ChangeListener

__all__ = ["NodeSync"]


class NodeSync:
    """Applies other nodes' changes to this node's caches (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._listener: ChangeListener | None = None
        if runtime.database.is_postgresql:
            self._listener = ChangeListener(runtime.database, self.apply, self.resync)
        self.applied = 0

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.listening

    def start(self) -> None:
        """Listen for changes (PostgreSQL), on a daemon thread; watch for a restore (every
        node of a fleet, on any database: service/_restore.py)."""
        if self._listener is not None:
            self._listener.start()
        self._runtime.restore_watch.start()

    def wait_listening(self, timeout: float) -> bool:
        """Wait for the first LISTEN (True at once without PostgreSQL: nothing to wait for)."""
        return self._listener is None or self._listener.wait_listening(timeout)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._runtime.restore_watch.stop()

    def resync(self) -> None:
        """Forget everything cached: notifications may have been missed."""
        self._runtime.invalidate()
        self._runtime.protector.admin.forget(Selector())

    def apply(self, change: Change) -> None:
        """Act on one change made elsewhere (or here: harmless, the caches are already fresh)."""
        runtime = self._runtime
        forget = runtime.protector.admin.forget
        row = change.row
        self.applied += 1
        if change.table == "revocation_rules":
            runtime.invalidate(orgs=(), keys=False, rules=True)
            if change.op == "INSERT":
                forget(self._rule_selector(row))
        elif change.table == "master_keys":
            runtime.invalidate(orgs=(), keys=True, rules=False)
            state, ref = row.get("state"), row.get("ref")
            if isinstance(ref, str) and (state is None or not KeyState(state).usable):
                forget(Selector(key=KeyRef.parse(ref)))
        elif change.table == "providers":  # a key's provider re-configured (migration 0010)
            runtime.invalidate(orgs=(), keys=True, rules=False)
        elif change.table == "orgs":
            name = row.get("name")
            orgs = [name] if isinstance(name, str) else None
            runtime.invalidate(orgs=orgs, keys=False, rules=False)
        elif change.table == "scope_keys":
            key_id = row.get("key_id")
            if isinstance(key_id, str):
                forget(scope_key_ids=[bytes.fromhex(key_id)])
            else:
                forget(Selector())

    @staticmethod
    def _rule_selector(row: object) -> Selector:
        """What a new rule selects; everything under its key if the payload was cut short."""
        assert isinstance(row, dict)
        key = KeyRef.parse(str(row["key_ref"]))
        if row.get("partial"):
            return Selector(key=key)
        return RevocationRule.from_record(row).selector
