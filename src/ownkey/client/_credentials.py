"""Where the client gets its two tokens: the user's authentication and the platform's grant.

:class:`PlatformCredentials` asks the platform (``POST {platform}/hybrid/authorize``, with the
user's *sign-in* token) for an authorization token per (conversation, role) and reuses it until
30 s before it expires. The *authentication* token for the key service is a second token from
the customer's identity provider, for the key service's own audience, and it is required: the
trust model is that the platform can mint grants but never the user's authentication, so the
platform must never see a token the key service accepts. Until issue 23 the SDK defaulted the
authentication token to the sign-in token, which it also sends to the platform: any deployment
where that worked let the platform unwrap every message of that user. Each call now checks that
the authentication token is not the sign-in token and names none of its audiences
(:class:`~ownkey.errors.ConfigError` otherwise, before anything is sent to the key service).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx
import jwt

from ownkey.client._http import raise_for_answer, unavailable
from ownkey.errors import ConfigError

__all__ = ["AsyncCredentials", "AsyncPlatformCredentials", "Credentials", "PlatformCredentials"]

_REUSE_MARGIN = 30.0


class Credentials(Protocol):
    """The two tokens of a key-service call: who the user is, and the platform's grant."""

    def authentication(self) -> str: ...

    def authorization(self, conversation: str, role: str, service: str) -> str: ...


class AsyncCredentials(Protocol):
    """:class:`Credentials` for :class:`~ownkey.client.AsyncHybridClient`."""

    async def authentication(self) -> str: ...

    async def authorization(self, conversation: str, role: str, service: str) -> str: ...


def _audiences(token: str) -> frozenset[str]:
    """The ``aud`` of a JWT, read unverified (only to compare; the verifiers check it)."""
    try:
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        return frozenset()
    if isinstance(aud, str):
        return frozenset({aud})
    return frozenset(a for a in aud if isinstance(a, str)) if isinstance(aud, list) else frozenset()


def _distinct(authentication: str, sign_in: str) -> str:
    """``authentication``, once it is shown not to be usable as the platform's sign-in token."""
    if not authentication or authentication == sign_in:
        raise ConfigError(
            "the key service's authentication token is the platform's sign-in token: the platform"
            " could unwrap every message; ask the identity provider for the key service audience"
        )
    shared = _audiences(authentication) & _audiences(sign_in)
    if shared:
        raise ConfigError(
            f"the key service's authentication token is for the platform's audience too"
            f" ({sorted(shared)[0]}); it must be for the key service's audience only"
        )
    return authentication


def _required(authentication: object) -> None:
    if not callable(authentication):
        raise ConfigError(
            "the key service needs an authentication token from the customer's identity provider"
            " (authentication=...), distinct from the platform's sign-in token"
        )


def _expiry(token: str) -> float:
    # Read, not trusted: only to decide when to ask again. The key service verifies it.
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims.get("exp", 0))


class PlatformCredentials:
    """Sync credentials: grants from the platform (which sees the ``sign_in`` token), and the
    key service's authentication token from ``authentication``, required: a token of the
    customer's identity provider for the key service's audience, which the platform never sees
    (an identity provider mints one per audience)."""

    def __init__(
        self,
        platform_url: str,
        sign_in: Callable[[], str],
        *,
        authentication: Callable[[], str],
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _required(authentication)
        self._url = platform_url.rstrip("/") + "/hybrid/authorize"
        self._sign_in = sign_in
        self._authentication = authentication
        self._http = http or httpx.Client(timeout=5.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._grants: dict[tuple[str, str, str], tuple[float, str]] = {}

    def __repr__(self) -> str:
        return "<PlatformCredentials tokens=<redacted>>"

    def authentication(self) -> str:
        return _distinct(self._authentication(), self._sign_in())

    def authorization(self, conversation: str, role: str, service: str = "1001") -> str:
        with self._lock:
            held = self._grants.get((conversation, role, service))
        if held is not None and held[0] - _REUSE_MARGIN > self._clock():
            return held[1]
        body = {
            "authentication": self._sign_in(),
            "conversation": conversation,
            "role": role,
            "service": service,
        }
        try:
            response = self._http.post(self._url, json=body)
        except httpx.TransportError as exc:
            raise unavailable("platform") from exc
        raise_for_answer(response, "platform")
        token = str(response.json()["authorization"])
        with self._lock:
            self._grants[(conversation, role, service)] = (_expiry(token), token)
        return token


class AsyncPlatformCredentials:
    """The same over ``httpx.AsyncClient``; ``sign_in`` / ``authentication`` (required) are
    coroutine functions."""

    def __init__(
        self,
        platform_url: str,
        sign_in: Callable[[], Awaitable[str]],
        *,
        authentication: Callable[[], Awaitable[str]],
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _required(authentication)
        self._url = platform_url.rstrip("/") + "/hybrid/authorize"
        self._sign_in = sign_in
        self._authentication = authentication
        self._http = http or httpx.AsyncClient(timeout=5.0)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._grants: dict[tuple[str, str, str], tuple[float, str]] = {}

    def __repr__(self) -> str:
        return "<AsyncPlatformCredentials tokens=<redacted>>"

    async def authentication(self) -> str:
        return _distinct(await self._authentication(), await self._sign_in())

    async def authorization(self, conversation: str, role: str, service: str = "1001") -> str:
        async with self._lock:
            held = self._grants.get((conversation, role, service))
            if held is not None and held[0] - _REUSE_MARGIN > self._clock():
                return held[1]
            body = {
                "authentication": await self._sign_in(),
                "conversation": conversation,
                "role": role,
                "service": service,
            }
            try:
                response = await self._http.post(self._url, json=body)
            except httpx.TransportError as exc:
                raise unavailable("platform") from exc
            raise_for_answer(response, "platform")
            token = str(response.json()["authorization"])
            self._grants[(conversation, role, service)] = (_expiry(token), token)
            return token
