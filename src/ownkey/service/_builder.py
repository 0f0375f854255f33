"""The one builder: a Protector and what it stands on, from settings and a profile.

Every composition of ownkey goes through :func:`assemble` (key dependencies, Protector, the
platform key on first build), chosen by one of two profiles:

- :class:`MemoryProfile` -- stores, registry, rules and audit in memory (or the caller's own),
  the providers given or a local in-memory one. There is no org directory, so a request carries
  its ``orgs`` and the caller is the authority on org settings. :func:`build_protector` (the
  library's front door) builds this profile.
- :class:`SqlProfile` -- one :class:`~ownkey.storage.Database` holds scope keys, key records,
  rules, the audit chain, the org directory and what every node needs (the embedded store's
  keys and the audit signing key under the fleet's root key, ``service/_fleet.py``); a node
  without the fleet's root key refuses to start. Providers are the embedded local store and
  every provider configured in the database, built on first use; key records and rules are
  read through caches re-checked every ``recheck_interval`` seconds. ``orgs`` come from the
  directory, and a request that carries them is refused (the directory is the authority). The
  admin operations decide on records as stored, never on the data plane's caches.
  :meth:`Runtime.open <ownkey.service.Runtime.open>` builds this profile.

So ``orgs`` in a request are accepted exactly when no directory exists to contradict them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ownkey.audit import Auditor, AuditSink, MemoryAuditSink
from ownkey.envelope import RandomSource
from ownkey.errors import ConfigError
from ownkey.keys import (
    KeyDeps,
    KeyManagerCalls,
    KeyProvider,
    KeyRef,
    KeyRegistry,
    MemoryKeyRegistry,
    MemoryRuleStore,
    MemoryScopeKeyStore,
    RuleStore,
    ScopeKeyCache,
    ScopeKeyStore,
)
from ownkey.providers import LocalKeyProvider, LocalKeyStoreProvider
from ownkey.providers._local_store import LOG_FILE as LOCAL_LOG_FILE
from ownkey.service._caching import CachedKeyRegistry, CachedRuleStore
from ownkey.service._directory import OrgDirectory
from ownkey.service._fleet import FleetKeys, open_fleet
from ownkey.service._plan import MemoizedPolicy, PolicyFn
from ownkey.service._policy_directory import DirectoryPolicy
from ownkey.service._protector import Protector
from ownkey.service._providers import LazyProviders, ProviderSpec, provider_factory
from ownkey.service._settings import ProtectorSettings
from ownkey.storage import (
    AuditSigningKey,
    Database,
    SqlAuditSink,
    SqlKeyRegistry,
    SqlOrgDirectory,
    SqlRuleStore,
    SqlScopeKeyStore,
    ownkey_home,
)

__all__ = ["Effects", "MemoryProfile", "SqlDeployment", "SqlProfile", "assemble"]

#: The embedded provider every SQL deployment has (its keys in the database, service/_fleet.py).
LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Effects:
    """The injected effects: the clock, the randomness and the sleep of retries."""

    clock: Callable[[], float] = time.time
    random: RandomSource = os.urandom
    sleep: Callable[[float], None] = time.sleep


def assemble(
    settings: ProtectorSettings,
    effects: Effects,
    *,
    providers: Mapping[str, KeyProvider],
    registry: KeyRegistry,
    store: ScopeKeyStore,
    rules: RuleStore,
    audit: AuditSink,
    policy: PolicyFn,
    recheck_after: float | None = None,
    admin_registry: KeyRegistry | None = None,
    admin_rules: RuleStore | None = None,
) -> tuple[Protector, KeyDeps]:
    """The Protector over these parts (and its key dependencies); creates the platform key if
    the registry has none. ``admin_*`` are what the admin operations read, when not the same."""
    cache_options = {} if recheck_after is None else {"recheck_after": recheck_after}
    deps = KeyDeps(
        providers=providers,
        registry=registry,
        store=store,
        rules=rules,
        auditor=Auditor(audit, effects.clock),
        cache=ScopeKeyCache(
            settings.cache_limits, clock=effects.clock, random=effects.random, **cache_options
        ),
        clock=effects.clock,
        random=effects.random,
        sleep=effects.sleep,
        retry=settings.retry_policy,
        calls=KeyManagerCalls(settings.call_limits),
    )
    admin_deps = dataclasses.replace(
        deps,
        registry=registry if admin_registry is None else admin_registry,
        rules=rules if admin_rules is None else admin_rules,
    )
    protector = Protector(settings, deps, policy, admin_deps=admin_deps)
    if admin_deps.registry.get(KeyRef.platform()) is None:
        protector.admin.create_key(KeyRef.platform(), actor="ownkey:setup")
    return protector, deps


@dataclass(frozen=True, slots=True)
class MemoryProfile:
    """In-memory stores unless given; requests carry their ``orgs``. See the module docstring."""

    providers: Mapping[str, KeyProvider] | None = None
    scope_keys: ScopeKeyStore | None = None
    registry: KeyRegistry | None = None
    rules: RuleStore | None = None
    audit: AuditSink | None = None
    policy: PolicyFn | None = None

    def build(self, settings: ProtectorSettings, effects: Effects) -> Protector:
        providers = self.providers
        if providers is None:
            name = settings.default_provider
            providers = {
                name: LocalKeyProvider(name=name, random=effects.random, clock=effects.clock)
            }
        if settings.default_provider not in providers:
            raise ConfigError(
                f"the default provider {settings.default_provider!r} is not configured"
            )
        protector, _ = assemble(
            settings,
            effects,
            providers=dict(providers),
            registry=self.registry if self.registry is not None else MemoryKeyRegistry(),
            store=self.scope_keys if self.scope_keys is not None else MemoryScopeKeyStore(),
            rules=self.rules if self.rules is not None else MemoryRuleStore(),
            audit=self.audit if self.audit is not None else MemoryAuditSink(),
            policy=self.policy or MemoizedPolicy(),
        )
        return protector


@dataclass(frozen=True, slots=True)
class SqlDeployment:
    """What the SQL profile built: the parts a :class:`~ownkey.service.Runtime` holds."""

    database: Database
    env: Mapping[str, str]
    protector: Protector
    deps: KeyDeps
    providers: LazyProviders
    registry: CachedKeyRegistry
    rules: CachedRuleStore
    directory: OrgDirectory
    policy: DirectoryPolicy
    audit_sink: SqlAuditSink
    signing_key: AuditSigningKey
    fleet: FleetKeys


@dataclass(frozen=True, slots=True)
class SqlProfile:
    """Everything in ``database``; ``orgs`` from its directory. See the module docstring."""

    database: Database
    env: Mapping[str, str] = field(default_factory=dict)
    providers: Mapping[str, KeyProvider] = field(default_factory=dict)
    recheck_interval: float = 1.0

    def __post_init__(self) -> None:
        self.check_interval(self.recheck_interval)

    @staticmethod
    def check_interval(recheck_interval: float) -> None:
        """ConfigError for a negative ``recheck_interval``."""
        if recheck_interval < 0:
            raise ConfigError("recheck_interval cannot be negative")

    def build(self, settings: ProtectorSettings, effects: Effects) -> SqlDeployment:
        database, env, clock = self.database, self.env, effects.clock
        directory_store = SqlOrgDirectory(database)
        # The root key, the local store's records and the audit signing key: the same on every
        # node of the database, or this node refuses to start (issue 28, item 2).
        fleet = open_fleet(database, env, random=effects.random, clock=clock)

        def local(name: str = LOCAL) -> KeyProvider:
            return LocalKeyStoreProvider(
                records=fleet.records,
                root_key=fleet.root,
                name=name,
                random=effects.random,
                clock=clock,
                log=ownkey_home(env) / LOCAL_LOG_FILE,
            )

        factories: dict[str, Callable[[], KeyProvider]] = {LOCAL: local}

        def rows() -> dict[str, ProviderSpec]:
            return {row.name: (row.kind, row.settings) for row in directory_store.providers()}

        def build(name: str, spec: ProviderSpec) -> Callable[[], KeyProvider]:
            if spec[0] == LOCAL:  # the embedded store is the database's, whatever the row says
                return lambda: local(name)
            return provider_factory(spec[0], spec[1], env, name)

        # Rows re-read within the same interval as key records, so a provider another node
        # re-configured is rebuilt here without a restart (issue 28).
        providers = LazyProviders(
            factories,
            self.providers,
            source=rows,
            build=build,
            max_age=self.recheck_interval,
            clock=clock,
        )
        signing_key = fleet.signing_key
        sink = SqlAuditSink(database, signing_key, clock=clock)
        interval = self.recheck_interval
        registry = CachedKeyRegistry(SqlKeyRegistry(database), max_age=interval, clock=clock)
        rules = CachedRuleStore(SqlRuleStore(database), max_age=interval, clock=clock)
        directory = OrgDirectory(directory_store, recheck_interval=interval, clock=clock)
        policy = DirectoryPolicy(directory)
        with database.setup_lock():  # the platform key: one node creates it, the others find it
            protector, deps = assemble(
                settings,
                effects,
                providers=providers,
                registry=registry,
                store=SqlScopeKeyStore(database),
                rules=rules,
                audit=sink,
                policy=policy,
                # Scope keys another process shreds, retires or re-wraps are seen within the
                # same interval as its key and rule changes (KL-8a).
                recheck_after=interval,
                admin_registry=registry.read_through(),
                admin_rules=rules.read_through(),
            )
        return SqlDeployment(
            database=database,
            env=env,
            protector=protector,
            deps=deps,
            providers=providers,
            registry=registry,
            rules=rules,
            directory=directory,
            policy=policy,
            audit_sink=sink,
            signing_key=signing_key,
            fleet=fleet,
        )
