"""Builders for policy requests in tests: a valid request by default, every part overridable."""

from __future__ import annotations

from typing import Any

from ownkey.policy import explain, parse_request

ANN = "ann@acme.test"  # acme, licensed in the default org
BOB = "bob@acme.test"  # acme, not licensed
BO = "bo@globex.test"  # globex
IDA = "ida@initech.test"  # initech

PK: dict[str, str] = {"type": "platform"}


def CK(org: str) -> dict[str, str]:
    """A customer key in plan JSON."""
    return {"type": "customer", "org": org}


def HK(org: str) -> dict[str, str]:
    """A hybrid (client-side) key in plan JSON."""
    return {"type": "hybrid", "org": org}


def org(
    *services: str, cmk: bool = True, licensed: tuple[str, ...] = (), **flags: bool
) -> dict[str, Any]:
    """An org's settings in request JSON."""
    return {"cmk": cmk, "services": list(services), "licensed_users": list(licensed), **flags}


def request(
    service_id: str,
    component: str,
    *,
    owner: str | None = ANN,
    owner_kind: str = "user",
    asset_org: str = "acme",
    orgs: dict[str, Any] | None = None,
    container: str = "none",
    members: tuple[tuple[str, str], ...] = (),
    **asset: Any,
) -> dict[str, Any]:
    """A request; by default acme has a CK, enabled ``service_id`` and licensed ANN."""
    if orgs is None:
        orgs = {"acme": org(service_id, licensed=(ANN,))}
    return {
        "orgs": orgs,
        "asset": {
            "service_id": service_id,
            "org": asset_org,
            "owner": owner,
            "owner_kind": owner_kind,
            "container": {
                "kind": container,
                "members": [{"user": user, "org": o} for user, o in members],
            },
            "component": component,
            **asset,
        },
    }


def plan(req: dict[str, Any]) -> dict[str, Any]:
    """The plan JSON for request JSON."""
    return explain(parse_request(req)).to_json()


def keys(req: dict[str, Any]) -> list[dict[str, str]]:
    """Only the keys of the plan."""
    result: list[dict[str, str]] = plan(req)["keys"]
    return result


def rules(req: dict[str, Any]) -> set[str]:
    """The rule names that the plan's reasons cite."""
    return {reason.split(":", 1)[0] for reason in plan(req)["reasons"]}
