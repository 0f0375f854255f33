"""What every route reaches: the runtime and the node's helpers, held by the app (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ownkey.api._metrics import Metrics
from ownkey.service import BackgroundJobs, Objects, Runtime
from ownkey.storage import ApiToken, TokenStore

__all__ = ["ApiState", "State"]


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
        return self.runtime.directory.store.get_org(org) is not None


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(_state)]
