"""Issue 23 s4, the trust model: the platform can mint grants, never the user's authentication.

The client SDK defaulted the key service's authentication token to the platform's sign-in
token, which it also sends to the platform; wherever that worked, the platform held a token the
key service accepted as the user, and unwrapped any message of that user. Now the SDK refuses to
run without a separate authentication token, refuses one the platform could also use, the key
service refuses a token meant for more than its own audience, and a key service home whose
identity provider is the platform is refused.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ownkey.client import AsyncPlatformCredentials, PlatformCredentials
from ownkey.errors import AccessDenied, ConfigError, InvalidRequest
from ownkey.hybrid import Issuer, JwksCache, SigningKeys, TokenVerifier, init_home, load_config

IDP, PLATFORM = "https://idp.test", "https://platform.test/hybrid"
IDP_KEYS = SigningKeys()


def _token(aud: object, **extra: object) -> str:
    now = int(time.time())
    claims = {"iss": IDP, "aud": aud, "iat": now, "exp": now + 60, "email": "al@acme.test"}
    return IDP_KEYS.sign({**claims, **extra})


def test_the_sdk_refuses_to_run_without_an_authentication_token() -> None:
    """The old default: ``PlatformCredentials(url, sign_in)`` sent the sign-in token as the
    user's authentication."""
    sign_in = lambda: _token("ownkey-platform")  # noqa: E731
    with pytest.raises(TypeError, match="authentication"):
        PlatformCredentials("http://platform.test", sign_in)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="authentication token from the customer's"):
        PlatformCredentials("http://platform.test", sign_in, authentication=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("authentication", "why"),
    [
        ("same", "is the platform's sign-in token"),
        (["ownkey-platform", "ownkey-hybrid"], "for the platform's audience too"),
        ("ownkey-platform", "for the platform's audience too"),
    ],
)
def test_the_sdk_refuses_an_authentication_token_the_platform_could_use(
    authentication: Any, why: str
) -> None:
    sign_in_token = _token("ownkey-platform")
    authn = sign_in_token if authentication == "same" else _token(authentication, nonce="n")
    sync = PlatformCredentials(
        "http://platform.test", lambda: sign_in_token, authentication=lambda: authn
    )
    with pytest.raises(ConfigError, match=why):
        sync.authentication()

    async def sign_in() -> str:
        return sign_in_token

    async def authn_async() -> str:
        return authn

    async def run() -> None:
        credentials = AsyncPlatformCredentials(
            "http://platform.test", sign_in, authentication=authn_async
        )
        with pytest.raises(ConfigError, match=why):
            await credentials.authentication()

    asyncio.run(run())


def test_a_token_for_the_key_service_only_is_used() -> None:
    sign_in_token, authn = _token("ownkey-platform"), _token("ownkey-hybrid")
    credentials = PlatformCredentials(
        "http://platform.test", lambda: sign_in_token, authentication=lambda: authn
    )
    assert credentials.authentication() == authn


def _verifier() -> tuple[TokenVerifier, httpx.Client]:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json={"issuer": IDP, "jwks_uri": IDP + "/jwks"})
        return httpx.Response(200, json=IDP_KEYS.jwks())

    http = httpx.Client(transport=httpx.MockTransport(handle))
    verifier = TokenVerifier(
        Issuer(IDP, "ownkey-hybrid"), JwksCache(IDP, http=http), kind="authentication"
    )
    return verifier, http


def test_the_key_service_refuses_a_token_meant_for_the_platform_too() -> None:
    """A token with ``aud: [platform, key service]`` is held by the platform: refused."""
    verifier, http = _verifier()
    with http:
        assert verifier.verify(_token("ownkey-hybrid"))["email"] == "al@acme.test"
        assert verifier.verify(_token(["ownkey-hybrid"]))["email"] == "al@acme.test"
        with pytest.raises(AccessDenied, match="more than this audience"):
            verifier.verify(_token(["ownkey-platform", "ownkey-hybrid"]))
        with pytest.raises(AccessDenied, match="wrong audience"):
            verifier.verify(_token("ownkey-platform"))


def test_a_key_service_whose_identity_provider_is_the_platform_is_refused(tmp_path: Path) -> None:
    """The platform signs grants; if it were also the authentication issuer it would mint the
    user's authentication. ``init`` refuses before writing anything; ``serve`` refuses such a
    ``hybrid.json`` edited by hand."""
    for idp in (PLATFORM + "/", "https://PLATFORM.test/idp"):  # the platform, or its origin
        with pytest.raises(InvalidRequest, match="not the platform"):
            init_home(
                tmp_path / "bad",
                org="acme",
                authentication=Issuer(idp, "ownkey-hybrid"),
                authorization=Issuer(PLATFORM, "ownkey-hybrid"),
            )
        assert not (tmp_path / "bad").exists()
    home = tmp_path / "good"
    init_home(
        home,
        org="acme",
        authentication=Issuer(IDP, "ownkey-hybrid"),
        authorization=Issuer(PLATFORM, "ownkey-hybrid"),
    )
    config = (home / "hybrid.json").read_text()
    (home / "hybrid.json").write_text(config.replace(IDP, PLATFORM))
    with pytest.raises(ConfigError, match="not the platform"):
        load_config(home)
