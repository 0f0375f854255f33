"""Tenant isolation through the API (issue 11, findings 1 and 2).

An org admin can bind only a key it controls, so it can never drive another org's key nor the
platform key; and object ids live in their org, so one org's ``rec-1`` is not another's.
"""

from __future__ import annotations

import json
from typing import Any

from ownkey.keys import KeyRef
from tests.api.conftest import BO, Api, recording


def _key_id(api: Api, ref: KeyRef) -> str:
    [master] = [k for k in api.runtime.list_keys() if k.ref == ref]
    return master.key_id


def test_an_org_admin_cannot_bind_another_orgs_key(api: Api) -> None:
    """Finding 1: globex registering acme's key id is a conflict; acme's key stays enabled."""
    acme_key = _key_id(api, KeyRef.customer("acme"))
    taken = api.client.put(
        "/v1/orgs/globex/key", json={"provider": "local", "key_id": acme_key}, headers=api.globex
    )
    assert taken.status_code == 409, taken.text
    assert api.client.get("/v1/orgs/globex/key", headers=api.globex).status_code == 404
    assert api.client.post("/v1/orgs/globex/key/disable", headers=api.globex).status_code == 404
    key = api.client.get("/v1/orgs/acme/key", headers=api.acme).json()
    assert key["state"] == "enabled"


def test_an_org_admin_cannot_bind_the_platform_key(api: Api) -> None:
    """Finding 1: the platform key's id is bound to the platform, never to an org."""
    platform_key = _key_id(api, KeyRef.platform())
    taken = api.client.put(
        "/v1/orgs/globex/key",
        json={"provider": "local", "key_id": platform_key},
        headers=api.globex,
    )
    assert taken.status_code == 409, taken.text
    [platform] = [k for k in api.runtime.list_keys() if k.ref == KeyRef.platform()]
    assert platform.state.value == "enabled"


def test_an_org_admin_cannot_bind_a_local_key_made_for_nobody(api: Api) -> None:
    """Finding 1: a local key not created for this org proves no control: refused."""
    stray = api.runtime.local_keys.create_key(label="customer:acme")
    taken = api.client.put(
        "/v1/orgs/globex/key", json={"provider": "local", "key_id": stray}, headers=api.globex
    )
    assert taken.status_code == 403, taken.text
    assert api.client.get("/v1/orgs/globex/key", headers=api.globex).status_code == 404


def _put(api: Api, org: str, asset_id: str, data: bytes) -> Any:
    request = recording(asset_id)
    request["asset"]["org"] = org
    if org == "globex":
        request["asset"]["owner"] = BO
    return api.client.put(
        f"/v1/objects/{asset_id}",
        content=data,
        headers={**api.platform, "Ownkey-Request": _json(request)},
    )


def _json(value: Any) -> str:
    return json.dumps(value)


def test_an_object_id_of_one_org_cannot_be_replaced_by_another(api: Api) -> None:
    """Finding 2: globex's PUT of acme's rec-1 is refused (409); acme's content is intact, and
    a read scoped to globex does not find it."""
    assert _put(api, "acme", "rec-1", b"acme's recording").status_code == 201
    taken = _put(api, "globex", "rec-1", b"globex's recording")
    assert taken.status_code == 409, taken.text
    acme = api.client.get("/v1/objects/rec-1?org=acme", headers=api.platform)
    assert acme.status_code == 200, acme.text
    assert acme.content == b"acme's recording"
    for path in ("/v1/objects/rec-1?org=globex", "/v1/objects/rec-1/meta?org=globex"):
        assert api.client.get(path, headers=api.platform).status_code == 404
    assert (
        api.client.delete("/v1/objects/rec-1?org=globex", headers=api.platform).status_code == 404
    )
    assert api.client.get("/v1/objects/rec-1", headers=api.platform).content == b"acme's recording"
    assert _put(api, "acme", "rec-1", b"acme again").status_code == 201  # its own org may


def test_objects_are_listed_by_org_service_and_prefix_in_pages(api: Api) -> None:
    """Issue 14 (object listing): filters and paging; an org admin sees only its own org."""
    for n in range(5):
        assert _put(api, "acme", f"rec-{n}", b"x" * n).status_code == 201
    assert _put(api, "globex", "g-rec-1", b"g").status_code == 201
    first = api.client.get("/v1/objects?org=acme&limit=2", headers=api.platform).json()
    assert [o["asset_id"] for o in first["objects"]] == ["rec-0", "rec-1"]
    assert first["next"] == "rec-1"
    rest = api.client.get("/v1/objects?org=acme&limit=10&after=rec-1", headers=api.platform)
    assert [o["asset_id"] for o in rest.json()["objects"]] == ["rec-2", "rec-3", "rec-4"]
    assert rest.json()["next"] is None
    by_prefix = api.client.get("/v1/objects?prefix=g-", headers=api.platform).json()
    assert [(o["asset_id"], o["org"]) for o in by_prefix["objects"]] == [("g-rec-1", "globex")]
    service = api.client.get("/v1/objects?service_id=0008", headers=api.platform).json()
    assert service["objects"] == []
    mine = api.client.get("/v1/objects", headers=api.globex).json()
    assert [o["asset_id"] for o in mine["objects"]] == ["g-rec-1"]
    assert api.client.get("/v1/objects?org=acme", headers=api.globex).status_code == 404
    assert api.client.get("/v1/objects?org=nosuch", headers=api.globex).status_code == 404
    assert api.client.get("/v1/objects?limit=0", headers=api.platform).status_code == 422
    assert api.client.get("/v1/objects?sort=x", headers=api.platform).status_code == 422


def test_lifecycle_events_land_in_the_chain_of_the_org_that_owns_the_key(api: Api) -> None:
    """Finding 1: after globex's refused attempt, acme's key changes are in acme's chain only,
    and globex's chain never records a use or change of acme's key."""
    acme_key = _key_id(api, KeyRef.customer("acme"))
    api.client.put(
        "/v1/orgs/globex/key", json={"provider": "local", "key_id": acme_key}, headers=api.globex
    )
    assert api.client.post("/v1/orgs/acme/key/disable", headers=api.acme).status_code == 200

    def events(org: str, token: dict[str, str]) -> list[dict[str, Any]]:
        found = api.client.get(f"/v1/orgs/{org}/audit/events?limit=1000", headers=token)
        assert found.status_code == 200, found.text
        return list(found.json()["events"])

    [disabled] = [e for e in events("acme", api.acme) if e["action"] == "key.disable"]
    assert disabled["detail"]["key_id"] == acme_key
    assert not [e for e in events("globex", api.globex) if acme_key in json.dumps(e)]
