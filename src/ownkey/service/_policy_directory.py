"""The policy engine with ``orgs`` read from the org directory, for the data plane.

The platform sends the *asset* part of a policy request only; :class:`DirectoryPolicy` fills
``orgs`` for every org the asset touches from the :class:`OrgDirectory` (an unknown member org is
one without a customer key; the asset's own org must be known), refuses a request that carries
``orgs`` itself, and remembers plans per request and org revisions, so that a remembered plan is
exactly what the engine would answer.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

from ownkey import policy
from ownkey.errors import InvalidRequest
from ownkey.policy import OrgSettings, PolicyRequest, ProtectionPlan
from ownkey.service._directory import ORG_FLAGS, Org, OrgDirectory
from ownkey.service._memo import LruMemo, request_key

__all__ = ["DirectoryPolicy"]

Request = Mapping[str, Any]
_NO_CMK = OrgSettings(cmk=False)


def _orgs_of(asset: Mapping[str, Any]) -> list[str]:
    """The asset's org first, then every other member org, in order of appearance."""
    names: dict[str, None] = {}
    org = asset.get("org")
    if isinstance(org, str):
        names[org] = None
    container = asset.get("container")
    if isinstance(container, Mapping):
        members = container.get("members")
        if isinstance(members, list):
            for member in members:
                if isinstance(member, Mapping) and isinstance(member.get("org"), str):
                    names.setdefault(member["org"], None)
    return list(names)


def _stub(settings: OrgSettings) -> dict[str, Any]:
    """Request JSON for an org without its (possibly long) list of licensed users."""
    out: dict[str, Any] = {"cmk": settings.cmk, "services": sorted(settings.services)}
    out.update({flag: getattr(settings, flag) for flag in ORG_FLAGS})
    return out


class DirectoryPolicy:
    """The policy engine with ``orgs`` read from the directory, plans remembered per request
    and org revisions (a remembered plan is exactly what the engine would answer)."""

    def __init__(self, directory: OrgDirectory, *, max_entries: int = 4096) -> None:
        self._directory = directory
        self._plans: LruMemo[Hashable, ProtectionPlan] = LruMemo(max_entries)

    def request(self, request: Request) -> PolicyRequest:
        """The full policy request: the asset from ``request``, every org from the directory."""
        return self._build(request, self._orgs(request))

    def _orgs(self, request: Request) -> dict[str, Org | None]:
        """Every org the asset touches, as the directory knows it (None: unknown)."""
        if not isinstance(request, Mapping):
            raise InvalidRequest("request", "must be a JSON object")
        if "orgs" in request:
            raise InvalidRequest(
                "orgs",
                "comes from ownkey's org directory; send the asset (with scope and asset_id) only",
            )
        asset = request.get("asset")
        if not isinstance(asset, Mapping):
            raise InvalidRequest("asset", "required, an object")
        orgs = {name: self._directory.org(name) for name in _orgs_of(asset)}
        first = next(iter(orgs), None)
        if first is not None and orgs[first] is None:
            raise InvalidRequest(
                "asset.org", f"org {json.dumps(first)} is not in ownkey's org directory"
            )
        return orgs

    @staticmethod
    def _build(request: Request, orgs: Mapping[str, Org | None]) -> PolicyRequest:
        settings = {name: _NO_CMK if org is None else org.settings for name, org in orgs.items()}
        stub = {name: _stub(value) for name, value in settings.items()}
        parsed = policy.parse_request({**request, "orgs": stub})
        return PolicyRequest(settings, parsed.asset)

    @staticmethod
    def _revisions(orgs: Mapping[str, Org | None]) -> tuple[tuple[str, int], ...]:
        return tuple((name, 0 if org is None else org.revision) for name, org in orgs.items())

    def revision(self, request: Request) -> Hashable:
        """What a plan depends on besides the request: the revisions of the orgs it touches."""
        return self._revisions(self._orgs(request))

    def __call__(self, request: Request) -> ProtectionPlan:
        orgs = self._orgs(request)
        key = request_key(request)
        if key is None:
            return policy.explain(self._build(request, orgs))
        # A bad request raises InvalidRequest (the engine: PolicyError); nothing is remembered.
        return self._plans.get(
            (key, self._revisions(orgs)), lambda: policy.explain(self._build(request, orgs))
        )
