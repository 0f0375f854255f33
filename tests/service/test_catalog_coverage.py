"""Every asset type of the catalog seals and opens per the policy, under the plan's keys."""

from __future__ import annotations

from typing import Any

import pytest

from ownkey.catalog import ASSET_TYPES, AssetType, ContainerKind, OwnerKind
from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied
from ownkey.service import view_plan
from tests.service._helpers import ANN, BO, make_node, org

CASES = [(entry, component) for entry in ASSET_TYPES for component in entry.components]


def _request(entry: AssetType, component: str) -> dict[str, Any]:
    owner_kind = OwnerKind.USER if OwnerKind.USER in entry.owner_kinds else min(entry.owner_kinds)
    container = min(entry.containers, key=lambda kind: kind is not ContainerKind.CHAT)
    members = (
        [{"user": ANN, "org": "acme"}, {"user": BO, "org": "globex"}]
        if container in (ContainerKind.CHAT, ContainerKind.CHANNEL)
        else []
    )
    flags = {"compliance_archival": True, "hybrid": True}
    return {
        "orgs": {
            "acme": org(entry.service_id, licensed=(ANN,), **flags),
            "globex": org(entry.service_id, licensed=(BO,)),
        },
        "asset": {
            "service_id": entry.service_id,
            "org": "acme",
            "owner": ANN if owner_kind is OwnerKind.USER else None,
            "owner_kind": owner_kind.value,
            "container": {"kind": container.value, "members": members},
            "component": component,
        },
        "scope": f"scope-{entry.service_id}",
        "asset_id": f"{entry.service_id}-{component}",
    }


@pytest.mark.parametrize(
    ("entry", "component"), CASES, ids=[f"{e.service_id}-{c}" for e, c in CASES]
)
def test_every_asset_type_seals_and_opens_under_its_plan(entry: AssetType, component: str) -> None:
    node = make_node(seed=hash(entry.service_id) & 0xFFFF)
    request = _request(entry, component)
    plan = view_plan(node.protector.explain(request))
    if plan.protection == "client_side":  # FS-4: refused, never sealed under another key
        with pytest.raises(AccessDenied) as denied:
            node.protector.seal(request, b"content")
        assert denied.value.reason == "policy"
        assert len(node.store) == 0
        return
    sealed = node.protector.seal(request, b"content")
    assert node.protector.open(request, sealed) == b"content"
    record = node.store.get(peek_key_id(sealed))
    assert record is not None
    assert record.keys == plan.keys
    assert [wrap.key for wrap in record.wraps] == list(plan.keys)
    assert record.service_id == plan.service_id


def test_every_service_of_the_catalog_is_covered() -> None:
    """Included components go under the customer key (or client-side), excluded ones the PK."""
    assert len({entry.service_id for entry, _ in CASES}) == len(ASSET_TYPES) >= 25
    node = make_node()
    for entry, component in CASES:
        protection = view_plan(node.protector.explain(_request(entry, component))).protection
        expected = {"platform"} if component in entry.excluded else {"customer", "client_side"}
        assert protection in expected, (entry.service_id, component)
