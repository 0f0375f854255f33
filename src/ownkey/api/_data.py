"""Data-plane routes, for the platform's services (platform service tokens).

- ``POST /v1/seal`` and ``POST /v1/open``: small payloads (up to 16 MiB) as base64 in JSON, with
  the asset-only request (``asset``, ``scope``, ``asset_id``; ownkey fills the orgs' settings
  from its directory). A denied open is 403 ``access-denied`` with a ``reason``: a tombstone.
- ``PUT /v1/objects/{asset_id}``: the raw bytes of a large asset as the request body (streamed,
  any length, bounded memory), the request JSON (``asset`` and ``scope``) in the
  ``Ownkey-Request`` header; sealed into the asset store.
- ``GET /v1/objects/{asset_id}``: the plaintext, with ``Range: bytes=...`` support (206, or 416
  outside the object); the store is read once, the stream's layout verified once, only the
  segments covering the range are decrypted, and every 1 MiB chunk is checked against
  revocations again.
- ``POST /v1/policy/explain``: the policy decision contract of docs/policy.md, the same answer as
  ``ownkey policy explain``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from ownkey.api._auth import ORG_PATTERN, PlatformService
from ownkey.api._batch import (
    OpenBatchIn,
    OpenBatchOut,
    SealBatchIn,
    SealBatchOut,
    decoded_items,
    results_of,
)
from ownkey.api._models import (
    MAX_MESSAGE_BYTES,
    ObjectOut,
    OpenIn,
    OpenOut,
    SealIn,
    SealOut,
    decode_base64,
    encode_base64,
    plan_json_schema,
    policy_request_json_schema,
)
from ownkey.api._problems import ApiProblem
from ownkey.api._protection import protection_of, sealed_key_id
from ownkey.api._state import State, strict_query
from ownkey.errors import InvalidRequest, LimitExceeded
from ownkey.policy import MAX_ID_CHARS

__all__ = ["data_router"]

data_router = APIRouter(prefix="/v1", dependencies=[Depends(strict_query)])

_MAX_REQUEST_HEADER = 16 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@data_router.post("/seal", tags=["data plane"], summary="Seal a small payload per the policy")
def seal(body: SealIn, _caller: PlatformService, state: State) -> SealOut:
    data = decode_base64(body.data, "data")
    if len(data) > MAX_MESSAGE_BYTES:
        raise LimitExceeded(
            f"data: at most {MAX_MESSAGE_BYTES} bytes (16 MiB) through /v1/seal; use /v1/objects"
        )
    request = body.request.to_request()
    sealed = state.runtime.protector.seal(request, data)
    state.metrics.sealed("message")
    protection = protection_of(state.runtime, request, sealed_key_id(sealed))
    return SealOut(sealed=encode_base64(sealed), sealed_bytes=len(sealed), protection=protection)


@data_router.post(
    "/open",
    tags=["data plane"],
    summary="Open a sealed payload (403 access-denied: render a tombstone)",
)
def open_sealed(body: OpenIn, _caller: PlatformService, state: State) -> OpenOut:
    sealed = decode_base64(body.sealed, "sealed")
    data = state.runtime.protector.open(body.request.to_request(), sealed)
    state.metrics.opened("message")
    return OpenOut(data=encode_base64(data))


@data_router.post(
    "/seal/batch",
    tags=["data plane"],
    summary="Seal up to 1000 messages of one container; each item's result on its own",
)
def seal_batch(body: SealBatchIn, _caller: PlatformService, state: State) -> SealBatchOut:
    items, failed = decoded_items(body.items)
    if sum(len(data) for _, data in items) > MAX_MESSAGE_BYTES:
        raise LimitExceeded(f"items: at most {MAX_MESSAGE_BYTES} bytes (16 MiB) in all")
    request = body.request.to_request()
    done = state.runtime.protector.seal_batch(request, items)
    results = results_of(body.items, done, failed)
    sealed = [answer for answer in done if isinstance(answer, bytes)]
    state.metrics.sealed("message", len(sealed))
    protection = None
    if sealed:
        first = next(r for r in results if r.value is not None)
        protection = protection_of(
            state.runtime, {**request, "asset_id": first.asset_id}, sealed_key_id(sealed[0])
        )
    return SealBatchOut(
        results=results,
        sealed=len(sealed),
        failed=len(results) - len(sealed),
        protection=protection,
    )


@data_router.post(
    "/open/batch",
    tags=["data plane"],
    summary="Open up to 1000 envelopes of one container; each item's result on its own",
)
def open_batch(body: OpenBatchIn, _caller: PlatformService, state: State) -> OpenBatchOut:
    items, failed = decoded_items(body.items)
    done = state.runtime.protector.open_batch(body.request.to_request(), items)
    results = results_of(body.items, done, failed)
    opened = sum(1 for answer in done if isinstance(answer, bytes))
    state.metrics.opened("message", opened)
    return OpenBatchOut(results=results, opened=opened, failed=len(results) - opened)


def _explain_body() -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": policy_request_json_schema()}},
    }


@data_router.post(
    "/policy/explain",
    tags=["policy"],
    summary="The protection plan for a policy request (the decision contract of docs/policy.md)",
    openapi_extra={"requestBody": _explain_body()},
    responses={200: {"content": {"application/json": {"schema": plan_json_schema()}}}},
)
def explain(
    body: Annotated[Any, Body()],
    _caller: PlatformService,
    state: State,
) -> dict[str, Any]:
    if not isinstance(body, dict) or "orgs" not in body:
        raise InvalidRequest("orgs", "required: the policy request names every org's settings")
    plan: dict[str, Any] = state.runtime.explain(body).to_json()
    return plan


# -- objects ---------------------------------------------------------------------------------------

AssetId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The asset's id (bound into the content).",
    ),
]


#: ``?org=``: the org the caller expects the object to belong to (another org's is 404).
OrgFilter = Annotated[
    str | None,
    Query(pattern=ORG_PATTERN, description="Only if the object is this org's (else 404)."),
]


ActorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=320,
        description="The end user on whose behalf the platform reads (the key-usage log).",
    ),
]


def _object_request(header: str, asset_id: str) -> dict[str, Any]:
    if not header.isascii():
        # HTTP carries header bytes as Latin-1: a UTF-8 "é" would be stored as "Ã©", silently
        # another scope than the one the platform meant (and opens under).
        raise InvalidRequest(
            "Ownkey-Request", "must be ASCII JSON: write other characters as \\uXXXX escapes"
        )
    try:
        request = json.loads(header)
    except ValueError:
        raise InvalidRequest("Ownkey-Request", "not JSON") from None
    except RecursionError:  # "[[[[..." thousands deep fits in the header: was a 500
        raise InvalidRequest("Ownkey-Request", "not JSON: nested too deeply") from None
    if not isinstance(request, dict):
        raise InvalidRequest("Ownkey-Request", "must be a JSON object")
    if request.get("asset_id", asset_id) != asset_id:
        raise InvalidRequest("Ownkey-Request.asset_id", "differs from the path's asset id")
    return {**request, "asset_id": asset_id}


class _Body:
    """A request body read from a worker thread, one received chunk at a time."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    async def _next(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return b""

    def readinto(self, buffer: memoryview, /) -> int:
        while not self._pending:
            chunk = anyio.from_thread.run(self._next)
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


@data_router.put(
    "/objects/{asset_id}",
    tags=["objects"],
    status_code=201,
    summary="Seal a large asset from the request body (streamed) into the asset store",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_object(
    asset_id: AssetId,
    request: Request,
    _caller: PlatformService,
    state: State,
    ownkey_request: Annotated[
        str,
        Header(
            alias="Ownkey-Request",
            max_length=_MAX_REQUEST_HEADER,
            description='ASCII JSON: {"asset": {...}, "scope": "..."} (asset_id is the path\'s).',
        ),
    ],
) -> ObjectOut:
    sealing = _object_request(ownkey_request, asset_id)
    source = _Body(request.stream())
    record = await anyio.to_thread.run_sync(state.objects.put, sealing, source)
    state.metrics.sealed("object")
    protection = protection_of(state.runtime, sealing, record.scope_key_id)
    return ObjectOut.of(record).model_copy(update={"protection": protection})


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single ``bytes=`` range; None to send everything.

    A header that is not one byte range is ignored (RFC 9110 allows it); a range outside the
    object is 416.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> ApiProblem:
    return ApiProblem(
        416,
        f"the object has {size} bytes; the range is outside it",
        headers={"Content-Range": f"bytes */{size}"},
    )


@data_router.get(
    "/objects/{asset_id}",
    tags=["objects"],
    summary="Read a large asset, whole or a byte range (Range: bytes=...)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}},
        206: {
            "description": "The requested range",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        416: {"description": "The range is outside the object"},
    },
)
def get_object(
    asset_id: AssetId,
    _caller: PlatformService,
    state: State,
    range_header: Annotated[
        str | None, Header(alias="Range", max_length=256, description="bytes=START-END")
    ] = None,
    org: OrgFilter = None,
    actor: ActorQuery = None,
) -> StreamingResponse:
    # one read of the store: one version throughout (NotFound if it is another org's)
    stored = state.objects.open(asset_id, org, actor=actor)
    record = stored.record
    try:
        wanted = _parse_range(range_header, record.size)
    except BaseException:
        stored.close()
        raise
    start, end = wanted if wanted is not None else (0, record.size)
    opened = stored.range(start, end)
    state.metrics.opened("object")
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(opened.length)}
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{max(opened.end - 1, start)}/{record.size}"
    return StreamingResponse(
        opened.chunks, status_code=status, headers=headers, media_type="application/octet-stream"
    )


@data_router.get(
    "/objects/{asset_id}/meta",
    tags=["objects"],
    summary="A stored asset's metadata (no key is used)",
)
def object_meta(
    asset_id: AssetId, _caller: PlatformService, state: State, org: OrgFilter = None
) -> ObjectOut:
    return ObjectOut.of(state.objects.stat(asset_id, org))


@data_router.delete(
    "/objects/{asset_id}", tags=["objects"], status_code=204, summary="Delete a stored asset"
)
def delete_object(
    asset_id: AssetId, _caller: PlatformService, state: State, org: OrgFilter = None
) -> Response:
    state.objects.delete(asset_id, org)
    return Response(status_code=204)
