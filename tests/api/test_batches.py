"""Issue 25, item 2: many messages of one container in one request, each result on its own.

One authentication, one plan, one prepared handle per batch; an item's own fault fails that item
alone, a denial of the container fails every item alike (api/_batch.py).
"""

from __future__ import annotations

import base64
from typing import Any

from ownkey.keys import RevocationRule
from tests.api.conftest import Api, chat


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def container(actor: str | None = None) -> dict[str, Any]:
    request = {k: v for k, v in chat().items() if k != "asset_id"}
    if actor is not None:
        request["actor"] = actor
    return request


def seal_batch(api: Api, items: list[dict[str, str]], **request: Any) -> Any:
    body = {"request": {**container(), **request}, "items": items}
    return api.client.post("/v1/seal/batch", json=body, headers=api.platform)


def test_a_batch_seals_and_opens_every_item_in_order(api: Api) -> None:
    items = [{"asset_id": f"m{n}", "data": b64(b"hello %d" % n)} for n in range(50)]
    sealed = seal_batch(api, items, actor="ann@acme.test")
    assert sealed.status_code == 200, sealed.text
    body = sealed.json()
    assert (body["sealed"], body["failed"]) == (50, 0)
    assert body["protection"]["protection"] == "customer"
    assert [r["asset_id"] for r in body["results"]] == [f"m{n}" for n in range(50)]
    # each envelope opens alone through /v1/open, bound to its own asset id
    first = body["results"][7]
    single = api.client.post(
        "/v1/open",
        json={"request": {**chat(asset_id="m7")}, "sealed": first["value"]},
        headers=api.platform,
    )
    assert base64.b64decode(single.json()["data"]) == b"hello 7"
    opened = api.client.post(
        "/v1/open/batch",
        json={
            "request": container("bo@globex.test"),
            "items": [{"asset_id": r["asset_id"], "sealed": r["value"]} for r in body["results"]],
        },
        headers=api.platform,
    )
    assert opened.status_code == 200, opened.text
    assert [base64.b64decode(r["value"]) for r in opened.json()["results"]] == [
        b"hello %d" % n for n in range(50)
    ]


def test_one_bad_item_fails_alone(api: Api) -> None:
    items = [
        {"asset_id": "m1", "data": b64(b"one")},
        {"asset_id": "", "data": b64(b"no id")},
        {"asset_id": "m3", "data": "not base64!"},
        {"asset_id": "m4", "data": b64(b"four")},
    ]
    answer = seal_batch(api, items)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["error"] is None for r in results] == [True, False, False, True]
    assert results[1]["error"]["status"] == 422
    assert results[1]["error"]["field"] == "asset_id"
    assert results[2]["error"]["field"] == "items[2].data"
    swapped = api.client.post(
        "/v1/open/batch",
        json={
            "request": container(),
            "items": [
                {"asset_id": "m4", "sealed": results[0]["value"]},  # m1's envelope as m4
                {"asset_id": "m4", "sealed": results[3]["value"]},
            ],
        },
        headers=api.platform,
    )
    opened = swapped.json()["results"]
    assert opened[0]["error"]["type"].endswith("invalid-ciphertext")
    assert base64.b64decode(opened[1]["value"]) == b"four"


def test_a_revoked_container_fails_every_item_as_a_tombstone(api: Api) -> None:
    sealed = seal_batch(api, [{"asset_id": "m1", "data": b64(b"x")}]).json()["results"]
    api.runtime.admin.revoke(RevocationRule(org="acme", scope="chat-1"), actor="test")
    answer = api.client.post(
        "/v1/open/batch",
        json={
            "request": container(),
            "items": [{"asset_id": "m1", "sealed": sealed[0]["value"]}] * 3,
        },
        headers=api.platform,
    )
    assert answer.status_code == 200
    errors = [r["error"] for r in answer.json()["results"]]
    assert {(e["status"], e["reason"], e["tombstone"]) for e in errors} == {
        (403, "revocation_rule", True)
    }


def test_a_batch_is_bounded_and_needs_the_platform_token(api: Api) -> None:
    too_many = [{"asset_id": f"m{n}", "data": ""} for n in range(1001)]
    assert seal_batch(api, too_many).status_code == 422
    body = {"request": container(), "items": [{"asset_id": "m1", "data": ""}]}
    assert api.client.post("/v1/seal/batch", json=body, headers=api.acme).status_code == 403
    assert api.client.post("/v1/seal/batch", json=body).status_code == 401
