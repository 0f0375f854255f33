"""Seal and object PUT answers say what protection was applied (issue 14), and the scope key id
they name is the one in the envelope's header."""

from __future__ import annotations

import base64
import json
from typing import Any

from ownkey.envelope import peek_key_id
from tests.api.conftest import AL, Api, chat, recording


def _seal(api: Api, request: dict[str, Any]) -> dict[str, Any]:
    body = {"request": request, "data": base64.b64encode(b"hello").decode()}
    answer = api.client.post("/v1/seal", json=body, headers=api.platform)
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def test_seal_reports_the_keys_of_the_plan(api: Api) -> None:
    out = _seal(api, chat())  # ann (licensed, acme CMK) with bo of globex (no CMK)
    protection = out["protection"]
    assert protection["protection"] == "customer"
    assert protection["keys"] == ["customer:acme", "platform"]
    assert protection["scope_key_id"] == peek_key_id(base64.b64decode(out["sealed"])).hex()


def test_seal_under_the_platform_key_says_so(api: Api) -> None:
    request = recording()
    request["asset"]["owner"] = AL  # not licensed: user-owned content stays on the platform key
    protection = _seal(api, request)["protection"]
    assert (protection["protection"], protection["keys"]) == ("platform", ["platform"])


def test_object_put_states_the_protection(api: Api) -> None:
    request = recording()
    header = json.dumps({"asset": request["asset"], "scope": request["scope"]})
    put = api.client.put(
        "/v1/objects/rec-1", content=b"x" * 5000, headers={**api.platform, "Ownkey-Request": header}
    )
    assert put.status_code == 201, put.text
    protection = put.json()["protection"]
    assert (protection["protection"], protection["keys"]) == ("customer", ["customer:acme"])
    assert protection["scope_key_id"] == api.runtime.assets.record("rec-1").scope_key_id.hex()
