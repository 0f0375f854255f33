"""The composition root: build a Protector from settings, with in-memory defaults.

Nothing here is global: each call builds its own providers, stores, cache and audit sink unless
given some, so two Protectors in one process (two nodes in a test) share exactly what the caller
shares between them. The platform key is created on first build if the registry has none.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from ownkey.audit import Auditor, AuditSink, MemoryAuditSink
from ownkey.envelope import RandomSource
from ownkey.errors import ConfigError
from ownkey.keys import (
    KeyDeps,
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
from ownkey.providers import LocalKeyProvider
from ownkey.service._plan import MemoizedPolicy, PolicyFn
from ownkey.service._protector import Protector
from ownkey.service._settings import ProtectorSettings

__all__ = ["build_protector"]


def build_protector(
    settings: ProtectorSettings | None = None,
    *,
    providers: Mapping[str, KeyProvider] | None = None,
    scope_keys: ScopeKeyStore | None = None,
    registry: KeyRegistry | None = None,
    rules: RuleStore | None = None,
    audit: AuditSink | None = None,
    policy: PolicyFn | None = None,
    clock: Callable[[], float] = time.time,
    random: RandomSource = os.urandom,
    sleep: Callable[[float], None] = time.sleep,
) -> Protector:
    """A ready Protector. Defaults: a local in-memory provider, in-memory stores and audit sink,
    ownkey's policy engine, the system clock and ``os.urandom``."""
    settings = settings or ProtectorSettings()
    if providers is None:
        providers = {
            settings.default_provider: LocalKeyProvider(
                name=settings.default_provider, random=random, clock=clock
            )
        }
    if settings.default_provider not in providers:
        raise ConfigError(f"the default provider {settings.default_provider!r} is not configured")
    deps = KeyDeps(
        providers=dict(providers),
        registry=registry if registry is not None else MemoryKeyRegistry(),
        store=scope_keys if scope_keys is not None else MemoryScopeKeyStore(),
        rules=rules if rules is not None else MemoryRuleStore(),
        auditor=Auditor(audit if audit is not None else MemoryAuditSink(), clock),
        cache=ScopeKeyCache(settings.cache_limits, clock=clock, random=random),
        clock=clock,
        random=random,
        sleep=sleep,
        retry=settings.retry_policy,
    )
    protector = Protector(settings, deps, policy or MemoizedPolicy())
    if deps.registry.get(KeyRef.platform()) is None:
        protector.admin.create_key(KeyRef.platform(), actor="ownkey:setup")
    return protector
