"""Job operations of a deployment: create, preview, run and list resumable jobs.

The jobs themselves (rewrap, backfill, rekey, shred) are :class:`~ownkey.service.JobRunner`'s;
this façade checks the arguments a caller gives (each wrong one an
:class:`~ownkey.errors.InvalidRequest` naming it) and that the org exists, then hands over.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, TypedDict

from ownkey.errors import InvalidRequest
from ownkey.keys import KeyRef
from ownkey.service._directory import check_service_ids
from ownkey.service._org_ops import OrgOperations

if TYPE_CHECKING:  # the runner and its stores load when a job is made or run, not before
    from ownkey.service._assets import AssetService
    from ownkey.service._jobs import JobRunner, RekeyPreview
    from ownkey.service._protector import Protector
    from ownkey.storage import JobStatus, JobStore, PendingShred

__all__ = ["JobOperations", "backfill_notice"]


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
    ) -> None:
        """``refresh`` drops the data plane's cached key records and rules: a job that re-seals
        decides on the records as stored."""
        self._protector = protector
        self._refresh = refresh
        self._store = store
        self._orgs = orgs
        self._assets = assets
        self._clock = clock

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
        """
        if kind == "shred" and key is None:
            if org is None:
                raise InvalidRequest("key", "a shred job names a key, or an org for its due shreds")
            self._orgs.require(org)
            return self.runner.shred(org=org)
        if kind in ("rewrap", "shred"):
            if key is None:
                raise InvalidRequest("key", f"a {kind} job names a key")
            ref = key if isinstance(key, KeyRef) else _parse_ref(key)
            return self.runner.rewrap(ref) if kind == "rewrap" else self.runner.shred(ref)
        if kind == "backfill":
            if org is None:
                raise InvalidRequest("org", "a backfill job names an org")
            self._orgs.require(org)
            service_ids = check_service_ids(services)
            if not service_ids:
                raise InvalidRequest("services", "a backfill job names at least one service")
            return self.runner.backfill(org, service_ids, enable=enable)
        if kind == "rekey":
            if org is None:
                raise InvalidRequest("org", "a rekey job names an org")
            args = self._rekey_args(org, services, scope, scope_key_id)
            return self.runner.rekey(org, shred_old=shred_old, **args)
        raise InvalidRequest("kind", f"unknown job kind {kind!r}; one of {_KINDS}")

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
    ) -> JobStatus:
        """Work on a job until nothing is pending (resumable: run it again after a crash)."""
        self._refresh()
        return self.runner.run(job_id, batch=batch, progress=progress)

    def job(self, job_id: str) -> JobStatus:
        """A job's stored progress (NotFound for an unknown id)."""
        return self._store.status(job_id)

    def list_jobs(self, org: str | None = None) -> list[JobStatus]:
        """Every job (of one org if given), oldest first."""
        return [job for job in self._store.all() if org is None or job.org == org]
