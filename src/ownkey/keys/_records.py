"""The stored shapes of the key hierarchy: master keys, scope-key records and their wraps.

A scope key (SK) exists in storage only as a :class:`ScopeKeyRecord`: its public attributes
(orgs, service, scope, epoch) and one :class:`Wrap` per share, each share wrapped under one key
of the protection plan (SK-2). The material itself is never stored; it is recomputed by
unwrapping every share and combining them. A record whose wraps are deleted (crypto-shredding)
stays as a tombstone so that opening its content says *destroyed*, forever (KL-9).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from ownkey.keys._lifecycle import KeyState
from ownkey.keys._refs import KeyRef

__all__ = [
    "SCOPE_KEY_PURPOSE",
    "MasterKey",
    "ScopeIdentity",
    "ScopeKeyRecord",
    "Selector",
    "Wrap",
    "describe_selector",
    "wrap_context",
]

#: The ``purpose`` every wrapping context carries, so a customer's KMS policy can allow exactly
#: this use of its key.
SCOPE_KEY_PURPOSE = "ownkey.scope-key"
_MAX_CONTEXT_VALUE = 512


@dataclass(frozen=True, slots=True)
class MasterKey:
    """ownkey's record of a customer or platform key: where it lives and its lifecycle state.

    ``version`` is the provider's primary version when ownkey last created or rotated the key;
    every wrap records the version it was made under, so a re-wrap knows what is left to do.
    """

    ref: KeyRef
    provider: str
    key_id: str
    version: str
    state: KeyState
    created_at: float
    changed_at: float
    destroy_at: float | None = None


@dataclass(frozen=True, slots=True)
class Wrap:
    """One share of a scope key, wrapped under one key (``blob`` is what the provider returned)."""

    key: KeyRef
    provider: str
    key_id: str
    version: str
    blob: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ScopeIdentity:
    """What one scope key covers: the orgs, service, scope and epoch, under which keys (SK-1)."""

    orgs: tuple[str, ...]
    service_id: str
    scope: str
    epoch_start: int
    epoch_seconds: int
    keys: tuple[KeyRef, ...]

    @property
    def epoch_end(self) -> int:
        """The first second after this epoch."""
        return self.epoch_start + self.epoch_seconds


@dataclass(frozen=True, slots=True)
class ScopeKeyRecord:
    """A stored scope key: public attributes and wrapped shares in combining order (SK-2)."""

    key_id: bytes
    orgs: tuple[str, ...]
    service_id: str
    scope: str
    epoch_start: int
    epoch_seconds: int
    wraps: tuple[Wrap, ...]
    created_at: float
    sealable: bool = True
    shredded_at: float | None = None

    @property
    def keys(self) -> tuple[KeyRef, ...]:
        """Every key a share is wrapped under, sorted and unique: all are needed to open."""
        return tuple(sorted(set(wrap.key for wrap in self.wraps)))

    @property
    def identity(self) -> ScopeIdentity:
        """The identity this record serves (its keys follow its current wraps)."""
        return ScopeIdentity(
            self.orgs, self.service_id, self.scope, self.epoch_start, self.epoch_seconds, self.keys
        )

    @property
    def shredded(self) -> bool:
        """Whether the wrapped shares were deleted (crypto-shredding)."""
        return self.shredded_at is not None


def _bounded(value: str) -> str:
    """Long values go to the key manager as a digest: contexts have size limits."""
    if len(value.encode("utf-8")) <= _MAX_CONTEXT_VALUE:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def wrap_context(identity: ScopeIdentity, scope_key_id: bytes, key: KeyRef) -> dict[str, str]:
    """The encryption context sent to the key manager with one share (SK-3).

    It names the use (``purpose``), the orgs, the service ID, the scope, the epoch and the scope
    key id, so the customer's own KMS log shows which asset type used its key and its key policy
    can condition on them; ``org`` is the owner of the wrapping key (absent for the platform key).
    It depends only on attributes that never change, so a re-wrap sends the same context.
    """
    context = {
        "purpose": SCOPE_KEY_PURPOSE,
        "orgs": _bounded(",".join(identity.orgs)),
        "service_id": identity.service_id,
        "scope": _bounded(identity.scope),
        "epoch": _iso(identity.epoch_start),
        "epoch_seconds": str(identity.epoch_seconds),
        "scope_key_id": scope_key_id.hex(),
    }
    if key.org is not None:
        context["org"] = _bounded(key.org)
    return context


@dataclass(frozen=True, slots=True)
class Selector:
    """Which scope keys an eviction, a scan, a preview or a revocation rule is about.

    Every field that is set must match; ``since``/``until`` select the epochs that overlap the
    time window ``[since, until)`` (CA-4, RV-1).
    """

    key: KeyRef | None = None
    org: str | None = None
    service_id: str | None = None
    scope: str | None = None
    since: float | None = None
    until: float | None = None
    key_id: bytes | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("a time window needs since < until")

    def matches(self, identity: ScopeIdentity, key_id: bytes | None = None) -> bool:
        """Whether a scope key with this identity (and id) is selected."""
        return (
            (self.key is None or self.key in identity.keys)
            and (self.org is None or self.org in identity.orgs)
            and (self.service_id is None or self.service_id == identity.service_id)
            and (self.scope is None or self.scope == identity.scope)
            and (self.since is None or identity.epoch_end > self.since)
            and (self.until is None or identity.epoch_start < self.until)
            and (self.key_id is None or self.key_id == key_id)
        )


def describe_selector(selector: Selector) -> dict[str, str]:
    """The fields a selector sets, as strings (for audit details and reports)."""
    out: dict[str, str] = {}
    if selector.key is not None:
        out["key"] = str(selector.key)
    for name in ("org", "service_id", "scope", "since", "until"):
        value = getattr(selector, name)
        if value is not None:
            out[name] = str(value)
    if selector.key_id is not None:
        out["scope_key_id"] = selector.key_id.hex()
    return out
