"""The four jobs of docs/storage.md, as resumable steps over the storage's :class:`JobStore`.

Each job is created with all its items (so progress is ``done/total`` from the start) and run by
any number of workers (``run``), each claiming batches (``SKIP LOCKED`` on PostgreSQL); a worker
killed anywhere leaves its batch pending and the next one redoes it. Every step is idempotent:

=========  =========================================  ===========================================
kind       items                                      step
=========  =========================================  ===========================================
rewrap     scope key ids (hex) with a wrap under an   ``admin.rewrap_scope_key``: re-wrap the
           older version of ``key``                   share under the primary version (no content
                                                      touched); nothing to do once it is current
backfill   the org's scope key ids of the services    ``admin.backfill_scope_key``: move the
           with a share to move; where the asset      org's share platform key -> customer key
           store holds content of a scope key, only   (``enable``) or back; nothing to do once it
           if the policy now calls for the move for   has moved
           at least one of its assets
rekey      ``a:<asset id>`` for every stored asset    ``a:``: re-encrypt the asset under a fresh
           under the selected scope keys, then        scope key, swap its blob by compare-and-set
           ``s:<scope key id>`` for each of them      (nothing to do once it is off the old key);
           (retired when the job is created)          ``s:``: rekey any asset still under the key,
                                                      then make it *pending shred*, due after the
                                                      destruction waiting period (RW-8; audited;
                                                      unless ``shred_old`` is off)
shred      ``s:<scope key id>`` for every scope key   ``s:``: shred it (reason ``key
(key)      under a key whose destruction is due,      destruction``); ``z:destroy``: destroy the
           then ``z:destroy``                         key (shreds what is left, destroys it in the
                                                      provider where supported, records evidence)
shred      ``s:<scope key id>`` for each due pending  ``s:``: still pending and due? shred it
(org)      shred of the org                           (reason ``rekey``), then mark it shredded
=========  =========================================  ===========================================

rewrap and backfill jobs have the same items and parameters as :meth:`Runtime.create_job` makes,
so either can run the other's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ownkey.audit import AuditAction
from ownkey.errors import (
    ConfigError,
    Conflict,
    InvalidRequest,
    LifecycleError,
    NotFound,
    OwnkeyError,
)
from ownkey.keys import KeyRef, KeyState, ScopeKeyRecord, Selector, destruction_due
from ownkey.policy import check_id, check_service_id, check_time, check_window
from ownkey.service._assets import AssetService
from ownkey.service._protector import Protector
from ownkey.storage import JobStatus, JobStore, PendingShred, ShredStore
from ownkey.storage._jobs import JobLease
from ownkey.storage._shreds import CANCELLED, PENDING

__all__ = [
    "ASSET_ITEM",
    "DESTROY_ITEM",
    "SCOPE_KEY_ITEM",
    "JobRunner",
    "RekeyPreview",
    "ShredCandidate",
]

ASSET_ITEM = "a:"
SCOPE_KEY_ITEM = "s:"
DESTROY_ITEM = "z:destroy"

Step = Callable[[str], None]


def _ref(key: str | KeyRef) -> KeyRef:
    if isinstance(key, KeyRef):
        return key
    try:
        return KeyRef.parse(key)
    except ValueError as exc:
        raise InvalidRequest("key", str(exc)) from None


def _shred_due(shred: PendingShred, now: float) -> bool:
    """A pending shred is due by the rule of a key's pending destruction (KL-4), which it is:
    the destruction of one scope key after the same waiting period."""
    return shred.state == PENDING and destruction_due(
        KeyState.PENDING_DESTRUCTION, shred.due_at, now
    )


#: What a preview says about content it cannot count (RW-8).
UNCOUNTED_WARNING = (
    "content sealed under these scope keys outside the asset store (POST /v1/seal, kept by the "
    "platform) is not moved by the job and is not counted here: it opens until due_at, then as "
    "destroyed forever, unless its holder rekeys it first or the shred is cancelled"
)


@dataclass(frozen=True, slots=True)
class ShredCandidate:
    """A scope key a rekey job would shred, and the stored content the job moves off it."""

    scope_key_id: bytes
    service_id: str
    scope: str
    epoch_start: int
    assets: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "scope_key_id": self.scope_key_id.hex(),
            "service_id": self.service_id,
            "scope": self.scope,
            "epoch_start": self.epoch_start,
            "assets_moved": self.assets,
            "bytes_moved": self.bytes,
        }


@dataclass(frozen=True, slots=True)
class RekeyPreview:
    """What a rekey job would do, without doing it (RW-8): the scope keys it would make pending
    shred, the stored assets and plaintext bytes it moves off them, and when they would be due
    at the earliest (the waiting period counts from the job's last step, not from now)."""

    org: str
    shred_old: bool
    waiting_period: float
    due_at: float | None
    scope_keys: tuple[ShredCandidate, ...]
    warning: str | None

    @property
    def assets(self) -> int:
        return sum(candidate.assets for candidate in self.scope_keys)

    @property
    def bytes(self) -> int:
        return sum(candidate.bytes for candidate in self.scope_keys)

    def to_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "shred_old": self.shred_old,
            "waiting_period": self.waiting_period,
            "due_at": self.due_at,
            "scope_keys": [candidate.to_json() for candidate in self.scope_keys],
            "assets_moved": self.assets,
            "bytes_moved": self.bytes,
            "warning": self.warning,
        }


def _services(services: str | Collection[str]) -> list[str]:
    listed = [services] if isinstance(services, str) else list(services)
    if not listed:
        raise InvalidRequest("services", "a backfill job names at least one service")
    for service_id in listed:
        check_service_id("services", service_id)  # the catalog's, not any 4 Unicode digits
    return sorted(set(listed))


class JobRunner:
    """Creates and runs rewrap, backfill, rekey and shred jobs for one Protector.

    ``assets`` (an :class:`AssetService`) is needed by rekey jobs and lets backfill jobs pick
    scope keys from the stored content; ``clock`` must be the Protector's (a shred job checks
    that the key's waiting period is over before anything is shredded).
    """

    def __init__(
        self,
        protector: Protector,
        jobs: JobStore,
        assets: AssetService | None = None,
        *,
        clock: Callable[[], float] = time.time,
        actor: str = "ownkey:jobs",
        shreds: ShredStore | None = None,
    ) -> None:
        self.protector = protector
        self.jobs = jobs
        self.assets = assets
        self.shreds = shreds or ShredStore(jobs.database)
        self._clock = clock
        self._actor = actor

    def __repr__(self) -> str:
        return f"<JobRunner assets={self.assets!r}>"

    @property
    def _admin(self) -> Any:
        return self.protector.admin

    def _actor_of(self, job_id: str) -> str:
        return f"{self._actor}:{job_id}"

    # -- creating --------------------------------------------------------------------------------

    def rewrap(
        self, key: str | KeyRef, *, job_id: str | None = None, lease: JobLease | None = None
    ) -> JobStatus:
        """Re-wrap every scope key with a share under an older version of ``key``."""
        ref = _ref(key)
        master = self._admin.key(ref)
        items = [
            record.key_id.hex()
            for record in self._admin.scope_keys(Selector(key=ref))
            if any(
                wrap.key == ref
                and (wrap.provider, wrap.key_id, wrap.version)
                != (master.provider, master.key_id, master.version)
                for wrap in record.wraps
            )
        ]
        created = self.jobs.create(
            "rewrap", items, org=ref.org, params={"key": str(ref)}, job_id=job_id, lease=lease
        )
        return self.jobs.status(created)

    def backfill(
        self,
        org: str,
        services: str | Collection[str],
        *,
        enable: bool,
        scopes: Collection[str] | None = None,
        orgs: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        lease: JobLease | None = None,
    ) -> JobStatus:
        """Move ``org``'s scope keys of ``services`` from the platform key to its customer key
        (``enable``) or back, re-wrapping only (no content touched).

        Candidates are the org's scope keys of those services with a share under the source key
        (narrowed to ``scopes`` if given). Where the asset store holds content under a candidate,
        it moves only if the policy now (the stored request, completed with the current org
        settings, or ``orgs``) names the customer key for at least one of its assets (``enable``)
        or no longer names it for one (disable); candidates with no stored content move.
        """
        service_ids = _services(services)
        customer, platform = KeyRef.customer(org), KeyRef.platform()
        source, destination = (platform, customer) if enable else (customer, platform)
        self._admin.key(destination)  # NotFound before anything is stored
        candidates: dict[bytes, ScopeKeyRecord] = {}
        for service_id in service_ids:
            for record in self._admin.scope_keys(
                Selector(key=source, org=org, service_id=service_id)
            ):
                if scopes is not None and record.scope not in scopes:
                    continue
                if enable and customer in record.keys:
                    continue
                candidates[record.key_id] = record
        stored, wanted = self._asset_votes(org, service_ids, candidates, customer, enable, orgs)
        items = sorted(
            key_id.hex() for key_id in candidates if key_id not in stored or key_id in wanted
        )
        params: dict[str, Any] = {
            "services": service_ids,
            "enable": enable,
            "scope_keys_with_content": len(stored),
            "skipped_by_policy": len(stored - wanted),
        }
        created = self.jobs.create(
            "backfill", items, org=org, params=params, job_id=job_id, lease=lease
        )
        return self.jobs.status(created)

    def _asset_votes(
        self,
        org: str,
        service_ids: list[str],
        candidates: Mapping[bytes, ScopeKeyRecord],
        customer: KeyRef,
        enable: bool,
        orgs: Mapping[str, Any] | None,
    ) -> tuple[set[bytes], set[bytes]]:
        """(candidates with stored content, those whose content the policy wants moved)."""
        stored: set[bytes] = set()
        wanted: set[bytes] = set()
        if self.assets is None or not candidates:
            return stored, wanted
        for service_id in service_ids:
            for record in self.assets.store.scan(org=org, service_id=service_id):
                if record.scope_key_id not in candidates:
                    continue
                stored.add(record.scope_key_id)
                if record.scope_key_id in wanted:
                    continue
                try:
                    keys = self.assets.plan_keys(self.assets.current_request(record, orgs))
                except OwnkeyError:
                    wanted.add(record.scope_key_id)  # cannot judge: follow the service switch
                    continue
                if (customer in keys) == enable:
                    wanted.add(record.scope_key_id)
        return stored, wanted

    def _rekey_selection(
        self,
        org: str,
        service_id: str | None,
        scope: str | None,
        since: float | None,
        until: float | None,
        scope_key_id: bytes | None,
    ) -> list[bytes]:
        """The scope keys a rekey job takes: ``org``'s selected ones with stored content.

        Each filter given is checked by the rule book first: ``--scope ''`` was read as no
        filter, so a typo re-keyed (and, after the waiting period, shredded the old keys of)
        the whole org."""
        if service_id is not None:
            check_service_id("service_id", service_id)
        if scope is not None:
            check_id("scope", scope)
        if scope_key_id is not None and not scope_key_id:  # b"" was read as no filter too
            raise InvalidRequest("scope_key_id", "required, a scope key id (hex)")
        for field, value in (("since", since), ("until", until)):
            if value is not None:
                check_time(field, value)
        check_window(since, until)
        assets = self._need_assets()
        selector = Selector(
            org=org,
            service_id=service_id,
            scope=scope,
            since=since,
            until=until,
            key_id=scope_key_id,
        )
        selected = {record.key_id for record in self._admin.scope_keys(selector)}
        return sorted(
            {
                record.scope_key_id
                for record in assets.store.scan(org=org, service_id=service_id, scope=scope)
                if record.scope_key_id in selected
            }
        )

    @property
    def waiting_period(self) -> float:
        """How long an old scope key of a rekey waits before it is shredded: the destruction
        waiting period of keys (KL-4), the same setting and the same minimum."""
        settings = self.protector.settings
        return max(settings.destruction_waiting_period, settings.min_destruction_waiting_period)

    def rekey(
        self,
        org: str,
        *,
        service_id: str | None = None,
        scope: str | None = None,
        since: float | None = None,
        until: float | None = None,
        scope_key_id: bytes | None = None,
        orgs: Mapping[str, Any] | None = None,
        shred_old: bool = True,
        job_id: str | None = None,
        lease: JobLease | None = None,
    ) -> JobStatus:
        """Re-encrypt the stored content of ``org``'s selected scope keys under fresh ones, then
        (``shred_old``) make the old keys *pending shred*: once the destruction waiting period
        is over, a shred job deletes them, so that every old wrapped copy becomes useless (RW-8).

        Only scope keys with content in the asset store are selected: content sealed with the
        Protector and kept elsewhere must be rekeyed by its holder before the old keys are due
        (:meth:`rekey_preview` warns of it; :meth:`cancel_shred` stops a shred meanwhile). The
        selected keys are retired first, so no new content lands under them (the asset store
        refuses it) while the job runs.
        """
        assets = self._need_assets()
        old = self._rekey_selection(org, service_id, scope, since, until, scope_key_id)
        if job_id is not None and self._exists(job_id):
            return self.jobs.status(job_id)
        for key_id in old:
            self._admin.retire_scope_key(key_id, actor=self._actor)
        retired_at = self._clock()  # the shred steps wait out the re-check window from here
        # Listed after the retirement: whatever was stored before it is found, nothing after.
        items = [ASSET_ITEM + asset_id for asset_id in assets.store.ids_under(old)]
        items += [SCOPE_KEY_ITEM + key_id.hex() for key_id in old]
        params: dict[str, Any] = {
            "scope_keys": len(old),
            "shred_old": shred_old,
            "retired_at": retired_at,
            **{
                name: value
                for name, value in (
                    ("service_id", service_id),
                    ("scope", scope),
                    ("since", since),
                    ("until", until),
                    ("scope_key_id", None if scope_key_id is None else scope_key_id.hex()),
                )
                if value is not None
            },
        }
        if shred_old:
            params["waiting_period"] = self.waiting_period
        if orgs:
            params["orgs"] = dict(orgs)
        created = self.jobs.create(
            "rekey", items, org=org, params=params, job_id=job_id, lease=lease
        )
        return self.jobs.status(created)

    def rekey_preview(
        self,
        org: str,
        *,
        service_id: str | None = None,
        scope: str | None = None,
        since: float | None = None,
        until: float | None = None,
        scope_key_id: bytes | None = None,
        shred_old: bool = True,
    ) -> RekeyPreview:
        """What :meth:`rekey` with these arguments would make pending shred, changing nothing:
        each scope key with the stored assets and bytes the job moves off it, the due time at
        the earliest, and a warning for the content the job cannot see (RW-8)."""
        assets = self._need_assets()
        wait = self.waiting_period
        if not shred_old:
            return RekeyPreview(org, False, wait, None, (), None)
        candidates: list[ShredCandidate] = []
        for key_id in self._rekey_selection(org, service_id, scope, since, until, scope_key_id):
            record = self._admin.scope_key(key_id)
            if record is None or record.shredded:
                continue
            totals = assets.store.totals([key_id])
            candidates.append(
                ShredCandidate(
                    key_id,
                    record.service_id,
                    record.scope,
                    record.epoch_start,
                    totals.assets,
                    totals.bytes,
                )
            )
        warning = UNCOUNTED_WARNING if candidates else None
        return RekeyPreview(org, True, wait, self._clock() + wait, tuple(candidates), warning)

    # -- pending shreds --------------------------------------------------------------------------

    def pending_shreds(self, org: str | None = None) -> list[PendingShred]:
        """Scope keys waiting to be shredded (of ``org``), soonest first."""
        return list(self.shreds.pending(org))

    def _schedule_shred(
        self, key_id: bytes, org: str, job_id: str, wait: float, actor: str
    ) -> PendingShred:
        """Make an old scope key of a rekey pending shred: audited first, then the row, and
        nothing shredded (RW-8). A redone step finds its own row and changes nothing."""
        existing = self.shreds.get(key_id)
        if existing is not None and (existing.job_id == job_id or existing.state == PENDING):
            return existing
        now = self._clock()
        due_at = now + wait
        self._admin.record(
            AuditAction.SCOPE_KEY_SCHEDULE_SHRED,
            org=org,
            actor=actor,
            detail={
                "scope_key_id": key_id.hex(),
                "reason": "rekey",
                "due_at": repr(due_at),
                "waiting_period": repr(wait),
                "job_id": job_id,
            },
        )
        return self.shreds.schedule(
            key_id, org=org, due_at=due_at, now=now, reason="rekey", job_id=job_id, actor=actor
        )

    def cancel_shred(
        self, scope_key_id: bytes, *, org: str | None = None, actor: str | None = None
    ) -> PendingShred:
        """Stop a pending shred (audited); the scope key stays retired for sealing and opens.

        ``org``: only that org's pending shreds (NotFound otherwise, as for none). Only before
        the due time, as for a key's destruction (KL-4): from then on a shred job may already
        have deleted it, so there would be nothing left to cancel.
        """
        pending = self.shreds.get(scope_key_id)
        if pending is None or pending.state != PENDING or (org is not None and pending.org != org):
            raise NotFound(f"no pending shred of scope key {scope_key_id.hex()}")
        now = self._clock()
        if _shred_due(pending, now):
            raise LifecycleError(
                f"the waiting period of scope key {scope_key_id.hex()} is over; "
                "it cannot be cancelled"
            )
        self._admin.record(
            AuditAction.SCOPE_KEY_CANCEL_SHRED,
            org=pending.org,
            actor=actor,
            detail={
                "scope_key_id": scope_key_id.hex(),
                "reason": pending.reason,
                "due_at": repr(pending.due_at),
            },
        )
        if not self.shreds.cancel(scope_key_id, now=now, actor=actor):
            raise NotFound(f"no pending shred of scope key {scope_key_id.hex()}")
        return dataclasses.replace(pending, state=CANCELLED, changed_at=now, actor=actor)

    def _carry_out(
        self, pending: PendingShred, actor: str, retired_at: float | None = None
    ) -> None:
        """Shred a due pending scope key, then mark it: a crash between the two leaves it
        pending, and the next run finds it shredded already and only marks it."""
        record = self._admin.scope_key(pending.scope_key_id)
        if record is not None and not record.shredded:
            # The key was retired before its pending row was written: the row's time never
            # understates the re-check window (KL-8a), the job's own retirement time is closer.
            since = pending.created_at if retired_at is None else retired_at
            self._admin.shred_scope_key(
                pending.scope_key_id, actor=actor, reason=pending.reason, retired_at=since
            )
        self.shreds.mark_shredded(pending.scope_key_id, now=self._clock(), actor=actor)

    def shred(
        self,
        key: str | KeyRef | None = None,
        *,
        org: str | None = None,
        job_id: str | None = None,
        lease: JobLease | None = None,
    ) -> JobStatus:
        """Crypto-shred, once its waiting period is over, either

        - ``key``, a key whose destruction is due: delete the wrapped shares of every scope key
          under it (one item each, audited with reason ``key destruction``), then destroy the
          key (in its provider where supported) with the evidence recorded in the audit chain;
        - or (no ``key``) the due pending shreds of scope keys a rekey job left, of ``org``
          (all orgs if None): one item each, audited with reason ``rekey`` (RW-8).
        """
        if key is None:
            due = self.shreds.pending(org, due_by=self._clock())
            items = [SCOPE_KEY_ITEM + pending.scope_key_id.hex() for pending in due]
            created = self.jobs.create(
                "shred", items, org=org, params={"pending": True}, job_id=job_id, lease=lease
            )
            return self.jobs.status(created)
        ref = _ref(key)
        self._check_due(ref)
        items = [
            SCOPE_KEY_ITEM + record.key_id.hex()
            for record in self._admin.scope_keys(Selector(key=ref))
        ]
        items.append(DESTROY_ITEM)
        created = self.jobs.create(
            "shred", items, org=ref.org, params={"key": str(ref)}, job_id=job_id, lease=lease
        )
        return self.jobs.status(created)

    def _exists(self, job_id: str) -> bool:
        try:
            self.jobs.status(job_id)
        except NotFound:
            return False
        return True

    def _need_assets(self) -> AssetService:
        if self.assets is None:
            raise ConfigError("rekey jobs need the asset store")
        return self.assets

    def _check_due(self, ref: KeyRef) -> bool:
        """True if the key is destroyed already; LifecycleError unless its destruction is due."""
        master = self._admin.key(ref)
        if master.state is KeyState.DESTROYED:
            return True
        if master.state is not KeyState.PENDING_DESTRUCTION:
            raise LifecycleError(
                f"{ref} is {master.state.value}: schedule its destruction and let the waiting "
                "period pass first"
            )
        if master.destroy_at is None or self._clock() < master.destroy_at:
            raise LifecycleError(f"the waiting period of {ref} ends at {master.destroy_at!r}")
        return False

    # -- running ---------------------------------------------------------------------------------

    def step(self, job_id: str) -> Step:
        """The idempotent step of a stored job (for :meth:`JobStore.run`)."""
        status = self.jobs.status(job_id)
        admin = self._admin
        actor = self._actor_of(job_id)
        if status.kind == "rewrap":
            ref = _ref(str(status.params["key"]))

            def rewrap(item: str) -> None:
                admin.rewrap_scope_key(ref, bytes.fromhex(item))

            return rewrap
        if status.kind == "backfill":
            org = status.org or ""
            enable = bool(status.params.get("enable", True))

            def backfill(item: str) -> None:
                admin.backfill_scope_key(org, bytes.fromhex(item), enable=enable)

            return backfill
        if status.kind == "rekey":
            return self._rekey_step(job_id, status, actor)
        if status.kind == "shred":
            return self._shred_step(status, actor)
        raise InvalidRequest("job", f"unknown job kind {status.kind!r}")  # pragma: no cover

    def _rekey_step(self, job_id: str, status: JobStatus, actor: str) -> Step:
        assets = self._need_assets()
        orgs = status.params.get("orgs")
        old = {
            bytes.fromhex(item[len(SCOPE_KEY_ITEM) :])
            for item, _, _, _ in self.jobs.items(job_id, prefix=SCOPE_KEY_ITEM)
        }
        shred_old = bool(status.params.get("shred_old", True))
        retired = status.params.get("retired_at")  # absent in older jobs: the shred waits fully
        retired_at = float(retired) if isinstance(retired, int | float) else None
        org = status.org or ""
        # The period the job was created with, never below today's minimum; the default for a
        # job stored before pending shreds existed.
        minimum = self.protector.settings.min_destruction_waiting_period
        wait = max(float(status.params.get("waiting_period", self.waiting_period)), minimum)
        known: dict[bytes, tuple[KeyRef, ...]] = {}  # the old keys' keys (they are retired)

        def step(item: str) -> None:
            if item.startswith(ASSET_ITEM):
                asset_id = item[len(ASSET_ITEM) :]
                assets.rekey_asset(asset_id, only_from=old, orgs=orgs, known_keys=known)
                return
            key_id = bytes.fromhex(item[len(SCOPE_KEY_ITEM) :])
            for asset_id in list(assets.store.ids_under([key_id])):
                assets.rekey_asset(asset_id, only_from={key_id}, orgs=orgs, known_keys=known)
            left = assets.store.count_under(key_id)
            if left:
                raise Conflict(
                    f"{left} asset(s) are still under scope key {key_id.hex()}: not shredded"
                )
            record = self._admin.scope_key(key_id)
            if not shred_old or record is None or record.shredded:
                return
            pending = self._schedule_shred(key_id, org, job_id, wait, actor)
            if _shred_due(pending, self._clock()):
                self._carry_out(pending, actor, retired_at)  # a waiting period of 0 s (tests)

        return step

    def _shred_step(self, status: JobStatus, actor: str) -> Step:
        if "key" not in status.params:
            return self._pending_shred_step(actor)
        ref = _ref(str(status.params["key"]))

        def step(item: str) -> None:
            destroyed = self._check_due(ref)
            if item == DESTROY_ITEM:
                if not destroyed:
                    self._admin.destroy_key(ref, actor=actor)
                return
            key_id = bytes.fromhex(item[len(SCOPE_KEY_ITEM) :])
            record = self._admin.scope_key(key_id)
            if record is None or record.shredded:
                return  # done by an earlier run (or by the destruction itself)
            self._admin.shred_scope_key(key_id, actor=actor, reason="key destruction")

        return step

    def _pending_shred_step(self, actor: str) -> Step:
        def step(item: str) -> None:
            key_id = bytes.fromhex(item[len(SCOPE_KEY_ITEM) :])
            pending = self.shreds.get(key_id)
            if pending is None or pending.state != PENDING:
                return  # cancelled meanwhile, or carried out by an earlier run
            if not _shred_due(pending, self._clock()):
                raise LifecycleError(
                    f"the waiting period of scope key {key_id.hex()} ends at {pending.due_at!r}"
                )
            self._carry_out(pending, actor)

        return step

    def run(
        self,
        job_id: str,
        *,
        batch: int = 100,
        progress: Callable[[JobStatus], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> JobStatus:
        """Work on a job until no pending item is left for this worker (or ``stop`` answers
        True between two batches); return its status.

        Several workers (threads, processes, nodes) may run the same job at once."""
        return self.jobs.run(job_id, self.step(job_id), limit=batch, progress=progress, stop=stop)

    def retry_failed(self, job_id: str) -> int:
        """Put a job's failed items back to pending (after fixing the cause)."""
        return self.jobs.retry_failed(job_id)

    def status(self, job_id: str) -> JobStatus:
        return self.jobs.status(job_id)

    def failures(self, job_id: str, limit: int = 20) -> list[tuple[str, str]]:
        """Up to ``limit`` failed items with their errors."""
        out: list[tuple[str, str]] = []
        for item, _, _, error in self.jobs.items(job_id, state="failed"):
            out.append((item, error or ""))
            if len(out) >= limit:
                break
        return out
