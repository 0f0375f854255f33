"""The data plane's request is typed at the boundary (issue 13): parsed once into frozen-shape
models, refused with a 422 naming the field when its shape is wrong, published with the policy
request schema's own ``asset``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ownkey.api._models import AssetIn, MemberIn, SealIn, policy_request_json_schema
from ownkey.catalog import ContainerKind, OwnerKind
from ownkey.policy import DataClass
from tests.api.conftest import Api, chat


def test_the_asset_is_parsed_into_typed_fields_and_sent_on_as_given() -> None:
    body = SealIn.model_validate({"request": chat(), "data": ""})
    asset = body.request.asset
    assert isinstance(asset, AssetIn)
    assert asset.owner_kind is OwnerKind.USER
    assert asset.container.kind is ContainerKind.CHAT
    assert all(isinstance(member, MemberIn) for member in asset.container.members)
    assert asset.data_class is DataClass.CONTENT  # the default, read as the enum
    # The policy engine gets what the client sent: no defaults filled in (one memo key per shape).
    assert body.request.to_request() == chat()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda a: a.update(third_party_model="yes"), "request.asset.third_party_model"),
        (lambda a: a["container"].update(kind="room"), "request.asset.container.kind"),
        (lambda a: a.update(owner_kind=1), "request.asset.owner_kind"),
        (lambda a: a.update(colour="red"), "request.asset.colour"),
        (lambda a: a["container"]["members"].append({"user": "x"}), "request.asset.container"),
        (lambda a: a.pop("component"), "request.asset.component"),
    ],
)
def test_a_misshapen_asset_is_refused_at_the_boundary(api: Api, change: Any, field: str) -> None:
    request = copy.deepcopy(chat())
    change(request["asset"])
    answer = api.client.post(
        "/v1/seal", json={"request": request, "data": ""}, headers=api.platform
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == "urn:ownkey:problem:invalid-request"
    assert answer.json()["field"].startswith(field)


def test_the_published_asset_is_the_policy_schemas_and_nothing_dangles(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    published = schemas["AssetRequest"]["properties"]["asset"]
    policy_asset = policy_request_json_schema()["properties"]["asset"]  # what /v1/policy uses
    assert published["required"] == policy_asset["required"]
    assert published["additionalProperties"] is False
    for name, field in policy_asset["properties"].items():  # FastAPI drops null defaults only
        assert {k: v for k, v in field.items() if k != "default" or v is not None} == (
            published["properties"][name]
        ), name
    for model in ("AssetIn", "ContainerIn", "MemberIn"):
        assert model not in schemas, f"{model} is published without being used"
