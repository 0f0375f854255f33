"""Re-wrap jobs: rotation, backfill, and the scope-key side of rekey (RW-1 to RW-6).

A re-wrap unwraps one share with the key (version) that wrapped it and wraps the *same* share under
another key (version), then swaps the stored wrap with a compare-and-set. The scope key's material
does not change, so no content is touched and every envelope still opens (RW-1). The same move
serves three purposes:

- **rotation**: shares under an older version of a key move to its primary version (RW-2);
- **backfill**: enabling CMK for a service moves an org's platform-key shares of that service to
  its customer key, and disabling it moves them back (RW-3, RW-4);
- **rekey** (re-encrypting content under new scope keys) needs no re-wrap: :meth:`Rewrapper.retire`
  stops sealing with a scope key and :meth:`Rewrapper.shred` deletes it once its content moved
  (RW-6).

A shred deletes the shares only once no process can still be sealing under the scope key
(KL-8a): other processes hold it in their caches and re-read its record at most every
``recheck_after`` seconds, so a sealable scope key is retired first and its shares deleted
``recheck_after + SHRED_MARGIN`` seconds after the retirement. Without this wait a process that
checked the key just before the shred would go on sealing content nobody can ever open.

Each job works record by record and reports what it did; a record that fails (key denied or
unavailable) is reported and left as it was, so a job can run again and finish the rest. An audit
failure stops the job at once (FS-3). ``rewrap_one`` and ``backfill_one`` do the same for one
scope key, for job runners that track progress per scope key and may be killed at any point: each
is idempotent, and the compare-and-set makes a repeated or concurrent run harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from ownkey._refs import KeyRef
from ownkey.audit import AuditAction
from ownkey.errors import AuditUnavailable, KeyUnavailable, OwnkeyError
from ownkey.keys._calls import unwrap_share, verify_wrap, wrap_share
from ownkey.keys._deps import KeyDeps
from ownkey.keys._records import (
    MasterKey,
    ScopeKeyRecord,
    Selector,
    Wrap,
    record_context,
    share_context,
)

__all__ = ["RewrapReport", "Rewrapper"]


@dataclass(slots=True)
class RewrapReport:
    """What a re-wrap job did: scope keys examined, re-wrapped, left alone, failed (by id)."""

    scanned: int = 0
    rewrapped: int = 0
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def as_detail(self) -> dict[str, str]:
        """Counts as strings, for the audit log."""
        return {
            "scanned": str(self.scanned),
            "rewrapped": str(self.rewrapped),
            "unchanged": str(self.unchanged),
            "failed": str(len(self.failed)),
        }


# Which wrap of a record to move, or None to leave the record alone.
Pick = Callable[[ScopeKeyRecord], int | None]
_CAS_ATTEMPTS = 3
# Slack on top of the caches' re-check interval for a loaded machine: scheduling delays, one
# record read, and clocks of two processes that tick at slightly different rates.
SHRED_MARGIN = 0.5


class Rewrapper:
    """Moves wrapped shares between keys and versions without touching content."""

    def __init__(self, deps: KeyDeps, master: Callable[[KeyRef], MasterKey]) -> None:
        self._deps = deps
        self._master = master

    def _move(self, record: ScopeKeyRecord, index: int, target: MasterKey) -> None:
        old_keys = record.wrap_keys
        new_keys = (*old_keys[:index], target.ref, *old_keys[index + 1 :])
        identity, key_id, fmt = record.identity, record.key_id, record.format
        origin = record.origin
        deps = self._deps

        def rewrap(position: int, master: MasterKey) -> Wrap:
            wrap = record.wraps[position]
            verify_wrap(deps, wrap)
            share = unwrap_share(deps, wrap, record_context(record, position))
            new_context = share_context(
                identity, key_id, new_keys, position, record_format=fmt, origin=origin
            )
            return wrap_share(deps, master, share, new_context)

        if fmt >= 2 and new_keys != old_keys:
            # Every share's context names the full key list (SK-3): all are wrapped again, each
            # under its own key, and swapped together by the one compare-and-set below.
            wraps = tuple(
                rewrap(position, target if position == index else self._master(wrap.key))
                for position, wrap in enumerate(record.wraps)
            )
        else:
            wraps = (*record.wraps[:index], rewrap(index, target), *record.wraps[index + 1 :])
        # A move to another set of keys retires the scope key for sealing in the same
        # transaction (SK-7): whoever held a key it leaves (the platform key, for a backfill)
        # could open it until now, and keeps a copy of that wrap in every backup.
        keys_changed = set(new_keys) != set(old_keys)
        if keys_changed and record.sealable:
            deps.auditor.emit(
                AuditAction.SCOPE_KEY_RETIRE,
                org=record.orgs[0] if record.orgs else None,
                detail={
                    "scope_key_id": key_id.hex(),
                    "reason": "keys_changed",
                    "from": ",".join(str(ref) for ref in sorted(set(old_keys))),
                    "to": ",".join(str(ref) for ref in sorted(set(new_keys))),
                },
            )
        if not deps.store.replace_wraps(record.key_id, record.wraps, wraps, retire=keys_changed):
            raise _ConflictError()
        if keys_changed:
            # The set of keys changed: cached checks of this scope key are stale (RW-5), and
            # it seals no more here either.
            deps.cache.unbind(identity)
            deps.cache.evict_id(record.key_id)

    def _run(
        self,
        selector: Selector,
        pick: Pick,
        target: Callable[[], MasterKey],
        action_detail: dict[str, str],
        actor: str | None,
        org: str | None,
    ) -> RewrapReport:
        report = RewrapReport()
        for record in self._deps.store.scan(selector):
            report.scanned += 1
            index = pick(record)
            if index is None:
                report.unchanged += 1
                continue
            try:
                self._move(record, index, target())
            except AuditUnavailable:
                raise
            except (OwnkeyError, _ConflictError) as exc:
                report.failed[record.key_id.hex()] = str(exc) or type(exc).__name__
                continue
            report.rewrapped += 1
        self._deps.auditor.emit(
            AuditAction.SCOPE_KEY_REWRAP,
            org=org,
            actor=actor,
            detail=dict(action_detail, **report.as_detail()),
        )
        return report

    def _rotation(self, ref: KeyRef) -> tuple[Pick, MasterKey]:
        master = self._master(ref)

        def pick(record: ScopeKeyRecord) -> int | None:
            for index, wrap in enumerate(record.wraps):
                if wrap.key == ref and not _is_current(wrap, master):
                    return index
            return None

        return pick, master

    def rewrap(self, ref: KeyRef, *, actor: str | None = None) -> RewrapReport:
        """Move every share under an older version of ``ref`` to its primary version (RW-2)."""
        pick, master = self._rotation(ref)
        return self._run(
            Selector(key=ref),
            pick,
            lambda: master,
            {"job": "rotation", "key": str(ref), "to_version": master.version},
            actor,
            ref.org,
        )

    def rewrap_one(self, ref: KeyRef, key_id: bytes) -> bool:
        """Re-wrap one scope key's share under ``ref`` to its primary version; say if anything
        changed. For jobs that track progress per scope key: idempotent, safe to repeat after a
        crash. Raises what the key manager raises."""
        pick, master = self._rotation(ref)
        return self._one(key_id, pick, master)

    def _backfill(
        self, org: str, to_customer: bool, scopes: Collection[str] | None
    ) -> tuple[Pick, KeyRef, KeyRef]:
        customer, platform = KeyRef.customer(org), KeyRef.platform()
        source, destination = (platform, customer) if to_customer else (customer, platform)
        self._master(destination)  # fail fast (NotFound) rather than once per scope key

        def pick(record: ScopeKeyRecord) -> int | None:
            if scopes is not None and record.scope not in scopes:
                return None
            if org not in record.orgs or (to_customer and customer in record.keys):
                return None  # not this org's, or already under its customer key
            for index, wrap in enumerate(record.wraps):
                if wrap.key == source:
                    return index
            return None

        return pick, source, destination

    def backfill(
        self,
        org: str,
        service_id: str,
        *,
        to_customer: bool,
        scopes: Collection[str] | None = None,
        actor: str | None = None,
    ) -> RewrapReport:
        """Move ``org``'s shares of ``service_id`` from the platform key to its customer key
        (``to_customer``) or back (RW-3, RW-4).

        Without ``scopes``, every scope key of that org and service with a platform-key share is
        moved; pass the scopes the policy now puts under the customer key to narrow it.
        """
        pick, source, destination = self._backfill(org, to_customer, scopes)
        return self._run(
            Selector(key=source, org=org, service_id=service_id),
            pick,
            lambda: self._master(destination),
            {
                "job": "backfill",
                "service_id": service_id,
                "from": str(source),
                "to": str(destination),
            },
            actor,
            org,
        )

    def backfill_one(self, org: str, key_id: bytes, *, to_customer: bool) -> bool:
        """Backfill one scope key (see :meth:`backfill`); say if anything changed."""
        pick, _, destination = self._backfill(org, to_customer, None)
        return self._one(key_id, pick, self._master(destination))

    def _one(self, key_id: bytes, pick: Pick, target: MasterKey) -> bool:
        for _ in range(_CAS_ATTEMPTS):
            record = self._deps.store.get(key_id)
            if record is None or record.shredded:
                return False
            index = pick(record)
            if index is None:
                return False
            try:
                self._move(record, index, target)
            except _ConflictError:
                continue  # another writer won: read again and see what is left to do
            return True
        raise KeyUnavailable("the scope key kept changing concurrently; try again")

    def retire(self, key_id: bytes, *, actor: str | None = None, reason: str = "rekey") -> None:
        """Seal no new content under this scope key; rekeyed content goes to a fresh one.

        Other processes stop sealing under it within their re-check interval (KL-8a)."""
        record = self._deps.store.get(key_id)
        if record is None or not record.sealable:
            return  # idempotent: a rekey job retires once, then moves many assets
        self._deps.auditor.emit(
            AuditAction.SCOPE_KEY_RETIRE,
            actor=actor,
            detail={"scope_key_id": key_id.hex(), "reason": reason},
        )
        self._deps.store.retire(key_id)
        self._deps.cache.unbind(record.identity)

    def shred(
        self,
        key_id: bytes,
        *,
        actor: str | None = None,
        reason: str = "rekey",
        retired_at: float | None = None,
    ) -> bool:
        """Delete one scope key's wrapped shares (after a rekey moved its content, or as a step
        of a key's destruction: ``reason``); say if it existed. Envelopes still naming it then
        open as *destroyed*.

        Returns only once no process can seal under it any more (KL-8a): a sealable scope key
        is retired first, and the shares are deleted once the retirement (at ``retired_at`` if
        the caller knows it, as a rekey job does) is older than the re-check window."""
        record = self._deps.store.get(key_id)
        if record is None:
            return False
        if not record.shredded:
            self._wait_for_sealers(record, retired_at, actor)
        self._deps.auditor.emit(
            AuditAction.SCOPE_KEY_SHRED,
            org=record.orgs[0] if record.orgs else None,
            actor=actor,
            detail={
                "scope_key_id": key_id.hex(),
                "scope_keys": "1",
                "reason": reason,
                # Said plainly: no key manager is asked anything here, so any copy of these
                # wraps outside ownkey's files (backups, PostgreSQL WAL) still opens while the
                # keys live (docs/spec/key-lifecycle.md, "What survives a shred").
                "key_manager": "not asked: the keys stay in their key managers",
            },
        )
        self._deps.store.shred(key_id, self._deps.clock())
        self._deps.cache.evict_id(key_id)
        return True

    def _wait_for_sealers(
        self, record: ScopeKeyRecord, retired_at: float | None, actor: str | None
    ) -> None:
        """Sleep until every process has seen that ``record`` is retired (KL-8a).

        No wait when one of its keys has not been usable for the whole window (a key's
        destruction: disabled for at least its waiting period): no process seals under it.
        """
        deps = self._deps
        grace = deps.cache.recheck_after + SHRED_MARGIN
        now = deps.clock()
        for ref in record.keys:
            master = deps.registry.get(ref)
            if master is not None and not master.state.usable and master.changed_at + grace <= now:
                return
        if record.sealable:
            self.retire(record.key_id, actor=actor, reason="shred")
            retired_at = deps.clock()  # after the commit: the window is never understated
        elif retired_at is None:
            retired_at = now  # retired at an unknown time: count the window from now
        wait = retired_at + grace - deps.clock()
        if wait > 0:
            deps.sleep(wait)


class _ConflictError(Exception):
    """Another writer changed the record's wraps first; the job can run again."""

    def __str__(self) -> str:
        return "changed concurrently; run again"


def _is_current(wrap: Wrap, master: MasterKey) -> bool:
    return (wrap.provider, wrap.key_id, wrap.version) == (
        master.provider,
        master.key_id,
        master.version,
    )
