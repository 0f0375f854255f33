"""Tenant isolation through the API (issue 11, findings 1 and 2).

An org admin can bind only a key it controls, so it can never drive another org's key nor the
platform key; and object ids live in their org, so one org's ``rec-1`` is not another's.
"""

from __future__ import annotations

import base64
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
    from ownkey.providers import LocalKeyStoreProvider

    home = api.runtime.home
    stray = LocalKeyStoreProvider(env={"OWNKEY_HOME": str(home)}).create_key(label="customer:acme")
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
    import json

    return json.dumps(value)


def test_object_ids_are_scoped_per_org(api: Api) -> None:
    """Finding 2: globex's rec-1 is not acme's rec-1; neither replaces the other."""
    assert _put(api, "acme", "rec-1", b"acme's recording").status_code in (200, 201)
    assert _put(api, "globex", "rec-1", b"globex's recording").status_code in (200, 201)
    acme = api.client.get("/v1/objects/rec-1?org=acme", headers=api.platform)
    globex = api.client.get("/v1/objects/rec-1?org=globex", headers=api.platform)
    assert acme.status_code == 200, acme.text
    assert globex.status_code == 200, globex.text
    assert acme.content == b"acme's recording"
    assert globex.content == b"globex's recording"
    assert base64  # the body is raw bytes, not base64
