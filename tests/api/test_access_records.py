"""Issue 23, section 2, through HTTP: the key-usage log names who sealed and opened what.

Before: ``/v1/seal``, ``/v1/open`` and ``/v1/objects`` took no actor; the events query by user
or asset found nothing, and opens served from the cache were not recorded at all.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.api.conftest import Api, chat, recording

ALICE, BOB = "alice@acme.test", "bob@acme.test"


def events(api: Api, **query: str) -> list[dict[str, Any]]:
    answer = api.client.get("/v1/orgs/acme/audit/events", params=query, headers=api.acme)
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["action"] == "content.access"]


def total(found: list[dict[str, Any]]) -> int:
    return sum(int(e["detail"]["count"]) for e in found)


def test_seal_open_and_objects_are_found_by_user_and_asset(api: Api) -> None:
    sealed = []
    for n in range(8):
        body = {"request": {**chat(asset_id=f"m{n}"), "actor": ALICE}, "data": "aGk="}
        answer = api.client.post("/v1/seal", json=body, headers=api.platform)
        assert answer.status_code == 200, answer.text
        sealed.append(answer.json()["sealed"])
    for n, envelope in enumerate(sealed):
        body = {"request": {**chat(asset_id=f"m{n}"), "actor": BOB}, "sealed": envelope}
        assert api.client.post("/v1/open", json=body, headers=api.platform).status_code == 200
    data = bytes(range(256)) * 20_000  # 5 MB
    header = json.dumps({**recording(), "actor": ALICE})
    put = api.client.put(
        "/v1/objects/rec-1",
        content=data,
        headers={**api.platform, "Ownkey-Request": header},
    )
    assert put.status_code in (200, 201), put.text
    got = api.client.get(
        "/v1/objects/rec-1", params={"actor": BOB}, headers={**api.platform, "Range": "bytes=5-9"}
    )
    assert got.status_code == 206
    assert got.content == data[5:10]

    assert total(events(api, user=ALICE)) == 9
    assert total(events(api, user=BOB)) == 9
    m3 = events(api, asset_id="m3")
    assert sorted((e["actor"], e["detail"]["operation"]) for e in m3) == [
        (ALICE, "seal"),
        (BOB, "open"),
    ]
    rec = events(api, asset_id="rec-1")
    assert sorted((e["actor"], e["detail"]["operation"]) for e in rec) == [
        (ALICE, "seal"),
        (BOB, "open"),
    ]


def test_a_bad_actor_is_422_naming_the_field(api: Api) -> None:
    body = {"request": {**chat(), "actor": "bob\u0007"}, "data": base64.b64encode(b"x").decode()}
    answer = api.client.post("/v1/seal", json=body, headers=api.platform)
    assert answer.status_code == 422
    assert "actor" in answer.text
