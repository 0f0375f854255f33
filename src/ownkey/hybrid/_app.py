"""The key service's HTTP face: KACLS-shaped JSON endpoints over :class:`KeyService`.

``POST /wrap``, ``/unwrap``, ``/rewrap``, ``/digest``, ``/privilegedunwrap`` take and return JSON
(keys as standard base64); ``GET /status`` is the health check. Errors are one JSON shape,
``{"error": {"code", "message", "reason"}}``: 400 malformed request, 403 refused (a token, the
role, a revocation, or a wrapped key for another resource; the message says which, never a
token or a key), 503 an issuer, the key provider or the audit log could not answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ownkey.errors import (
    AccessDenied,
    InvalidRequest,
    KeyUnavailable,
    NotFound,
    OwnkeyError,
)
from ownkey.hybrid._config import DB_FILE, HybridConfig, load_audit_signer, open_provider
from ownkey.hybrid._service import KeyService
from ownkey.hybrid._sigv4 import SignedRequest
from ownkey.hybrid._store import HybridStore, head_witness
from ownkey.hybrid._tokens import JwksCache, TokenVerifier
from ownkey.hybrid._xks import XksService, load_xks_settings

__all__ = ["build_app", "build_service", "build_xks"]

_MAX_BODY = 64 * 1024


def build_service(config: HybridConfig, *, http: httpx.Client | None = None) -> KeyService:
    """The composition root of the key service: provider, verifiers, store."""
    http = http or httpx.Client(timeout=5.0)

    def verifier(kind: str, issuer: Any) -> TokenVerifier:
        keys = JwksCache(
            issuer.issuer, http=http, min_refresh_seconds=config.jwks_min_refresh_seconds
        )
        return TokenVerifier(issuer, keys, kind=kind, skew_seconds=config.skew_seconds)

    provider = open_provider(config.home, config.provider_kind, config.provider_settings)
    return KeyService(
        org=config.org,
        provider=provider,
        key_id=config.key_id,
        authentication=verifier("authentication", config.authentication),
        authorization=verifier("authorization", config.authorization),
        store=HybridStore(
            config.home / DB_FILE,
            config.org,
            signer=load_audit_signer(config.home),
            witness=head_witness(provider, config.key_id, config.org),
            audit_sync=config.audit_sync,
        ),
        privileged=frozenset(config.privileged),
    )


def build_xks(config: HybridConfig, service: KeyService) -> XksService | None:
    """The XKS proxy API of the home (its ``xks`` section), sharing the key service's provider,
    key and audit chain; None when the home has no ``xks`` section."""
    settings = load_xks_settings(config.home)
    if settings is None:
        return None
    return XksService(
        settings,
        org=config.org,
        provider=service.provider,
        provider_key=service.key_id,
        store=service.store,
    )


def _mount_xks(app: FastAPI, xks: XksService) -> None:
    """``POST {prefix}/kms/xks/v1/...`` (GET is 405, as the spec wants)."""

    async def handle(request: Request) -> JSONResponse:
        raw = await _bounded_body(request)
        if raw is None:
            body = {"errorName": "UnsupportedOperationException", "errorMessage": "body too large"}
            return JSONResponse(body, status_code=501)
        signed = SignedRequest(
            method=request.method,
            path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
            query=request.url.query,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            body=raw,
        )
        status, answer = await run_in_threadpool(xks.handle, signed)
        return JSONResponse(answer, status_code=status)

    app.add_api_route("/kms/xks/v1/{tail:path}", handle, methods=["POST"], name="xks")
    app.add_api_route("/{head:path}/kms/xks/v1/{tail:path}", handle, methods=["POST"], name="xks_p")


def _status_of(exc: OwnkeyError) -> int:
    if isinstance(exc, AccessDenied):
        return 403
    if isinstance(exc, InvalidRequest):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, KeyUnavailable):
        return 503
    return 500


def _error(status: int, message: str, reason: str) -> JSONResponse:
    body = {"error": {"code": status, "message": message, "reason": reason}}
    return JSONResponse(body, status_code=status)


async def _bounded_body(request: Request) -> bytes | None:
    """The body, or None once it is over :data:`_MAX_BODY`: a declared ``Content-Length`` over it
    is refused unread, and the rest is read chunk by chunk and given up at the limit, so a huge
    body costs the key service at most the limit in memory (the tokens it must check are inside
    the body, so there is no caller to refuse before reading)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            return None
    return bytes(body)


def build_app(service: KeyService, xks: XksService | None = None) -> FastAPI:
    app = FastAPI(title="ownkey hybrid key service", docs_url=None, redoc_url=None)
    if xks is not None:
        _mount_xks(app, xks)

    def endpoint(
        run: Callable[[dict[str, Any]], dict[str, str]],
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def handle(request: Request) -> JSONResponse:
            raw = await _bounded_body(request)
            if raw is None:
                return _error(400, f"request body over {_MAX_BODY // 1024} KiB", "invalid_request")
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested thousands deep
                return _error(400, "request body is not JSON", "invalid_request")
            if not isinstance(body, dict):
                return _error(400, "request body must be a JSON object", "invalid_request")
            try:
                return JSONResponse(await run_in_threadpool(run, body))
            except OwnkeyError as exc:
                status = _status_of(exc)
                reason = getattr(exc, "reason", None) or type(exc).__name__
                return _error(status, str(exc), reason)

        return handle

    for name, run in (
        ("wrap", service.wrap),
        ("unwrap", service.unwrap),
        ("rewrap", service.rewrap),
        ("digest", service.digest),
        ("privilegedunwrap", service.privileged_unwrap),
    ):
        app.add_api_route(f"/{name}", endpoint(run), methods=["POST"], name=name)

    @app.get("/status")
    async def status() -> JSONResponse:
        try:
            return JSONResponse(await run_in_threadpool(service.status))
        except OwnkeyError as exc:
            return _error(503, str(exc), type(exc).__name__)

    return app
