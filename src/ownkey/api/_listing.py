"""``GET /v1/objects``: list stored objects (metadata only, no key is used), paged.

Filters: ``org``, ``service_id``, ``prefix`` (of the asset id); pages of at most ``limit`` in
asset-id order, the next one asked for with ``after`` = the answer's ``next``. A platform
service token lists any org's objects; an org admin token only its own org's: without ``org``
its org is implied, and another org answers 404 like every admin route (docs/api.md), so a
token of org A cannot learn whether org B exists nor see its object ids (issue 11).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from ownkey.api._auth import ORG_PATTERN, _token, not_found
from ownkey.api._models import ObjectOut, ServiceId, _Strict
from ownkey.api._problems import ApiProblem
from ownkey.api._state import State, strict_query
from ownkey.storage import ORG_TOKEN, PLATFORM_TOKEN, ApiToken

__all__ = ["listing_router"]

listing_router = APIRouter(prefix="/v1", dependencies=[Depends(strict_query)])


class ObjectsOut(_Strict):
    objects: list[ObjectOut]
    next: str | None = Field(
        default=None, description="Pass as `after` for the next page; absent on the last page."
    )


@listing_router.get(
    "/objects",
    tags=["objects"],
    summary="List stored objects (metadata), filtered by org, service and id prefix, paged",
)
def list_objects(
    state: State,
    token: Annotated[ApiToken, Depends(_token)],
    org: Annotated[str | None, Query(pattern=ORG_PATTERN)] = None,
    service_id: Annotated[ServiceId | None, Query()] = None,
    prefix: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    after: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ObjectsOut:
    if token.kind == ORG_TOKEN:
        if org is None:
            org = token.org
        if org != token.org:
            raise not_found()
    elif token.kind != PLATFORM_TOKEN:  # pragma: no cover - there are only two kinds
        raise ApiProblem(403, "this token cannot list objects", slug="forbidden")
    page = state.objects.page(
        org=org, service_id=service_id, prefix=prefix, after=after, limit=limit + 1
    )
    more = len(page) > limit
    shown = page[:limit]
    return ObjectsOut(
        objects=[ObjectOut.of(record) for record in shown],
        next=shown[-1].asset_id if more else None,
    )
