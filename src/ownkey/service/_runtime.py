"""The runtime: one ownkey deployment, for the CLI, the API and the demo -- it builds and closes.

:meth:`Runtime.open` builds the SQL profile of the one builder (:mod:`ownkey.service._builder`)
for one ``OWNKEY_HOME`` (or ``OWNKEY_DATABASE_URL``): the migrated
:class:`~ownkey.storage.Database`, the scope-key store, the key registry and rule store behind
read caches (:mod:`ownkey.service._caching`), the key providers (the embedded ``local`` store
and every provider configured in the database, built on first use), the signed audit chain, the
org directory and the :class:`~ownkey.service.Protector` whose policy reads ``orgs`` from it.

What a caller does with it goes through small façades, each with one job:

- ``runtime.protector`` -- the data plane (``seal``, ``open``, streams, ranges, ``explain``);
- ``runtime.admin`` -- key lifecycle, revocation, rotation, backfill, the cache
  (:class:`~ownkey.service.Administration`), deciding on key records as stored;
- ``runtime.org_ops`` -- orgs, users and coverage (:class:`OrgOperations`);
- ``runtime.key_ops`` -- customer keys by org, providers, revocation rules (:class:`KeyOperations`);
- ``runtime.job_ops`` -- resumable jobs (:class:`JobOperations`);
- ``runtime.assets`` -- the asset store (:class:`~ownkey.service.AssetService`), built on first use.

The façades' methods are also reachable under their old names on the runtime
(``runtime.create_org`` is ``runtime.org_ops.create_org``).

Data plane: ``runtime.protector`` takes a request with the *asset* part only (``asset``,
``scope``, ``asset_id``); the directory fills ``orgs`` for every org the asset touches. A request
that carries ``orgs`` itself is refused (the directory is the authority); :meth:`explain` accepts
one, as a what-if dry run. The asset's own org must be in the directory; a chat member's org that
is not is an org without a customer key.

Freshness across processes: changes made through this runtime act on its next call. Changes made
by another process or node are seen after ``recheck_interval`` seconds (default 1 s), or at once
when the caller's change notification (PostgreSQL ``LISTEN/NOTIFY``) calls :meth:`invalidate`.
The same interval bounds scope keys another process shreds, retires or re-wraps: a cached one's
record is re-read before its first use after it (KL-8a).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from ownkey.envelope import RandomSource
from ownkey.keys import KeyProvider
from ownkey.policy import PolicyRequest, ProtectionPlan
from ownkey.service._admin import Administration
from ownkey.service._builder import LOCAL, Effects, SqlDeployment, SqlProfile
from ownkey.service._coverage import Coverage, ServiceCoverage
from ownkey.service._job_ops import JobOperations
from ownkey.service._key_ops import KeyOperations
from ownkey.service._org_ops import OrgOperations, OrgUpdate
from ownkey.service._plan import policy_engine
from ownkey.service._request import policy_part
from ownkey.service._restore import RestoreWatch
from ownkey.service._settings import ProtectorSettings
from ownkey.storage import AuditLog, Database, check_private_home, database_url, ownkey_home

if TYPE_CHECKING:  # built on first use: a command that reads keys or orgs never loads them
    from ownkey.service._assets import AssetService
    from ownkey.service._jobs import JobRunner
    from ownkey.storage import JobStore

__all__ = ["Coverage", "OrgUpdate", "Runtime", "ServiceCoverage"]

Request = Mapping[str, Any]
_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Forward(Generic[_P, _R]):
    """``runtime.name(...)`` is ``runtime.<facade>.name(...)``, typed as the façade's method: the
    names callers used before the façades existed keep working, with nothing written twice."""

    def __init__(self, facade: str, method: Callable[Concatenate[Any, _P], _R]) -> None:
        self._facade = facade
        self._name = method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, runtime: None, owner: type[Runtime]) -> _Forward[_P, _R]: ...

    @overload
    def __get__(self, runtime: Runtime, owner: type[Runtime]) -> Callable[_P, _R]: ...

    def __get__(
        self, runtime: Runtime | None, owner: type[Runtime]
    ) -> _Forward[_P, _R] | Callable[_P, _R]:
        if runtime is None:
            return self
        method: Callable[_P, _R] = getattr(getattr(runtime, self._facade), self._name)
        return method


class Runtime:
    """One ownkey deployment: builds its parts, hands out its façades, closes.

    Build it with :meth:`open`; use it as a context manager or call :meth:`close`. Thread-safe.
    """

    def __init__(self, built: SqlDeployment) -> None:
        self.database: Database = built.database
        self.protector = built.protector
        self.directory = built.directory
        self.audit_sink = built.audit_sink
        self.signing_key = built.signing_key
        self._fleet = built.fleet
        self.env = built.env
        self._deps = built.deps
        self._providers = built.providers
        self._registry = built.registry
        self._rules = built.rules
        self._policy = built.policy
        self._assets: AssetService | None = None
        self._jobs: tuple[JobStore, JobOperations] | None = None
        self._build_lock = threading.Lock()
        self._closed = False
        #: Notices a database that went back in time (a restore) and shuts opens until an
        #: operator reconciles (service/_restore.py); checked at open, and by serving nodes.
        self.restore_watch = RestoreWatch(
            AuditLog(self.database),
            ownkey_home(self.env),
            self.protector.open_gate,
            built.deps.clock,
            database=self.database.engine.url.set(password=None).render_as_string(False),
        )
        admin = self.protector.admin
        self.org_ops = OrgOperations(
            built.directory,
            built.deps.auditor,
            built.registry.read_through(),
            rule_count=lambda org: len(admin.rules(org)),
        )
        self.key_ops = KeyOperations(
            admin=admin,
            orgs=self.org_ops,
            store=built.directory.store,
            providers=built.providers,
            auditor=built.deps.auditor,
            env=built.env,
            assets=lambda: self.assets,
        )

    def __repr__(self) -> str:
        return f"<Runtime database={self.database.dialect} keys=<redacted>>"

    @classmethod
    def open(
        cls,
        *,
        home: str | os.PathLike[str] | None = None,
        url: str | None = None,
        settings: ProtectorSettings | None = None,
        env: Mapping[str, str] | None = None,
        providers: Mapping[str, KeyProvider] | None = None,
        recheck_interval: float = 1.0,
        migrate: bool = True,
        clock: Callable[[], float] = time.time,
        random: RandomSource = os.urandom,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Runtime:
        """Open the deployment at ``home`` (default ``OWNKEY_HOME``, ``~/.ownkey``) or ``url``
        (default ``OWNKEY_DATABASE_URL``, else SQLite under the home); create the platform key
        on first open. ``providers`` adds or replaces providers by name (tests, fakes)."""
        environ = dict(os.environ if env is None else env)
        if home is not None:
            environ["OWNKEY_HOME"] = str(Path(home))
        SqlProfile.check_interval(recheck_interval)  # before a database is opened
        check_private_home(ownkey_home(environ))  # like the root key: the owner's only
        database = Database.open(url or database_url(environ), migrate=migrate)
        try:
            profile = SqlProfile(database, environ, dict(providers or {}), recheck_interval)
            # OWNKEY_KEY_CALLS_* from the environment when the caller gives no settings
            chosen = settings or ProtectorSettings.from_env(environ)
            built = profile.build(chosen, Effects(clock, random, sleep))
            runtime = cls(built)
            runtime.restore_watch.check()
            return runtime
        except BaseException:
            database.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close providers that hold connections, then the database. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.protector.close()  # the pending access records, before the database goes
            self.restore_watch.stop()
            self.restore_watch.remember()  # the heads this process wrote, for the next start
        finally:
            self._providers.close()
            self.database.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def invalidate(
        self, *, orgs: Iterable[str] | None = None, keys: bool = True, rules: bool = True
    ) -> None:
        """Re-read what another node changed: org settings (``orgs``, all when None), key
        records and their providers' settings, revocation rules. The hook for change
        notifications; cheap to call."""
        self.directory.invalidate(orgs)
        if keys:
            self._registry.invalidate()
            self._providers.invalidate()
        if rules:
            self._rules.invalidate()

    # -- the parts -------------------------------------------------------------------------------

    @property
    def admin(self) -> Administration:
        """Key lifecycle, revocation, rotation, backfill and the cache. It decides on key records
        and rules as stored (never on the data plane's caches), so reading it changes nothing."""
        return self.protector.admin

    @property
    def settings(self) -> ProtectorSettings:
        return self.protector.settings

    @property
    def home(self) -> Path:
        return ownkey_home(self.env)

    @property
    def audit_log(self) -> AuditLog:
        return AuditLog(self.database)

    def reconcile_restore(self, *, actor: str) -> int:
        """Acknowledge a restore of the database in every org's chain and open again (see
        service/_restore.py); return how many orgs' chains record it."""
        return self.restore_watch.reconcile(self._deps.auditor, actor=actor)

    def audit_public_keys(self) -> dict[str, bytes]:
        """The public keys ``audit verify`` trusts by default: every key that signs checkpoints
        in this database, registered under the fleet's root key, so every node answers alike
        (issue 28, item 2); this node's own key always."""
        return self._fleet.public_keys()

    @property
    def local_keys(self) -> KeyProvider:
        """The embedded local key store (the fleet's, in this database)."""
        return self._providers[LOCAL]

    @property
    def assets(self) -> AssetService:
        """The deployment's stored assets: seal into, open from, rekey within and preview the
        asset store (metadata in this database, blobs per ``blob_store_from_env``).

        Built on first use (a command that stores nothing needs no S3 client), then the same
        object for the life of the runtime."""
        found = self._assets
        if found is not None:
            return found
        from ownkey.service._assets import AssetService
        from ownkey.storage import AssetStore, blob_store_from_env

        with self._build_lock:
            if self._assets is None:
                store = AssetStore(self.database, blob_store_from_env(self.env))
                self._assets = AssetService(self.protector, store)
            return self._assets

    @property
    def jobs(self) -> JobStore:
        """The resumable jobs' records (built on first use, with :attr:`job_ops`)."""
        return self._job_parts()[0]

    @property
    def job_ops(self) -> JobOperations:
        """Resumable jobs: create, preview, run, list (built on first use)."""
        return self._job_parts()[1]

    def _job_parts(self) -> tuple[JobStore, JobOperations]:
        found = self._jobs
        if found is not None:
            return found
        from ownkey.service._job_settings import JobSettings
        from ownkey.storage import JobStore

        with self._build_lock:
            if self._jobs is None:
                store = JobStore(self.database)
                operations = JobOperations(
                    protector=self.protector,
                    store=store,
                    orgs=self.org_ops,
                    assets=lambda: self.assets,
                    clock=self._deps.clock,
                    refresh=lambda: self.invalidate(orgs=()),
                    settings=JobSettings.from_env(self.env),  # OWNKEY_JOB_LEASE, ...
                )
                self._jobs = (store, operations)
            return self._jobs

    @property
    def node_id(self) -> str:
        """This runtime's name in job leases (host, process id, a random part)."""
        return self.job_ops.node_id

    @property
    def job_runner(self) -> JobRunner:
        """The runner of rewrap, backfill, rekey and shred jobs, with :attr:`assets`."""
        return self.job_ops.runner

    # -- policy ----------------------------------------------------------------------------------

    def policy_request(self, request: Request) -> PolicyRequest:
        """The full policy request the runtime builds for an asset-only request."""
        return self._policy.request(policy_part(request))

    def explain(self, request: Request) -> ProtectionPlan:
        """The plan for an asset-only request (orgs from the directory), or, if ``orgs`` is
        given, for exactly that request (a what-if dry run that changes nothing)."""
        if isinstance(request, Mapping) and "orgs" in request:
            return policy_engine(policy_part(request))
        plan: ProtectionPlan = self.protector.explain(request)
        return plan

    # -- the façades' methods under their pre-split names ----------------------------------------

    org = _Forward("org_ops", OrgOperations.org)
    orgs = _Forward("org_ops", OrgOperations.orgs)
    create_org = _Forward("org_ops", OrgOperations.create_org)
    update_org = _Forward("org_ops", OrgOperations.update_org)
    add_users = _Forward("org_ops", OrgOperations.add_users)
    set_licensed = _Forward("org_ops", OrgOperations.set_licensed)
    remove_users = _Forward("org_ops", OrgOperations.remove_users)
    users = _Forward("org_ops", OrgOperations.users)
    coverage = _Forward("org_ops", OrgOperations.coverage)
    configure_provider = _Forward("key_ops", KeyOperations.configure_provider)
    create_key = _Forward("key_ops", KeyOperations.create_key)
    register_key = _Forward("key_ops", KeyOperations.register_key)
    list_keys = _Forward("key_ops", KeyOperations.list_keys)
    revoke = _Forward("key_ops", KeyOperations.revoke)
    preview = _Forward("key_ops", KeyOperations.preview)
    create_job = _Forward("job_ops", JobOperations.create_job)
    rekey_preview = _Forward("job_ops", JobOperations.rekey_preview)
    pending_shreds = _Forward("job_ops", JobOperations.pending_shreds)
    cancel_shred = _Forward("job_ops", JobOperations.cancel_shred)
    run_job = _Forward("job_ops", JobOperations.run_job)
    job = _Forward("job_ops", JobOperations.job)
    list_jobs = _Forward("job_ops", JobOperations.list_jobs)
