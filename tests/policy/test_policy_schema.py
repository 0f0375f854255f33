"""The published JSON Schemas: generated from code, matching DESIGN.md's examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError, validate

from ownkey.catalog import SERVICE_IDS
from ownkey.policy import plan_schema, request_schema

from ._helpers import BO, org, plan, request

DOCS = Path(__file__).resolve().parents[2] / "docs"

# DESIGN.md, "The policy decision contract", verbatim (one overlong line kept as it is there).
DESIGN_REQUEST = json.loads("""
{"orgs": {"acme": {"cmk": true, "services": ["0001", "0008"], "licensed_users": ["ann@acme.test"],
                   "large_org": false, "log_index_encryption": false, "compliance_archival": false,
                   "advanced_chat_encryption": false, "hybrid": false}},
 "asset": {"service_id": "0008", "org": "acme", "owner": "ann@acme.test", "owner_kind": "user",
           "container": {"kind": "chat", "members": [{"user": "ann@acme.test", "org": "acme"},
                                                     {"user": "bo@globex.test", "org": "globex"}]},
           "component": "message", "creator": null, "third_party_model": false, "data_class": "content"}}
""")  # noqa: E501
DESIGN_PLAN = json.loads("""
{"service_id": "0008", "protection": "customer", "keys": [{"type": "customer", "org": "acme"},
 {"type": "platform"}], "third_party_egress": false, "reasons": ["..."]}
""")


@pytest.mark.parametrize(
    ("name", "schema"),
    [("policy-request.schema.json", request_schema()), ("policy-plan.schema.json", plan_schema())],
)
def test_committed_schemas_are_the_generator_output(name: str, schema: dict[str, Any]) -> None:
    """docs/*.schema.json are written by scripts/gen-catalog-doc; they must not drift."""
    assert json.loads((DOCS / name).read_text(encoding="utf-8")) == schema


def test_designs_request_example_validates() -> None:
    """DESIGN.md's request example matches the published request schema."""
    validate(DESIGN_REQUEST, request_schema())


def test_designs_plan_example_validates() -> None:
    """DESIGN.md's answer example matches the published plan schema."""
    validate(DESIGN_PLAN, plan_schema())


def test_designs_example_gives_designs_answer_once_globex_is_listed() -> None:
    """The example names globex only as a member; the issue makes an unlisted member org an error,
    so the example lists globex without a CK to get DESIGN.md's answer."""
    req = json.loads(json.dumps(DESIGN_REQUEST))
    req["orgs"]["globex"] = {"cmk": False}
    result = plan(req)
    assert result["keys"] == DESIGN_PLAN["keys"]
    assert result["protection"] == DESIGN_PLAN["protection"]
    validate(result, plan_schema())


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("colour", 1),
        ("component", "poll"),
        ("component", "sticker"),
        ("owner_kind", "room"),
        ("service_id", "0024"),
        ("service_id", 8),
        ("owner", None),
        ("data_class", "logs"),
    ],
)
def test_the_request_schema_refuses_what_the_parser_refuses(where: str, value: object) -> None:
    """Unknown fields, a component or owner kind that the service does not know, unknown IDs."""
    req = json.loads(json.dumps(DESIGN_REQUEST))
    req["asset"][where] = value
    assert not is_valid(req, request_schema())


def test_the_schemas_list_exactly_the_catalogs_service_ids() -> None:
    """Generated from the catalog: no ID the engine does not know, none missing."""
    assert set(request_schema()["$defs"]["service_id"]["enum"]) == SERVICE_IDS
    assert set(plan_schema()["properties"]["service_id"]["enum"]) == SERVICE_IDS


def test_the_plan_schema_refuses_an_empty_or_wrong_key_list() -> None:
    """keys: at least one, each exactly one of the three shapes."""
    schema = plan_schema()
    assert not is_valid({**DESIGN_PLAN, "keys": []}, schema)
    assert not is_valid({**DESIGN_PLAN, "keys": [{"type": "platform", "org": "acme"}]}, schema)
    assert not is_valid({**DESIGN_PLAN, "keys": [{"type": "customer"}]}, schema)
    assert not is_valid({**DESIGN_PLAN, "extra": 1}, schema)


def test_real_plans_validate() -> None:
    """A cross-org plan straight from the engine matches the schema."""
    orgs = {"acme": org("0008", licensed=("ann@acme.test",)), "globex": org("0008", licensed=(BO,))}
    req = request("0008", "message", orgs=orgs, container="chat", members=((BO, "globex"),))
    validate(req, request_schema())
    validate(plan(req), plan_schema())


def is_valid(instance: object, schema: dict[str, Any]) -> bool:
    return bool(Draft202012Validator(schema).is_valid(instance))


def test_the_published_schemas_are_valid_draft_2020_12() -> None:
    """``jsonschema`` checks the schemas themselves, and a wrong type is refused."""
    for schema in (request_schema(), plan_schema()):
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    with pytest.raises(ValidationError):
        validate(True, {"type": "string"})
