"""The data plane over HTTP: seal/open, tombstones, objects with ranges, the policy contract."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import ANN, BO, Api, chat, recording


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def seal(api: Api, request: dict[str, object], data: bytes) -> str:
    answer = api.client.post(
        "/v1/seal", json={"request": request, "data": b64(data)}, headers=api.platform
    )
    assert answer.status_code == 200, answer.text
    sealed: str = answer.json()["sealed"]
    return sealed


def test_seal_then_open(api: Api) -> None:
    sealed = seal(api, chat(), b"hello globex")
    assert b"hello globex" not in base64.b64decode(sealed)
    answer = api.client.post(
        "/v1/open", json={"request": chat(), "sealed": sealed}, headers=api.platform
    )
    assert answer.status_code == 200
    assert base64.b64decode(answer.json()["data"]) == b"hello globex"


def test_a_revoked_open_is_a_tombstone(api: Api) -> None:
    sealed = seal(api, chat(), b"secret")
    rule = api.client.post("/v1/orgs/acme/revocations", json={"scope": "chat-1"}, headers=api.acme)
    assert rule.status_code == 201, rule.text
    answer = api.client.post(
        "/v1/open", json={"request": chat(), "sealed": sealed}, headers=api.platform
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:ownkey:problem:access-denied"
    assert problem["reason"] == "revocation_rule"
    assert problem["tombstone"] is True
    assert set(problem) >= {"type", "title", "status", "detail"}
    lifted = api.client.delete(
        f"/v1/orgs/acme/revocations/{rule.json()['rule_id']}", headers=api.acme
    )
    assert lifted.status_code == 200
    reopened = api.client.post(
        "/v1/open", json={"request": chat(), "sealed": sealed}, headers=api.platform
    )
    assert reopened.status_code == 200


def test_a_disabled_key_is_a_tombstone_and_counted(api: Api) -> None:
    sealed = seal(api, chat(), b"secret")
    assert api.client.post("/v1/orgs/acme/key/disable", headers=api.acme).status_code == 200
    answer = api.client.post(
        "/v1/open", json={"request": chat(), "sealed": sealed}, headers=api.platform
    )
    assert answer.status_code == 403
    assert answer.json()["reason"] == "disabled"
    metrics = api.client.get("/metrics").text
    assert 'ownkey_denials_total{reason="disabled"} 1.0' in metrics
    assert 'ownkey_seals_total{kind="message"} 1.0' in metrics
    assert "ownkey_unwraps_total" in metrics
    assert "ownkey_cache_max_age_seconds 300.0" in metrics


def test_tampered_and_bad_input_are_422_naming_the_field(api: Api) -> None:
    sealed = bytearray(base64.b64decode(seal(api, chat(), b"secret")))
    sealed[-1] ^= 1
    answer = api.client.post(
        "/v1/open", json={"request": chat(), "sealed": b64(bytes(sealed))}, headers=api.platform
    )
    assert answer.status_code == 422
    assert answer.json()["type"] == "urn:ownkey:problem:invalid-ciphertext"
    bad = dict(chat(), orgs={})
    answer = api.client.post("/v1/seal", json={"request": bad, "data": ""}, headers=api.platform)
    assert answer.status_code == 422
    assert answer.json()["field"] == "request.orgs"
    unknown = chat()
    unknown["asset"] = dict(unknown["asset"], component="giphy-party")  # type: ignore[arg-type]
    answer = api.client.post(
        "/v1/seal", json={"request": unknown, "data": ""}, headers=api.platform
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "asset.component"


def test_objects_stream_in_and_out_with_ranges(api: Api) -> None:
    data = bytes(range(256)) * 12_000  # ~3 MB, several read chunks and many segments
    request = recording()
    header = json.dumps({"asset": request["asset"], "scope": request["scope"]})
    put = api.client.put(
        "/v1/objects/rec-1",
        content=iter([data[i : i + 70_000] for i in range(0, len(data), 70_000)]),
        headers={**api.platform, "Ownkey-Request": header},
    )
    assert put.status_code == 201, put.text
    assert put.json()["size"] == len(data)
    whole = api.client.get("/v1/objects/rec-1", headers=api.platform)
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.content == data
    for spec, start, end in [
        ("bytes=0-0", 0, 1),
        ("bytes=1000000-2100000", 1_000_000, 2_100_001),
        ("bytes=-100", len(data) - 100, len(data)),
        (f"bytes={len(data) - 5}-", len(data) - 5, len(data)),
        ("bytes=10-99999999", 10, len(data)),
    ]:
        part = api.client.get("/v1/objects/rec-1", headers={**api.platform, "Range": spec})
        assert part.status_code == 206, spec
        assert part.content == data[start:end], spec
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
    outside = api.client.get(
        "/v1/objects/rec-1", headers={**api.platform, "Range": f"bytes={len(data)}-"}
    )
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(data)}"
    meta = api.client.get("/v1/objects/rec-1/meta", headers=api.platform).json()
    assert meta["service_id"] == "0001"
    cover = api.client.get("/v1/orgs/acme/coverage", headers=api.acme).json()
    recordings = next(s for s in cover["services"] if s["service_id"] == "0001")
    assert recordings["assets"] == 1
    assert recordings["asset_bytes"] == len(data)


def test_a_revoked_object_is_refused_before_any_byte(api: Api) -> None:
    request = recording()
    header = json.dumps({"asset": request["asset"], "scope": request["scope"]})
    api.client.put(
        "/v1/objects/rec-1", content=b"x" * 5000, headers={**api.platform, "Ownkey-Request": header}
    )
    api.client.post("/v1/orgs/acme/revocations", json={"service_id": "0001"}, headers=api.acme)
    answer = api.client.get("/v1/objects/rec-1", headers=api.platform)
    assert answer.status_code == 403
    assert answer.json()["reason"] == "revocation_rule"
    assert api.client.delete("/v1/objects/rec-1", headers=api.platform).status_code == 204
    assert api.client.get("/v1/objects/rec-1", headers=api.platform).status_code == 404


def test_object_request_header_is_checked(api: Api) -> None:
    for header, field in [
        ("not json", "Ownkey-Request"),
        ('{"asset": {}, "scope": "s", "asset_id": "other"}', "Ownkey-Request.asset_id"),
    ]:
        answer = api.client.put(
            "/v1/objects/rec-1", content=b"x", headers={**api.platform, "Ownkey-Request": header}
        )
        assert answer.status_code == 422
        assert answer.json()["field"] == field


def test_policy_explain_is_the_cli_contract(api: Api) -> None:
    request = {
        "orgs": {
            "acme": {"cmk": True, "services": ["0008"], "licensed_users": [ANN]},
            "globex": {"cmk": False},
        },
        "asset": chat()["asset"],
    }
    answer = api.client.post("/v1/policy/explain", json=request, headers=api.platform)
    assert answer.status_code == 200
    cli = subprocess.run(
        [sys.executable, "-m", "ownkey", "policy", "explain", "--compact"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.json() == json.loads(cli.stdout)
    assert answer.json()["keys"] == [{"type": "customer", "org": "acme"}, {"type": "platform"}]
    request["asset"] = dict(chat()["asset"], service_id="0007")  # type: ignore[arg-type]
    bad = api.client.post("/v1/policy/explain", json=request, headers=api.platform)
    assert bad.status_code == 422
    assert bad.json()["field"].startswith("asset.")
    assert BO in json.dumps(chat())


@pytest.mark.parametrize("path", ["/v1/seal", "/v1/open", "/v1/policy/explain"])
def test_data_plane_needs_a_platform_token(api: Api, path: str) -> None:
    assert api.client.post(path, json={}).status_code == 401
    bad = api.client.post(path, json={}, headers={"Authorization": "Bearer okt_x"})
    assert bad.status_code == 401
    assert "invalid_token" in bad.headers["www-authenticate"]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: object = None
    content: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def send(self, api: Api, token: dict[str, str]) -> Any:  # the test client's response
        return api.client.request(
            self.method,
            self.path,
            json=self.json,
            content=self.content,
            headers={**self.headers, **token},
        )


def _data_plane_calls(api: Api) -> dict[str, Call]:
    """Every data-plane route with a body and headers the platform token is served with, so
    that an org admin token's answer can only be the 403 of the token check (issue 23: an empty
    body's 422 hid a missing 403)."""
    sealed = seal(api, chat(), b"hello")
    request = recording()
    header = {"Ownkey-Request": json.dumps({"asset": request["asset"], "scope": request["scope"]})}
    put = api.client.put(
        "/v1/objects/rec-1", content=b"x" * 100, headers={**api.platform, **header}
    )
    assert put.status_code == 201, put.text
    explain = {"orgs": {"acme": {"cmk": True}, "globex": {"cmk": False}}, "asset": chat()["asset"]}
    return {
        "seal": Call("POST", "/v1/seal", json={"request": chat(), "data": b64(b"hi")}),
        "open": Call("POST", "/v1/open", json={"request": chat(), "sealed": sealed}),
        "explain": Call("POST", "/v1/policy/explain", json=explain),
        "put": Call("PUT", "/v1/objects/rec-2", content=b"y" * 100, headers=header),
        "get": Call("GET", "/v1/objects/rec-1"),
        "range": Call("GET", "/v1/objects/rec-1", headers={"Range": "bytes=0-9"}),
        "meta": Call("GET", "/v1/objects/rec-1/meta"),
        "delete": Call("DELETE", "/v1/objects/rec-1"),
    }


@pytest.mark.parametrize(
    "route", ["seal", "open", "explain", "put", "get", "range", "meta", "delete"]
)
def test_an_org_admin_token_is_refused_on_every_data_plane_route(api: Api, route: str) -> None:
    call = _data_plane_calls(api)[route]
    for token in (api.acme, api.globex):
        answer = call.send(api, token)
        assert answer.status_code == 403, answer.text
        assert answer.json()["type"] == "urn:ownkey:problem:forbidden"
    assert api.client.get("/v1/objects/rec-1/meta", headers=api.platform).status_code == 200
    assert api.client.get("/v1/objects/rec-2/meta", headers=api.platform).status_code == 404
    served = call.send(api, api.platform)  # the very same call is served to the platform
    assert served.status_code in (200, 201, 204, 206), served.text


def test_health_and_openapi(api: Api) -> None:
    assert api.client.get("/healthz").json()["status"] == "ready"  # /readyz's answer
    document = api.client.get("/openapi.json").json()
    assert "/v1/orgs/{org}/revocations/preview" in document["paths"]
    assert "Problem" in document["components"]["schemas"]
