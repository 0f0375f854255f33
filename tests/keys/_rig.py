"""A key layer wired for tests: fake clock, seeded randomness, a faulty local provider, memory
stores and a breakable audit sink."""

from __future__ import annotations

from dataclasses import dataclass, field

from ownkey.audit import Auditor
from ownkey.keys import (
    CacheLimits,
    KeyAdmin,
    KeyDeps,
    KeyRef,
    MemoryKeyRegistry,
    MemoryRuleStore,
    MemoryScopeKeyStore,
    RetryPolicy,
    Rewrapper,
    ScopeIdentity,
    ScopeKeyCache,
    ScopeKeys,
)
from ownkey.providers import LocalKeyProvider
from ownkey.testing.fakes import FailingAuditSink, FakeClock, FaultyProvider, SeededRandom

ACME = KeyRef.customer("acme")
GLOBEX = KeyRef.customer("globex")
PLATFORM = KeyRef.platform()
DAY = 86_400.0


@dataclass
class Rig:
    clock: FakeClock
    provider: FaultyProvider
    sink: FailingAuditSink
    store: MemoryScopeKeyStore
    deps: KeyDeps
    admin: KeyAdmin
    keys: ScopeKeys
    rewrapper: Rewrapper
    created: list[KeyRef] = field(default_factory=list)

    def identity(
        self,
        *keys: KeyRef,
        scope: str = "chat:1",
        service_id: str = "0008",
        epoch_start: int | None = None,
        orgs: tuple[str, ...] | None = None,
    ) -> ScopeIdentity:
        keys = keys or (ACME,)
        if orgs is None:
            orgs = tuple(sorted({key.org for key in keys if key.org} or {"acme"}))
        start = int(self.clock() // 3600 * 3600) if epoch_start is None else epoch_start
        return ScopeIdentity(orgs, service_id, scope, start, 3600, tuple(sorted(keys)))


def make_rig(
    *,
    limits: CacheLimits | None = None,
    retry: RetryPolicy | None = None,
    keys: tuple[KeyRef, ...] = (ACME, GLOBEX, PLATFORM),
    seed: int = 1,
) -> Rig:
    clock = FakeClock()
    random = SeededRandom(seed)
    provider = FaultyProvider(LocalKeyProvider(random=random, clock=clock))
    sink = FailingAuditSink()
    store = MemoryScopeKeyStore()
    deps = KeyDeps(
        providers={"local": provider},
        registry=MemoryKeyRegistry(),
        store=store,
        rules=MemoryRuleStore(),
        auditor=Auditor(sink, clock),
        cache=ScopeKeyCache(limits or CacheLimits(), clock=clock, random=random),
        clock=clock,
        random=random,
        sleep=clock.sleep,
        retry=retry or RetryPolicy(),
    )
    admin = KeyAdmin(
        deps, default_provider="local", min_waiting_period=DAY, default_waiting_period=7 * DAY
    )
    for ref in keys:
        admin.create(ref)
    return Rig(
        clock, provider, sink, store, deps, admin, ScopeKeys(deps), Rewrapper(deps, admin.get)
    )
