"""One test per rule of DESIGN.md's "Rules, read from the seed", named after its sentence."""

from __future__ import annotations

import pytest

from ownkey.catalog import ASSET_TYPES, Group
from ownkey.errors import PolicyError
from ownkey.policy import Rule, explain, parse_request

from ._helpers import ANN, BO, BOB, CK, HK, PK, keys, org, plan, request, rules


def test_each_organization_can_decide_what_types_of_assets_get_encrypted_with_its_key() -> None:
    """Seed: "Each organization can decide what types of assets get encrypted with its key when
    stored permanently in the cloud." An org protects S when it has a CK and S is enabled."""
    assert keys(request("0018", "doc", orgs={"acme": org("0018", licensed=(ANN,))})) == [CK("acme")]
    assert keys(request("0018", "doc", orgs={"acme": org("0017", licensed=(ANN,))})) == [PK]
    no_ck = {"acme": org("0018", cmk=False, licensed=(ANN,))}
    assert keys(request("0018", "doc", orgs=no_ck)) == [PK]
    assert rules(request("0018", "doc", orgs=no_ck)) == {Rule.ORG_ENABLEMENT.value}


def test_organizer_licensed_recording_encrypted_even_if_attendees_are_not_cmk_users() -> None:
    """Seed: "if cloud meeting recordings are enabled and the meeting organizer is a licensed CMK
    user and records the meeting, the associated files are encrypted, even if some of the
    meeting attendees are not CMK users." """
    attendees = ((BOB, "acme"), (BO, "globex"))
    orgs = {"acme": org("0001", licensed=(ANN,)), "globex": org(cmk=False)}
    req = request("0001", "video", orgs=orgs, container="meeting", members=attendees)
    assert keys(req) == [CK("acme")]
    assert Rule.ORGANISER_LICENCE.value in rules(req)


def test_unlicensed_organizer_recording_is_not_under_the_ck_whatever_the_attendees() -> None:
    """Seed: "... the meeting organizer is a licensed CMK user ..." -- the organiser's licence is
    what counts; a licensed attendee does not make an unlicensed organiser's recording CMK."""
    req = request("0001", "video", owner=BOB, container="meeting", members=((ANN, "acme"),))
    assert keys(req) == [PK]


def test_user_owned_assets_need_a_licensed_owner() -> None:
    """DESIGN: "User-owned assets need a licensed owner"."""
    assert keys(request("0020", "file")) == [CK("acme")]
    assert keys(request("0020", "file", owner=BOB)) == [PK]
    assert Rule.OWNER_LICENCE.value in rules(request("0020", "file", owner=BOB))


@pytest.mark.parametrize(
    ("service_id", "component", "owner_kind"),
    [
        ("0002", "recording", "call_queue"),
        ("0003", "recording", "call_queue"),
        ("0005", "token", "room"),
        ("0007", "token", "account"),
        ("0013", "upload", "account"),
        ("0014", "recording", "call_queue"),
    ],
)
def test_call_queues_rooms_and_account_owned_assets_need_no_licence(
    service_id: str, component: str, owner_kind: str
) -> None:
    """Seed: "... not only for individual (licensed) users but also for all call queues."
    DESIGN: "call queues, rooms and account-owned assets need no licence." """
    orgs = {"acme": org(service_id)}  # nobody licensed
    req = request(service_id, component, owner="x", owner_kind=owner_kind, orgs=orgs)
    assert keys(req) == [CK("acme")]
    assert Rule.NO_LICENCE_NEEDED.value in rules(req)


def test_personal_identifiers_do_not_need_to_be_enabled_and_ignore_licences() -> None:
    """Seed (9999): "This category does not need to be enabled; the data is CMK-encrypted for the
    whole account regardless of whether a user has licensed CMK or not." """
    req = request("9999", "picture", owner=BOB, orgs={"acme": org()})
    assert keys(req) == [CK("acme")]
    assert rules(req) == {Rule.PERSONAL_IDENTIFIERS.value}


def test_personal_identifiers_need_the_org_to_have_a_customer_key() -> None:
    """Seed (9999): "the data is CMK-encrypted for the whole account" -- of an account with CMK;
    an org without a customer key has no key to encrypt them with."""
    assert keys(request("9999", "picture", orgs={"acme": org(cmk=False)})) == [PK]


EXCLUDED = [(e.service_id, c) for e in ASSET_TYPES for c in e.excluded]


@pytest.mark.parametrize(("service_id", "component"), EXCLUDED)
def test_excluded_components_always_get_the_platform_key(service_id: str, component: str) -> None:
    """DESIGN: "Excluded components always get the PK." -- even with every setting on."""
    everything = org(
        service_id,
        licensed=(ANN,),
        large_org=True,
        log_index_encryption=True,
        advanced_chat_encryption=True,
    )
    container = "chat" if service_id == "0008" else "none"
    req = request(service_id, component, orgs={"acme": everything}, container=container)
    result = plan(req)
    assert result["keys"] == [PK]
    assert result["protection"] == "platform"
    assert result["reasons"][0].startswith(Rule.EXCLUDED_COMPONENT.value + ":")


def test_0006_needs_compliance_archival_on() -> None:
    """Seed (0006): "If compliance archival is enabled, meetings, webinars, phone recordings, and
    in-chat messages can be encrypted." """
    off = request("0006", "meeting", owner=None, owner_kind="account")
    assert keys(off) == [PK]
    assert Rule.COMPLIANCE_ARCHIVAL.value in rules(off)


def test_advanced_chat_encryption_makes_team_chat_client_side() -> None:
    """Seed (0008): "... can be encrypted if any member ... is a CMK-licensed user, unless
    Advanced Chat Encryption is enabled." DESIGN: "advanced chat encryption makes chat
    client_side"."""
    orgs = {"acme": org("0008", advanced_chat_encryption=True), "globex": org()}
    for component in ("message", "file", "emoji", "attachment", "code_snippet"):
        req = request("0008", component, orgs=orgs, container="chat", members=((BO, "globex"),))
        result = plan(req)
        assert result["protection"] == "client_side"
        assert result["keys"] == [HK("acme")]


def test_advanced_chat_encryption_is_the_senders_org_setting() -> None:
    """ACCE is read on the asset's org (the sender's, or the channel owner's): the other org's
    setting does not change how the sender's content is sealed."""
    orgs = {"acme": org("0008", licensed=(ANN,)), "globex": org(advanced_chat_encryption=True)}
    req = request("0008", "message", orgs=orgs, container="chat", members=((BO, "globex"),))
    assert keys(req) == [CK("acme"), PK]


def test_advanced_chat_encryption_without_a_customer_key_does_not_apply() -> None:
    """Advanced *CMK* Chat Encryption is a CMK feature: without a CK it cannot apply."""
    orgs = {"acme": org("0008", cmk=False, licensed=(ANN,), advanced_chat_encryption=True)}
    req = request("0008", "message", orgs=orgs, container="chat")
    assert keys(req) == [PK]
    assert Rule.ADVANCED_CHAT_ENCRYPTION.value in rules(req)


def test_hybrid_chat_data_is_client_side() -> None:
    """Seed (1001): "Client-side encrypted chat messages managed via Team Chat hybrid." """
    req = request("1001", "message", orgs={"acme": org(hybrid=True)}, container="channel")
    assert plan(req)["protection"] == "client_side"
    assert rules(req) == {Rule.HYBRID_CHAT.value}


@pytest.mark.parametrize("settings", [{"hybrid": False}, {"hybrid": True, "cmk": False}])
def test_hybrid_chat_data_cannot_exist_without_cmk_hybrid(settings: dict[str, bool]) -> None:
    """1001 data exists only where CMK hybrid is on; anything else is a malformed request."""
    acme = {**org(), **settings}
    req = request("1001", "message", orgs={"acme": acme}, container="chat")
    with pytest.raises(PolicyError) as info:
        parse_request(req)
    assert info.value.field == "asset.service_id"


def test_large_organizations_can_also_encrypt_log_and_index_data() -> None:
    """Seed: "Large organizations can also enable the encryption of certain log and index data
    used for searching and AI when it is stored at rest." """

    def log_keys(**flags: bool) -> list[dict[str, str]]:
        orgs = {"acme": org("0019", licensed=(ANN,), **flags)}
        return keys(request("0019", "prompt", orgs=orgs, data_class="log_index"))

    assert log_keys(large_org=True, log_index_encryption=True) == [CK("acme")]
    assert log_keys(large_org=True) == [PK]
    assert log_keys(log_index_encryption=True) == [PK]
    assert log_keys() == [PK]


def test_log_and_index_data_still_needs_the_content_rules() -> None:
    """Log/index data of an asset whose content is not under the CK is not under the CK either
    ("can also" adds to the content's protection; it does not replace the enabling or licence)."""
    orgs = {"acme": org("0019", large_org=True, log_index_encryption=True)}  # ANN not licensed
    assert keys(request("0019", "prompt", orgs=orgs, data_class="log_index")) == [PK]


def test_log_and_index_data_of_a_cross_org_chat_is_decided_per_org() -> None:
    """Each org's CK stays only if that org is large and opted in; the other side falls back."""
    orgs = {
        "acme": org("0008", licensed=(ANN,), large_org=True, log_index_encryption=True),
        "globex": org("0008", licensed=(BO,)),
    }
    req = request(
        "0008",
        "message",
        orgs=orgs,
        container="chat",
        members=((BO, "globex"),),
        data_class="log_index",
    )
    assert keys(req) == [CK("acme"), PK]
    assert Rule.LOG_INDEX.value in rules(req)


AI = [e for e in ASSET_TYPES if e.group in (Group.AI_COMPANION, Group.CUSTOM_AI_COMPANION)]


@pytest.mark.parametrize("entry", AI, ids=[e.service_id for e in AI])
def test_third_party_model_provider_may_only_use_regular_encryption(entry: object) -> None:
    """Seed: "if the feature uses a third-party model provider, that provider may only encrypt the
    data they receive with regular encryption." The stored copy keeps its keys; the plan flags
    the egress."""
    from ownkey.catalog import AssetType

    assert isinstance(entry, AssetType)
    assert entry.third_party_model_note
    base = request(entry.service_id, entry.included[0])
    assert plan(base)["third_party_egress"] is False
    flagged = plan({**base, "asset": {**base["asset"], "third_party_model": True}})
    assert flagged["third_party_egress"] is True
    assert flagged["keys"] == plan(base)["keys"]
    assert any(r.startswith(Rule.THIRD_PARTY_MODEL.value) for r in flagged["reasons"])


def test_ai_generated_assets_are_encrypted_with_their_related_assets() -> None:
    """Seed: "If you enable an AI Companion feature and enable CMK encryption for a related type
    of asset, then Zoom will encrypt all related assets, including the AI-generated ones".
    DESIGN: "AI-generated derivatives are sealed under the service of their source asset." """
    for service_id, component in (
        ("0001", "summary"),
        ("0001", "next_steps"),
        ("0002", "summary"),
        ("0012", "ai_generated"),
    ):
        result = plan(request(service_id, component))
        assert result["service_id"] == service_id
        assert result["keys"] == [CK("acme")]
        assert any(r.startswith(Rule.AI_DERIVATIVE.value) for r in result["reasons"])
    # not enabled for the source service: the derivative is not under the CK either
    assert keys(request("0001", "summary", orgs={"acme": org("0019", licensed=(ANN,))})) == [PK]


def test_every_decision_lists_its_reasons_naming_the_rule() -> None:
    """DESIGN: "Every decision lists its reasons in plain words." -- each starts with a rule."""
    names = {rule.value for rule in Rule}
    for entry in ASSET_TYPES:
        if entry.client_side:
            continue
        container = "chat" if "chat" in {k.value for k in entry.containers} else "none"
        owner_kind = sorted(k.value for k in entry.owner_kinds)[-1]
        result = plan(
            request(entry.service_id, entry.included[0], container=container, owner_kind=owner_kind)
        )
        assert result["reasons"]
        assert all(r.split(":", 1)[0] in names for r in result["reasons"])


def test_plan_json_has_exactly_the_contract_fields_in_order() -> None:
    """DESIGN: the answer is {"service_id", "protection", "keys", "third_party_egress",
    "reasons"}."""
    result = explain(parse_request(request("0018", "doc"))).to_json()
    assert list(result) == ["service_id", "protection", "keys", "third_party_egress", "reasons"]
    assert result["service_id"] == "0018"
    assert result["protection"] == "customer"
