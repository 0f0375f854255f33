"""What an audit event says: who used or changed which key, for what, and with which outcome.

Events are plain, frozen data so that any sink (memory, SQL with a hash chain, a SIEM) can store
them without knowing ownkey's internals. ``detail`` carries the encryption context sent to the
key manager and other facts (reason, counts, digests); it never carries key material, plaintext
or a wrapped key, so an audit log can be handed to a customer as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = ["AuditAction", "AuditEvent", "Outcome"]


class AuditAction(StrEnum):
    """Every kind of event ownkey records. Values are stable: sinks and exports store them."""

    # key-manager calls
    WRAP = "key_manager.wrap"
    UNWRAP = "key_manager.unwrap"
    DESCRIBE = "key_manager.describe"
    # admin changes to customer and platform keys
    KEY_CREATE = "key.create"
    KEY_REGISTER = "key.register"
    KEY_ROTATE = "key.rotate"
    KEY_DISABLE = "key.disable"
    KEY_ENABLE = "key.enable"
    KEY_SCHEDULE_DESTRUCTION = "key.schedule_destruction"
    KEY_CANCEL_DESTRUCTION = "key.cancel_destruction"
    KEY_DESTROY = "key.destroy"
    # scope keys
    SCOPE_KEY_CREATE = "scope_key.create"
    SCOPE_KEY_REWRAP = "scope_key.rewrap"
    SCOPE_KEY_RETIRE = "scope_key.retire"
    SCOPE_KEY_SHRED = "scope_key.shred"
    SCOPE_KEY_SCHEDULE_SHRED = "scope_key.schedule_shred"
    SCOPE_KEY_CANCEL_SHRED = "scope_key.cancel_shred"
    # revocation
    REVOCATION_ADD = "revocation.add"
    REVOCATION_REMOVE = "revocation.remove"
    CACHE_EVICT = "cache.evict"
    # the org directory: settings and licences decide which key protects new content
    ORG_CREATE = "org.create"
    ORG_UPDATE = "org.update"
    ORG_USERS = "org.users"
    PROVIDER_CONFIGURE = "provider.configure"
    # the data plane said no
    ACCESS_DENIED = "access.denied"
    # the data plane sealed or opened content: who, which asset, how often in a minute
    CONTENT_ACCESS = "content.access"
    # an operator acknowledged that the database went back in time (a restore)
    RESTORE_RECONCILED = "audit.restore_reconciled"


class Outcome(StrEnum):
    """How the recorded operation ended."""

    OK = "ok"
    DENIED = "denied"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"


def _frozen(detail: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(detail))


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One recorded fact.

    ``org`` names the organisation whose log the event belongs to (the owner of the customer key
    used or changed, or the org whose rule denied an access); ``None`` means the platform's own
    log (platform-key calls). ``key`` is the key reference as text (``customer:acme``,
    ``platform``), ``actor`` who asked for an admin change.
    """

    at: float
    action: AuditAction
    outcome: Outcome
    org: str | None = None
    key: str | None = None
    actor: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", _frozen(self.detail))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict with stable field names, for export and for hash chains."""
        return {
            "at": self.at,
            "action": self.action.value,
            "outcome": self.outcome.value,
            "org": self.org,
            "key": self.key,
            "actor": self.actor,
            "detail": dict(sorted(self.detail.items())),
        }
