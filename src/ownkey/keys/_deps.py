"""Everything the key layer needs from outside, injected once (no globals, no I/O here).

The service layer builds one :class:`KeyDeps` from settings and hands it to the access path, the
administration and the re-wrap jobs, so they share one cache, one audit trail and one clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ownkey.audit import Auditor
from ownkey.envelope import RandomSource
from ownkey.errors import ConfigError
from ownkey.keys._bulkhead import KeyManagerCalls
from ownkey.keys._cache import ScopeKeyCache
from ownkey.keys._ports import KeyProvider, KeyRegistry, RuleStore, ScopeKeyStore
from ownkey.keys._retry import RetryPolicy

__all__ = ["SCOPE_KEY_ID_BYTES", "KeyDeps"]

#: Scope key ids are random: 16 bytes make collisions negligible and keep chat envelopes short.
SCOPE_KEY_ID_BYTES = 16


@dataclass(frozen=True, slots=True)
class KeyDeps:
    """Ports, cache and injected effects of the key layer."""

    providers: Mapping[str, KeyProvider]
    registry: KeyRegistry
    store: ScopeKeyStore
    rules: RuleStore
    auditor: Auditor
    cache: ScopeKeyCache
    clock: Callable[[], float]
    random: RandomSource
    sleep: Callable[[float], None]
    retry: RetryPolicy
    #: the per-org bulkhead of key-manager calls and their counters (one per node)
    calls: KeyManagerCalls = field(default_factory=KeyManagerCalls)

    def provider(self, name: str) -> KeyProvider:
        """The provider registered as ``name``."""
        try:
            return self.providers[name]
        except KeyError:
            raise ConfigError(f"no key provider named {name!r} is configured") from None
