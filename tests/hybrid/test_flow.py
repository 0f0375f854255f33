"""CMK Hybrid end to end on loopback: identity provider, platform, customer key service, client.

Processes are module-scoped (tests/hybrid/conftest.py); each test leaves revocations as it
found them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from ownkey.cli._hybrid import hybrid_app
from ownkey.client import (
    AsyncHybridClient,
    AsyncPlatformCredentials,
    DekCache,
    HybridClient,
    MessageHeader,
    read_header,
)
from ownkey.client._format import join, key_id, split
from ownkey.envelope import MessageCipher, ScopeKey
from ownkey.errors import AccessDenied, InvalidCiphertext, InvalidRequest, KeyUnavailable
from ownkey.hybrid import SigningKeys
from tests.hybrid.conftest import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    DAVE,
    KACLS_AUD,
    ORG,
    Flow,
    _free_port,
)

runner = CliRunner()


def _cli(flow: Flow, *args: str) -> Any:
    return runner.invoke(hybrid_app, [*args, "--home", str(flow.kacls_home)])


def _binding(sealed: bytes) -> dict[str, str]:
    """The message id and author a sealed message is bound to, as the key service wants them."""
    _, header, _ = split(sealed)
    return {"message": header.message, "author": header.author}


def _context(sealed: bytes, conversation: str = "conv-a") -> dict[str, str]:
    """The envelope context of a sealed 1001 message of acme."""
    return {"org": ORG, "service": "1001", "conversation": conversation, **_binding(sealed)}


def _unwrap(
    flow: Flow,
    authentication: str,
    authorization: str,
    sealed: bytes,
    *,
    wrapped: bytes | None = None,
    **binding: str,
) -> httpx.Response:
    """``POST /unwrap`` of the wrapped key of ``sealed`` (or ``wrapped``), bound as ``sealed``
    says unless ``binding`` names another message id or author."""
    return httpx.post(
        flow.kacls_url + "/unwrap",
        json={
            "authentication": authentication,
            "authorization": authorization,
            "wrapped_key": base64.b64encode(wrapped or split(sealed)[0]).decode(),
            "reason": "test",
            **_binding(sealed),
            **binding,
        },
    )


@pytest.fixture(scope="module")
def sealed_a(flow: Flow) -> bytes:
    """One message alice sealed in conv-a."""
    return flow.client(ALICE).seal_message("conv-a", b"quarterly numbers", message="a-1")


def test_a_member_seals_and_another_member_opens(flow: Flow) -> None:
    """HYB-9: a fresh DEK per message, sealed by one member, opened by another."""
    sealed = flow.client(ALICE).seal_message("conv-a", b"hello bob", message="m-1")
    assert b"hello bob" not in sealed
    flow.upload(ALICE, "conv-a", "m-1", sealed)
    fetched = flow.download(BOB, "conv-a", "m-1")
    assert flow.client(BOB).open_message("conv-a", fetched, message="m-1") == b"hello bob"


def test_async_client_seals_and_opens(flow: Flow) -> None:
    async def sign_in() -> str:
        return flow.sign_in(BOB)

    async def authentication() -> str:
        return flow.sign_in(BOB, KACLS_AUD)

    async def run() -> bytes:
        async with httpx.AsyncClient(timeout=5.0) as http:
            credentials = AsyncPlatformCredentials(
                flow.platform_url, sign_in, authentication=authentication, http=http
            )
            client = AsyncHybridClient(flow.kacls_url, org=ORG, credentials=credentials, http=http)
            sealed = await client.seal_message("conv-a", b"async hi", message="as-1")
            client.cache.clear()
            return await client.open_message("conv-a", sealed, message="as-1")

    assert asyncio.run(run()) == b"async hi"


def test_a_non_member_gets_no_authorization_token(flow: Flow) -> None:
    """HYB-8."""
    with pytest.raises(AccessDenied, match="not a member"):
        flow.grant(CAROL, "conv-a")
    with pytest.raises(AccessDenied):
        flow.client(CAROL).seal_message("conv-a", b"x", message="x-1")


def test_a_token_for_conversation_a_fails_on_b(flow: Flow, sealed_a: bytes) -> None:
    """HYB-5."""
    # alice is a member of both; the DEK was wrapped for conv-a.
    answer = _unwrap(flow, flow.sign_in(ALICE, KACLS_AUD), flow.grant(ALICE, "conv-b"), sealed_a)
    assert answer.status_code == 403
    assert "does not open for this resource" in answer.json()["error"]["message"]
    with pytest.raises(AccessDenied):
        flow.client(ALICE).open_message("conv-b", sealed_a, message="a-1")
    ok = _unwrap(flow, flow.sign_in(ALICE, KACLS_AUD), flow.grant(ALICE, "conv-a"), sealed_a)
    assert ok.status_code == 200


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
    )


def _b64(raw: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).rstrip(b"=").decode()


def _bad_authentication(flow: Flow, kind: str) -> str:
    now = int(time.time())
    good = {"email": ALICE, "aud": KACLS_AUD}
    if kind == "expired":
        return flow.idp.token(**good, iat=now - 900, exp=now - 300)
    if kind == "not_yet_valid":
        return flow.idp.token(**good, nbf=now + 300)
    if kind == "wrong_issuer":
        return flow.idp.token(**good, iss="http://127.0.0.1:1/not-the-idp")
    if kind == "wrong_audience":
        return flow.idp.token(email=ALICE, aud="someone-else")
    if kind == "email_mismatch":
        return flow.idp.token(email=BOB, aud=KACLS_AUD)
    claims = {"iss": flow.idp.url, "iat": now, "exp": now + 300, **good}
    if kind == "wrong_kid":
        return SigningKeys().sign(claims)  # a key the issuer never published
    if kind == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    if kind == "hs256_with_public_key":
        published = flow.idp.jwks()["keys"][-1]
        public = base64.urlsafe_b64decode(published["x"] + "=")
        return jwt.encode(claims, public, algorithm="HS256", headers={"kid": published["kid"]})
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "wrong_kid",
        "alg_none",
        "hs256_with_public_key",
        "email_mismatch",
    ],
)
def test_a_bad_authentication_token_is_refused(flow: Flow, sealed_a: bytes, kind: str) -> None:
    """HYB-1, HYB-2, HYB-3."""
    answer = _unwrap(flow, _bad_authentication(flow, kind), flow.grant(ALICE, "conv-a"), sealed_a)
    assert answer.status_code == 403, answer.text
    assert "key" not in answer.json()


@pytest.mark.parametrize("kind", ["alg_none", "hs256_with_public_key", "foreign_key"])
def test_a_forged_authorization_token_is_refused(flow: Flow, sealed_a: bytes, kind: str) -> None:
    """HYB-1, HYB-2."""
    header, claims = _segments(flow.grant(BOB, "conv-a"))
    claims["email"] = CAROL  # carol is not in conv-a; the platform would never grant this
    if kind == "alg_none":
        forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    elif kind == "hs256_with_public_key":
        jwks = httpx.get(flow.platform_url + "/hybrid/.well-known/jwks.json").json()
        public = base64.urlsafe_b64decode(jwks["keys"][-1]["x"] + "=")
        forged = jwt.encode(claims, public, algorithm="HS256", headers={"kid": header["kid"]})
    else:
        forged = SigningKeys().sign(claims)
    answer = _unwrap(flow, flow.sign_in(CAROL, KACLS_AUD), forged, sealed_a)
    assert answer.status_code == 403


def test_a_rotated_identity_key_is_followed_by_kid(flow: Flow, sealed_a: bytes) -> None:
    """HYB-11."""
    old = flow.idp.jwks()["keys"][-1]["kid"]
    new = flow.idp.rotate()
    assert new != old
    answer = _unwrap(flow, flow.sign_in(BOB, KACLS_AUD), flow.grant(BOB, "conv-a"), sealed_a)
    assert answer.status_code == 200
    flow.idp.retire(old)
    flow.forget_tokens()  # every cached sign-in token was signed with the retired key
    fresh = flow.idp.token(email=BOB, aud=KACLS_AUD)
    assert _segments(fresh)[0]["kid"] == new
    assert _unwrap(flow, fresh, flow.grant(BOB, "conv-a"), sealed_a).status_code == 200


def test_the_platform_with_all_its_state_and_keys_cannot_open_a_message(flow: Flow) -> None:
    """HYB-10."""
    plaintext = b"the platform must never read this"
    sealed = flow.client(ALICE).seal_message("conv-a", plaintext, message="secret-1")
    flow.upload(ALICE, "conv-a", "secret-1", sealed)
    # Its full database: the message is one asset of service 1001, its bytes the client's.
    stored = flow.platform_assets()
    mine = [(r, b) for r, b in stored.values() if r.context.get("message") == "secret-1"]
    assert [(r.service_id, r.org, b) for r, b in mine] == [("1001", ORG, sealed)]
    assert not any(plaintext in blob for blob in flow.platform_files())
    # Every key the platform holds: its authorization signing seeds. None is the DEK.
    seeds = json.loads((flow.platform_state / "authz-signing-keys.json").read_text())["seeds"]
    wrapped, _, envelope = split(sealed)
    context = _context(sealed)
    for seed in seeds:
        with pytest.raises(InvalidCiphertext):
            MessageCipher(ScopeKey(key_id(wrapped), base64.b64decode(seed))).open(envelope, context)
    # With its signing keys the platform can grant itself anything, but the key service also
    # wants the customer's identity provider: a sign-in token the platform signs is refused.
    platform_keys = SigningKeys(seeds=[base64.b64decode(s) for s in seeds])
    now = int(time.time())
    grant = platform_keys.sign(
        {
            "iss": flow.platform_url + "/hybrid",
            "aud": KACLS_AUD,
            "email": "ops@platform.example",
            "org": ORG,
            "resource_name": "conv-a",
            "role": "reader",
            "iat": now,
            "exp": now + 60,
        }
    )
    fake_login = platform_keys.sign(
        {
            "iss": flow.idp.url,
            "aud": KACLS_AUD,
            "email": "ops@platform.example",
            "iat": now,
            "exp": now + 60,
        }
    )
    assert _unwrap(flow, fake_login, grant, sealed).status_code == 403
    # And the platform's own Protector, with every platform key, refuses to seal 1001 (policy:
    # client-side) and cannot open the message (no platform key id in it).
    from tests.service._helpers import make_node, single

    node = make_node()
    hybrid = single("1001", "message", container="chat", services=("1001",))
    hybrid["orgs"]["acme"]["hybrid"] = True
    with pytest.raises(AccessDenied, match="client-side"):
        node.protector.seal(hybrid, plaintext)
    with pytest.raises(InvalidCiphertext):
        node.protector.open(hybrid, sealed)


def test_revoking_a_user_stops_that_user_on_the_next_call_only(flow: Flow) -> None:
    """HYB-6, one user."""
    sealed = flow.client(ALICE).seal_message("conv-a", b"before revocation", message="r-1")
    assert _cli(flow, "revoke", "user", BOB).exit_code == 0
    try:
        with pytest.raises(AccessDenied, match="revoked"):
            flow.client(BOB).open_message("conv-a", sealed, message="r-1")
        with pytest.raises(AccessDenied, match="revoked"):
            flow.client(BOB).seal_message("conv-a", b"x", message="r-2")
        assert (
            flow.client(ALICE).open_message("conv-a", sealed, message="r-1") == b"before revocation"
        )
    finally:
        assert _cli(flow, "restore", "user", BOB).exit_code == 0
    assert flow.client(BOB).open_message("conv-a", sealed, message="r-1") == b"before revocation"


def test_revoking_a_conversation_stops_it_and_not_others(flow: Flow) -> None:
    """HYB-6, one conversation."""
    assert _cli(flow, "revoke", "conversation", "conv-b").exit_code == 0
    try:
        with pytest.raises(AccessDenied, match="revoked"):
            flow.client(ALICE).seal_message("conv-b", b"x", message="x-1")
        flow.client(ALICE).seal_message("conv-a", b"still fine", message="x-2")
    finally:
        _cli(flow, "restore", "conversation", "conv-b")


def test_revoking_the_org_stops_everyone(flow: Flow, sealed_a: bytes) -> None:
    """HYB-6, whole org (the privileged unwrap too)."""
    assert _cli(flow, "revoke", "org", ORG).exit_code == 0
    try:
        for email in (ALICE, BOB):
            with pytest.raises(AccessDenied, match="revoked"):
                flow.client(email).open_message("conv-a", sealed_a, message="a-1")
        privileged = httpx.post(
            flow.kacls_url + "/privilegedunwrap",
            json={
                "authentication": flow.sign_in(ADMIN, KACLS_AUD),
                "wrapped_key": base64.b64encode(split(sealed_a)[0]).decode(),
                "resource_name": "conv-a",
                **_binding(sealed_a),
            },
        )
        assert privileged.status_code == 403
    finally:
        _cli(flow, "restore", "org", ORG)


def test_privileged_unwrap_is_for_the_customers_listed_admins_only(
    flow: Flow, sealed_a: bytes
) -> None:
    wrapped, _, envelope = split(sealed_a)

    def call(email: str, resource: str) -> httpx.Response:
        return httpx.post(
            flow.kacls_url + "/privilegedunwrap",
            json={
                "authentication": flow.sign_in(email, KACLS_AUD),
                "wrapped_key": base64.b64encode(wrapped).decode(),
                "resource_name": resource,
                "reason": "ediscovery case 7",
                **_binding(sealed_a),
            },
        )

    assert call(ALICE, "conv-a").status_code == 403
    assert call(ADMIN, "conv-b").status_code == 403
    answer = call(ADMIN, "conv-a")
    assert answer.status_code == 200
    dek = base64.b64decode(answer.json()["key"])
    assert MessageCipher(ScopeKey(key_id(wrapped), dek)).open(envelope, _context(sealed_a)) == (
        b"quarterly numbers"
    )


def test_digest_and_rewrap_need_their_roles(flow: Flow, sealed_a: bytes) -> None:
    """HYB-4."""
    body = {
        "wrapped_key": base64.b64encode(split(sealed_a)[0]).decode(),
        **_binding(sealed_a),
        "reason": "migration",
        "authentication": flow.sign_in(BOB, KACLS_AUD),
    }
    digest = httpx.post(
        flow.kacls_url + "/digest", json={**body, "authorization": flow.grant(BOB, "conv-a")}
    )
    assert digest.status_code == 200
    refused = httpx.post(
        flow.kacls_url + "/rewrap", json={**body, "authorization": flow.grant(BOB, "conv-a")}
    )
    assert refused.status_code == 403
    assert "may not rewrap" in refused.json()["error"]["message"]


def test_status_reports_health(flow: Flow) -> None:
    status = httpx.get(flow.kacls_url + "/status").json()
    assert status["server_type"] == "KACLS"
    assert status["org"] == ORG
    assert status["key_state"] == "enabled"
    assert "privilegedunwrap" in status["operations_supported"]


def test_the_audit_chain_verifies_and_an_edited_record_fails(flow: Flow, tmp_path: Path) -> None:
    """HYB-7."""
    flow.client(ALICE).seal_message("conv-a", b"audited", message="au-1", reason="chat send")
    result = _cli(flow, "audit", "verify")
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(flow.kacls_home / "hybrid.db")
    rows = [json.loads(body) for (body,) in db.execute("SELECT body FROM audit ORDER BY seq")]
    last_wrap = [r for r in rows if r.get("op") == "wrap" and r["reason"] == "chat send"][-1]
    assert last_wrap["user"] == ALICE
    assert last_wrap["resource"] == "conv-a"
    assert last_wrap["role"] == "writer"
    assert last_wrap["outcome"] == "ok"
    assert any(r.get("outcome") == "denied" for r in rows)
    copy = tmp_path / "kacls"
    copy.mkdir()
    shutil.copy(flow.kacls_home / "hybrid.json", copy / "hybrid.json")
    shutil.copy(flow.kacls_home / "audit-signing.seed", copy / "audit-signing.seed")
    target = sqlite3.connect(copy / "hybrid.db")
    db.backup(target)
    db.close()
    edited = json.dumps({**rows[0], "user": "nobody@acme.example"}).encode()
    target.execute("UPDATE audit SET body = ? WHERE seq = 1", (edited,))
    target.commit()
    target.close()
    result = runner.invoke(hybrid_app, ["audit", "verify", "--home", str(copy)])
    assert result.exit_code == 1
    assert "seq 1: edited" in result.output


def test_key_service_down_is_a_typed_error_and_nothing_leaves_in_clear(flow: Flow) -> None:
    """HYB-9."""
    sent: list[bytes] = []

    def record(request: httpx.Request) -> None:
        sent.append(request.content)

    secret = b"must not leave the client"
    with httpx.Client(timeout=1.0, event_hooks={"request": [record]}) as http:
        down = HybridClient(
            f"http://127.0.0.1:{_free_port()}",
            org=ORG,
            credentials=flow.credentials(ALICE),
            http=http,
        )
        with pytest.raises(KeyUnavailable, match="key service unreachable"):
            down.seal_message("conv-a", secret, message="down-1")
    assert sent  # it did try the (dead) key service
    assert not any(secret in body for body in sent)


def test_the_dek_cache_keeps_within_its_bounds() -> None:
    now = [0.0]
    cache = DekCache(max_entries=2, max_age=10.0, clock=lambda: now[0])
    ciphers = [MessageCipher(ScopeKey(b"k%d" % i, os.urandom(32))) for i in range(3)]
    for i, cipher in enumerate(ciphers):
        cache.put("c", b"w%d" % i, cipher)
    assert len(cache) == 2
    assert cache.get("c", b"w0") is None
    assert cache.get("c", b"w2") is ciphers[2]
    assert cache.get("other", b"w2") is None
    now[0] = 10.5
    assert cache.get("c", b"w2") is None
    off = DekCache(max_entries=0)
    off.put("c", b"w", ciphers[0])
    assert off.get("c", b"w") is None


def test_advanced_chat_encryption_routes_team_chat_through_the_client_path(flow: Flow) -> None:
    """0008 under advanced chat encryption: same flow, and bound to its service id."""
    alice, bob = flow.client(ALICE), flow.client(BOB)
    sealed = alice.seal_message("conv-a", b"team chat, client-side", message="t-1", service="0008")
    assert bob.open_message("conv-a", sealed, message="t-1", service="0008") == (
        b"team chat, client-side"
    )
    bob.cache.clear()
    with pytest.raises(AccessDenied, match="does not open"):
        bob.open_message("conv-a", sealed, message="t-1")  # the same DEK asked for as 1001
    # globex has advanced chat encryption off: no 0008 grant; 1001 still works for it.
    with pytest.raises(AccessDenied, match="advanced chat encryption is off"):
        flow.grant(DAVE, "conv-g", "writer", "0008")
    assert flow.grant(DAVE, "conv-g", "writer", "1001")
    with pytest.raises(InvalidRequest, match="service"):
        alice.seal_message("conv-a", b"x", message="t-2", service="0001")


def test_another_orgs_grant_is_refused(flow: Flow, sealed_a: bytes) -> None:
    """HYB-4."""
    answer = _unwrap(flow, flow.sign_in(DAVE, KACLS_AUD), flow.grant(DAVE, "conv-g"), sealed_a)
    assert answer.status_code == 403
    assert "another org" in answer.json()["error"]["message"]


def test_a_wrapped_key_spliced_onto_another_message_does_not_open(flow: Flow) -> None:
    alice = flow.client(ALICE, cache=DekCache(max_entries=0))
    first = alice.seal_message("conv-a", b"first", message="s-1")
    second = alice.seal_message("conv-a", b"second", message="s-1")
    _, _, envelope_first = split(first)
    _, _, envelope_second = split(second)
    spliced = first[: len(first) - len(envelope_first)] + envelope_second
    with pytest.raises(InvalidCiphertext):
        alice.open_message("conv-a", spliced, message="s-1")
    with pytest.raises(InvalidCiphertext):
        alice.open_message("conv-a", b"OKH2" + b"\x00", message="s-1")


def test_the_platform_rotates_its_grant_keys_and_the_key_service_follows(
    flow: Flow, sealed_a: bytes
) -> None:
    before = flow.grant(BOB, "conv-a", "reader")
    # What `python -m ownkey.api.hybrid_platform --state DIR --rotate` does, from another process.
    new_kid = SigningKeys.persistent(flow.platform_state / "authz-signing-keys.json").rotate()
    answer = flow.http.post(
        flow.platform_url + "/hybrid/authorize",
        json={"authentication": flow.sign_in(BOB), "conversation": "conv-a", "role": "reader"},
    )
    after = answer.json()["authorization"]
    assert _segments(after)[0]["kid"] == new_kid != _segments(before)[0]["kid"]
    published = httpx.get(flow.platform_url + "/hybrid/.well-known/jwks.json").json()["keys"]
    assert {_segments(before)[0]["kid"], new_kid} <= {key["kid"] for key in published}
    authn = flow.sign_in(BOB, KACLS_AUD)
    assert _unwrap(flow, authn, after, sealed_a).status_code == 200
    assert _unwrap(flow, authn, before, sealed_a).status_code == 200


def test_ciphertext_is_listed_for_members_and_deleted_with_the_conversation(flow: Flow) -> None:
    for name in ("d-1", "d-2"):
        sealed = flow.client(CAROL).seal_message("conv-b", b"bye", message=name)
        flow.upload(CAROL, "conv-b", name, sealed)
    url = flow.platform_url + "/hybrid/conversations/conv-b"

    def as_user(email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {flow.sign_in(email)}"}

    listed = flow.http.get(url + "/messages", headers=as_user(CAROL)).json()["messages"]
    assert {"d-1", "d-2"} <= set(listed)
    assert flow.http.get(url + "/messages", headers=as_user(BOB)).status_code == 403
    assert flow.http.delete(url, headers=as_user(CAROL)).status_code == 403
    deleted = flow.http.delete(url, headers=as_user(ADMIN))
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] >= 2
    assert flow.http.get(url + "/messages", headers=as_user(CAROL)).json()["messages"] == []
    assert flow.http.get(url + "/messages/d-1", headers=as_user(CAROL)).status_code == 404


def test_a_member_cannot_overwrite_another_members_message(flow: Flow) -> None:
    """HYB-13: the writer of a message id is recorded; only that writer replaces it."""
    mine = flow.client(ALICE).seal_message("conv-a", b"alice wrote this", message="owned-1")
    flow.upload(ALICE, "conv-a", "owned-1", mine)
    forged = flow.client(BOB).seal_message("conv-a", b"bob says otherwise", message="owned-1")
    url = flow.platform_url + "/hybrid/conversations/conv-a/messages/owned-1"
    refused = flow.http.put(
        url, content=forged, headers={"Authorization": f"Bearer {flow.sign_in(BOB)}"}
    )
    assert refused.status_code == 409
    assert "another member" in refused.json()["error"]["message"]
    assert flow.download(BOB, "conv-a", "owned-1") == mine
    again = flow.client(ALICE).seal_message("conv-a", b"alice edits her own", message="owned-1")
    flow.upload(ALICE, "conv-a", "owned-1", again)  # the writer may replace its own message
    fetched = flow.download(BOB, "conv-a", "owned-1")
    assert flow.client(BOB).open_message("conv-a", fetched, message="owned-1") == (
        b"alice edits her own"
    )


def test_the_platform_refuses_to_store_what_is_not_a_sealed_message(flow: Flow) -> None:
    url = flow.platform_url + "/hybrid/conversations/conv-a/messages/junk-1"
    headers = {"Authorization": f"Bearer {flow.sign_in(ALICE)}"}
    for junk in (b"plain text, not sealed", b"OKH1\x00\x01x", b"OKH1\x00\x01xnot-an-envelope"):
        assert flow.http.put(url, content=junk, headers=headers).status_code == 400
    assert flow.http.get(url, headers=headers).status_code == 404


def test_rewrap_moves_a_dek_to_the_current_key_version(flow: Flow) -> None:
    """After the customer rotates its key, ``rewrap`` re-wraps under the new version; the
    digest (same DEK, same resource) is unchanged and the new wrapped key opens the message."""
    from ownkey.hybrid import load_config
    from ownkey.hybrid._config import open_provider

    sealed = flow.client(ALICE).seal_message("conv-a", b"before rotation", message="rot-1")
    wrapped, _, envelope = split(sealed)
    config = load_config(flow.kacls_home)
    open_provider(flow.kacls_home, "local", {}).rotate(config.key_id)
    seeds = json.loads((flow.platform_state / "authz-signing-keys.json").read_text())["seeds"]
    now = int(time.time())
    migrator = SigningKeys(seeds=[base64.b64decode(s) for s in seeds]).sign(
        {
            "iss": flow.platform_url + "/hybrid",
            "aud": KACLS_AUD,
            "email": ADMIN,
            "org": ORG,
            "resource_name": "conv-a",
            "role": "migrator",
            "iat": now,
            "exp": now + 60,
        }
    )
    body = {
        "authentication": flow.sign_in(ADMIN, KACLS_AUD),
        "authorization": migrator,
        "wrapped_key": base64.b64encode(wrapped).decode(),
        **_binding(sealed),
    }
    answer = flow.http.post(flow.kacls_url + "/rewrap", json=body)
    assert answer.status_code == 200, answer.text
    rewrapped = base64.b64decode(answer.json()["wrapped_key"])
    assert rewrapped != wrapped
    assert b"/v1" in wrapped  # the wrapping key's id and version travel in the header
    assert b"/v2" in rewrapped
    digest = flow.http.post(
        flow.kacls_url + "/digest",
        json={
            "authentication": flow.sign_in(BOB, KACLS_AUD),
            "authorization": flow.grant(BOB, "conv-a", "reader"),
            "wrapped_key": body["wrapped_key"],
            **_binding(sealed),
        },
    )
    assert digest.json()["resource_key_hash"] == answer.json()["resource_key_hash"]
    authn, grant = flow.sign_in(BOB, KACLS_AUD), flow.grant(BOB, "conv-a", "reader")
    key = _unwrap(flow, authn, grant, sealed, wrapped=rewrapped)
    dek = base64.b64decode(key.json()["key"])
    opened = MessageCipher(ScopeKey(key_id(wrapped), dek)).open(envelope, _context(sealed))
    assert opened == b"before rotation"


def test_a_look_alike_of_a_member_gets_no_grant_and_no_key(flow: Flow, sealed_a: bytes) -> None:
    """Issue 23 s4: U+212A KELVIN SIGN lower-cases to "k" (tests/policy/test_identity.py); an
    IdP account spelled with a non-ASCII look-alike is refused by the platform and by the key
    service, never merged with the member it imitates."""
    for look_alike in ("\u0430lice@acme.example", "\u212a" + ALICE[1:], ALICE.upper() + "\u200d"):
        answer = flow.http.post(
            flow.platform_url + "/hybrid/authorize",
            json={
                "authentication": flow.idp.token(email=look_alike, aud="ownkey-platform"),
                "conversation": "conv-a",
                "role": "reader",
            },
        )
        assert answer.status_code == 403, answer.text
        authn = flow.idp.token(email=look_alike, aud=KACLS_AUD)
        grant = flow.grant(ALICE, "conv-a", "reader")
        assert _unwrap(flow, authn, grant, sealed_a).status_code == 403


def _reframed(sealed: bytes, **change: str) -> bytes:
    """``sealed`` with its header rewritten, as the platform could (it holds the bytes)."""
    wrapped, header, envelope = split(sealed)
    fields = {"message": header.message, "author": header.author, **change}
    return join(wrapped, MessageHeader(**fields), envelope)


def test_the_platform_cannot_replay_a_message_under_another_id(flow: Flow) -> None:
    """Issue 23 s4: a message was bound to its conversation only; the platform could serve
    alice's m-1 again as m-2. Now the id is in the envelope context and the wrap's associated
    data: the copy opens nowhere, with its header as it is or rewritten."""
    sealed = flow.client(ALICE).seal_message("conv-a", b"pay 100 to carol", message="pay-1")
    bob = flow.client(BOB, cache=DekCache(max_entries=0))
    assert bob.open_message("conv-a", sealed, message="pay-1") == b"pay 100 to carol"
    with pytest.raises(InvalidCiphertext):  # the same bytes served as pay-2
        bob.open_message("conv-a", sealed, message="pay-2")
    with pytest.raises(AccessDenied, match="does not open"):  # the header rewritten to pay-2
        bob.open_message("conv-a", _reframed(sealed, message="pay-2"), message="pay-2")
    authn, grant = flow.sign_in(BOB, KACLS_AUD), flow.grant(BOB, "conv-a", "reader")
    assert _unwrap(flow, authn, grant, sealed, message="pay-2").status_code == 403
    assert _unwrap(flow, authn, grant, sealed).status_code == 200


def test_the_platform_cannot_attribute_a_message_to_another_member(flow: Flow) -> None:
    """Issue 23 s4: the platform could show alice's message as bob's. The author is the user the
    key service authenticated at ``/wrap``, bound like the id; a client cannot choose it."""
    alice = flow.client(ALICE, cache=DekCache(max_entries=0))
    sealed = alice.seal_message("conv-a", b"I resign", message="who-1")
    assert read_header(sealed) == MessageHeader("who-1", ALICE)
    reader = flow.client(BOB, cache=DekCache(max_entries=0))
    assert reader.open_message("conv-a", sealed, message="who-1", author=ALICE) == b"I resign"
    with pytest.raises(InvalidCiphertext):  # the platform reports bob as the writer
        reader.open_message("conv-a", sealed, message="who-1", author=BOB)
    with pytest.raises(AccessDenied, match="does not open"):  # and rewrites the header to match
        reader.open_message("conv-a", _reframed(sealed, author=BOB), message="who-1", author=BOB)
    # A member cannot claim another author at /wrap either: the key service binds its own.
    body = {
        "authentication": flow.sign_in(BOB, KACLS_AUD),
        "authorization": flow.grant(BOB, "conv-a", "writer"),
        "key": base64.b64encode(os.urandom(32)).decode(),
        "message": "who-2",
        "author": ALICE,
    }
    answer = httpx.post(flow.kacls_url + "/wrap", json=body)
    assert answer.status_code == 200
    assert answer.json()["author"] == BOB
