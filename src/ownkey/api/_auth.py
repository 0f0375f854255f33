"""Bearer-token authentication and the two kinds of access (docs/api.md).

- An **org admin token** opens its own org's admin routes, ``/v1/orgs/{org}/...``, and nothing
  else. Any other org, existing or not, answers 404 with the same problem document as an org
  that does not exist: a token of org A cannot learn whether org B exists, let alone read or
  change anything of it. Objects inside an org (rules, jobs) are looked up within the org, so an
  id of another org's object is not found either.
- A **platform service token** opens the data plane (``/v1/seal``, ``/v1/open``,
  ``/v1/objects``, ``/v1/policy/explain``) and no admin route (403).

A missing or unknown token answers 401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ownkey.api._problems import ApiProblem
from ownkey.storage import ORG_TOKEN, PLATFORM_TOKEN, ApiToken

__all__ = [
    "CALLER_STATE",
    "ORG_PATTERN",
    "Admin",
    "Authority",
    "OrgAdmin",
    "PlatformService",
    "check_bearer",
    "not_found",
    "org_admin",
    "platform_service",
]

#: Org names in paths (the directory's rule: letters, digits, '.', '_', '-').
ORG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`okt_...` tokens from `ownkey token create --org ORG` or `--platform`.",
)


class Authority(Protocol):
    """What authentication needs from the application: tokens and which orgs exist."""

    def authenticate(self, token: str) -> ApiToken | None: ...

    def org_exists(self, org: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Admin:
    """An authenticated org admin: the org of the path, and the actor the audit log records."""

    org: str
    actor: str


def _authority(request: Request) -> Authority:
    authority: Authority = request.app.state.authority
    return authority


def not_found() -> ApiProblem:
    """The one answer for an org that does not exist *or* is not the caller's."""
    return ApiProblem(404, "no such org", slug="not-found")


#: Where :class:`~ownkey.api._limits.BodyGate` leaves the token it checked before the body.
CALLER_STATE = "ownkey_caller"


def _missing() -> ApiProblem:
    return ApiProblem(
        401,
        "a bearer token is required (Authorization: Bearer okt_...)",
        headers={"WWW-Authenticate": 'Bearer realm="ownkey"'},
    )


def check_bearer(authority: Authority, header: str | None) -> ApiToken:
    """The token of an ``Authorization: Bearer ...`` header; 401 (ApiProblem) otherwise."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise _missing()
    token = authority.authenticate(credentials.strip())
    if token is None:
        raise ApiProblem(
            401,
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="ownkey", error="invalid_token"'},
        )
    return token


def _token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    checked = getattr(request.state, CALLER_STATE, None)
    if isinstance(checked, ApiToken):  # checked by the body gate before the body was read
        return checked
    if credentials is None:
        raise _missing()
    return check_bearer(_authority(request), f"Bearer {credentials.credentials}")


def platform_service(token: Annotated[ApiToken, Depends(_token)]) -> ApiToken:
    """A platform service token (data plane)."""
    if token.kind != PLATFORM_TOKEN:
        raise ApiProblem(403, "the data plane needs a platform service token", slug="forbidden")
    return token


def org_admin(
    request: Request,
    org: Annotated[str, Path(pattern=ORG_PATTERN, description="The organisation.")],
    token: Annotated[ApiToken, Depends(_token)],
) -> Admin:
    """The org of the path, once the token is shown to be that org's admin token."""
    if token.kind != ORG_TOKEN:
        raise ApiProblem(403, "admin routes need an org admin token", slug="forbidden")
    if token.org != org or not _authority(request).org_exists(org):
        raise not_found()
    return Admin(org, f"token:{token.token_id}")


#: Route parameter types: ``admin: OrgAdmin`` checks the token for the path's org.
OrgAdmin = Annotated[Admin, Depends(org_admin)]
PlatformService = Annotated[ApiToken, Depends(platform_service)]
