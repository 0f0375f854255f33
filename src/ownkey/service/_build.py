"""``build_protector``: the library's front door, the memory profile of the one builder.

Nothing here is global: each call builds its own providers, stores, cache and audit sink unless
given some, so two Protectors in one process (two nodes in a test) share exactly what the caller
shares between them. The platform key is created on first build if the registry has none.
Requests carry their ``orgs`` (there is no org directory in this profile); see
:mod:`ownkey.service._builder` for the SQL profile, where the directory is the authority.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from ownkey.audit import AuditSink
from ownkey.envelope import RandomSource
from ownkey.keys import KeyProvider, KeyRegistry, RuleStore, ScopeKeyStore
from ownkey.service._builder import Effects, MemoryProfile
from ownkey.service._plan import PolicyFn
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
    profile = MemoryProfile(
        providers=providers,
        scope_keys=scope_keys,
        registry=registry,
        rules=rules,
        audit=audit,
        policy=policy,
    )
    return profile.build(settings or ProtectorSettings(), Effects(clock, random, sleep))
