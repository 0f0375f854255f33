"""The customer's key service (KACLS-shaped): wrap, unwrap, rewrap, digest, privileged unwrap.

Every call is decided in one order, and every decision is audited before any key leaves:

1. the tokens: the authentication token (customer's identity provider) for every operation, the
   authorization token (platform) for all but the privileged unwrap; each verified against its
   own issuer. The platform can mint grants, never the user's authentication, so no operation
   (``digest`` and ``rewrap`` included) runs, or names a user in the log, on a grant alone;
2. the same user in both (``email`` in the canonical form of ``ownkey.policy.canonical_email``);
3. the org of the authorization token is the org this service serves;
4. the role the platform granted allows this operation (:data:`ROLES`);
5. no revocation applies: the whole org, the user, the conversation (read on every call);
6. the key operation, with ``org``, service ``1001``, the resource name (the conversation), the
   message id and the author as the encryption context of the wrap (AES-GCM associated data in
   every ownkey provider), so a DEK wrapped for conversation A does not unwrap when the token
   names conversation B, nor for message m1 when asked as m2 (a replay), nor as another
   member's (a re-attribution). At ``/wrap`` the author is the user the identity provider
   authenticated, never a value of the request; the client names both at every later call;
7. one audit record (user, resource, role, reason, outcome) linked into the hash chain; if it
   cannot be written the call fails (AuditUnavailable) and returns no key.

The wrapped key is ``0x01 | u8 len(key_id) | key_id | provider ciphertext``: opaque to the
platform and to the client, which store it next to the message.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ownkey.envelope import encode_fields, sha256
from ownkey.errors import AccessDenied, InvalidCiphertext, InvalidRequest, OwnkeyError
from ownkey.hybrid._store import HybridStore
from ownkey.hybrid._tokens import TokenVerifier
from ownkey.keys import KeyProvider
from ownkey.policy import canonical_email, check_id

__all__ = ["HYBRID_SERVICE_ID", "OPERATIONS", "ROLES", "KeyService", "b64decode", "b64encode"]

HYBRID_SERVICE_ID: Final = "1001"
#: Team chat, client-side for an org with advanced chat encryption on (the platform grants it
#: only then); bound into the wrap like 1001, so a DEK of one service never opens as the other.
TEAM_CHAT_SERVICE_ID: Final = "0008"
CLIENT_SIDE_SERVICES: Final = frozenset({HYBRID_SERVICE_ID, TEAM_CHAT_SERVICE_ID})
#: Which role in the authorization token allows which operation.
ROLES: Final[Mapping[str, frozenset[str]]] = {
    "wrap": frozenset({"writer"}),
    "unwrap": frozenset({"writer", "reader"}),
    "digest": frozenset({"writer", "reader", "verifier"}),
    "rewrap": frozenset({"migrator"}),
}
OPERATIONS: Final = ("wrap", "unwrap", "rewrap", "digest", "privilegedunwrap", "status")
_WRAP_FORMAT = 1
MAX_DEK_BYTES: Final = 64
MAX_REASON_BYTES: Final = 1024
MAX_WRAPPED_BYTES: Final = 4096
#: A message id, by the platform's rule for its slots (and the client's): it is bound into the
#: wrap, so an id the platform could not store would make a wrap nobody can use.
_MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _usable(value: object) -> str:
    """A claim or field that names something (a resource, a role): the value when it is a string
    by the id rule of ``ownkey.policy``, else "" (named nothing: refused). A lone surrogate or a
    NUL would otherwise reach the audit log, which cannot store it (a 500)."""
    if not isinstance(value, str):
        return ""
    try:
        return check_id("claim", value)
    except InvalidRequest:
        return ""


def b64decode(field: str, value: object, limit: int) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * limit:
        raise InvalidRequest(field, "must be base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(field, "must be base64 text") from exc
    if not raw or len(raw) > limit:
        raise InvalidRequest(field, f"must be 1 to {limit} bytes")
    return raw


def _reason(body: Mapping[str, Any]) -> str:
    reason = body.get("reason", "")
    problem = f"must be text of at most {MAX_REASON_BYTES} bytes"
    if not isinstance(reason, str):
        raise InvalidRequest("reason", problem)
    if not reason.isprintable():  # a lone surrogate (not encodable: it was a 500), a control
        raise InvalidRequest("reason", "must be printable text (no control characters)")
    if len(reason.encode("utf-8")) > MAX_REASON_BYTES:
        raise InvalidRequest("reason", problem)
    return reason


class _Call:
    """What the audit record of one call says; filled in as the checks pass."""

    __slots__ = ("author", "message", "reason", "resource", "role", "service", "user")

    def __init__(self) -> None:
        self.service = HYBRID_SERVICE_ID
        self.user = ""
        self.resource = ""
        self.message = ""
        self.author = ""
        self.role = ""
        self.reason = ""


class KeyService:
    """The decisions of the key service, without HTTP (``_app`` maps them to JSON)."""

    def __init__(
        self,
        *,
        org: str,
        provider: KeyProvider,
        key_id: str,
        authentication: TokenVerifier,
        authorization: TokenVerifier,
        store: HybridStore,
        privileged: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.org = org
        self._provider = provider
        self._key_id = key_id
        self._authn = authentication
        self._authz = authorization
        self._store = store
        self._privileged = privileged
        self._clock = clock

    @property
    def provider(self) -> KeyProvider:
        """The provider of the service's key (the XKS API shares it, ``_xks``)."""
        return self._provider

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def store(self) -> HybridStore:
        """Revocations and the audit chain (shared with the XKS API)."""
        return self._store

    # -- the checks ---------------------------------------------------------------------------

    def _context(self, call: _Call) -> dict[str, str]:
        return {
            "org": self.org,
            "service": call.service,
            "resource": call.resource,
            "message": call.message,
            "author": call.author,
        }

    @staticmethod
    def _bind(body: Mapping[str, Any], call: _Call, *, author: str | None = None) -> None:
        """The message id (and, except at ``/wrap``, the author) a call names; both are bound
        into the wrap, so naming others than the wrap's makes it not open."""
        message = body.get("message")
        if not isinstance(message, str) or not _MESSAGE_ID.match(message):
            raise InvalidRequest("message", "must be the message id: 1-128 of [A-Za-z0-9._-]")
        call.message = message
        call.author = (
            author if author is not None else canonical_email("author", body.get("author"))
        )

    def _authorize(self, op: str, body: Mapping[str, Any], call: _Call) -> None:
        """Both tokens, for every operation that names a resource. The user comes from the
        customer's identity provider first: the platform can mint any grant, so a grant alone
        never names the user of a call, not even in a refused call's audit record."""
        identity = self._authn.verify(body.get("authentication"))
        call.user = str(identity["email"])  # canonical (TokenVerifier)
        claims = self._authz.verify(body.get("authorization"))
        call.resource = _usable(claims.get("resource_name"))
        call.role = _usable(claims.get("role"))
        service = claims.get("service", HYBRID_SERVICE_ID)
        if not isinstance(service, str) or service not in CLIENT_SIDE_SERVICES:
            raise AccessDenied("authorization token names no client-side service", reason="policy")
        call.service = str(service)
        if claims["email"] != call.user:
            raise AccessDenied("the two tokens name different users", reason="policy")
        if claims.get("org") != self.org:
            raise AccessDenied("authorization token is for another org", reason="policy")
        if not call.resource:
            raise AccessDenied("authorization token names no resource", reason="policy")
        if call.role not in ROLES[op]:
            raise AccessDenied(f"role {call.role or '-'} may not {op}", reason="policy")
        self._check_revocation(call)

    def _check_revocation(self, call: _Call) -> None:
        kind = self._store.revoked(user=call.user, conversation=call.resource or None)
        if kind is not None:
            raise AccessDenied(f"access revoked for this {kind}", reason="revocation_rule")

    def _wrap(self, dek: bytes, call: _Call) -> bytes:
        key_id = self._key_id.encode("utf-8")
        inner = self._provider.wrap(self._key_id, dek, self._context(call))
        return bytes((_WRAP_FORMAT, len(key_id))) + key_id + inner

    def _unwrap(self, wrapped: bytes, call: _Call) -> bytes:
        if len(wrapped) < 2 or wrapped[0] != _WRAP_FORMAT or len(wrapped) < 2 + wrapped[1]:
            raise InvalidCiphertext()
        key_id = wrapped[2 : 2 + wrapped[1]].decode("utf-8", "replace")
        if key_id != self._key_id:
            raise InvalidCiphertext()
        return self._provider.unwrap(key_id, wrapped[2 + wrapped[1] :], self._context(call))

    def _digest(self, dek: bytes, call: _Call) -> str:
        fields = encode_fields(
            "ownkey/hybrid/digest",
            self.org,
            call.service,
            call.resource,
            call.message,
            call.author,
            dek,
        )
        return b64encode(sha256(fields))

    # -- audit around every call --------------------------------------------------------------

    def _audited(
        self, op: str, body: Mapping[str, Any], run: Callable[[_Call], dict[str, str]]
    ) -> dict[str, str]:
        call = _Call()
        try:
            call.reason = _reason(body)
            result = run(call)
        except OwnkeyError as exc:
            outcome = "denied" if isinstance(exc, AccessDenied | InvalidCiphertext) else "error"
            self._record(op, call, outcome, str(exc))
            if isinstance(exc, InvalidCiphertext):
                raise AccessDenied(
                    "wrapped key does not open for this resource", reason="policy"
                ) from exc
            raise
        self._record(op, call, "ok", "")
        return result

    def _record(self, op: str, call: _Call, outcome: str, why: str) -> None:
        self._store.append(
            {
                "at_ms": int(self._clock() * 1000),
                "op": op,
                "org": self.org,
                "user": call.user,
                "resource": call.resource,
                "message": call.message,
                "author": call.author,
                "role": call.role,
                "service": call.service,
                "reason": call.reason,
                "outcome": outcome,
                "why": why,
            }
        )

    # -- the operations -----------------------------------------------------------------------

    def wrap(self, body: Mapping[str, Any]) -> dict[str, str]:
        def run(call: _Call) -> dict[str, str]:
            self._authorize("wrap", body, call)
            self._bind(body, call, author=call.user)
            dek = b64decode("key", body.get("key"), MAX_DEK_BYTES)
            return {"wrapped_key": b64encode(self._wrap(dek, call)), "author": call.author}

        return self._audited("wrap", body, run)

    def unwrap(self, body: Mapping[str, Any]) -> dict[str, str]:
        def run(call: _Call) -> dict[str, str]:
            self._authorize("unwrap", body, call)
            self._bind(body, call)
            wrapped = b64decode("wrapped_key", body.get("wrapped_key"), MAX_WRAPPED_BYTES)
            return {"key": b64encode(self._unwrap(wrapped, call))}

        return self._audited("unwrap", body, run)

    def digest(self, body: Mapping[str, Any]) -> dict[str, str]:
        def run(call: _Call) -> dict[str, str]:
            self._authorize("digest", body, call)
            self._bind(body, call)
            wrapped = b64decode("wrapped_key", body.get("wrapped_key"), MAX_WRAPPED_BYTES)
            dek = self._unwrap(wrapped, call)
            return {"resource_key_hash": self._digest(dek, call)}

        return self._audited("digest", body, run)

    def rewrap(self, body: Mapping[str, Any]) -> dict[str, str]:
        """Re-wrap under the key's current version (after a rotation), same resource."""

        def run(call: _Call) -> dict[str, str]:
            self._authorize("rewrap", body, call)
            self._bind(body, call)
            wrapped = b64decode("wrapped_key", body.get("wrapped_key"), MAX_WRAPPED_BYTES)
            dek = self._unwrap(wrapped, call)
            return {
                "wrapped_key": b64encode(self._wrap(dek, call)),
                "resource_key_hash": self._digest(dek, call),
            }

        return self._audited("rewrap", body, run)

    def privileged_unwrap(self, body: Mapping[str, Any]) -> dict[str, str]:
        """The customer's own export / eDiscovery: its identity provider's token only, and the
        email must be on the configured privileged list. The platform cannot call this."""

        def run(call: _Call) -> dict[str, str]:
            identity = self._authn.verify(body.get("authentication"))
            call.user = str(identity["email"])
            call.role = "privileged"
            resource = _usable(body.get("resource_name"))
            if not resource:
                raise InvalidRequest("resource_name", "must name the resource (by the id rule)")
            call.resource = resource
            self._bind(body, call)
            if call.user not in self._privileged:
                raise AccessDenied("user is not allowed the privileged unwrap", reason="policy")
            self._check_revocation(call)
            wrapped = b64decode("wrapped_key", body.get("wrapped_key"), MAX_WRAPPED_BYTES)
            service = body.get("service", HYBRID_SERVICE_ID)
            if not isinstance(service, str) or service not in CLIENT_SIDE_SERVICES:
                raise InvalidRequest("service", "must be 1001 or 0008")
            call.service = str(service)
            return {"key": b64encode(self._unwrap(wrapped, call))}

        return self._audited("privilegedunwrap", body, run)

    def status(self) -> dict[str, Any]:
        state = self._provider.describe(self._key_id).state
        return {
            "server_type": "KACLS",
            "vendor_id": "ownkey",
            "name": f"ownkey hybrid key service ({self.org})",
            "version": "1",
            "org": self.org,
            "key_state": str(state),
            "operations_supported": list(OPERATIONS),
        }
