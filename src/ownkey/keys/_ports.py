"""The ports of the key hierarchy: key managers, the scope-key store, the key registry, rules.

Each is a small Protocol so that adapters (``providers/``, ``storage/``) plug in without the core
knowing them, and so that one contract suite in :mod:`ownkey.testing` can hold every
implementation to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from ownkey._refs import KeyRef
from ownkey.keys._lifecycle import KeyState
from ownkey.keys._records import MasterKey, ScopeIdentity, ScopeKeyRecord, Selector, Wrap
from ownkey.keys._revocation import RevocationRule

__all__ = [
    "DestructionOutcome",
    "DestructionReceipt",
    "KeyDescription",
    "KeyOwnership",
    "KeyProvider",
    "KeyRegistry",
    "RuleStore",
    "ScopeKeyStore",
]


@dataclass(frozen=True, slots=True)
class KeyDescription:
    """What a key manager says about one of its keys."""

    key_id: str
    state: KeyState
    primary_version: str
    versions: tuple[str, ...]
    destroy_at: float | None = None
    label: str = ""


class DestructionOutcome(StrEnum):
    """What became of a key when ownkey destroyed it (values are stored in audit events)."""

    #: the key manager destroyed every version: nothing left to unwrap with
    DESTROYED = "destroyed"
    #: the key manager accepted a deletion it carries out itself later (AWS KMS)
    DELETION_SCHEDULED = "deletion_scheduled"
    #: ownkey is not configured to destroy this key: it remains in the customer's key manager
    RETAINED = "retained"


_STATEMENTS = {
    DestructionOutcome.DESTROYED: "the key manager destroyed the key",
    DestructionOutcome.DELETION_SCHEDULED: (
        "the key manager scheduled the key's deletion; until then it can unwrap any copy of a "
        "wrapped share"
    ),
    DestructionOutcome.RETAINED: (
        "key remains in the customer's key manager: ownkey is not configured to destroy it, and "
        "it can unwrap any copy of a wrapped share made before the shred"
    ),
}


@dataclass(frozen=True, slots=True)
class DestructionReceipt:
    """The key manager's answer to a destruction, recorded as part of the shred evidence (KL-9).

    ``answer`` holds what the manager itself reported (AWS KMS key state and deletion date, the
    KMIP objects revoked, destroyed and still located, the PKCS#11 objects left), as text, so
    that the evidence is not only ownkey's word. Nothing secret goes in it.
    """

    outcome: DestructionOutcome
    answer: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "answer", MappingProxyType(dict(self.answer)))

    @property
    def statement(self) -> str:
        """One plain sentence saying what happened to the key."""
        return _STATEMENTS[self.outcome]


class KeyProvider(Protocol):
    """A key manager holding customer or platform keys (local store, HSM, KMIP, cloud KMS).

    Error contract, which every provider translates its SDK's errors into:

    - :class:`~ownkey.errors.AccessDenied` when the key refuses on purpose (disabled, pending
      destruction, destroyed, no permission), with ``reason`` set;
    - :class:`~ownkey.errors.KeyUnavailable` when the manager cannot answer (timeout, network,
      5xx, throttling): the caller retries;
    - :class:`~ownkey.errors.InvalidCiphertext` when a wrapped blob does not open under the key
      and ``context`` (a wrong context is indistinguishable from a damaged blob);
    - :class:`~ownkey.errors.NotFound` for a key id it does not know;
    - :class:`~ownkey.errors.LifecycleError` for a state change the key's state forbids.

    ``context`` is always required and always bound: a blob wrapped under one context never
    unwraps under another.
    """

    @property
    def name(self) -> str:
        """The provider's registered name (``local``, ``pkcs11``, ...)."""
        ...

    def create_key(self, *, label: str) -> str:
        """Create an enabled key; return its id."""
        ...

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        """Encrypt ``plaintext`` (a 32-byte share) under the key's primary version."""
        ...

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        """Decrypt a blob made by :meth:`wrap`, under whichever version made it."""
        ...

    def describe(self, key_id: str) -> KeyDescription:
        """The key's state and versions."""
        ...

    def rotate(self, key_id: str) -> str:
        """Make a new primary version (older versions still unwrap); return its name."""
        ...

    def disable(self, key_id: str) -> None:
        """Refuse every wrap and unwrap until :meth:`enable`."""
        ...

    def enable(self, key_id: str) -> None:
        """Undo :meth:`disable`."""
        ...

    def schedule_destruction(self, key_id: str, *, destroy_at: float) -> None:
        """Mark a disabled key for destruction at ``destroy_at`` (still cancellable)."""
        ...

    def cancel_destruction(self, key_id: str) -> None:
        """Take a key out of pending destruction; it stays disabled."""
        ...

    def destroy(self, key_id: str) -> DestructionReceipt:
        """Destroy every version of the key now (its waiting period has passed), or schedule
        its deletion in a manager that deletes on its own schedule, or, for a customer's
        external key that ownkey was not configured to destroy (``owns_destruction``, off by
        default), leave it there and say so; idempotent. Return what the manager answered."""
        ...


@runtime_checkable
class KeyOwnership(Protocol):
    """A key manager whose every key ownkey itself created, so it can say for whom.

    The embedded stores implement it: a key id alone proves nothing (any admin can type one),
    but the label ownkey gave the key at creation names the key reference it was made for, and
    nobody outside ownkey can set it. Registering such a key for another reference is refused.
    """

    def created_for(self, key_id: str) -> str | None:
        """The label the key was created with (``str(KeyRef)``); None for an unknown key."""
        ...


class ScopeKeyStore(Protocol):
    """Where scope-key records live (memory here; SQL behind the same interface later)."""

    def create(self, record: ScopeKeyRecord) -> ScopeKeyRecord:
        """Insert ``record`` unless a sealable record of the same identity exists; return the
        record that is now current for the identity (first writer wins across nodes)."""
        ...

    def get(self, key_id: bytes) -> ScopeKeyRecord | None:
        """The record with this id, shredded or not."""
        ...

    def current(self, identity: ScopeIdentity) -> ScopeKeyRecord | None:
        """The sealable, unshredded record for ``identity``, if any."""
        ...

    def retire(self, key_id: bytes) -> None:
        """Stop using this record for new content (it still opens old content)."""
        ...

    def replace_wraps(
        self,
        key_id: bytes,
        expected: tuple[Wrap, ...],
        wraps: tuple[Wrap, ...],
        *,
        retire: bool = False,
    ) -> bool:
        """Swap the wraps if they still equal ``expected`` (compare-and-set); say if it did.

        ``retire`` also stops the record sealing, in the same transaction: a move to other keys
        must never leave a moment where the moved scope key is current for sealing (SK-7)."""
        ...

    def shred(self, key_id: bytes, at: float) -> ScopeKeyRecord | None:
        """Delete the wrapped shares, keep a tombstone; return it (None for an unknown id)."""
        ...

    def scan(
        self, selector: Selector, *, include_shredded: bool = False
    ) -> Iterable[ScopeKeyRecord]:
        """Every record the selector matches; safe to modify the store while iterating."""
        ...


class KeyRegistry(Protocol):
    """ownkey's records of customer and platform keys, by reference."""

    def get(self, ref: KeyRef) -> MasterKey | None:
        """The record for ``ref``, if registered."""
        ...

    def put(self, key: MasterKey) -> None:
        """Insert or replace the record for ``key.ref``."""
        ...

    def all(self) -> Sequence[MasterKey]:
        """Every record."""
        ...

    def versions(self, ref: KeyRef) -> Sequence[str]:
        """Every primary version recorded for ``ref``, oldest first: a stored wrap must name
        one of them (finding 2 of issue 10)."""
        ...


class RuleStore(Protocol):
    """Revocation rules in force."""

    def add(self, rule: RevocationRule) -> None:
        """Store a rule (its ``rule_id`` is unique)."""
        ...

    def remove(self, rule_id: str) -> RevocationRule:
        """Delete a rule and return it; raise NotFound for an unknown id."""
        ...

    def all(self) -> Sequence[RevocationRule]:
        """Every rule in force."""
        ...

    def for_key(self, ref: KeyRef) -> Sequence[RevocationRule]:
        """The rules that revoke uses of ``ref`` (the hot path asks this on every call)."""
        ...
