"""``ownkey serve`` keeps 1001 ciphertext in its asset store like any asset (HYB-12, HYB-13):
listed by ``GET /v1/objects?service_id=1001``, never opened with platform keys (a typed 403),
removed with its conversation; members come from the org directory plus the conversation's
list. A real identity provider process signs the users in; the messages are well-formed sealed
bytes (the platform cannot tell them from a client's, and the full flow is test_flow's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.service import Runtime
from ownkey.storage import TokenStore
from ownkey.testing.oidc import OidcIssuer
from tests.hybrid.conftest import ADMIN, ALICE, BOB, CAROL, ORG, PLATFORM_AUD, sealed_bytes

CONV = "conv-a"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIssuer]:
    with OidcIssuer() as issuer:
        yield issuer


@pytest.fixture
def served(
    idp: OidcIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    members = tmp_path / "conversations.json"
    # The chat product's lists name carol, but the org directory does not: she is no member.
    conversations = {CONV: [ALICE, BOB, CAROL]}
    members.write_text(
        json.dumps({ORG: {"conversations": conversations, "admins": [ADMIN]}}), encoding="utf-8"
    )
    home = tmp_path / "home"
    for name, value in {
        "OWNKEY_HOME": str(home),
        "OWNKEY_HYBRID_ISSUER": "http://testserver/hybrid",
        "OWNKEY_HYBRID_IDP": idp.url,
        "OWNKEY_HYBRID_IDP_AUDIENCE": PLATFORM_AUD,
        "OWNKEY_HYBRID_MEMBERS": str(members),
    }.items():
        monkeypatch.setenv(name, value)
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as runtime:
        runtime.create_org(ORG)
        runtime.add_users(ORG, [ALICE, BOB, ADMIN])
        tokens = TokenStore(runtime.database)
        _, platform = tokens.issue("platform")
        with TestClient(create_app(runtime, tokens=tokens)) as client:
            yield client, {"Authorization": f"Bearer {platform}"}


def _sign_in(idp: OidcIssuer, email: str) -> str:
    return idp.token(email=email, aud=PLATFORM_AUD)


def _as(idp: OidcIssuer, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_sign_in(idp, email)}"}


def test_serve_stores_lists_refuses_to_open_and_deletes_1001_assets(
    idp: OidcIssuer, served: tuple[TestClient, dict[str, str]]
) -> None:
    client, platform = served
    plaintext = b"only acme's devices read this"
    sealed = sealed_bytes(plaintext, CONV)
    url = f"/hybrid/conversations/{CONV}/messages/m-1"
    stored = client.put(url, content=sealed, headers=_as(idp, ALICE))
    assert stored.status_code == 204, stored.text
    assert client.get(url, headers=_as(idp, BOB)).content == sealed

    listed = client.get("/v1/objects?service_id=1001", headers=platform).json()["objects"]
    assert [(o["org"], o["service_id"], o["scope"]) for o in listed] == [(ORG, "1001", CONV)]
    asset_id = listed[0]["asset_id"]
    assert listed[0]["sealed_size"] == len(sealed)

    # The platform's object path never tries its keys on it: a typed, documented refusal.
    opened = client.get(f"/v1/objects/{asset_id}", headers=platform)
    assert opened.status_code == 403
    assert opened.json()["reason"] == "policy"
    assert "client-side" in opened.json()["detail"]
    assert plaintext not in opened.content

    # Another member cannot take the message id over (HYB-13).
    forged = sealed_bytes(b"bob's version", CONV, author=BOB)
    refused = client.put(url, content=forged, headers=_as(idp, BOB))
    assert refused.status_code == 409
    assert client.get(url, headers=_as(idp, ALICE)).content == sealed

    deleted = client.delete(f"/hybrid/conversations/{CONV}", headers=_as(idp, ADMIN))
    assert deleted.json() == {"deleted": 1}
    assert client.get("/v1/objects?service_id=1001", headers=platform).json()["objects"] == []
    assert client.get(f"/v1/objects/{asset_id}/meta", headers=platform).status_code == 404


def test_serve_takes_membership_from_the_org_directory(
    idp: OidcIssuer, served: tuple[TestClient, dict[str, str]]
) -> None:
    client, _platform = served
    sealed = sealed_bytes(b"hello", CONV, message="m-2", author=CAROL)
    url = f"/hybrid/conversations/{CONV}/messages/m-2"
    # carol is on the conversation's list but not a user of the org in the directory
    assert client.put(url, content=sealed, headers=_as(idp, CAROL)).status_code == 403
    authorize = {"authentication": _sign_in(idp, CAROL), "conversation": CONV, "role": "reader"}
    assert client.post("/hybrid/authorize", json=authorize).status_code == 403
    granted = {**authorize, "authentication": _sign_in(idp, BOB)}
    assert client.post("/hybrid/authorize", json=granted).status_code == 200
