"""The policy engine with ``orgs`` read from the org directory, for the data plane.

The platform sends the *asset* part of a policy request only; :class:`DirectoryPolicy` fills
``orgs`` for every org the asset touches from the :class:`OrgDirectory` (an unknown member org is
one without a customer key; the asset's own org must be known), refuses a request that carries
``orgs`` itself, and remembers plans per request and org revisions, so that a remembered plan is
exactly what the engine would answer.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ownkey import policy
from ownkey.errors import PolicyError
from ownkey.policy import OrgSettings, PolicyRequest, ProtectionPlan
from ownkey.service._directory import ORG_FLAGS, Org, OrgDirectory

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
        self._max_entries = max_entries
        self._plans: OrderedDict[str, ProtectionPlan] = OrderedDict()
        self._lock = threading.Lock()

    def request(self, request: Request) -> PolicyRequest:
        """The full policy request: the asset from ``request``, every org from the directory."""
        return self._build(request, self._orgs(request))

    def _orgs(self, request: Request) -> dict[str, Org | None]:
        """Every org the asset touches, as the directory knows it (None: unknown)."""
        if not isinstance(request, Mapping):
            raise PolicyError("request", "must be a JSON object")
        if "orgs" in request:
            raise PolicyError(
                "orgs",
                "comes from ownkey's org directory; send the asset (with scope and asset_id) only",
            )
        asset = request.get("asset")
        if not isinstance(asset, Mapping):
            raise PolicyError("asset", "required, an object")
        orgs = {name: self._directory.org(name) for name in _orgs_of(asset)}
        first = next(iter(orgs), None)
        if first is not None and orgs[first] is None:
            raise PolicyError(
                "asset.org", f"org {json.dumps(first)} is not in ownkey's org directory"
            )
        return orgs

    @staticmethod
    def _build(request: Request, orgs: Mapping[str, Org | None]) -> PolicyRequest:
        settings = {name: _NO_CMK if org is None else org.settings for name, org in orgs.items()}
        stub = {name: _stub(value) for name, value in settings.items()}
        parsed = policy.parse_request({**request, "orgs": stub})
        return PolicyRequest(settings, parsed.asset)

    def __call__(self, request: Request) -> ProtectionPlan:
        orgs = self._orgs(request)
        revisions = [(name, 0 if org is None else org.revision) for name, org in orgs.items()]
        try:
            fingerprint = json.dumps([request, revisions], sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            return policy.explain(self._build(request, orgs))
        with self._lock:
            plan = self._plans.get(fingerprint)
            if plan is not None:
                self._plans.move_to_end(fingerprint)
                return plan
        plan = policy.explain(self._build(request, orgs))  # PolicyError: nothing remembered
        with self._lock:
            self._plans[fingerprint] = plan
            if len(self._plans) > self._max_entries:
                self._plans.popitem(last=False)
        return plan
