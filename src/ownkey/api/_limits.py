"""The gate in front of every JSON body: authenticate first, then read at most a documented size.

Without it the server would read and parse a body of any size before the route's dependencies
check the token: 200 MB with no token cost seconds and hundreds of MB before the 401. This pure
ASGI middleware answers, before the body is read:

- ``401`` when a ``/v1/`` route has no valid bearer token (the same document as the route's own
  check; the token found is handed to that check, so it is looked up once);
- ``413 limit-exceeded`` when ``Content-Length`` or the bytes read exceed the route's limit:
  :data:`SEAL_BODY_LIMIT` for ``/v1/seal`` and ``/v1/open`` (a 16 MiB payload in base64 and its
  request), :data:`JSON_BODY_LIMIT` for every other JSON body. The body is read chunk by chunk
  and given up at the limit, so a node's memory per request stays bounded by it;
- ``400 bad-request`` when the body is not UTF-8 (docs/api.md; Python's JSON reader would
  otherwise accept UTF-16 and UTF-32);
- ``415 unsupported-media-type`` when a JSON route is sent a body without ``Content-Type:
  application/json`` (``curl -d`` sends a form type): FastAPI would not parse it and answer a
  puzzling ``422 request: Input should be a valid dictionary``. The console's forms under
  ``/admin`` are not JSON routes and are left alone.

``PUT /v1/objects/{asset_id}`` is left alone: its body is the object's bytes, streamed into the
store in bounded memory by its own route after the same token check. ``PUT
/hybrid/conversations/{c}/messages/{m}`` (CMK Hybrid, docs/hybrid.md) is binary ciphertext:
read up to the same 1 MiB, without the UTF-8 check; its route checks the caller's sign-in token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import anyio.to_thread
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ownkey.api._auth import CALLER_STATE, Authority, check_bearer
from ownkey.api._problems import RETRY_AFTER_SECONDS, ApiProblem, problem_response
from ownkey.policy import MAX_REQUEST_BYTES

__all__ = ["JSON_BODY_LIMIT", "SEAL_BODY_LIMIT", "BodyGate"]

#: The 16 MiB of ``/v1/seal`` (``MAX_MESSAGE_BYTES`` of the API), in bytes.
SEAL_PAYLOAD_BYTES: Final = 16 * 1024 * 1024
#: ``/v1/seal`` and ``/v1/open``: base64 of a 16 MiB payload plus its envelope's overhead
#: (64 KiB is far above any header and context), plus 1 MiB for the request around it.
SEAL_BODY_LIMIT: Final = 4 * (SEAL_PAYLOAD_BYTES + 64 * 1024) // 3 + 4 + 1024 * 1024
#: Every other JSON body (admin changes, ``/v1/policy/explain``): 1 MiB.
JSON_BODY_LIMIT: Final = MAX_REQUEST_BYTES
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LARGE = frozenset({"/v1/seal", "/v1/open", "/v1/seal/batch", "/v1/open/batch"})
#: Bodies that are bytes, not JSON: a client-sealed 1001 message (at most 1 MiB).
_BINARY_PUT = "/hybrid/conversations/"
#: Where every body is JSON (the console's ``/admin`` forms are not).
_JSON_PREFIXES = ("/v1/", "/hybrid/")


def limit_of(path: str) -> int:
    """The most bytes a JSON body of ``path`` may have."""
    return SEAL_BODY_LIMIT if path in _LARGE else JSON_BODY_LIMIT


class BodyGate:
    """Authenticate, then read the body up to its limit, then hand it on (see the module)."""

    def __init__(self, app: ASGIApp, authority: Authority, routes: Sequence[BaseRoute]) -> None:
        self._app = app
        self._authority = authority
        self._routes = routes

    def _routed(self, scope: Scope) -> bool:
        """Whether a route takes this method at this path (else the app answers 404 or 405
        on its own, without the body)."""
        return any(route.matches(scope)[0] is Match.FULL for route in self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not self._routed(scope)
        ):
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        try:
            if path.startswith("/v1/"):
                await self._authenticate(scope)
            if scope["method"] == "PUT" and path.startswith("/v1/objects/"):
                await self._app(scope, receive, send)  # streamed by its route
                return
            binary = scope["method"] == "PUT" and path.startswith(_BINARY_PUT)
            body = await _read(scope, receive, limit_of(path), utf8=not binary)
            if not binary and path.startswith(_JSON_PREFIXES) and body.strip():
                _require_json(_header(scope, b"content-type"))
        except ApiProblem as problem:
            answer = problem_response(
                problem.status,
                problem.slug,
                problem.detail,
                headers=problem.headers,
                **problem.extensions,
            )
            await answer(scope, receive, send)
            return
        await self._app(scope, _replay(body, receive), send)

    async def _authenticate(self, scope: Scope) -> None:
        header = _header(scope, b"authorization")
        try:
            token = await anyio.to_thread.run_sync(check_bearer, self._authority, header)
        except (OperationalError, InterfaceError) as exc:  # outside the app's error handlers
            raise ApiProblem(
                503,
                f"the database failed ({type(exc).__name__}); retry later",
                slug="database-unavailable",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        scope.setdefault("state", {})[CALLER_STATE] = token


def _require_json(content_type: str | None) -> None:
    """A JSON body must say so: ``application/json`` or a ``+json`` type, any parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    sent = f"Content-Type {media[:80]!r}" if media else "no Content-Type"
    raise ApiProblem(
        415,
        f"the body is JSON: send it with Content-Type: application/json ({sent} was sent)",
        slug="unsupported-media-type",
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413, f"the body is larger than this route's {limit} bytes", slug="limit-exceeded"
    )


async def _read(scope: Scope, receive: Receive, limit: int, *, utf8: bool = True) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    if utf8 and not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiProblem(400, "the body is not UTF-8 JSON", slug="bad-request") from None
    return body


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
