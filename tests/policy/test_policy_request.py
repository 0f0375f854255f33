"""Parsing the request JSON: strict, with the exact path of the offending field in every error."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

import ownkey.policy
from ownkey.catalog import ContainerKind, OwnerKind
from ownkey.errors import PolicyError
from ownkey.policy import (
    Asset,
    Container,
    Member,
    OrgSettings,
    PolicyRequest,
    explain,
    parse_request,
    parse_request_json,
)

from ._helpers import ANN, BO, BOB, CK, PK, keys, org, request

Mutation = Callable[[dict[str, Any]], object]


def base() -> dict[str, Any]:
    """A valid cross-org chat request, fully spelled out like DESIGN.md's example."""
    return request(
        "0008", "message",
        orgs={"acme": org("0001", "0008", licensed=(ANN,)), "globex": org(cmk=False)},
        container="chat", members=((ANN, "acme"), (BO, "globex")),
        creator=None, third_party_model=False, data_class="content",
    )  # fmt: skip


def _walk(req: dict[str, Any], path: str) -> tuple[Any, str]:
    """The parent node of ``path`` (``a/b/0/c``) and the last step."""
    *parents, last = path.split("/")
    node: Any = req
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, last


def _set(path: str, value: object) -> Mutation:
    def mutate(req: dict[str, Any]) -> None:
        node, last = _walk(req, path)
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(req: dict[str, Any]) -> None:
        node, last = _walk(req, path)
        del node[last]

    return mutate


BAD = [
    ("unknown top-level field", _set("colour", 1), "colour"),
    ("missing asset", _drop("asset"), "asset"),
    ("orgs not an object", _set("orgs", []), "orgs"),
    ("unknown org field", _set("orgs/acme/colour", 1), "orgs.acme.colour"),
    ("cmk missing", _drop("orgs/acme/cmk"), "orgs.acme.cmk"),
    ("cmk a string", _set("orgs/acme/cmk", "yes"), "orgs.acme.cmk"),
    ("cmk a number", _set("orgs/acme/cmk", 1), "orgs.acme.cmk"),
    ("unknown enabled service", _set("orgs/acme/services/1", "0024"), "orgs.acme.services[1]"),
    ("service as a number", _set("orgs/acme/services/0", 1), "orgs.acme.services[0]"),
    ("services not a list", _set("orgs/acme/services", "0008"), "orgs.acme.services"),
    ("licensed user empty", _set("orgs/acme/licensed_users/0", ""), "orgs.acme.licensed_users[0]"),
    ("flag as a string", _set("orgs/acme/hybrid", "false"), "orgs.acme.hybrid"),
    ("odd org name", _set("orgs/acme.test", {"cmk": 1}), 'orgs["acme.test"].cmk'),
    ("service ID a number", _set("asset/service_id", 8), "asset.service_id"),
    ("unknown service ID", _set("asset/service_id", "0024"), "asset.service_id"),
    ("short service ID", _set("asset/service_id", "8"), "asset.service_id"),
    ("unknown component", _set("asset/component", "sticker"), "asset.component"),
    ("component of another service", _set("asset/component", "poll"), "asset.component"),
    ("unknown owner kind", _set("asset/owner_kind", "robot"), "asset.owner_kind"),
    ("owner kind not allowed", _set("asset/owner_kind", "room"), "asset.owner_kind"),
    ("owner missing for a user", _set("asset/owner", None), "asset.owner"),
    ("owner a number", _set("asset/owner", 7), "asset.owner"),
    ("unlisted asset org", _set("asset/org", "initech"), "asset.org"),
    ("unknown asset field", _set("asset/colour", 1), "asset.colour"),
    ("container not an object", _set("asset/container", "chat"), "asset.container"),
    ("unknown container kind", _set("asset/container/kind", "room"), "asset.container.kind"),
    ("container kind wrong for 0008", _set("asset/container/kind", "meeting"),
     "asset.container.kind"),
    ("members not a list", _set("asset/container/members", {}), "asset.container.members"),
    ("member not an object", _set("asset/container/members/1", "bo"),
     "asset.container.members[1]"),
    ("member org not listed", _set("asset/container/members/1/org", "initech"),
     "asset.container.members[1].org"),
    ("member without user", _drop("asset/container/members/0/user"),
     "asset.container.members[0].user"),
    ("member with extra field", _set("asset/container/members/0/role", "x"),
     "asset.container.members[0].role"),
    ("member in two orgs", _set("asset/container/members/1/user", ANN),
     "asset.container.members[1].org"),
    ("data class unknown", _set("asset/data_class", "logs"), "asset.data_class"),
    ("third_party_model a string", _set("asset/third_party_model", "false"),
     "asset.third_party_model"),
    ("creator a list", _set("asset/creator", []), "asset.creator"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_requests_name_the_offending_field(mutate: Mutation, field: str) -> None:
    """DESIGN: "Unknown service IDs, components or fields are errors ... that name the offending
    field." The issue adds wrong types and a member whose org is not listed."""
    req = base()
    mutate(req)
    with pytest.raises(PolicyError) as info:
        parse_request(req)
    assert info.value.field == field
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(field + ": ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid JSON"),
        ('{"orgs": {}, "asset": ', "invalid JSON"),
        ('{"orgs": NaN}', "NaN is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ("[]", "must be an object"),
        ("null", "must be an object"),
    ],
    ids=["empty", "truncated", "NaN", "deep", "not utf-8", "list", "null"],
)
def test_malformed_json_is_an_error_on_the_request(text: str | bytes, message: str) -> None:
    """Invalid JSON is bad input too (exit code 2 on the CLI), never a traceback."""
    with pytest.raises(PolicyError) as info:
        parse_request_json(text)
    assert info.value.field == "request"
    assert message in str(info.value)


def test_a_key_given_twice_is_refused() -> None:
    """Parsers disagree on which duplicate wins; the request is refused instead of guessed."""
    text = json.dumps(base()).replace('"cmk": false', '"cmk": false, "cmk": true')
    with pytest.raises(PolicyError) as info:
        parse_request_json(text)
    assert info.value.field == "orgs.globex.cmk"


def test_optional_fields_have_the_published_defaults() -> None:
    """Only cmk, and service_id/org/owner_kind/component, are required."""
    req = {
        "orgs": {"acme": {"cmk": True}},
        "asset": {"service_id": "9999", "org": "acme", "owner_kind": "account",
                  "component": "picture"},
    }  # fmt: skip
    parsed = parse_request(req)
    assert parsed.asset.container == Container()
    assert parsed.asset.data_class.value == "content"
    assert parsed.orgs["acme"] == OrgSettings(cmk=True)
    assert explain(parsed).to_json()["keys"] == [CK("acme")]


def test_requests_round_trip_through_json() -> None:
    """``to_json`` writes what ``parse_request`` reads back to an equal request."""
    parsed = parse_request(base())
    again = parse_request_json(json.dumps(parsed.to_json()))
    assert again == parsed


def test_parsing_does_not_change_the_input() -> None:
    """The caller's dict is left as it was."""
    req = base()
    before = copy.deepcopy(req)
    parse_request(req)
    assert req == before


def test_requests_built_in_python_are_held_to_the_same_rules() -> None:
    """The dataclasses check themselves; :func:`explain` never sees an invalid request."""
    acme = OrgSettings(cmk=True, services=frozenset({"0008"}))
    asset = Asset("0008", "acme", ANN, OwnerKind.USER, "message",
                  Container(ContainerKind.CHAT, (Member(BO, "globex"),)))  # fmt: skip
    with pytest.raises(PolicyError) as info:
        PolicyRequest({"acme": acme}, asset)
    assert info.value.field == "asset.container.members[0].org"
    with pytest.raises(PolicyError) as info:
        PolicyRequest({"acme": OrgSettings(cmk=True, services=frozenset({"7"}))}, asset)
    assert info.value.field == "orgs.acme.services"
    with pytest.raises(PolicyError) as info:
        Container(ContainerKind.NONE, (Member(BO, "globex"),))
    assert info.value.field == "asset.container.members"


def test_the_request_is_immutable() -> None:
    """Frozen dataclasses and a read-only ``orgs`` mapping: a plan cannot be argued with later."""
    parsed = parse_request(base())
    with pytest.raises(TypeError):
        parsed.orgs["evil"] = OrgSettings(cmk=True)  # type: ignore[index]


def test_licences_are_exact_names_of_the_owners_own_org() -> None:
    """A licence is a user of *that* org: being listed in another org's licences does not count,
    and names are compared exactly (no case folding: the platform sends its canonical ids)."""
    other_org = {"acme": org("0018"), "globex": org("0018", licensed=(ANN,))}
    assert keys(request("0018", "doc", orgs=other_org)) == [PK]
    assert keys(
        request("0018", "doc", orgs={"acme": org("0018", licensed=("Ann@acme.test",))})
    ) == [PK]
    assert keys(request("0018", "doc", owner=BOB, orgs={"acme": org("0018", licensed=(BOB,))})) == [
        CK("acme")
    ]


def test_public_names_are_pinned() -> None:
    """The package's front door is a curated ``__all__``."""
    assert set(ownkey.policy.__all__) == {
        "ORG_FLAGS", "ORG_FLAG_HELP", "Asset", "Container", "DataClass", "KeyRef", "KeyType",
        "Member", "OrgSettings",
        "PolicyRequest", "Protection", "ProtectionPlan", "Reason", "Rule", "explain",
        "parse_request", "parse_request_json", "plan_schema", "request_schema",
        # the shared value rules (issue 12): CLI, API and service layer call the same ones
        "MAX_DURATION", "MAX_ID_CHARS", "MAX_TIME", "MIN_TIME", "check_duration", "check_id",
        "check_org", "check_service_id", "check_time", "check_window", "parse_duration",
        "parse_time", "MAX_NOTE_CHARS", "check_note", "MAX_REQUEST_BYTES",
        # the one identity rule (issue 23): the directory, the platform, the key service
        "MAX_EMAIL_CHARS", "canonical_email",
    }  # fmt: skip
