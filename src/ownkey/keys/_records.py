"""The stored shapes of the key hierarchy: master keys, scope-key records and their wraps.

A scope key (SK) exists in storage only as a :class:`ScopeKeyRecord`: its public attributes
(orgs, service, scope, epoch) and one :class:`Wrap` per share, each share wrapped under one key
of the protection plan (SK-2). The material itself is never stored; it is recomputed by
unwrapping every share and combining them. A record whose wraps are deleted (crypto-shredding)
stays as a tombstone so that opening its content says *destroyed*, forever (KL-9).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ownkey._refs import KeyRef
from ownkey.envelope import encode_fields
from ownkey.keys._lifecycle import KeyState

__all__ = [
    "RECORD_FORMAT",
    "SCOPE_KEY_PURPOSE",
    "MasterKey",
    "ScopeIdentity",
    "ScopeKeyRecord",
    "Selector",
    "Wrap",
    "describe_selector",
    "record_binding",
    "record_context",
    "share_context",
    "wrap_context",
]

#: The ``purpose`` every wrapping context carries, so a customer's KMS policy can allow exactly
#: this use of its key.
SCOPE_KEY_PURPOSE = "ownkey.scope-key"
_MAX_CONTEXT_VALUE = 512
#: The format new scope-key records are written in. Format 1 (before issue 10): contexts without
#: the key list, orgs joined by ``,``, shares combined without a binding. Format 2: the share
#: index, the key reference and the full key list in every wrap's context, canonical encodings,
#: and the record's attributes bound into the share combination (docs/spec/key-lifecycle.md SK-3).
#: Format 3 (issue 23): also the key list the record was *created* with (``origin``), so that a
#: record moved to other keys (a backfill) is known as such by the key managers themselves, and
#: never seals again (SK-7).
RECORD_FORMAT = 3


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
    format: int = 1
    #: The keys the record was created with, sorted (format 3; empty before): a backfill moves
    #: shares to other keys but never changes this, and every share's context names it.
    origin: tuple[KeyRef, ...] = ()

    @property
    def moved(self) -> bool:
        """Whether the record's keys differ from the ones it was created with (or are unknown:
        formats before 3). Such a record may open content, never seal it (SK-7)."""
        return self.format < 3 or tuple(sorted(set(self.origin))) != self.keys

    @property
    def wrap_keys(self) -> tuple[KeyRef, ...]:
        """The key of each share, in combining order."""
        return tuple(wrap.key for wrap in self.wraps)

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


def _bounded_pair(context: dict[str, str], name: str, value: str) -> None:
    """Put ``value`` under ``name``, or its digest under ``name_sha256`` when too long: the
    two names differ, so no literal value can pass for a digest (finding 6 of issue 10)."""
    if len(value.encode("utf-8")) <= _MAX_CONTEXT_VALUE:
        context[name] = value
    else:
        context[f"{name}_sha256"] = hashlib.sha256(value.encode("utf-8")).hexdigest()


def _json_list(values: Sequence[str]) -> str:
    """A list as a JSON array: injective, and readable in a key manager's log."""
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def share_context(
    identity: ScopeIdentity,
    scope_key_id: bytes,
    wrap_keys: Sequence[KeyRef],
    index: int,
    *,
    record_format: int = RECORD_FORMAT,
    origin: Sequence[KeyRef] | None = None,
) -> dict[str, str]:
    """The encryption context of share ``index`` of a record whose shares are wrapped under
    ``wrap_keys`` (combining order), for the record's format (SK-3).

    Format 2 adds what makes a stored row impossible to edit silently: which key this share is
    under (``key``), its place (``share`` of ``shares``) and every key of the record (``keys``).
    The key manager checks the context on unwrap, so a row whose key reference, order or key
    list was changed no longer unwraps, and the customer's own KMS log shows every key its share
    is combined with.

    Format 3 adds ``origin``, the keys the record was created with (``wrap_keys`` sorted when
    not given): a backfill keeps it, so a moved record's wraps say so to the key manager and an
    edited ``origin`` column no longer unwraps (SK-7).
    """
    key = wrap_keys[index]
    if record_format < 2:
        return wrap_context(identity, scope_key_id, key)
    context = {
        "purpose": SCOPE_KEY_PURPOSE,
        "format": str(record_format),
        "service_id": identity.service_id,
        "epoch": _iso(identity.epoch_start),
        "epoch_seconds": str(identity.epoch_seconds),
        "scope_key_id": scope_key_id.hex(),
        "share": str(index),
        "shares": str(len(wrap_keys)),
    }
    _bounded_pair(context, "orgs", _json_list(identity.orgs))
    _bounded_pair(context, "scope", identity.scope)
    _bounded_pair(context, "key", str(key))
    _bounded_pair(context, "keys", _json_list([str(ref) for ref in wrap_keys]))
    if key.org is not None:
        _bounded_pair(context, "org", key.org)
    if record_format >= 3:
        created = sorted(set(wrap_keys if origin is None else origin))
        _bounded_pair(context, "origin", _json_list([str(ref) for ref in created]))
    return context


def record_context(record: ScopeKeyRecord, index: int) -> dict[str, str]:
    """The context share ``index`` of ``record`` was wrapped under (its format's, its origin)."""
    return share_context(
        record.identity,
        record.key_id,
        record.wrap_keys,
        index,
        record_format=record.format,
        origin=record.origin,
    )


def record_binding(record: ScopeKeyRecord) -> bytes | None:
    """What a format-2 record's shares are combined with (ENV2-6.1): the attributes that never
    change for the life of the scope key, canonically encoded. None for format 1.

    The key list is not part of it: a backfill (RW-3, RW-4) moves a share to another key and
    must keep the scope key; the key list is bound by every wrap's context instead.
    """
    if record.format < 2:
        return None
    return encode_fields(
        b"ownkey/scope-key",
        str(record.format),
        record.key_id,
        encode_fields(*record.orgs),
        record.service_id,
        record.scope,
        str(record.epoch_start),
        str(record.epoch_seconds),
    )


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
