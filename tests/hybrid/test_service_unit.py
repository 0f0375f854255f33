"""KeyService in process (issuers served by an httpx mock transport): the fail-closed audit
(HYB-7) and the JWKS refresh bound (HYB-11), without starting servers."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ownkey.errors import AccessDenied, AuditUnavailable, InvalidRequest, KeyUnavailable
from ownkey.hybrid import HybridStore, Issuer, JwksCache, KeyService, SigningKeys, TokenVerifier
from ownkey.providers import LocalKeyProvider

IDP, PLATFORM = "https://idp.test", "https://platform.test/hybrid"


def _issuers(keys: dict[str, SigningKeys], fetches: list[str]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        fetches.append(url)
        for base, signing in keys.items():
            if url == base + "/.well-known/openid-configuration":
                return httpx.Response(200, json={"issuer": base, "jwks_uri": base + "/jwks"})
            if url == base + "/jwks":
                return httpx.Response(200, json=signing.jwks())
        return httpx.Response(404)

    return httpx.Client(transport=httpx.MockTransport(handle))


class _BrokenStore(HybridStore):
    def append(self, event: Any) -> Any:
        raise AuditUnavailable("key service audit log unavailable")


def _service(tmp_path: Path, store_class: type[HybridStore] = HybridStore) -> tuple[Any, ...]:
    keys = {IDP: SigningKeys(), PLATFORM: SigningKeys()}
    fetches: list[str] = []
    http = _issuers(keys, fetches)
    provider = LocalKeyProvider()
    key_id = provider.create_key(label="hybrid")

    def verifier(base: str, kind: str, min_refresh: float) -> TokenVerifier:
        cache = JwksCache(base, http=http, min_refresh_seconds=min_refresh)
        return TokenVerifier(Issuer(base, "kacls"), cache, kind=kind)

    service = KeyService(
        org="acme",
        provider=provider,
        key_id=key_id,
        authentication=verifier(IDP, "authentication", 60.0),
        authorization=verifier(PLATFORM, "authorization", 60.0),
        store=store_class(tmp_path / "h.db", "acme"),
    )
    return service, keys, fetches, http


def _body(keys: dict[str, SigningKeys], **grant: str) -> dict[str, str]:
    now = int(time.time())
    email = grant.pop("email", "al@acme.example")
    base = {"aud": "kacls", "iat": now, "exp": now + 60, "email": email}
    claims = {"org": "acme", "resource_name": "c-1", "role": "writer", **grant}
    return {
        "authentication": keys[IDP].sign({**base, "iss": IDP}),
        "authorization": keys[PLATFORM].sign({**base, "iss": PLATFORM, **claims}),
        "key": base64.b64encode(bytes(32)).decode(),
        "message": "m-1",
        "author": email,
    }


def test_hyb_7_a_call_that_cannot_be_audited_returns_no_key(tmp_path: Path) -> None:
    service, keys, _, http = _service(tmp_path, _BrokenStore)
    with pytest.raises(AuditUnavailable):
        service.wrap(_body(keys))
    http.close()


def test_hyb_7_an_audited_wrap_records_user_resource_role_and_outcome(tmp_path: Path) -> None:
    service, keys, _, http = _service(tmp_path)
    assert service.wrap(_body(keys))["wrapped_key"]
    (record,) = list(service._store.records())
    assert b'"user":"al@acme.example"' in record.body
    assert b'"resource":"c-1"' in record.body
    assert b'"outcome":"ok"' in record.body
    http.close()


def test_hyb_11_unknown_kids_refresh_the_jwks_at_most_once_per_bound(tmp_path: Path) -> None:
    service, keys, fetches, http = _service(tmp_path)
    service.wrap(_body(keys))
    before = len(fetches)
    stranger = SigningKeys()  # a kid the issuer never published
    for _ in range(5):
        body = _body(keys)
        now = int(time.time())
        body["authentication"] = stranger.sign(
            {"iss": IDP, "aud": "kacls", "iat": now, "exp": now + 60, "email": "al@acme.example"}
        )
        with pytest.raises(AccessDenied, match="unknown key id"):
            service.wrap(body)
    assert len(fetches) == before  # within min_refresh_seconds: no refetch storm
    http.close()


def test_hyb_11_an_unreachable_issuer_is_not_asked_again_within_the_bound() -> None:
    calls: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(503)

    with httpx.Client(transport=httpx.MockTransport(down)) as http:
        cache = JwksCache(IDP, http=http, min_refresh_seconds=60.0)
        verifier = TokenVerifier(Issuer(IDP, "kacls"), cache, kind="authentication")
        token = SigningKeys().sign({"iss": IDP})
        for _ in range(3):
            with pytest.raises(KeyUnavailable):
                verifier.verify(token)
    assert len(calls) == 1


@pytest.mark.parametrize("declared", [True, False])
def test_a_huge_body_is_given_up_at_the_limit_not_read_whole(
    tmp_path: Path, declared: bool
) -> None:
    """Issue 12's body gate, for the key service: its tokens are inside the body, so it cannot
    refuse a caller before reading, but it reads at most 64 KiB (it read the whole body first:
    a 200 MB body cost 200 MB of the key service's memory before its 400)."""
    import asyncio
    import json

    from ownkey.hybrid import build_app

    service, _, _, http = _service(tmp_path)
    app = build_app(service)
    chunk = b"x" * (256 * 1024)
    total_chunks = 800  # 200 MiB offered
    received: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": len(received) < total_chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    length = [(b"content-length", str(len(chunk) * total_chunks).encode())] if declared else []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/unwrap",
        "raw_path": b"/unwrap",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *length],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8787),
    }
    asyncio.run(app(scope, receive, send))
    http.close()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 400
    assert json.loads(body)["error"]["message"] == "request body over 64 KiB"
    assert sum(received) <= 64 * 1024 + len(chunk)  # one chunk past the limit at most


def test_a_body_nested_thousands_deep_is_a_400_not_a_500(tmp_path: Path) -> None:
    """``[[[[...`` 20,000 deep fits in 64 KiB; json.loads raised RecursionError (a 500)."""
    from starlette.testclient import TestClient

    from ownkey.hybrid import build_app

    service, _, _, http = _service(tmp_path)
    with TestClient(build_app(service), raise_server_exceptions=False) as client:
        answer = client.post(
            "/unwrap", content=b"[" * 20_000, headers={"Content-Type": "application/json"}
        )
    http.close()
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"] == "request body is not JSON"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"reason": "why\ud800"}, InvalidRequest),  # UnicodeEncodeError before: a 500
        ({"reason": "line\nbreak"}, InvalidRequest),
        ({"authentication": "eyJ\ud800.x.y"}, AccessDenied),  # PyJWT's UnicodeEncodeError
    ],
)
def test_a_body_field_the_audit_log_cannot_hold_is_refused(
    tmp_path: Path, change: dict[str, str], expected: type[Exception]
) -> None:
    """Found by tests/campaigns/test_fuzz_hybrid.py: each was a 500 from the key service."""
    service, keys, _, http = _service(tmp_path)
    with pytest.raises(expected):
        service.wrap({**_body(keys), **change})
    http.close()


@pytest.mark.parametrize(
    "claims",
    [
        {"service": []},
        {"resource_name": "c\ud800"},
        {"role": "writer\x00"},
        {"email": "al\ud800@x"},
    ],
)
def test_a_signed_claim_of_the_wrong_kind_is_a_denial(
    tmp_path: Path, claims: dict[str, object]
) -> None:
    """A list where a service ID belongs (TypeError: unhashable) or a resource the audit log
    cannot store (UnicodeEncodeError) was a 500; the platform signed it, so it is refused."""
    service, keys, _, http = _service(tmp_path)
    body = _body(keys)
    now = int(time.time())
    grant = {
        **{"aud": "kacls", "iat": now, "exp": now + 60, "email": "al@acme.example"},
        **{"iss": PLATFORM, "org": "acme", "resource_name": "c-1", "role": "writer"},
        **claims,
    }
    body["authorization"] = keys[PLATFORM].sign(grant)
    with pytest.raises(AccessDenied):
        service.wrap(body)
    http.close()


@pytest.mark.parametrize(("op", "role"), [("digest", "reader"), ("rewrap", "migrator")])
def test_digest_and_rewrap_need_the_users_authentication_not_only_the_grant(
    tmp_path: Path, op: str, role: str
) -> None:
    """Issue 23 s4: with the platform's grant alone, the platform wrote any user it liked into
    the customer's log (``digest``/``rewrap`` checked no authentication token)."""
    service, keys, _, http = _service(tmp_path)
    wrapped = service.wrap(_body(keys))["wrapped_key"]
    body = _body(keys, role=role)
    grant_only = {
        "authorization": body["authorization"],
        "wrapped_key": wrapped,
        "message": "m-1",
        "author": "al@acme.example",
    }
    with pytest.raises(AccessDenied, match="authentication token refused: missing"):
        getattr(service, op)(grant_only)
    records = [r.body for r in service._store.records()]
    assert b'"outcome":"denied"' in records[-1]
    answer = getattr(service, op)({**grant_only, "authentication": body["authentication"]})
    assert answer["resource_key_hash"]
    http.close()


def test_a_look_alike_identity_gets_no_key_of_the_user_it_imitates(tmp_path: Path) -> None:
    """Issue 23 s4: ``"\\u212aim@acme.example".lower()`` is kim's address; a token for the
    Kelvin-sign account with kim's grant unwrapped kim's keys. Non-ASCII is no identity."""
    service, keys, _, http = _service(tmp_path)
    kim = {"email": "kim@acme.example"}
    wrapped = service.wrap({**_body(keys, **kim)})["wrapped_key"]
    now = int(time.time())
    body = _body(keys, **kim, role="reader")
    body["authentication"] = keys[IDP].sign(
        {"iss": IDP, "aud": "kacls", "iat": now, "exp": now + 60, "email": "\u212aim@acme.example"}
    )
    with pytest.raises(AccessDenied, match="no email claim"):
        service.unwrap({**body, "wrapped_key": wrapped})
    http.close()


def test_the_platform_grants_no_look_alike_identity(tmp_path: Path) -> None:
    from ownkey.hybrid.platform import AuthorizationIssuer, JsonMembership

    members = tmp_path / "members.json"
    members.write_text(
        '{"acme": {"users": ["kim@acme.example"], "conversations": {"c-1": ["Kim@Acme.example"]}}}'
    )
    issuer = AuthorizationIssuer(
        issuer=PLATFORM, audience="kacls", keys=SigningKeys(), members=JsonMembership(members)
    )
    assert issuer.authorize("KIM@acme.example", "c-1", "reader")  # ASCII case: one user
    with pytest.raises(InvalidRequest, match="only ASCII"):
        issuer.authorize("\u212aim@acme.example", "c-1", "reader")


def test_the_membership_file_gives_no_org_to_a_user_two_orgs_list(tmp_path: Path) -> None:
    """The standalone platform's member file follows the directory's rule: a user claimed by
    two orgs is a member of neither (it answered the first org listed, so globex listing
    ``BOB@ACME.EXAMPLE`` first took bob's grants), and spellings compare canonically."""
    import json

    from ownkey.hybrid.platform import JsonMembership

    path = tmp_path / "members.json"
    acme = {"users": ["bob@acme.example"], "conversations": {"c-1": ["Bob@Acme.example"]}}
    path.write_text(json.dumps({"acme": acme}))
    members = JsonMembership(path)
    assert members.org_of("bob@acme.example") == "acme"
    assert members.is_member("acme", "c-1", "bob@acme.example")
    path.write_text(json.dumps({"globex": {"users": ["BOB@ACME.EXAMPLE"]}, "acme": acme}))
    assert members.org_of("bob@acme.example") is None


@pytest.mark.parametrize("message", [None, "", "m\u00e9", "a/b", "x" * 129, 7])
def test_a_wrap_names_a_message_id_the_platform_can_store(tmp_path: Path, message: object) -> None:
    """The id is bound into the wrap (HYB-14): no id, or one no slot can have, is refused."""
    service, keys, _, http = _service(tmp_path)
    body: dict[str, object] = {**_body(keys), "message": message}
    with pytest.raises(InvalidRequest, match="message"):
        service.wrap(body)
    http.close()
