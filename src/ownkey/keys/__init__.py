"""Key hierarchy: scope keys, cache, lifecycle, revocation, rotation. Pure core.

Customer and platform keys (named by :class:`KeyRef`, recorded as :class:`MasterKey`, held by a
:class:`KeyProvider`) wrap random scope keys, one per (orgs, service, scope, epoch, keys); scope
keys seal content (see :mod:`ownkey.envelope`). :class:`ScopeKeys` is the access path with every
check, :class:`KeyAdmin` the lifecycle and revocation rules, :class:`Rewrapper` rotation, backfill
and rekey support. Requirements are in ``docs/spec/key-lifecycle.md``. No I/O: ports, clock,
randomness and sleep are injected through :class:`KeyDeps`.
"""

from ownkey._refs import KeyRef, KeyType
from ownkey.keys._access import ScopeKeys
from ownkey.keys._admin import KeyAdmin, ShredEvidence
from ownkey.keys._bulkhead import (
    LATENCY_BUCKETS,
    CallLimits,
    CallStats,
    KeyCallReport,
    KeyManagerCalls,
)
from ownkey.keys._cache import CacheEntry, CacheLimits, CacheReport, ScopeKeyCache
from ownkey.keys._deps import SCOPE_KEY_ID_BYTES, KeyDeps
from ownkey.keys._flight import SingleFlight
from ownkey.keys._lease import LEASE_USES, Lease
from ownkey.keys._lifecycle import TRANSITIONS, KeyAction, KeyState, destruction_due, next_state
from ownkey.keys._memory import MemoryKeyRegistry, MemoryRuleStore, MemoryScopeKeyStore
from ownkey.keys._ports import (
    DestructionOutcome,
    DestructionReceipt,
    KeyDescription,
    KeyOwnership,
    KeyProvider,
    KeyRegistry,
    RuleStore,
    ScopeKeyStore,
)
from ownkey.keys._records import (
    SCOPE_KEY_PURPOSE,
    MasterKey,
    ScopeIdentity,
    ScopeKeyRecord,
    Selector,
    Wrap,
    record_binding,
    record_context,
    share_context,
    wrap_context,
)
from ownkey.keys._retry import RetryPolicy, call_with_retry
from ownkey.keys._revocation import RevocationPreview, RevocationRule, stored_time
from ownkey.keys._rewrap import Rewrapper, RewrapReport

__all__ = [
    "LATENCY_BUCKETS",
    "LEASE_USES",
    "SCOPE_KEY_ID_BYTES",
    "SCOPE_KEY_PURPOSE",
    "TRANSITIONS",
    "CacheEntry",
    "CacheLimits",
    "CacheReport",
    "CallLimits",
    "CallStats",
    "DestructionOutcome",
    "DestructionReceipt",
    "KeyAction",
    "KeyAdmin",
    "KeyCallReport",
    "KeyDeps",
    "KeyDescription",
    "KeyManagerCalls",
    "KeyOwnership",
    "KeyProvider",
    "KeyRef",
    "KeyRegistry",
    "KeyState",
    "KeyType",
    "Lease",
    "MasterKey",
    "MemoryKeyRegistry",
    "MemoryRuleStore",
    "MemoryScopeKeyStore",
    "RetryPolicy",
    "RevocationPreview",
    "RevocationRule",
    "RewrapReport",
    "Rewrapper",
    "RuleStore",
    "ScopeIdentity",
    "ScopeKeyCache",
    "ScopeKeyRecord",
    "ScopeKeyStore",
    "ScopeKeys",
    "Selector",
    "ShredEvidence",
    "SingleFlight",
    "Wrap",
    "call_with_retry",
    "destruction_due",
    "next_state",
    "record_binding",
    "record_context",
    "share_context",
    "stored_time",
    "wrap_context",
]
