"""The shape of one catalog entry: an asset type of the seed, as plain immutable data.

The policy engine reads these fields instead of branching on service IDs, so that a change to what
the seed protects is a change to data in ``_services.py``, reviewed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AssetType", "ContainerKind", "Group", "OwnerKind"]


class Group(StrEnum):
    """The headings under which the seed lists its asset types."""

    INTERNAL = "internal"
    CONTACT_CENTER = "contact_center"
    AI_COMPANION = "ai_companion"
    CUSTOM_AI_COMPANION = "custom_ai_companion"
    CMK_HYBRID = "cmk_hybrid"

    @property
    def heading(self) -> str:
        """The heading as the seed prints it."""
        return _GROUP_TITLES[self]


_GROUP_TITLES = {
    Group.INTERNAL: "Internal assets",
    Group.CONTACT_CENTER: "Zoom Contact Center",
    Group.AI_COMPANION: "AI Companion",
    Group.CUSTOM_AI_COMPANION: "Custom AI Companion",
    Group.CMK_HYBRID: "CMK Hybrid",
}


class OwnerKind(StrEnum):
    """Who an asset belongs to; only ``user`` owners need a CMK licence."""

    USER = "user"
    CALL_QUEUE = "call_queue"
    ROOM = "room"
    ACCOUNT = "account"


class ContainerKind(StrEnum):
    """Where an asset lives; team chat rules look at the members of a ``chat`` or ``channel``."""

    CHAT = "chat"
    CHANNEL = "channel"
    MEETING = "meeting"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class AssetType:
    """One asset type of the seed.

    ``included`` and ``excluded`` together are the whole component vocabulary of the service
    (``docs/catalog.md``); a component in neither is an error, one in ``excluded`` always
    stays under the platform key. ``seed`` and ``excluded_note`` quote the seed so that the
    generated ``docs/catalog.md`` says in the seed's own words what is and is not protected.
    """

    service_id: str
    name: str
    group: Group
    seed: str
    included: tuple[str, ...]
    excluded: tuple[str, ...] = ()
    excluded_note: str = ""
    owner_kinds: frozenset[OwnerKind] = frozenset({OwnerKind.USER})
    containers: frozenset[ContainerKind] = frozenset({ContainerKind.MEETING, ContainerKind.NONE})
    #: Who must hold the CMK licence when a user owns the asset (the meeting organiser for 0001).
    licence_holder: str = "owner"
    #: False only for 9999: protected whenever the org has a customer key.
    needs_enabling: bool = True
    #: False only for 9999: the seed says it ignores licensing, even for user owners.
    needs_licence: bool = True
    #: An org setting that must be on for the CK to apply (``compliance_archival`` for 0006).
    requires_setting: str | None = None
    #: 1001: encrypted on the client, the platform never holds the key.
    client_side: bool = False
    #: Components that are AI-generated derivatives of the source asset (sealed under its service).
    ai_generated: frozenset[str] = frozenset()
    #: The seed's note that a third-party model provider only applies regular encryption.
    third_party_model_note: bool = False
    #: The seed's note that large organisations can also protect log and index data.
    large_org_log_index_note: bool = False

    def __post_init__(self) -> None:
        if len(self.service_id) != 4 or not self.service_id.isdigit():
            raise ValueError(f"service ID must be 4 digits: {self.service_id!r}")
        overlap = set(self.included) & set(self.excluded)
        if overlap or not self.included:
            raise ValueError(f"{self.service_id}: bad component vocabulary {sorted(overlap)}")
        if not self.ai_generated <= set(self.included):
            raise ValueError(f"{self.service_id}: AI-generated components must be included")

    @property
    def components(self) -> frozenset[str]:
        """Every component name the service knows, included or excluded."""
        return frozenset(self.included) | frozenset(self.excluded)

    def excludes(self, component: str) -> bool:
        """Whether the seed keeps ``component`` out of CMK protection."""
        return component in self.excluded
