"""The runtime: one ownkey deployment composed from settings, for the CLI, the API and the demo.

:meth:`Runtime.open` wires, for one ``OWNKEY_HOME`` (or ``OWNKEY_DATABASE_URL``):

- the :class:`~ownkey.storage.Database` (SQLite under the home, or PostgreSQL), migrated;
- the SQL scope-key store, and the key registry and rule store behind read caches
  (:mod:`ownkey.service._caching`), so that the per-message checks cost no database round trip;
- the key providers: the embedded ``local`` store under the home, and every provider registered
  through :meth:`Runtime.register_key` (its non-secret settings kept in the database, its secrets
  read from this process's environment), each built on first use;
- the :class:`~ownkey.storage.SqlAuditSink` (per-org hash chains, signed checkpoints);
- the :class:`OrgDirectory`: org settings and licensed users, cached per org by revision;
- the :class:`~ownkey.service.Protector`, whose policy reads ``orgs`` from that directory;
- the :class:`~ownkey.service.AssetService` (``runtime.assets``) over the asset store of this
  database and environment (blobs in ``OWNKEY_BLOB_DIR``, S3 with ``OWNKEY_S3_BUCKET``, or
  ``$OWNKEY_HOME/objects``), built on first use: one per runtime, shared by the API's objects,
  the revocation preview and the jobs (:attr:`Runtime.job_runner` is asset-aware).

Data plane: ``runtime.protector`` (``seal``, ``open``, the stream and range variants) takes a
request with the *asset* part only (``asset``, ``scope``, ``asset_id``); the runtime's policy fills
``orgs`` from the directory for every org the asset touches. A request that carries ``orgs``
itself is refused (the directory is the authority, not the caller); :meth:`explain` accepts one,
as a what-if dry run. The asset's own org must be in the directory; a chat member's org that is
not is an org without a customer key.

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
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ownkey.audit import AuditAction, Auditor
from ownkey.envelope import RandomSource
from ownkey.errors import ConfigError, NotFound, PolicyError
from ownkey.keys import (
    KeyDeps,
    KeyProvider,
    KeyRef,
    MasterKey,
    RevocationRule,
    ScopeKeyCache,
)
from ownkey.policy import PolicyRequest, ProtectionPlan
from ownkey.providers import LocalKeyStoreProvider, build_provider, provider_settings
from ownkey.service._admin import Administration
from ownkey.service._assets import AssetPreview, AssetService
from ownkey.service._caching import CachedKeyRegistry, CachedRuleStore
from ownkey.service._coverage import Coverage, ServiceCoverage, coverage_of, customer_services
from ownkey.service._directory import (
    ORG_FLAGS,
    Org,
    OrgDirectory,
    User,
    check_org_name,
    check_service_ids,
    check_user,
    org_of,
)
from ownkey.service._jobs import JobRunner, RekeyPreview
from ownkey.service._plan import policy_engine
from ownkey.service._policy_directory import DirectoryPolicy
from ownkey.service._protector import Protector
from ownkey.service._request import policy_part
from ownkey.service._settings import ProtectorSettings
from ownkey.storage import (
    AssetStore,
    AuditLog,
    AuditSigningKey,
    Database,
    JobStatus,
    JobStore,
    PendingShred,
    SqlAuditSink,
    SqlKeyRegistry,
    SqlOrgDirectory,
    SqlRuleStore,
    SqlScopeKeyStore,
    blob_store_from_env,
    check_private_home,
    database_url,
    ownkey_home,
)

__all__ = ["Coverage", "OrgUpdate", "Runtime", "ServiceCoverage"]

Request = Mapping[str, Any]
_LOCAL = "local"


# -- providers built on first use ------------------------------------------------------------------


class _Providers(Mapping[str, KeyProvider]):
    """Key providers by name, each built on first use from its stored settings and the env.

    Providers handed in by the caller stay the caller's to close; :meth:`owned` lists those
    built here.
    """

    def __init__(
        self,
        factories: dict[str, Callable[[], KeyProvider]],
        given: Mapping[str, KeyProvider],
    ) -> None:
        self._factories = factories
        self._built: dict[str, KeyProvider] = dict(given)
        self._owned: dict[str, KeyProvider] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> KeyProvider:
        found = self._built.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._built.get(name)
            if found is None:
                factory = self._factories.get(name)
                if factory is None:
                    raise KeyError(name)
                found = self._built[name] = self._owned[name] = factory()
            return found

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._factories) | set(self._built)))

    def __len__(self) -> int:
        return len(set(self._factories) | set(self._built))

    def configure(
        self, name: str, factory: Callable[[], KeyProvider], given: KeyProvider | None
    ) -> None:
        """Use ``factory`` for ``name`` from now on (``given``, the caller's, until reopened)."""
        with self._lock:
            self._factories[name] = factory
            self._built.pop(name, None)
            if given is not None:
                self._built[name] = given

    def owned(self) -> list[KeyProvider]:
        with self._lock:
            return list(self._owned.values())


# -- reports ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrgUpdate:
    """An org after a change, and the services whose new content changed key."""

    org: Org
    now_customer: tuple[str, ...] = ()
    now_platform: tuple[str, ...] = ()


# -- the runtime -----------------------------------------------------------------------------------


class Runtime:
    """One ownkey deployment: database, stores, providers, audit, org directory, Protector.

    Build it with :meth:`open`; use it as a context manager or call :meth:`close`. Thread-safe.
    """

    def __init__(
        self,
        *,
        database: Database,
        protector: Protector,
        deps: KeyDeps,
        directory: OrgDirectory,
        providers: _Providers,
        registry: CachedKeyRegistry,
        rules: CachedRuleStore,
        audit_sink: SqlAuditSink,
        signing_key: AuditSigningKey,
        env: Mapping[str, str],
    ) -> None:
        self.database = database
        self.protector = protector
        self.directory = directory
        self.audit_sink = audit_sink
        self.signing_key = signing_key
        self.env = env
        self.jobs = JobStore(database)
        self._deps = deps
        self._providers = providers
        self._registry = registry
        self._rules = rules
        self._policy = DirectoryPolicy(directory)
        self._assets: AssetService | None = None
        self._assets_lock = threading.Lock()
        self._closed = False

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
        if recheck_interval < 0:
            raise ConfigError("recheck_interval cannot be negative")
        settings = settings or ProtectorSettings()
        check_private_home(ownkey_home(environ))  # like the root key: the owner's only
        database = Database.open(url or database_url(environ), migrate=migrate)
        try:
            return cls._compose(
                database, settings, environ, providers, recheck_interval, clock, random, sleep
            )
        except BaseException:
            database.close()
            raise

    @classmethod
    def _compose(
        cls,
        database: Database,
        settings: ProtectorSettings,
        env: dict[str, str],
        given: Mapping[str, KeyProvider] | None,
        recheck_interval: float,
        clock: Callable[[], float],
        random: RandomSource,
        sleep: Callable[[float], None],
    ) -> Runtime:
        directory_store = SqlOrgDirectory(database)
        factories: dict[str, Callable[[], KeyProvider]] = {
            _LOCAL: lambda: LocalKeyStoreProvider(env=env, random=random, clock=clock),
        }
        for row in directory_store.providers():
            factories[row.name] = _factory(row.kind, dict(row.settings), env, row.name)
        providers = _Providers(factories, given or {})
        signing_key = AuditSigningKey.load(env)
        sink = SqlAuditSink(database, signing_key, clock=clock)
        registry = CachedKeyRegistry(
            SqlKeyRegistry(database), max_age=recheck_interval, clock=clock
        )
        rules = CachedRuleStore(SqlRuleStore(database), max_age=recheck_interval, clock=clock)
        deps = KeyDeps(
            providers=providers,
            registry=registry,
            store=SqlScopeKeyStore(database),
            rules=rules,
            auditor=Auditor(sink, clock),
            # Scope keys another process shreds, retires or re-wraps are seen within the same
            # interval as its key and rule changes (KL-8a).
            cache=ScopeKeyCache(
                settings.cache_limits,
                clock=clock,
                random=random,
                recheck_after=recheck_interval,
            ),
            clock=clock,
            random=random,
            sleep=sleep,
            retry=settings.retry_policy,
        )
        directory = OrgDirectory(directory_store, recheck_interval=recheck_interval, clock=clock)
        runtime_policy = DirectoryPolicy(directory)
        protector = Protector(settings, deps, runtime_policy)
        runtime = cls(
            database=database,
            protector=protector,
            deps=deps,
            directory=directory,
            providers=providers,
            registry=registry,
            rules=rules,
            audit_sink=sink,
            signing_key=signing_key,
            env=env,
        )
        runtime._policy = runtime_policy
        if registry.get(KeyRef.platform()) is None:
            protector.admin.create_key(KeyRef.platform(), actor="ownkey:setup")
        return runtime

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close providers that hold connections, then the database. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for provider in self._providers.owned():
            close = getattr(provider, "close", None)
            if callable(close):
                close()
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
        records, revocation rules. The hook for change notifications; cheap to call."""
        self.directory.invalidate(orgs)
        if keys:
            self._registry.invalidate()
        if rules:
            self._rules.invalidate()

    @property
    def admin(self) -> Administration:
        """Key lifecycle, revocation, rotation, backfill and the cache, deciding on fresh
        records: reading this re-reads key records and rules written by other processes."""
        self._registry.invalidate()
        self._rules.invalidate()
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

    @property
    def assets(self) -> AssetService:
        """The deployment's stored assets: seal into, open from, rekey within and preview the
        asset store (metadata in this database, blobs per ``blob_store_from_env``).

        Built on first use (a command that stores nothing needs no S3 client), then the same
        object for the life of the runtime."""
        found = self._assets
        if found is not None:
            return found
        with self._assets_lock:
            if self._assets is None:
                store = AssetStore(self.database, blob_store_from_env(self.env))
                self._assets = AssetService(self.protector, store)
            return self._assets

    # -- data plane ------------------------------------------------------------------------------

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

    # -- orgs and users --------------------------------------------------------------------------

    def org(self, name: str) -> Org:
        """An org's settings, read from the database (NotFound if none)."""
        store = self.directory.store
        row = store.get_org(name)
        if row is None:
            raise NotFound(f"no org {name!r}")
        return org_of(row, store.licensed_users(name))

    def orgs(self) -> list[Org]:
        """Every org, by name."""
        store = self.directory.store
        return [org_of(row, store.licensed_users(row.name)) for row in store.list_orgs()]

    def _emit(self, action: AuditAction, org: str, actor: str | None, **detail: str) -> None:
        self._deps.auditor.emit(action, org=org, actor=actor, detail=detail)

    def _customer_key(self, org: str) -> MasterKey | None:
        return self._registry.get(KeyRef.customer(org))

    def _require_key_for_cmk(self, org: str) -> None:
        self._registry.invalidate()
        if self._customer_key(org) is None:
            raise ConfigError(
                f"org {org!r} has no customer key: create or register one first "
                f"(ownkey key create {org} / ownkey key register {org} ...)"
            )

    def create_org(
        self,
        name: str,
        *,
        cmk: bool = False,
        services: Collection[str] = (),
        actor: str | None = None,
        **flags: bool,
    ) -> Org:
        """Add an org to the directory. ``cmk=True`` needs its customer key registered first.
        ``flags``: any of large_org, log_index_encryption, compliance_archival,
        advanced_chat_encryption, hybrid."""
        check_org_name(name)
        service_ids = check_service_ids(services)
        _check_flags(flags)
        if cmk:
            self._require_key_for_cmk(name)
        if self.directory.store.get_org(name) is not None:
            raise PolicyError("org", f"org {name!r} already exists")
        detail = {"cmk": str(cmk).lower(), "services": ",".join(service_ids)}
        detail.update({flag: str(value).lower() for flag, value in flags.items()})
        self._emit(AuditAction.ORG_CREATE, name, actor, **detail)
        row = self.directory.store.create_org(name, cmk=cmk, services=service_ids, flags=flags)
        self.directory.invalidate([name])
        return org_of(row, frozenset())

    def update_org(
        self,
        name: str,
        *,
        cmk: bool | None = None,
        enable: Collection[str] = (),
        disable: Collection[str] = (),
        actor: str | None = None,
        **flags: bool,
    ) -> OrgUpdate:
        """Change an org's settings: turn CMK on or off, enable or disable services, set flags.

        New content follows at once. Existing content stays under the key it was sealed with
        until a backfill moves it (:meth:`create_job` ``backfill``); the result says which
        services changed key.
        """
        before = self.org(name)
        on = set(check_service_ids(enable, "enable"))
        off = set(check_service_ids(disable, "disable"))
        if on & off:
            raise PolicyError("enable", f"{', '.join(sorted(on & off))} both enabled and disabled")
        _check_flags(flags)
        if cmk and not before.cmk:
            self._require_key_for_cmk(name)
        services = (set(before.settings.services) | on) - off
        detail: dict[str, str] = {}
        if cmk is not None and cmk != before.cmk:
            detail["cmk"] = str(cmk).lower()
        if on - before.settings.services:
            detail["enabled"] = ",".join(sorted(on - before.settings.services))
        if off & before.settings.services:
            detail["disabled"] = ",".join(sorted(off & before.settings.services))
        changed_flags = {f: v for f, v in flags.items() if getattr(before.settings, f) != v}
        detail.update({flag: str(value).lower() for flag, value in changed_flags.items()})
        if not detail:
            return OrgUpdate(before)
        self._emit(AuditAction.ORG_UPDATE, name, actor, **detail)
        row = self.directory.store.update_org(
            name,
            cmk=cmk,
            services=None if services == set(before.settings.services) else services,
            flags=changed_flags,
        )
        self.directory.invalidate([name])
        after = org_of(row, before.settings.licensed_users)
        was, now = customer_services(before), customer_services(after)
        return OrgUpdate(after, tuple(sorted(now - was)), tuple(sorted(was - now)))

    def _check_org(self, org: str) -> None:
        if self.directory.store.get_org(org) is None:
            raise NotFound(f"no org {org!r}")

    def add_users(
        self,
        org: str,
        users: Collection[str],
        *,
        licensed: bool = False,
        actor: str | None = None,
    ) -> int:
        """Add users (licensed or not); existing ones get ``licensed`` set. Return rows changed."""
        return self._put_users(org, users, licensed, actor, "add")

    def set_licensed(
        self, org: str, users: Collection[str], licensed: bool, *, actor: str | None = None
    ) -> int:
        """Grant or withdraw the CMK licence of existing users; NotFound for an unknown one."""
        self._check_org(org)
        known = {user.user for user in self.users(org)}
        missing = sorted(set(users) - known)
        if missing:
            raise NotFound(f"org {org!r} has no user {missing[0]!r}")
        return self._put_users(org, users, licensed, actor, "license" if licensed else "unlicense")

    def _put_users(
        self, org: str, users: Collection[str], licensed: bool, actor: str | None, op: str
    ) -> int:
        emails = [check_user(user) for user in users]
        if not emails:
            raise PolicyError("users", "name at least one user")
        self._check_org(org)
        self._emit(
            AuditAction.ORG_USERS,
            org,
            actor,
            operation=op,
            licensed=str(licensed).lower(),
            users=str(len(emails)),
            first=emails[0],
        )
        changed = self.directory.store.put_users(org, emails, licensed=licensed)
        self.directory.invalidate([org])
        return changed

    def remove_users(self, org: str, users: Collection[str], *, actor: str | None = None) -> int:
        """Remove users from the directory; return how many existed."""
        emails = [check_user(user) for user in users]
        self._check_org(org)
        self._emit(AuditAction.ORG_USERS, org, actor, operation="remove", users=str(len(emails)))
        removed = self.directory.store.remove_users(org, emails)
        self.directory.invalidate([org])
        return removed

    def users(self, org: str, *, licensed: bool | None = None) -> list[User]:
        """The org's users (only licensed or unlicensed ones if asked)."""
        self._check_org(org)
        return [
            User(row.org, row.email, row.licensed)
            for row in self.directory.store.users(org, licensed=licensed)
        ]

    # -- keys ------------------------------------------------------------------------------------

    def configure_provider(
        self,
        name: str,
        kind: str,
        settings: Mapping[str, str] | None = None,
        *,
        provider: KeyProvider | None = None,
        actor: str | None = None,
    ) -> None:
        """Keep a key manager's non-secret settings under ``name``, so that every process builds
        it the same way (settings given, then ``OWNKEY_<KIND>_<NAME>`` from its environment).

        ``provider`` is an instance the caller built and checked already (and will close);
        without it the provider is built here on first use.
        """
        given = dict(settings or {})
        provider_settings(kind, given)  # ConfigError for unknown kinds, settings or a secret
        self._deps.auditor.emit(
            AuditAction.PROVIDER_CONFIGURE,
            actor=actor,
            detail={"name": name, "kind": kind, "settings": ",".join(sorted(given))},
        )
        self.directory.store.put_provider(name, kind, given)
        self._providers.configure(name, _factory(kind, given, self.env, name), provider)

    def create_key(
        self, org: str, *, provider: str = _LOCAL, actor: str | None = None
    ) -> MasterKey:
        """Create ``org``'s customer key in a provider (the embedded local store by default).
        A key can be prepared before its org is in the directory."""
        check_org_name(org)
        return self.admin.create_key(KeyRef.customer(org), provider=provider, actor=actor)

    def register_key(
        self,
        org: str,
        *,
        provider: str,
        key_id: str,
        kind: str | None = None,
        settings: Mapping[str, str] | None = None,
        actor: str | None = None,
    ) -> MasterKey:
        """Register ``org``'s existing key after a round-trip check. With ``kind`` (and
        ``settings``), configure the provider named ``provider`` first."""
        check_org_name(org)
        if kind is not None:
            self.configure_provider(provider, kind, settings, actor=actor)
        return self.admin.register_key(
            KeyRef.customer(org), provider=provider, key_id=key_id, actor=actor
        )

    def list_keys(self, org: str | None = None) -> list[MasterKey]:
        """Registered keys (of one org's customer key, or all including the platform key)."""
        keys = self.admin.list_keys()
        return [k for k in keys if org is None or k.ref.org == org]

    def revoke(self, rule: RevocationRule, *, actor: str | None = None) -> RevocationRule:
        """Put a revocation rule in force (its org must exist)."""
        self._check_org(rule.org)
        return self.admin.revoke(rule, actor=actor)

    def preview(self, rule: RevocationRule) -> AssetPreview:
        """What a rule would deny, by service: scope keys, stored assets and their plaintext
        bytes (:meth:`AssetService.preview`), without changing anything. Its org must exist."""
        self._check_org(rule.org)
        return self.assets.preview(rule)

    # -- coverage --------------------------------------------------------------------------------

    def coverage(self, org: str) -> Coverage:
        """Which services of ``org`` are under its customer key, with counts of scope keys
        (customer vs platform only vs crypto-shredded) and recorded assets."""
        found = self.org(org)
        self._registry.invalidate()
        rules = len(self.admin.rules(org))
        return coverage_of(found, self._customer_key(org), rules, self.directory.store)

    # -- jobs ------------------------------------------------------------------------------------

    @property
    def job_runner(self) -> JobRunner:
        """The runner of rewrap, backfill, rekey and shred jobs (:mod:`ownkey.service._jobs`),
        with :attr:`assets`: backfills pick scope keys by the stored content, rekeys run."""
        return JobRunner(self.protector, self.jobs, self.assets, clock=self._deps.clock)

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
          ``shred_old``): re-encrypt the org's stored assets under fresh scope keys, then shred
          the old scope keys (unless ``shred_old`` is False);
        - ``rekey`` makes the old scope keys *pending shred*, due after the destruction
          waiting period (:meth:`rekey_preview` says which, :meth:`cancel_shred` stops one);
        - ``shred`` (``key``): crypto-shred a key whose destruction is due, scope key by scope
          key, then destroy it; without ``key``, carry out the due pending shreds of ``org``.
        """
        runner = self.job_runner
        if kind == "shred" and key is None:
            if org is None:
                raise PolicyError("key", "a shred job names a key, or an org for its due shreds")
            self._check_org(org)
            return runner.shred(org=org)
        if kind in ("rewrap", "shred"):
            if key is None:
                raise PolicyError("key", f"a {kind} job names a key")
            ref = key if isinstance(key, KeyRef) else _parse_ref(key)
            return runner.rewrap(ref) if kind == "rewrap" else runner.shred(ref)
        if kind == "backfill":
            if org is None:
                raise PolicyError("org", "a backfill job names an org")
            self._check_org(org)
            service_ids = check_service_ids(services)
            if not service_ids:
                raise PolicyError("services", "a backfill job names at least one service")
            return runner.backfill(org, service_ids, enable=enable)
        if kind == "rekey":
            if org is None:
                raise PolicyError("org", "a rekey job names an org")
            service_ids = check_service_ids(services)
            if len(service_ids) > 1:
                raise PolicyError("services", "a rekey job takes at most one service")
            self._check_org(org)
            return runner.rekey(
                org,
                service_id=service_ids[0] if service_ids else None,
                scope=scope,
                scope_key_id=scope_key_id,
                shred_old=shred_old,
            )
        raise PolicyError(
            "kind", f"unknown job kind {kind!r}; one of rewrap, backfill, rekey, shred"
        )

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
        service_ids = check_service_ids(services)
        if len(service_ids) > 1:
            raise PolicyError("services", "a rekey job takes at most one service")
        self._check_org(org)
        return self.job_runner.rekey_preview(
            org,
            service_id=service_ids[0] if service_ids else None,
            scope=scope,
            scope_key_id=scope_key_id,
            shred_old=shred_old,
        )

    def pending_shreds(self, org: str | None = None) -> list[PendingShred]:
        """Old scope keys of rekey jobs waiting out their waiting period, soonest first."""
        return self.job_runner.pending_shreds(org)

    def cancel_shred(
        self, scope_key_id: bytes, *, org: str | None = None, actor: str | None = None
    ) -> PendingShred:
        """Stop a pending shred before it is due (audited); NotFound if none is pending (for
        ``org``), LifecycleError once it is due."""
        return self.job_runner.cancel_shred(scope_key_id, org=org, actor=actor)

    def run_job(
        self,
        job_id: str,
        *,
        progress: Callable[[JobStatus], None] | None = None,
        batch: int = 100,
    ) -> JobStatus:
        """Work on a job until nothing is pending (resumable: run it again after a crash)."""
        self.admin  # noqa: B018 - decide on fresh key records and rules
        return self.job_runner.run(job_id, batch=batch, progress=progress)

    def job(self, job_id: str) -> JobStatus:
        """A job's stored progress (NotFound for an unknown id)."""
        return self.jobs.status(job_id)

    def list_jobs(self, org: str | None = None) -> list[JobStatus]:
        """Every job (of one org if given), oldest first."""
        return [job for job in self.jobs.all() if org is None or job.org == org]


def _factory(
    kind: str, settings: dict[str, str], env: Mapping[str, str], name: str
) -> Callable[[], KeyProvider]:
    def build() -> KeyProvider:
        return build_provider(kind, settings, env=env, name=name)

    return build


def _parse_ref(text: str) -> KeyRef:
    try:
        return KeyRef.parse(text)
    except ValueError as exc:
        raise PolicyError("key", str(exc)) from None


def _check_flags(flags: Mapping[str, bool]) -> None:
    for flag, value in flags.items():
        if flag not in ORG_FLAGS:
            raise PolicyError(flag, f"unknown org setting; one of {', '.join(ORG_FLAGS)}")
        if not isinstance(value, bool):
            raise PolicyError(flag, "must be true or false")
