"""Names of the keys that wrap scope keys: an org's customer key, the platform key, a hybrid key.

A :class:`KeyRef` says *which* key a protection plan requires, not where it lives; the key
registry maps it to a provider and a key id. The key layer keeps its own small type instead of
importing the policy engine's, so that the hierarchy can be used (and tested) without policy; the
service layer translates one into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CUSTOMER", "HYBRID", "KINDS", "PLATFORM", "KeyRef"]

CUSTOMER: Final = "customer"
PLATFORM: Final = "platform"
HYBRID: Final = "hybrid"
#: The kinds of key, in the order a plan lists them.
KINDS: Final = (CUSTOMER, PLATFORM, HYBRID)
_RANK = {kind: rank for rank, kind in enumerate(KINDS)}


@dataclass(frozen=True, slots=True)
class KeyRef:
    """``customer:acme``, ``platform`` or ``hybrid:acme``; orders like a plan's ``keys``."""

    kind: str
    org: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _RANK:
            raise ValueError(f"unknown key kind {self.kind!r}; one of {', '.join(KINDS)}")
        if (self.kind == PLATFORM) != (self.org is None):
            raise ValueError("the platform key has no org; customer and hybrid keys need one")
        if self.org is not None and not self.org:
            raise ValueError("an org name cannot be empty")

    @classmethod
    def customer(cls, org: str) -> KeyRef:
        """The customer key of ``org``."""
        return cls(CUSTOMER, org)

    @classmethod
    def platform(cls) -> KeyRef:
        """The platform key."""
        return cls(PLATFORM)

    @classmethod
    def hybrid(cls, org: str) -> KeyRef:
        """The client-side key of ``org``; a platform deployment never holds it."""
        return cls(HYBRID, org)

    @classmethod
    def parse(cls, text: str) -> KeyRef:
        """Read ``customer:acme`` / ``platform`` / ``hybrid:acme``; raise ValueError otherwise."""
        kind, sep, org = text.partition(":")
        return cls(kind, org if sep else None)

    @property
    def sort_key(self) -> tuple[int, str]:
        """Customer keys by org, then the platform key, then hybrid keys by org."""
        return (_RANK[self.kind], self.org or "")

    def __lt__(self, other: KeyRef) -> bool:
        return self.sort_key < other.sort_key

    def __str__(self) -> str:
        return self.kind if self.org is None else f"{self.kind}:{self.org}"
