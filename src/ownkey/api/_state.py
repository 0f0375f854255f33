"""What every route reaches: the runtime and the node's helpers, held by the app (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ownkey.api._metrics import Metrics
from ownkey.errors import InvalidRequest
from ownkey.service import BackgroundJobs, Objects, Runtime
from ownkey.storage import ApiToken, TokenStore

__all__ = ["ApiState", "State", "strict_query"]


@dataclass(frozen=True, slots=True)
class ApiState:
    """One app's collaborators; also the :class:`~ownkey.api._auth.Authority` of its tokens."""

    runtime: Runtime
    tokens: TokenStore
    objects: Objects
    jobs: BackgroundJobs
    metrics: Metrics

    def authenticate(self, token: str) -> ApiToken | None:
        return self.tokens.authenticate(token)

    def org_exists(self, org: str) -> bool:
        return self.runtime.org_ops.exists(org)


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(_state)]


def strict_query(request: Request) -> None:
    """Refuse query parameters the route does not declare, or declared ones given twice: a
    misspelt filter must not silently widen an answer."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    declared: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        declared.update(param.alias for param in current.query_params)
        pending.extend(current.dependencies)
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in declared:
            raise InvalidRequest(name or "query", "unknown query parameter")
        if name in seen:
            raise InvalidRequest(name, "given more than once")
        seen.add(name)
