"""The FastAPI application: routes, problem documents, metrics, OpenAPI; built per runtime.

:func:`create_app` takes an open :class:`~ownkey.service.Runtime` (the composition root) and
builds one app around it: nothing global, so tests build as many as they like. With
``node_sync`` the app also follows changes made by other nodes (PostgreSQL ``LISTEN/NOTIFY``
plus a periodic re-check, :class:`~ownkey.service.NodeSync`) while it runs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ownkey.api._admin import admin_router
from ownkey.api._data import data_router
from ownkey.api._limits import BodyGate
from ownkey.api._listing import listing_router
from ownkey.api._metrics import CONTENT_TYPE, Metrics
from ownkey.api._observe import NodeCollector, Observe, RouteLatency
from ownkey.api._problems import (
    PROBLEM_JSON,
    RETRY_AFTER_SECONDS,
    install_problem_handlers,
    problem_response,
    problem_schema,
)
from ownkey.api._state import ApiState
from ownkey.hybrid.platform import mount_platform_routes
from ownkey.service import (
    AssetCiphertexts,
    AuditWitness,
    BackgroundJobs,
    DirectoryOrgUsers,
    NodeSync,
    Objects,
    Readiness,
    Runtime,
)
from ownkey.storage import TokenStore
from ownkey.web import console_router

__all__ = ["create_app"]

VERSION = "1"
_SCHEMA_REF = "#/components/schemas/"
_ERRORS: dict[str, str] = {
    "400": "The body could not be read (not UTF-8 JSON)",
    "401": "No or an invalid bearer token",
    "403": "Access denied (a tombstone on the data plane) or the wrong kind of token",
    "404": "Not found, or not the caller's to see",
    "409": "Conflicts with a key's state or ownkey's configuration",
    "422": "Invalid request: `field` names what is wrong",
    "413": "The JSON body is larger than the route's limit (limit-exceeded)",
    "415": "A JSON body sent without Content-Type: application/json (unsupported-media-type)",
    "503": "A key manager, the audit sink, the asset store or the database is unavailable: "
    "retry after Retry-After",
}

#: Threads of the node's own routes (/readyz, /metrics), apart from the request workers.
_OWN_THREADS = 4
_READY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "checks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "failed", "n/a"]},
                    "detail": {"type": "string"},
                },
            },
        },
    },
}
_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Ready: every check is ok or n/a",
        "content": {"application/json": {"schema": _READY_BODY}},
    },
    503: {
        "description": "Not ready: the failed checks say why (Retry-After)",
        "content": {"application/json": {"schema": _READY_BODY}},
    },
}


class _CountAnswers:
    """Counts HTTP answers by status class for ``/metrics`` (pure ASGI: streams untouched)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._metrics.answered(int(message["status"]))
            await send(message)

        await self._app(scope, receive, counting)


def _allowed(app: FastAPI, path: str) -> list[str]:
    """Every method the API documents for ``path`` (for the ``Allow`` header of a 405)."""
    found: list[tuple[int, set[str]]] = []
    for template, operations in _openapi(app).get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            found.append((template.count("{"), {method.upper() for method in operations}))
    fewest = min((count for count, _ in found), default=0)  # the most specific templates
    # HEAD is not served (a HEAD of an object would decrypt it to count its bytes), so it is
    # not listed either: Allow names exactly what answers.
    return sorted(set().union(*(ops for count, ops in found if count == fewest)))


def _method_not_allowed(request: Request, _exc: Exception) -> JSONResponse:
    allowed = _allowed(request.app, request.url.path)
    return problem_response(
        405,
        "method-not-allowed",
        f"{request.method} is not allowed here",
        headers={"Allow": ", ".join(allowed)},
    )


def _refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
            yield ref.removeprefix(_SCHEMA_REF)
        for value in node.values():
            yield from _refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs_in(item)


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    """Publish only the component schemas an operation reaches: a model whose published schema
    is given whole (the typed asset carries the policy request schema's own) leaves its nested
    models among FastAPI's definitions, unreferenced."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    reached: set[str] = set()
    pending = list(_refs_in(document.get("paths", {})))
    while pending:
        name = pending.pop()
        if name not in reached and name in schemas:
            reached.add(name)
            pending.extend(_refs_in(schemas[name]))
    for name in set(schemas) - reached:
        del schemas[name]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with problem documents for every error answer."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = problem_schema()
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            codes = dict(_ERRORS) if path.startswith("/v1/") else {}
            if path.startswith("/v1/objects/") and operation.get("operationId", "").startswith(
                "get_object"
            ):
                codes["416"] = "The range is outside the object"
            for code, description in codes.items():
                responses[code] = {"description": description, "content": problem}
    _drop_unused_schemas(document)
    app.openapi_schema = document
    return document


def create_app(
    runtime: Runtime,
    *,
    tokens: TokenStore | None = None,
    node_sync: bool = False,
    witness_interval: float = 0.0,
) -> FastAPI:
    """The REST API over ``runtime`` (which the caller opens and closes).

    Objects, revocation previews and jobs all use the runtime's one asset service
    (``runtime.assets``: ``OWNKEY_BLOB_DIR``, S3, or ``$OWNKEY_HOME/objects``), built here so
    that a misconfigured blob store fails at start; ``node_sync`` follows other nodes' changes
    while the app runs; ``witness_interval`` (seconds, 0 = off) witnesses every org's audit
    chain head in its own key manager's log that often (:class:`AuditWitness`).
    """
    objects = Objects(runtime.assets)
    metrics = Metrics(runtime.protector.admin.cache_report)
    latency = RouteLatency()
    node = NodeCollector(runtime)
    metrics.include(latency)
    metrics.include(node)
    node.start()  # database errors counted from now on
    jobs = BackgroundJobs(runtime)
    state = ApiState(
        runtime=runtime,
        tokens=tokens if tokens is not None else TokenStore(runtime.database),
        objects=objects,
        jobs=jobs,
        metrics=metrics,
    )
    sync = NodeSync(runtime) if node_sync else None
    readiness = Readiness(runtime, sync)
    witness = AuditWitness(runtime, witness_interval)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if sync is not None:
            sync.start()
            jobs.start_sweeper()  # a node of a fleet: take over lapsed jobs, sweep blobs
        witness.start()
        try:
            yield
        finally:
            witness.stop()
            if sync is not None:
                sync.stop()
            jobs.close()
            node.stop()

    app = FastAPI(
        title="ownkey",
        version=VERSION,
        description=(
            "Customer managed keys for collaboration content. Admin routes "
            "(`/v1/orgs/{org}/...`) take that org's admin token; the data plane takes a "
            "platform service token. Errors are `application/problem+json`; a denied open is "
            "403 `urn:ownkey:problem:access-denied` with a `reason`: render a tombstone."
        ),
        lifespan=lifespan,
    )
    app.state.api = state
    app.state.authority = state
    app.state.node_sync = sync
    app.state.on_denied = metrics.denied
    install_problem_handlers(app)
    app.add_exception_handler(405, _method_not_allowed)
    app.include_router(data_router)
    app.include_router(listing_router)
    app.include_router(admin_router)
    app.include_router(console_router(state))  # the security console, /admin (ownkey.web)
    mount_platform_routes(  # CMK Hybrid grants + 1001 objects in the asset store, when configured
        app,
        ciphertexts=AssetCiphertexts(runtime.assets.store),
        directory=DirectoryOrgUsers(runtime.directory),
    )

    # The node's own routes never wait for a worker thread: /livez runs on the event loop, and
    # /readyz and /metrics run on threads of their own (a few), so a flood of requests holding
    # every worker thread (a slow key manager, a slow database) cannot make a node look dead.
    own_threads: list[anyio.CapacityLimiter] = []

    def own_limiter() -> anyio.CapacityLimiter:
        if not own_threads:
            own_threads.append(anyio.CapacityLimiter(_OWN_THREADS))
        return own_threads[0]

    @app.get("/livez", tags=["node"], summary="Liveness: the process answers (no I/O)")
    async def livez() -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def ready() -> JSONResponse:
        report = await anyio.to_thread.run_sync(readiness.check, limiter=own_limiter())
        headers = {} if report.ready else {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse(
            report.as_dict(), status_code=200 if report.ready else 503, headers=headers
        )

    app.add_api_route(
        "/readyz",
        ready,
        methods=["GET"],
        tags=["node"],
        summary="Readiness: the database, the blob store, the platform key, the change feed",
        responses=_READY_RESPONSES,
    )
    app.add_api_route(
        "/healthz",
        ready,
        methods=["GET"],
        tags=["node"],
        summary="The same answer as /readyz (kept for existing probes)",
        responses=_READY_RESPONSES,
    )

    @app.get(
        "/metrics",
        tags=["node"],
        summary="Prometheus metrics of this node",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        body = await anyio.to_thread.run_sync(metrics.render, limiter=own_limiter())
        return Response(body, media_type=CONTENT_TYPE)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodyGate, authority=state, routes=app.router.routes)
    app.add_middleware(_CountAnswers, metrics=metrics)
    app.add_middleware(Observe, latency=latency)  # outermost: the request id, the route timer
    return app
