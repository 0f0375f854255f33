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
                                                      then shred it (evidence in the audit chain;
                                                      unless ``shred_old`` is off)
shred      ``s:<scope key id>`` for every scope key   ``s:``: shred it (reason ``key
           under a key whose destruction is due,      destruction``); ``z:destroy``: destroy the
           then ``z:destroy``                         key (shreds what is left, destroys it in the
                                                      provider where supported, records evidence)
=========  =========================================  ===========================================

rewrap and backfill jobs have the same items and parameters as :meth:`Runtime.create_job` makes,
so either can run the other's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ownkey.errors import ConfigError, LifecycleError, NotFound, OwnkeyError, PolicyError
from ownkey.keys import KeyRef, KeyState, ScopeKeyRecord, Selector
from ownkey.service._assets import AssetService
from ownkey.service._protector import Protector
from ownkey.storage import JobStatus, JobStore

__all__ = ["ASSET_ITEM", "DESTROY_ITEM", "SCOPE_KEY_ITEM", "JobRunner"]

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
        raise PolicyError("key", str(exc)) from None


def _services(services: str | Collection[str]) -> list[str]:
    listed = [services] if isinstance(services, str) else list(services)
    if not listed:
        raise PolicyError("services", "a backfill job names at least one service")
    for service_id in listed:
        if not (isinstance(service_id, str) and len(service_id) == 4 and service_id.isdigit()):
            raise PolicyError("services", f"{service_id!r} is not a 4-digit service ID")
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
    ) -> None:
        self.protector = protector
        self.jobs = jobs
        self.assets = assets
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

    def rewrap(self, key: str | KeyRef, *, job_id: str | None = None) -> JobStatus:
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
            "rewrap", items, org=ref.org, params={"key": str(ref)}, job_id=job_id
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
        created = self.jobs.create("backfill", items, org=org, params=params, job_id=job_id)
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
    ) -> JobStatus:
        """Re-encrypt the stored content of ``org``'s selected scope keys under fresh ones, then
        (``shred_old``) shred the old keys so that every old wrapped copy becomes useless.

        Only scope keys with content in the asset store are selected: content sealed with the
        Protector and kept elsewhere must be rekeyed by its holder before the old keys are
        shredded (or run with ``shred_old=False``). The selected keys are retired first, so no
        new content lands under them (the asset store refuses it) while the job runs.
        """
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
        old = sorted(
            {
                record.scope_key_id
                for record in assets.store.scan(org=org, service_id=service_id, scope=scope)
                if record.scope_key_id in selected
            }
        )
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
        if orgs:
            params["orgs"] = dict(orgs)
        created = self.jobs.create("rekey", items, org=org, params=params, job_id=job_id)
        return self.jobs.status(created)

    def shred(self, key: str | KeyRef, *, job_id: str | None = None) -> JobStatus:
        """Crypto-shred a key whose destruction is due: delete the wrapped shares of every scope
        key under it (one item each, audited with reason ``key destruction``), then destroy the
        key (in its provider where supported) with the evidence recorded in the audit chain."""
        ref = _ref(key)
        self._check_due(ref)
        items = [
            SCOPE_KEY_ITEM + record.key_id.hex()
            for record in self._admin.scope_keys(Selector(key=ref))
        ]
        items.append(DESTROY_ITEM)
        created = self.jobs.create(
            "shred", items, org=ref.org, params={"key": str(ref)}, job_id=job_id
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
        raise PolicyError("job", f"unknown job kind {status.kind!r}")  # pragma: no cover

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
                raise ConfigError(
                    f"{left} asset(s) are still under scope key {key_id.hex()}: not shredded"
                )
            record = self._admin.scope_key(key_id)
            if shred_old and record is not None and not record.shredded:
                self._admin.shred_scope_key(
                    key_id, actor=actor, reason="rekey", retired_at=retired_at
                )

        return step

    def _shred_step(self, status: JobStatus, actor: str) -> Step:
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

    def run(
        self,
        job_id: str,
        *,
        batch: int = 100,
        progress: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """Work on a job until no pending item is left for this worker; return its status.

        Several workers (threads, processes, nodes) may run the same job at once."""
        return self.jobs.run(job_id, self.step(job_id), limit=batch, progress=progress)

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
