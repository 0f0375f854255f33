"""Team Chat (0008), table-driven: cross-org chats, channels with external members, snippets.

Seed sentences checked here:
  "Chats between two users of different organizations will be encrypted with both
   organizations' keys if both users have licensed CMK. If only one person is a CMK-licensed
   user, a Zoom-provided key will be used for the non-licensed user."
  "An encrypted channel is encrypted using the owner's key, even if external participation is
   allowed."
  "Code snippets are encrypted if the creator is a CMK-licensed user."
"""

from __future__ import annotations

from typing import Any

import pytest

from ownkey.errors import PolicyError
from ownkey.policy import Rule, parse_request

from ._helpers import ANN, BO, BOB, CK, IDA, PK, keys, org, request, rules

ACME_LICENSED = org("0008", licensed=(ANN,))
ACME_UNLICENSED = org("0008")
GLOBEX_LICENSED = org("0008", licensed=(BO,))
GLOBEX_UNLICENSED = org("0008")
GLOBEX_NO_CK = org("0008", cmk=False, licensed=(BO,))
GLOBEX_NOT_ENABLED = org("0001", licensed=(BO,))


def chat(
    acme: dict[str, Any], globex: dict[str, Any], component: str = "message", **asset: Any
) -> dict[str, Any]:
    """A chat between ANN (acme, the sender) and BO (globex)."""
    return request(
        "0008",
        component,
        orgs={"acme": acme, "globex": globex},
        container="chat",
        members=((ANN, "acme"), (BO, "globex")),
        **asset,
    )


CROSS_ORG_CHATS = [
    ("both licensed", ACME_LICENSED, GLOBEX_LICENSED, [CK("acme"), CK("globex")]),
    ("only the sender licensed", ACME_LICENSED, GLOBEX_UNLICENSED, [CK("acme"), PK]),
    ("only the recipient licensed", ACME_UNLICENSED, GLOBEX_LICENSED, [CK("globex"), PK]),
    ("none licensed", ACME_UNLICENSED, GLOBEX_UNLICENSED, [PK]),
    ("recipient licensed but has no CK", ACME_LICENSED, GLOBEX_NO_CK, [CK("acme"), PK]),
    ("recipient licensed, 0008 not enabled", ACME_LICENSED, GLOBEX_NOT_ENABLED, [CK("acme"), PK]),
    (
        "sender's org has no CK",
        org(cmk=False, licensed=(ANN,)),
        GLOBEX_LICENSED,
        [CK("globex"), PK],
    ),
]


@pytest.mark.parametrize(
    ("acme", "globex", "expected"),
    [case[1:] for case in CROSS_ORG_CHATS],
    ids=[case[0] for case in CROSS_ORG_CHATS],
)
def test_chats_between_two_organizations_use_both_keys_if_both_users_are_licensed(
    acme: dict[str, Any], globex: dict[str, Any], expected: list[dict[str, str]]
) -> None:
    """Seed: "Chats between two users of different organizations will be encrypted with both
    organizations' keys if both users have licensed CMK. If only one person is a CMK-licensed
    user, a Zoom-provided key will be used for the non-licensed user." """
    assert keys(chat(acme, globex)) == expected


def test_a_chat_with_three_orgs_takes_one_key_per_org_side() -> None:
    """Each org present brings its CK if it has a licensed member present, else the PK."""
    orgs = {
        "acme": ACME_LICENSED,
        "globex": GLOBEX_UNLICENSED,
        "initech": org("0008", licensed=(IDA,)),
    }
    req = request(
        "0008", "file", orgs=orgs, container="chat", members=((BO, "globex"), (IDA, "initech"))
    )
    assert keys(req) == [CK("acme"), CK("initech"), PK]
    assert Rule.TEAM_CHAT_CROSS_ORG.value in rules(req)


def test_a_licensed_member_who_is_not_the_sender_protects_the_chat() -> None:
    """Seed: "... if any member of the channel or chat is a CMK-licensed user" -- not only the
    sender."""
    req = request("0008", "message", owner=BOB, container="chat", members=((ANN, "acme"),))
    assert keys(req) == [CK("acme")]


CHANNELS = [
    ("owner licensed, external members", ACME_LICENSED, GLOBEX_LICENSED, [CK("acme")]),
    ("only an external member licensed", ACME_UNLICENSED, GLOBEX_LICENSED, [CK("acme")]),
    ("external licensed, their org has no CK", ACME_UNLICENSED, GLOBEX_NO_CK, [PK]),
    ("owner's org has no CK", org(cmk=False, licensed=(ANN,)), GLOBEX_LICENSED, [PK]),
    ("owner's org did not enable 0008", org("0001", licensed=(ANN,)), GLOBEX_LICENSED, [PK]),
    ("nobody licensed", ACME_UNLICENSED, GLOBEX_UNLICENSED, [PK]),
]


@pytest.mark.parametrize(
    ("acme", "globex", "expected"),
    [case[1:] for case in CHANNELS],
    ids=[case[0] for case in CHANNELS],
)
def test_an_encrypted_channel_uses_the_owners_key_even_with_external_participation(
    acme: dict[str, Any], globex: dict[str, Any], expected: list[dict[str, str]]
) -> None:
    """Seed: "An encrypted channel is encrypted using the owner's key, even if external
    participation is allowed." """
    req = request(
        "0008",
        "message",
        orgs={"acme": acme, "globex": globex},
        container="channel",
        members=((BOB, "acme"), (BO, "globex")),
    )
    assert keys(req) == expected
    assert Rule.TEAM_CHAT_ANY_MEMBER.value in rules(req)


SNIPPETS = [
    ("creator licensed", ANN, ACME_LICENSED, GLOBEX_UNLICENSED, [CK("acme"), PK]),
    ("creator unlicensed, other member licensed", BO, ACME_LICENSED, GLOBEX_UNLICENSED, [PK]),
    ("both licensed", BO, ACME_LICENSED, GLOBEX_LICENSED, [CK("acme"), CK("globex")]),
    ("creator defaults to the sender", None, ACME_LICENSED, GLOBEX_UNLICENSED, [CK("acme"), PK]),
    ("creator licensed, its org has no CK", BO, ACME_LICENSED, GLOBEX_NO_CK, [PK]),
]


@pytest.mark.parametrize(
    ("creator", "acme", "globex", "expected"),
    [case[1:] for case in SNIPPETS],
    ids=[case[0] for case in SNIPPETS],
)
def test_code_snippets_are_encrypted_if_the_creator_is_a_cmk_licensed_user(
    creator: str | None,
    acme: dict[str, Any],
    globex: dict[str, Any],
    expected: list[dict[str, str]],
) -> None:
    """Seed: "Code snippets are encrypted if the creator is a CMK-licensed user." """
    req = chat(acme, globex, component="code_snippet", creator=creator)
    assert keys(req) == expected
    assert Rule.CODE_SNIPPET_CREATOR.value in rules(req)


def test_code_snippet_in_a_channel_uses_the_owners_key_when_its_creator_is_licensed() -> None:
    """Creator licensed in globex (which protects 0008): the channel owner's key seals it."""
    req = request(
        "0008",
        "code_snippet",
        orgs={"acme": ACME_UNLICENSED, "globex": GLOBEX_LICENSED},
        owner=BOB,
        container="channel",
        members=((BO, "globex"),),
        creator=BO,
    )
    assert keys(req) == [CK("acme")]


def test_code_snippet_creator_must_be_a_member() -> None:
    """A creator who is not in the chat is a malformed request, not a guess at their org."""
    req = chat(ACME_LICENSED, GLOBEX_LICENSED, component="code_snippet", creator="eve@x.test")
    with pytest.raises(PolicyError) as info:
        parse_request(req)
    assert info.value.field == "asset.creator"


@pytest.mark.parametrize("component", ["reaction", "giphy"])
def test_reactions_and_giphys_stay_under_the_platform_key_in_any_chat(component: str) -> None:
    """Seed: "Reaction emojis and giphys (and the associated URLs) will not be encrypted, as they
    are static resources." """
    assert keys(chat(ACME_LICENSED, GLOBEX_LICENSED, component=component)) == [PK]


def test_team_chat_needs_a_chat_or_channel() -> None:
    """Team chat content lives in a chat or a channel; anything else is a malformed request."""
    with pytest.raises(PolicyError) as info:
        parse_request(request("0008", "message", container="meeting"))
    assert info.value.field == "asset.container.kind"
