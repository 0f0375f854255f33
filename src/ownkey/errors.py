"""The one error tree of ownkey.

Every error that ownkey raises on purpose derives from :class:`OwnkeyError`, so a caller can catch
one class at its boundary. Third-party errors are translated at the adapter that met them
(``raise AccessDenied(...) from exc``). No message ever carries key material, plaintext or a
secret; messages name the field or the object, never its secret value.

::

    OwnkeyError
    ├── InvalidCiphertext     an envelope failed to open: wrong key, wrong context, or any changed,
    │                         missing, extra, reordered or truncated byte. Deliberately opaque.
    ├── AccessDenied          a key refused on purpose: revoked, disabled, destroyed, or a
    │                         revocation rule matched. Fail closed at once; never retried, never
    │                         replaced by another key. Render the content as a tombstone.
    ├── KeyUnavailable        the key manager could not answer: timeout, network, 5xx. Retried
    │                         with bounded back-off inside a deadline; never falls back to a
    │                         weaker key.
    │   ├── AuditUnavailable  the audit sink could not record a key operation, so the operation
    │   │                     was refused (fail closed). Transient like an outage, but an
    │   │                     operator must look at the audit sink, not the key manager.
    │   └── RetiredScopeKey   content was sealed under a scope key retired meanwhile (a rekey
    │                         started), so it was not stored: seal it again and store that.
    ├── AuditDamaged          a stored audit record cannot be read: the log was changed outside
    │                         ownkey. ``ownkey audit verify ORG`` says where.
    ├── InvalidRequest        a request field is malformed or out of range (``field`` says
    │   │                     which); exit code 2 on the CLI, HTTP 422.
    │   └── PolicyError       a policy request is malformed or names something unknown.
    ├── Conflict              the request is well formed but conflicts with what exists (a name
    │   │                     taken, a key bound to another org, CMK without a key); HTTP 409.
    │   └── PlanChanged       the policy now names other keys than a stored asset's scope key:
    │                         a rekey keeps the keys, so run the backfill first.
    ├── ConfigError           ownkey or a provider is configured wrongly (a missing setting, an
    │                         unusable key id, a missing optional dependency). Never a bad
    │                         request value (InvalidRequest) or a clash with state (Conflict).
    ├── LifecycleError        an illegal key-state transition (e.g. enabling a destroyed key).
    ├── NotFound              a named object does not exist (or is not visible to the caller).
    └── LimitExceeded         a documented limit was hit (message too large, key use limit).
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AuditDamaged",
    "AuditUnavailable",
    "ConfigError",
    "Conflict",
    "InvalidCiphertext",
    "InvalidRequest",
    "KeyUnavailable",
    "LifecycleError",
    "LimitExceeded",
    "NotFound",
    "OwnkeyError",
    "PlanChanged",
    "PolicyError",
    "RetiredScopeKey",
]


class OwnkeyError(Exception):
    """Root of every error ownkey raises on purpose."""


class InvalidCiphertext(OwnkeyError):  # noqa: N818 - named after pyca's InvalidToken habit
    """An envelope could not be opened. Carries no detail that helps an attacker."""

    def __init__(self) -> None:
        super().__init__("invalid ciphertext")


class AccessDenied(OwnkeyError):  # noqa: N818 - the name platform code renders
    """A key refused on purpose; the content must be shown as a tombstone.

    ``reason`` is one of ``revoked``, ``disabled``, ``pending_destruction``, ``destroyed``,
    ``revocation_rule``, ``provider_denied``, ``policy``; it is safe to show to the customer.
    """

    def __init__(self, message: str, *, reason: str = "provider_denied") -> None:
        super().__init__(message)
        self.reason = reason


class KeyUnavailable(OwnkeyError):  # noqa: N818
    """The key manager could not be reached or answered with a transient failure."""


class AuditUnavailable(KeyUnavailable):
    """The audit sink could not record; the key operation it was meant to record did not happen.

    A subclass of :class:`KeyUnavailable` because the caller should treat it the same way (try
    again later, never fall back to another key); a class of its own so that operators look at
    the audit sink rather than at the key manager.
    """


class RetiredScopeKey(KeyUnavailable):
    """The content was sealed under a scope key that has since been retired (a rekey started):
    it was not stored. Seal it again (a fresh scope key will be used) and store that.

    A :class:`KeyUnavailable` because the caller's answer is the same: try again, and the next
    attempt gets a fresh scope key; ``scope_key_id`` names the retired one (not a secret).
    """

    def __init__(self, scope_key_id: bytes) -> None:
        super().__init__(f"scope key {scope_key_id.hex()} was retired while sealing; seal again")
        self.scope_key_id = scope_key_id


class AuditDamaged(OwnkeyError):  # noqa: N818 - reads as what the log is
    """A stored audit record is not an event any more (edited in the database)."""


class InvalidRequest(OwnkeyError):  # noqa: N818 - reads as what the caller sent
    """A request field is malformed or out of range; ``field`` is its dotted path.

    One class for every way in (library, CLI, API), so that a bad value is answered the same way
    wherever it arrives: exit code 2 on the CLI, HTTP 422 on the API.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PolicyError(InvalidRequest):
    """A policy request is malformed or names something the catalog does not know."""


class Conflict(OwnkeyError):  # noqa: N818 - reads as what the request met
    """A well-formed request that conflicts with the current state (a name taken, a key id
    already bound to another key reference). Not retried as is."""


class PlanChanged(Conflict):
    """The policy now names other keys than those a stored asset's scope key is under.

    A rekey keeps the keys; moving content between keys is a backfill. Run the backfill for the
    service (or give the rekey the orgs' current settings), then rekey again.
    """


class ConfigError(OwnkeyError):
    """ownkey or one of its providers is configured wrongly."""


class LifecycleError(OwnkeyError):
    """A key-state transition that the lifecycle table forbids."""


class NotFound(OwnkeyError):  # noqa: N818
    """A named object does not exist, or is not visible to the caller."""


class LimitExceeded(OwnkeyError):  # noqa: N818
    """A documented limit was hit (payload size, key use count)."""
