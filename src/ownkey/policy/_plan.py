"""The policy engine's answer: which keys must all be available to open an asset, and why.

:class:`ProtectionPlan` checks its own invariants when built (keys never empty, sorted, unique,
consistent with ``protection``), so that no rule, present or future, can hand the platform a plan
that would seal content under no key or under a key list in an unstable order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ownkey._refs import KeyRef, KeyType

__all__ = ["KeyRef", "KeyType", "Protection", "ProtectionPlan", "Reason", "Rule"]


class Protection(StrEnum):
    """How an asset is protected as a whole."""

    CUSTOMER = "customer"  # at least one customer key among the keys
    PLATFORM = "platform"  # the platform key only
    CLIENT_SIDE = "client_side"  # encrypted on the client; the platform never holds the key


class Rule(StrEnum):
    """The rules of the policy contract (docs/policy.md); every reason names the one it applies."""

    CATALOG = "catalog"
    EXCLUDED_COMPONENT = "excluded-component"
    ORG_ENABLEMENT = "org-enablement"
    PERSONAL_IDENTIFIERS = "personal-identifiers"
    OWNER_LICENCE = "owner-licence"
    ORGANISER_LICENCE = "organiser-licence"
    NO_LICENCE_NEEDED = "no-licence-needed"
    COMPLIANCE_ARCHIVAL = "compliance-archival"
    TEAM_CHAT_ANY_MEMBER = "team-chat-any-member"
    TEAM_CHAT_CHANNEL_OWNER = "team-chat-channel-owner"
    TEAM_CHAT_CROSS_ORG = "team-chat-cross-org"
    CODE_SNIPPET_CREATOR = "code-snippet-creator"
    ADVANCED_CHAT_ENCRYPTION = "advanced-chat-encryption"
    HYBRID_CHAT = "hybrid-chat"
    LOG_INDEX = "log-index"
    THIRD_PARTY_MODEL = "third-party-model"
    AI_DERIVATIVE = "ai-derivative"


@dataclass(frozen=True, slots=True)
class Reason:
    """One plain-language reason, tagged with the rule that produced it."""

    rule: Rule
    text: str

    def __str__(self) -> str:
        return f"{self.rule.value}: {self.text}"


@dataclass(frozen=True, slots=True)
class ProtectionPlan:
    """Every key that must be available to open one asset, and the reasons for each decision.

    Build it with :meth:`of`, which sorts and de-duplicates ``keys`` and derives ``protection``.
    """

    service_id: str
    protection: Protection
    keys: tuple[KeyRef, ...]
    third_party_egress: bool
    reasons: tuple[Reason, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a plan needs at least one key")
        if list(self.keys) != sorted(set(self.keys), key=lambda key: key.sort_key):
            raise ValueError("plan keys must be sorted and unique")
        if self.protection is not _protection_of(self.keys):
            raise ValueError(f"protection {self.protection} does not match the keys")
        if not self.reasons:
            raise ValueError("every plan says why")

    @classmethod
    def of(
        cls,
        service_id: str,
        keys: tuple[KeyRef, ...] | list[KeyRef],
        reasons: tuple[Reason, ...] | list[Reason],
        *,
        third_party_egress: bool = False,
    ) -> ProtectionPlan:
        """Build a plan from keys in any order, possibly repeated."""
        ordered = tuple(sorted(set(keys), key=lambda key: key.sort_key))
        return cls(service_id, _protection_of(ordered), ordered, third_party_egress, tuple(reasons))

    @property
    def rules(self) -> frozenset[Rule]:
        """The rules that took part in this decision."""
        return frozenset(reason.rule for reason in self.reasons)

    def to_json(self) -> dict[str, object]:
        """The plan as the contract (docs/policy.md) prints it, in its field order."""
        return {
            "service_id": self.service_id,
            "protection": self.protection.value,
            "keys": [key.to_json() for key in self.keys],
            "third_party_egress": self.third_party_egress,
            "reasons": [str(reason) for reason in self.reasons],
        }


def _protection_of(keys: tuple[KeyRef, ...]) -> Protection:
    types = {key.type for key in keys}
    if KeyType.HYBRID in types:
        if types != {KeyType.HYBRID}:
            raise ValueError("client-side plans hold hybrid keys only")
        return Protection.CLIENT_SIDE
    return Protection.CUSTOMER if KeyType.CUSTOMER in types else Protection.PLATFORM
