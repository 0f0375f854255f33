"""Issue 23 section 6: the token verifier's bounds that no other hybrid test would notice losing.

* a token without ``exp`` is refused (dropping ``exp`` from the required claims made such a token
  valid forever, and every other hybrid test still passed);
* an issuer that is really down (a dead TCP port, not a faked HTTP 503) is ``KeyUnavailable``
  (without the connection-error handler, httpx's ``ConnectError`` escaped raw).
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from ownkey.errors import AccessDenied, KeyUnavailable
from ownkey.hybrid import Issuer, JwksCache, SigningKeys, TokenVerifier

IDP = "https://idp.test"


def _verifier(keys: SigningKeys) -> tuple[TokenVerifier, httpx.Client]:
    def handle(request: httpx.Request) -> httpx.Response:
        if str(request.url) == IDP + "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": IDP, "jwks_uri": IDP + "/jwks"})
        return httpx.Response(200, json=keys.jwks())

    http = httpx.Client(transport=httpx.MockTransport(handle))
    cache = JwksCache(IDP, http=http)
    return TokenVerifier(Issuer(IDP, "kacls"), cache, kind="authentication"), http


def _claims(**drop_or_set: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": IDP,
        "aud": "kacls",
        "iat": now,
        "exp": now + 60,
        "email": "al@acme.test",
    }
    for name, value in drop_or_set.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def test_hyb_1_a_token_with_exp_verifies() -> None:
    """The control: the same token with ``exp`` is accepted, so the next test fails on exp."""
    keys = SigningKeys()
    verifier, http = _verifier(keys)
    with http:
        assert verifier.verify(keys.sign(_claims()))["email"] == "al@acme.test"


@pytest.mark.parametrize("missing", ["exp", "iat", "aud", "iss"])
def test_hyb_1_a_token_without_a_required_claim_is_refused(missing: str) -> None:
    """HYB-1: without ``exp`` a token would be valid forever; it must be refused."""
    keys = SigningKeys()
    verifier, http = _verifier(keys)
    with http, pytest.raises(AccessDenied, match="authentication token refused"):
        verifier.verify(keys.sign(_claims(**{missing: None})))


def _dead_port() -> int:
    """A port nothing listens on: bound, then closed (connecting is refused at once)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_hyb_1_an_issuer_on_a_dead_port_is_key_unavailable_not_a_raw_connect_error() -> None:
    """A real outage, not a faked 503: the connection is refused by the operating system."""
    issuer = f"http://127.0.0.1:{_dead_port()}"
    with httpx.Client(timeout=2.0) as http:
        cache = JwksCache(issuer, http=http, min_refresh_seconds=0.0)
        verifier = TokenVerifier(Issuer(issuer, "kacls"), cache, kind="authentication")
        token = SigningKeys().sign({**_claims(), "iss": issuer})
        with pytest.raises(KeyUnavailable, match="unreachable") as caught:
            verifier.verify(token)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
