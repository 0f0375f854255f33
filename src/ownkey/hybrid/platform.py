"""The platform's side of CMK Hybrid (service 1001): authorization tokens and ciphertext storage.

The platform never holds a key that opens 1001 content. What it does:

* it **issues authorization tokens** (``POST {prefix}/authorize``) only to a member of the
  conversation, after verifying the user's sign-in token from the org's identity provider: a
  short-lived (5 min) EdDSA JWT with ``email``, ``org``, ``resource_name`` (the conversation)
  and ``role``, signed by a platform key published, with every still-valid older key, as a
  JWKS behind OIDC discovery (``{prefix}/.well-known/openid-configuration``) so that the
  customer's key service can verify it and follow key rotation;
* it **stores and serves the ciphertext** as an ordinary asset of its asset store (``PUT``/``GET
  {prefix}/conversations/{id}/messages/{message}``, listing ``GET .../messages``), members
  only, a message id replaceable by its writer only, and deletes a conversation's objects
  (``DELETE {prefix}/conversations/{id}``, org admins); it never sees a DEK.

:func:`hybrid_router` is mounted by the platform API (``ownkey serve``, with its asset store);
``python -m ownkey.api.hybrid_platform`` runs it alone on loopback (tests and the demo). Members
come from a :class:`Membership` port, ciphertext goes to a :class:`CiphertextStore` port (this
package never reaches the platform's database itself: pyproject's import contracts).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    Conflict,
    InvalidRequest,
    KeyUnavailable,
    NotFound,
    OwnkeyError,
)
from ownkey.hybrid._signing import SigningKeys
from ownkey.hybrid._tokens import Issuer, JwksCache, TokenVerifier
from ownkey.policy import canonical_email

__all__ = [
    "AUTHORIZATION_SECONDS",
    "AuthorizationIssuer",
    "CiphertextStore",
    "DirectoryMembership",
    "JsonMembership",
    "Membership",
    "OrgUsers",
    "build_platform_router",
    "hybrid_router",
    "mount_platform_routes",
]

AUTHORIZATION_SECONDS: Final = 300
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
_ROLES: Final = frozenset({"writer", "reader"})
HYBRID_CHAT: Final = "1001"
TEAM_CHAT: Final = "0008"
_MAX_MESSAGE = 1024 * 1024


class Membership(Protocol):
    """Who is in a conversation: the platform's own directory answers."""

    def org_of(self, email: str) -> str | None: ...

    def is_member(self, org: str, conversation: str, email: str) -> bool: ...

    def advanced_chat_encryption(self, org: str) -> bool: ...

    def is_admin(self, org: str, email: str) -> bool: ...


class CiphertextStore(Protocol):
    """Where the platform keeps client-sealed messages: its asset store in ``ownkey serve``
    (``ownkey.service.AssetCiphertexts``). ``put`` raises Conflict for another member's message
    id and InvalidRequest for bytes that are not a sealed message; ``get`` raises NotFound."""

    def put(
        self, org: str, service: str, conversation: str, message: str, writer: str, sealed: bytes
    ) -> object: ...

    def get(self, org: str, conversation: str, message: str) -> bytes: ...

    def list(self, org: str, conversation: str) -> list[str]: ...

    def delete_conversation(self, org: str, conversation: str) -> int: ...


def _canonical(email: object) -> str | None:
    """``email`` by the one identity rule (``ownkey.policy.canonical_email``), or None: an entry
    of a member list that is no valid ASCII address matches no one."""
    try:
        return canonical_email("email", email)
    except InvalidRequest:
        return None


def _has(names: object, email: str) -> bool:
    """Whether the list ``names`` holds ``email`` (canonical) under the one identity rule."""
    return isinstance(names, list) and any(_canonical(name) == email for name in names)


def _is_names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


def _is_entry(entry: object) -> bool:
    """One org's entry of the membership file, as :class:`JsonMembership` documents it."""
    if not isinstance(entry, dict):
        return False
    conversations = entry.get("conversations", {})
    return (
        _is_names(entry.get("users", []))
        and _is_names(entry.get("admins", []))
        and isinstance(conversations, dict)
        and all(_is_names(members) for members in conversations.values())
    )


class JsonMembership:
    """Members from a JSON file ``{org: {"users": [...], "conversations": {id: [emails]},
    "admins": [...], "advanced_chat_encryption": bool}}``, re-read on each call so that a
    change applies to the next token."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _load(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError(f"the membership file {self._path} is unreadable") from exc
        if not isinstance(loaded, dict):
            return {}  # no orgs: nobody is a member
        if not all(_is_entry(entry) for entry in loaded.values()):
            raise ConfigError(f"the membership file {self._path} is not of the documented shape")
        return loaded

    def org_of(self, email: str) -> str | None:
        """The one org listing ``email``; None if none does or several do (fail closed, as
        the org directory: no org can claim another's user)."""
        orgs = [org for org, entry in self._load().items() if _has(entry.get("users"), email)]
        return str(orgs[0]) if len(orgs) == 1 else None

    def is_member(self, org: str, conversation: str, email: str) -> bool:
        members = self._load().get(org, {}).get("conversations", {}).get(conversation, [])
        return _has(members, email)

    def advanced_chat_encryption(self, org: str) -> bool:
        return self._load().get(org, {}).get("advanced_chat_encryption") is True

    def is_admin(self, org: str, email: str) -> bool:
        return _has(self._load().get(org, {}).get("admins", []), email)


class OrgUsers(Protocol):
    """The platform's org directory as membership needs it (``ownkey serve``'s runtime)."""

    def org_of_user(self, email: str) -> str | None: ...

    def advanced_chat_encryption(self, org: str) -> bool: ...


class DirectoryMembership:
    """Who is in the org and its flag from the platform's org directory; who is in each
    conversation (and who administers the org's conversations) from the chat product's
    member list, here the JSON file: a user removed from the org loses every grant at once,
    whatever a conversation's list still says."""

    def __init__(self, directory: OrgUsers, conversations: Membership) -> None:
        self._directory = directory
        self._conversations = conversations

    def org_of(self, email: str) -> str | None:
        return self._directory.org_of_user(email)

    def is_member(self, org: str, conversation: str, email: str) -> bool:
        return self._directory.org_of_user(email) == org and self._conversations.is_member(
            org, conversation, email
        )

    def advanced_chat_encryption(self, org: str) -> bool:
        return self._directory.advanced_chat_encryption(org)

    def is_admin(self, org: str, email: str) -> bool:
        return self._directory.org_of_user(email) == org and self._conversations.is_admin(
            org, email
        )


class AuthorizationIssuer:
    """Mints authorization tokens for members only."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: SigningKeys,
        members: Membership,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self._members = members
        self._clock = clock

    def authorize(
        self, email: str, conversation: str, role: str, service: str = HYBRID_CHAT
    ) -> str:
        """A grant for ``service`` 1001 (hybrid chat) or 0008 (team chat of an org with advanced
        chat encryption on: its chat goes through the same client-side path)."""
        if service not in (HYBRID_CHAT, TEAM_CHAT):
            raise InvalidRequest("service", "must be 1001 or 0008")
        if not _ID.match(conversation):
            raise InvalidRequest("conversation", "must be 1-128 characters of [A-Za-z0-9._-]")
        if role not in _ROLES:
            raise InvalidRequest("role", "must be writer or reader")
        email = canonical_email("email", email)
        org = self._members.org_of(email)
        if org is None or not self._members.is_member(org, conversation, email):
            raise AccessDenied("not a member of this conversation", reason="policy")
        if service == TEAM_CHAT and not self._members.advanced_chat_encryption(org):
            raise AccessDenied("advanced chat encryption is off for this org", reason="policy")
        now = int(self._clock())
        return self.keys.sign(
            {
                "iss": self.issuer,
                "aud": self.audience,
                "email": email,
                "org": org,
                "resource_name": conversation,
                "role": role,
                "service": service,
                "iat": now,
                "nbf": now,
                "exp": now + AUTHORIZATION_SECONDS,
                "jti": uuid.uuid4().hex,
            }
        )


_STATUS: Final[tuple[tuple[type[OwnkeyError], int], ...]] = (
    (AccessDenied, 403),
    (InvalidRequest, 400),
    (NotFound, 404),
    (Conflict, 409),
    (KeyUnavailable, 503),
)


def _problem(exc: OwnkeyError) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    return JSONResponse({"error": {"code": status, "message": str(exc)}}, status_code=status)


def hybrid_router(
    issuer: AuthorizationIssuer,
    sign_in: TokenVerifier,
    members: Membership,
    ciphertexts: CiphertextStore,
    *,
    prefix: str = "/hybrid",
) -> APIRouter:
    """The platform routes of service 1001 (see the module docstring)."""
    router = APIRouter(prefix=prefix)

    def caller(request: Request) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        claims = sign_in.verify(header.removeprefix("Bearer ").strip())
        email = str(claims["email"])  # canonical: TokenVerifier applies canonical_email
        org = members.org_of(email)
        if org is None:
            raise AccessDenied("unknown user", reason="policy")
        return email, org

    @router.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, str]:
        return {"issuer": issuer.issuer, "jwks_uri": issuer.issuer + "/.well-known/jwks.json"}

    @router.get("/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        return issuer.keys.jwks()

    @router.post("/authorize")
    async def authorize(request: Request) -> Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise InvalidRequest("body", "must be a JSON object")
            claims = sign_in.verify(body.get("authentication"))
            token = issuer.authorize(
                str(claims["email"]),
                str(body.get("conversation", "")),
                str(body.get("role", "")),
                str(body.get("service", HYBRID_CHAT)),
            )
        except OwnkeyError as exc:
            return _problem(exc)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            return _problem(InvalidRequest("body", "must be JSON"))
        return JSONResponse({"authorization": token})

    def _ids(conversation: str, message: str = "m") -> None:
        if not _ID.match(conversation) or not _ID.match(message):
            raise InvalidRequest("path", "conversation and message ids are [A-Za-z0-9._-]")

    def member(request: Request, conversation: str) -> tuple[str, str]:
        email, org = caller(request)
        if not members.is_member(org, conversation, email):
            raise AccessDenied("not a member of this conversation", reason="policy")
        return email, org

    @router.put("/conversations/{conversation}/messages/{message}")
    async def put_message(
        conversation: str, message: str, request: Request, service: str = HYBRID_CHAT
    ) -> Response:
        """Store a sealed message as an asset of ``service`` (1001, or 0008 of an org with
        advanced chat encryption); 409 if another member wrote this message id."""
        try:
            _ids(conversation, message)
            email, org = member(request, conversation)
            if service not in (HYBRID_CHAT, TEAM_CHAT):
                raise InvalidRequest("service", "must be 1001 or 0008")
            if service == TEAM_CHAT and not members.advanced_chat_encryption(org):
                raise AccessDenied("advanced chat encryption is off for this org", reason="policy")
            raw = await request.body()
            if not raw or len(raw) > _MAX_MESSAGE:
                raise InvalidRequest("body", "must be 1 byte to 1 MiB of ciphertext")
            ciphertexts.put(org, service, conversation, message, email, raw)
        except OwnkeyError as exc:
            return _problem(exc)
        return Response(status_code=204)

    @router.get("/conversations/{conversation}/messages/{message}")
    def get_message(conversation: str, message: str, request: Request) -> Response:
        try:
            _ids(conversation, message)
            _email, org = member(request, conversation)
            sealed = ciphertexts.get(org, conversation, message)
        except NotFound:
            return _problem(NotFound("no such message"))
        except OwnkeyError as exc:
            return _problem(exc)
        return Response(sealed, media_type="application/octet-stream")

    @router.get("/conversations/{conversation}/messages")
    def list_messages(conversation: str, request: Request) -> Response:
        try:
            _ids(conversation)
            _email, org = member(request, conversation)
            names = ciphertexts.list(org, conversation)
        except OwnkeyError as exc:
            return _problem(exc)
        return JSONResponse({"messages": names})

    @router.delete("/conversations/{conversation}")
    def delete_conversation(conversation: str, request: Request) -> Response:
        """Delete the conversation's ciphertext (org admins). The cryptographic shred of 1001
        content is the customer's: ``ownkey hybrid revoke conversation ID`` at its key service
        makes every copy, backups included, unopenable."""
        try:
            _ids(conversation)
            email, org = caller(request)
            if not members.is_admin(org, email):
                raise AccessDenied("only an org admin deletes a conversation", reason="policy")
            deleted = ciphertexts.delete_conversation(org, conversation)
        except OwnkeyError as exc:
            return _problem(exc)
        return JSONResponse({"deleted": deleted})

    return router


def build_platform_router(
    *,
    state: Path,
    members: Path,
    issuer_url: str,
    idp: str,
    idp_audience: str,
    kacls_audience: str,
    ciphertexts: CiphertextStore,
    membership: Membership | None = None,
    jwks_min_refresh_seconds: float = 5.0,
) -> APIRouter:
    """The hybrid router with its keys in ``state`` (created, 0600), ciphertext in
    ``ciphertexts`` and members from ``membership`` (default: the file ``members``).

    ``jwks_min_refresh_seconds`` bounds how often an unknown ``kid`` (or a failed fetch) makes
    the platform ask the identity provider again.

    The users' sign-in tokens (``idp_audience``) must be for another audience than the key
    service's (``kacls_audience``): the platform holds every sign-in token, and one the key
    service accepted would be the user's authentication in the platform's hands (ConfigError).
    """
    if idp_audience == kacls_audience:
        raise ConfigError(
            "the sign-in audience must differ from the key service's: the platform holds every"
            " sign-in token and must hold none the key service accepts as the user's"
        )
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    membership = membership if membership is not None else JsonMembership(members)
    issuer = AuthorizationIssuer(
        issuer=issuer_url.rstrip("/"),
        audience=kacls_audience,
        keys=SigningKeys.persistent(state / "authz-signing-keys.json"),
        members=membership,
    )
    sign_in = TokenVerifier(
        Issuer(idp, idp_audience),
        JwksCache(
            idp, http=httpx.Client(timeout=5.0), min_refresh_seconds=jwks_min_refresh_seconds
        ),
        kind="sign-in",
    )
    return hybrid_router(issuer, sign_in, membership, ciphertexts)


def mount_platform_routes(
    app: FastAPI,
    env: Mapping[str, str] | None = None,
    *,
    ciphertexts: CiphertextStore | None = None,
    directory: OrgUsers | None = None,
) -> bool:
    """Mount the hybrid routes on the platform API when configured; True when mounted.

    ``OWNKEY_HYBRID_ISSUER`` (the public URL of ``/hybrid`` on this API, the grants' ``iss``),
    ``OWNKEY_HYBRID_IDP`` (issuer of the users' sign-in tokens) and ``OWNKEY_HYBRID_MEMBERS``
    (conversations' members and org admins, JSON) are required; ``OWNKEY_HYBRID_IDP_AUDIENCE``
    (default ``ownkey-platform``) and ``OWNKEY_HYBRID_AUDIENCE`` (the key service's, default
    ``ownkey-hybrid``) are optional. Grant keys live in ``$OWNKEY_HOME/hybrid-platform``; the
    ciphertext goes to ``ciphertexts`` (the API's asset store: required, fail closed); with
    ``directory``, a user's org and the advanced chat encryption flag come from the platform's
    org directory instead of the file. Without the three settings, nothing is mounted (the
    deployment has no CMK Hybrid customer).
    """
    env = os.environ if env is None else env
    issuer, idp, members = (
        env.get("OWNKEY_HYBRID_ISSUER"),
        env.get("OWNKEY_HYBRID_IDP"),
        env.get("OWNKEY_HYBRID_MEMBERS"),
    )
    if not (issuer or idp or members):
        return False
    if not (issuer and idp and members):
        raise ConfigError("CMK Hybrid needs OWNKEY_HYBRID_ISSUER, _IDP and _MEMBERS together")
    if ciphertexts is None:
        raise ConfigError("CMK Hybrid needs the platform's asset store for its ciphertext")
    home = Path(env.get("OWNKEY_HOME") or Path.home() / ".ownkey")
    file = JsonMembership(Path(members))
    app.include_router(
        build_platform_router(
            state=home / "hybrid-platform",
            members=Path(members),
            issuer_url=issuer,
            idp=idp,
            idp_audience=env.get("OWNKEY_HYBRID_IDP_AUDIENCE", "ownkey-platform"),
            kacls_audience=env.get("OWNKEY_HYBRID_AUDIENCE", "ownkey-hybrid"),
            ciphertexts=ciphertexts,
            membership=file if directory is None else DirectoryMembership(directory, file),
        )
    )
    return True
