"""The one name of a key that wraps scope keys: an org's customer key, the platform or a hybrid key.

The policy engine answers with :class:`KeyRef` values and the key hierarchy looks them up, so both
pure-core packages need the same type without importing each other (import-linter keeps them
siblings, docs/architecture.md). This module sits one layer below both; ``ownkey.policy`` and
``ownkey.keys`` re-export the class under the same name. A :class:`KeyRef` says *which* key is
required, never where it lives: the key registry maps it to a provider and a key id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["KeyRef", "KeyType"]


class KeyType(StrEnum):
    """Kinds of key a plan can require; the order of the members is the order of a plan's keys."""

    CUSTOMER = "customer"
    PLATFORM = "platform"
    HYBRID = "hybrid"


_RANK = {kind: rank for rank, kind in enumerate(KeyType)}
_KINDS = ", ".join(KeyType)


@dataclass(frozen=True, slots=True)
class KeyRef:
    """``customer:acme``, ``platform`` or ``hybrid:acme``; orders like a plan's ``keys``."""

    type: KeyType
    org: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, KeyType):
            raise TypeError("a key reference's type is a KeyType; read text with KeyRef.parse")
        if (self.type is KeyType.PLATFORM) != (self.org is None):
            raise ValueError("the platform key has no org; customer and hybrid keys need one")
        if self.org is not None and not self.org:
            raise ValueError("an org name cannot be empty")

    @classmethod
    def customer(cls, org: str) -> KeyRef:
        """The customer key of ``org``."""
        return cls(KeyType.CUSTOMER, org)

    @classmethod
    def platform(cls) -> KeyRef:
        """The platform key ("regular encryption")."""
        return cls(KeyType.PLATFORM)

    @classmethod
    def hybrid(cls, org: str) -> KeyRef:
        """The client-side (hybrid) key of ``org``, which a platform deployment never holds."""
        return cls(KeyType.HYBRID, org)

    @classmethod
    def parse(cls, text: str) -> KeyRef:
        """Read ``customer:acme`` / ``platform`` / ``hybrid:acme``; raise ValueError otherwise."""
        kind, sep, org = text.partition(":")
        if kind not in _RANK:
            raise ValueError(f"unknown key kind {kind!r}; one of {_KINDS}")
        return cls(KeyType(kind), org if sep else None)

    @property
    def sort_key(self) -> tuple[int, str]:
        """Customer keys by org, then the platform key, then hybrid keys by org."""
        return (_RANK[self.type], self.org or "")

    def __lt__(self, other: KeyRef) -> bool:
        return self.sort_key < other.sort_key

    def __str__(self) -> str:
        return self.type.value if self.org is None else f"{self.type.value}:{self.org}"

    def to_json(self) -> dict[str, str]:
        """``{"type": "customer", "org": "acme"}`` or ``{"type": "platform"}``."""
        if self.org is None:
            return {"type": self.type.value}
        return {"type": self.type.value, "org": self.org}
