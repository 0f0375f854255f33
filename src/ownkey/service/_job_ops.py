"""Job operations of a deployment: create, preview, run and list resumable jobs.

The jobs themselves (rewrap, backfill, rekey, shred) are :class:`~ownkey.service.JobRunner`'s;
this façade checks the arguments a caller gives (each wrong one an
:class:`~ownkey.errors.InvalidRequest` naming it) and that the org exists, then hands over.

It also keeps the jobs of a fleet honest (:mod:`ownkey.service._job_settings`): a job is created
held by this node (its lease), a request equal to a pending or running job's finds that job
instead of making a second one (:meth:`JobOperations.submit`), and a worker renews the lease
every heartbeat while it runs and gives it up when it stops.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypedDict

from ownkey.errors import InvalidRequest
from ownkey.keys import KeyRef
from ownkey.service._directory import check_service_ids
from ownkey.service._org_ops import OrgOperations

if TYPE_CHECKING:  # the runner and its stores load when a job is made or run, not before
    from ownkey.service._assets import AssetService
    from ownkey.service._job_settings import JobSettings
    from ownkey.service._jobs import JobRunner, RekeyPreview
    from ownkey.service._protector import Protector
    from ownkey.storage import JobStatus, JobStore, PendingShred
    from ownkey.storage._jobs import JobLease

__all__ = ["JobOperations", "backfill_notice"]

_log = logging.getLogger("ownkey.jobs")


def backfill_notice(services: Collection[str]) -> str | None:
    """What turning CMK on for ``services`` does *not* do, said plainly wherever it is turned on
    (CLI, API, console; docs/spec/key-lifecycle.md SK-7). None when no service moved."""
    if not services:
        return None
    return (
        f"Content of {', '.join(sorted(services))} sealed before now was under the platform key, "
        "so the platform could read it: the backfill puts it under your key from now on, but a "
        "copy of the database made earlier still opens it with the platform key. New content "
        "gets fresh scope keys the platform never held. To put old content beyond those copies, "
        "run a rekey job after the backfill (ownkey jobs run rekey ORG --service S)."
    )


_KINDS = "rewrap, backfill, rekey, shred"


class _RekeyArgs(TypedDict):
    service_id: str | None
    scope: str | None
    scope_key_id: bytes | None


def _parse_ref(text: str) -> KeyRef:
    try:
        return KeyRef.parse(text)
    except ValueError as exc:
        raise InvalidRequest("key", str(exc)) from None


def _dedupe(request: dict[str, Any]) -> str:
    """The name of a job request: equal requests, equal names (64 hex digits)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class _Heartbeat:
    """Renews a job's lease every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, renew: Callable[[], bool], interval: float, name: str) -> None:
        self._renew = renew
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._renew()
            except Exception:  # a database hiccup: the next beat tries again
                _log.warning("renewing a job lease failed; the next heartbeat tries again")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _one_service(services: Collection[str]) -> str | None:
    service_ids = check_service_ids(services)
    if len(service_ids) > 1:
        raise InvalidRequest("services", "a rekey job takes at most one service")
    return service_ids[0] if service_ids else None


class JobOperations:
    """Resumable jobs over one deployment's stores (:mod:`ownkey.service._jobs`)."""

    def __init__(
        self,
        *,
        protector: Protector,
        store: JobStore,
        orgs: OrgOperations,
        assets: Callable[[], AssetService],
        clock: Callable[[], float],
        refresh: Callable[[], None],
        settings: JobSettings | None = None,
        node_id: str | None = None,
    ) -> None:
        """``refresh`` drops the data plane's cached key records and rules: a job that re-seals
        decides on the records as stored. ``node_id`` names this node in job leases,
        ``settings`` says how long a lease lasts and how often it is renewed."""
        from ownkey.service._job_settings import JobSettings, new_node_id  # with the first job

        self._protector = protector
        self._refresh = refresh
        self._store = store
        self._orgs = orgs
        self._assets = assets
        self._clock = clock
        self.settings = settings or JobSettings()
        self.node_id = node_id or new_node_id()

    @property
    def runner(self) -> JobRunner:
        """The runner of rewrap, backfill, rekey and shred jobs, with the asset store: backfills
        pick scope keys by the stored content, rekeys run."""
        from ownkey.service._jobs import JobRunner

        return JobRunner(self._protector, self._store, self._assets(), clock=self._clock)

    def create_job(
        self,
        kind: str,
        *,
        key: str | KeyRef | None = None,
        org: str | None = None,
        services: Collection[str] = (),
        enable: bool = True,
        scope: str | None = None,
        scope_key_id: bytes | None = None,
        shred_old: bool = True,
    ) -> JobStatus:
        """A resumable job, stored with all its items (:mod:`ownkey.service._jobs`):

        - ``rewrap`` (``key``): re-wrap every scope key under an older version of the key;
        - ``backfill`` (``org``, ``services``, ``enable``): move the org's scope keys of those
          services from the platform key to its customer key (or back when ``enable`` is False);
          where the asset store holds content under a scope key, only if the policy now calls
          for the move for at least one of its assets;
        - ``rekey`` (``org``, at most one of ``services``, ``scope``, ``scope_key_id``,
          ``shred_old``): re-encrypt the org's stored assets under fresh scope keys; the old
          scope keys become *pending shred*, due after the destruction waiting period
          (:meth:`rekey_preview` says which, :meth:`cancel_shred` stops one);
        - ``shred`` (``key``): crypto-shred a key whose destruction is due, scope key by scope
          key, then destroy it; without ``key``, carry out the due pending shreds of ``org``.

        While an equal job is pending or running, that job is answered (:meth:`submit`).
        """
        status, _ = self.submit(
            kind,
            key=key,
            org=org,
            services=services,
            enable=enable,
            scope=scope,
            scope_key_id=scope_key_id,
            shred_old=shred_old,
        )
        return status

    def submit(
        self,
        kind: str,
        *,
        key: str | KeyRef | None = None,
        org: str | None = None,
        services: Collection[str] = (),
        enable: bool = True,
        scope: str | None = None,
        scope_key_id: bytes | None = None,
        shred_old: bool = True,
    ) -> tuple[JobStatus, bool]:
        """:meth:`create_job`, saying whether the job is new: ``(job, True)``, or ``(job,
        False)`` when a job made for an equal request (same kind, org and arguments) is still
        pending or running, which is answered instead of a duplicate. A new job is created held
        by this node for one lease."""
        if kind == "shred" and key is None:
            if org is None:
                raise InvalidRequest("key", "a shred job names a key, or an org for its due shreds")
            self._orgs.require(org)
            request: dict[str, Any] = {"kind": kind, "org": org}
            return self._create(
                request, lambda i, lease: self.runner.shred(org=org, job_id=i, lease=lease)
            )
        if kind in ("rewrap", "shred"):
            if key is None:
                raise InvalidRequest("key", f"a {kind} job names a key")
            ref = key if isinstance(key, KeyRef) else _parse_ref(key)
            request = {"kind": kind, "key": str(ref)}
            if kind == "rewrap":
                return self._create(
                    request, lambda i, lease: self.runner.rewrap(ref, job_id=i, lease=lease)
                )
            return self._create(
                request, lambda i, lease: self.runner.shred(ref, job_id=i, lease=lease)
            )
        if kind == "backfill":
            if org is None:
                raise InvalidRequest("org", "a backfill job names an org")
            self._orgs.require(org)
            service_ids = check_service_ids(services)
            if not service_ids:
                raise InvalidRequest("services", "a backfill job names at least one service")
            request = {"kind": kind, "org": org, "services": sorted(service_ids), "enable": enable}
            return self._create(
                request,
                lambda i, lease: self.runner.backfill(
                    org, service_ids, enable=enable, job_id=i, lease=lease
                ),
            )
        if kind == "rekey":
            if org is None:
                raise InvalidRequest("org", "a rekey job names an org")
            args = self._rekey_args(org, services, scope, scope_key_id)
            request = {
                "kind": kind,
                "org": org,
                "service_id": args["service_id"],
                "scope": scope,
                "scope_key_id": None if scope_key_id is None else scope_key_id.hex(),
                "shred_old": shred_old,
            }
            return self._create(
                request,
                lambda i, lease: self.runner.rekey(
                    org, shred_old=shred_old, job_id=i, lease=lease, **args
                ),
            )
        raise InvalidRequest("kind", f"unknown job kind {kind!r}; one of {_KINDS}")

    def _create(
        self,
        request: dict[str, Any],
        make: Callable[[str, JobLease], JobStatus],
    ) -> tuple[JobStatus, bool]:
        """The pending or running job of an equal request, or a new one held by this node."""
        from ownkey.storage._jobs import JobLease

        dedupe = _dedupe(request)
        found = self._store.find_active(dedupe)
        if found is not None:  # before making anything: a rekey retires keys as it is made
            return self._store.status(found), False
        job_id = uuid.uuid4().hex
        lease = JobLease(self.node_id, self._clock() + self.settings.lease, dedupe)
        status = make(job_id, lease)
        return status, status.job_id == job_id

    def rekey_preview(
        self,
        org: str,
        *,
        services: Collection[str] = (),
        scope: str | None = None,
        scope_key_id: bytes | None = None,
        shred_old: bool = True,
    ) -> RekeyPreview:
        """What ``create_job("rekey", ...)`` with these arguments would make pending shred and
        when, with the stored assets and bytes it moves; changes nothing (RW-8)."""
        args = self._rekey_args(org, services, scope, scope_key_id)
        return self.runner.rekey_preview(org, shred_old=shred_old, **args)

    def _rekey_args(
        self,
        org: str,
        services: Collection[str],
        scope: str | None,
        scope_key_id: bytes | None,
    ) -> _RekeyArgs:
        """What a rekey selects, checked (at most one service; the org exists)."""
        service_id = _one_service(services)
        self._orgs.require(org)
        return {"service_id": service_id, "scope": scope, "scope_key_id": scope_key_id}

    def pending_shreds(self, org: str | None = None) -> list[PendingShred]:
        """Old scope keys of rekey jobs waiting out their waiting period, soonest first."""
        return self.runner.pending_shreds(org)

    def cancel_shred(
        self, scope_key_id: bytes, *, org: str | None = None, actor: str | None = None
    ) -> PendingShred:
        """Stop a pending shred before it is due (audited); NotFound if none is pending (for
        ``org``), LifecycleError once it is due."""
        return self.runner.cancel_shred(scope_key_id, org=org, actor=actor)

    def run_job(
        self,
        job_id: str,
        *,
        progress: Callable[[JobStatus], None] | None = None,
        batch: int = 100,
        stop: Callable[[], bool] | None = None,
        takeover: bool = False,
    ) -> JobStatus:
        """Work on a job until nothing is pending (resumable: run it again after a crash).

        The worker holds the job's lease while it runs (renewed every heartbeat; taken over if
        it lapsed) and gives it up when it returns; workers that find it held by a live node
        share the work. ``takeover``: only if this node wins the lease (a node picking up a
        lapsed job leaves it to the one that won). ``stop``: asked between batches (a node
        shutting down leaves the rest pending, for another node)."""
        held = self.hold(job_id)
        if takeover and not held:
            return self.job(job_id)
        self._refresh()
        beat = _Heartbeat(
            lambda: self.hold(job_id), self.settings.heartbeat, f"ownkey-lease-{job_id}"
        )
        try:
            status = self.runner.run(job_id, batch=batch, progress=progress, stop=stop)
        finally:
            beat.stop()
            self._store.release(job_id, self.node_id)
        return status if status.finished else self.job(job_id)  # as left: nobody's lease

    # -- leases ----------------------------------------------------------------------------------

    def now(self) -> float:
        """The time by which leases (and the scheduled blob sweep) are judged: the runtime's
        clock, injected in tests."""
        return self._clock()

    def hold(self, job_id: str) -> bool:
        """Hold or renew this node's lease of an unfinished job for one lease from now; False
        if a live node holds it (or it is finished)."""
        return self._store.hold(job_id, self.node_id, now=self._clock(), lease=self.settings.lease)

    def lapsed(self) -> list[str]:
        """Unfinished jobs that no live node holds: their node died, stopped, or never held
        them (created before leases existed)."""
        return self._store.lapsed(now=self._clock())

    def release_all(self) -> int:
        """Give up every lease this node holds (a normal stop): others resume at once."""
        return self._store.release(None, self.node_id)

    def take_turn(self, name: str, hold: float) -> bool:
        """Take the fleet-wide turn ``name`` for ``hold`` seconds, unless another node has it."""
        return self._store.take_turn(name, self.node_id, now=self._clock(), hold=hold)

    def job(self, job_id: str) -> JobStatus:
        """A job's stored progress (NotFound for an unknown id)."""
        return self._store.status(job_id)

    def list_jobs(self, org: str | None = None) -> list[JobStatus]:
        """Every job (of one org if given), oldest first."""
        return [job for job in self._store.all() if org is None or job.org == org]
