"""The platform's side of CMK Hybrid (service 1001): authorization tokens and ciphertext storage.

The platform never holds a key that opens 1001 content. What it does:

* it **issues authorization tokens** (``POST {prefix}/authorize``) only to a member of the
  conversation, after verifying the user's sign-in token from the org's identity provider: a
  short-lived (5 min) EdDSA JWT with ``email``, ``org``, ``resource_name`` (the conversation)
  and ``role``, signed by a platform key published, with every still-valid older key, as a
  JWKS behind OIDC discovery (``{prefix}/.well-known/openid-configuration``) so that the
  customer's key service can verify it and follow key rotation;
* it **stores and serves the ciphertext** as an ordinary object (``PUT``/``GET
  {prefix}/conversations/{id}/messages/{message}``, listing ``GET .../messages``), members
  only, and deletes a conversation's objects (``DELETE {prefix}/conversations/{id}``, org
  admins); it never sees a DEK.

:func:`hybrid_router` is mounted by the platform API; ``python -m ownkey.hybrid.platform`` runs
it alone on loopback (tests and the demo). Members come from a :class:`Membership` port.
"""

from __future__ import annotations

import argparse
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

from ownkey.errors import AccessDenied, ConfigError, InvalidRequest, KeyUnavailable, OwnkeyError
from ownkey.hybrid._signing import SigningKeys
from ownkey.hybrid._tokens import Issuer, JwksCache, TokenVerifier

__all__ = [
    "AUTHORIZATION_SECONDS",
    "AuthorizationIssuer",
    "JsonMembership",
    "Membership",
    "build_platform_router",
    "hybrid_router",
    "main",
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


class JsonMembership:
    """Members from a JSON file ``{org: {"users": [...], "conversations": {id: [emails]},
    "admins": [...], "advanced_chat_encryption": bool}}``, re-read on each call so that a
    change applies to the next token."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _load(self) -> dict[str, Any]:
        loaded = json.loads(self._path.read_text(encoding="utf-8"))
        return loaded if isinstance(loaded, dict) else {}

    def org_of(self, email: str) -> str | None:
        for org, entry in self._load().items():
            if email in [u.lower() for u in entry.get("users", [])]:
                return str(org)
        return None

    def is_member(self, org: str, conversation: str, email: str) -> bool:
        members = self._load().get(org, {}).get("conversations", {}).get(conversation, [])
        return email in [m.lower() for m in members]

    def advanced_chat_encryption(self, org: str) -> bool:
        return self._load().get(org, {}).get("advanced_chat_encryption") is True

    def is_admin(self, org: str, email: str) -> bool:
        return email in [a.lower() for a in self._load().get(org, {}).get("admins", [])]


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
        email = email.lower()
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


def _problem(exc: OwnkeyError) -> JSONResponse:
    status = (
        403
        if isinstance(exc, AccessDenied)
        else 400
        if isinstance(exc, InvalidRequest)
        else 503
        if isinstance(exc, KeyUnavailable)
        else 500
    )
    return JSONResponse({"error": {"code": status, "message": str(exc)}}, status_code=status)


def hybrid_router(
    issuer: AuthorizationIssuer,
    sign_in: TokenVerifier,
    members: Membership,
    objects: Path,
    *,
    prefix: str = "/hybrid",
) -> APIRouter:
    """The platform routes of service 1001 (see the module docstring)."""
    router = APIRouter(prefix=prefix)

    def caller(request: Request) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        claims = sign_in.verify(header.removeprefix("Bearer ").strip())
        email = str(claims["email"]).lower()
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
        except ValueError:
            return _problem(InvalidRequest("body", "must be JSON"))
        return JSONResponse({"authorization": token})

    def _object(org: str, conversation: str, message: str) -> Path:
        if not _ID.match(conversation) or not _ID.match(message):
            raise InvalidRequest("path", "conversation and message ids are [A-Za-z0-9._-]")
        return objects / org / conversation / message

    @router.put("/conversations/{conversation}/messages/{message}")
    async def put_message(conversation: str, message: str, request: Request) -> Response:
        try:
            email, org = caller(request)
            if not members.is_member(org, conversation, email):
                raise AccessDenied("not a member of this conversation", reason="policy")
            raw = await request.body()
            if not raw or len(raw) > _MAX_MESSAGE:
                raise InvalidRequest("body", "must be 1 byte to 1 MiB of ciphertext")
            path = _object(org, conversation, message)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
        except OwnkeyError as exc:
            return _problem(exc)
        return Response(status_code=204)

    @router.get("/conversations/{conversation}/messages/{message}")
    def get_message(conversation: str, message: str, request: Request) -> Response:
        try:
            email, org = caller(request)
            if not members.is_member(org, conversation, email):
                raise AccessDenied("not a member of this conversation", reason="policy")
            path = _object(org, conversation, message)
            if not path.is_file():
                return JSONResponse({"error": {"code": 404, "message": "no such message"}}, 404)
            return Response(path.read_bytes(), media_type="application/octet-stream")
        except OwnkeyError as exc:
            return _problem(exc)

    @router.get("/conversations/{conversation}/messages")
    def list_messages(conversation: str, request: Request) -> Response:
        try:
            email, org = caller(request)
            if not members.is_member(org, conversation, email):
                raise AccessDenied("not a member of this conversation", reason="policy")
            folder = _object(org, conversation, "x").parent
            names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        except OwnkeyError as exc:
            return _problem(exc)
        return JSONResponse({"messages": names})

    @router.delete("/conversations/{conversation}")
    def delete_conversation(conversation: str, request: Request) -> Response:
        """Delete the conversation's ciphertext (org admins). The cryptographic shred of 1001
        content is the customer's: ``ownkey hybrid revoke conversation ID`` at its key service
        makes every copy, backups included, unopenable."""
        try:
            email, org = caller(request)
            if not members.is_admin(org, email):
                raise AccessDenied("only an org admin deletes a conversation", reason="policy")
            folder = _object(org, conversation, "x").parent
            deleted = 0
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink()
                    deleted += 1
                folder.rmdir()
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
    jwks_min_refresh_seconds: float = 5.0,
) -> APIRouter:
    """The hybrid router with its keys in ``state`` (created, 0600) and members from a file.

    ``jwks_min_refresh_seconds`` bounds how often an unknown ``kid`` (or a failed fetch) makes
    the platform ask the identity provider again."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    membership = JsonMembership(members)
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
    return hybrid_router(issuer, sign_in, membership, state / "objects")


def mount_platform_routes(app: FastAPI, env: Mapping[str, str] | None = None) -> bool:
    """Mount the hybrid routes on the platform API when configured; True when mounted.

    ``OWNKEY_HYBRID_ISSUER`` (the public URL of ``/hybrid`` on this API, the grants' ``iss``),
    ``OWNKEY_HYBRID_IDP`` (issuer of the users' sign-in tokens) and ``OWNKEY_HYBRID_MEMBERS``
    (membership JSON) are required; ``OWNKEY_HYBRID_IDP_AUDIENCE`` (default ``ownkey-platform``)
    and ``OWNKEY_HYBRID_AUDIENCE`` (the key service's, default ``ownkey-hybrid``) are optional.
    Keys and objects live in ``$OWNKEY_HOME/hybrid-platform``. Without the three, nothing is
    mounted (the deployment has no CMK Hybrid customer).
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
    home = Path(env.get("OWNKEY_HOME") or Path.home() / ".ownkey")
    app.include_router(
        build_platform_router(
            state=home / "hybrid-platform",
            members=Path(members),
            issuer_url=issuer,
            idp=idp,
            idp_audience=env.get("OWNKEY_HYBRID_IDP_AUDIENCE", "ownkey-platform"),
            kacls_audience=env.get("OWNKEY_HYBRID_AUDIENCE", "ownkey-hybrid"),
        )
    )
    return True


def main(argv: list[str] | None = None) -> None:
    """Run the platform's hybrid routes alone on loopback; print ``listening <url>``."""
    import socket

    import uvicorn

    parser = argparse.ArgumentParser(prog="ownkey.hybrid.platform")
    parser.add_argument("--state", type=Path, required=True, help="platform state directory")
    parser.add_argument("--members", type=Path)
    parser.add_argument("--idp", help="issuer URL of the users' sign-in tokens")
    parser.add_argument("--idp-audience", default="ownkey-platform")
    parser.add_argument("--kacls-audience", default="ownkey-hybrid")
    parser.add_argument("--port", type=int, default=0, help="loopback port (default: any free)")
    parser.add_argument("--jwks-min-refresh", type=float, default=5.0, help="seconds")
    parser.add_argument("--rotate", action="store_true", help="rotate the grant keys and exit")
    parser.add_argument("--retire", metavar="KID", help="unpublish an old grant key and exit")
    args = parser.parse_args(argv)
    if args.rotate or args.retire:
        keys = SigningKeys.persistent(args.state / "authz-signing-keys.json")
        if args.retire:
            keys.retire(args.retire)
        print(keys.rotate() if args.rotate else keys.current_kid)
        return
    if args.members is None or args.idp is None:
        parser.error("serving needs --members and --idp")
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = FastAPI(title="ownkey platform (hybrid routes)", docs_url=None, redoc_url=None)
    app.include_router(
        build_platform_router(
            state=args.state,
            members=args.members,
            issuer_url=base + "/hybrid",
            idp=args.idp,
            idp_audience=args.idp_audience,
            kacls_audience=args.kacls_audience,
            jwks_min_refresh_seconds=args.jwks_min_refresh,
        )
    )
    print(f"listening {base}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
