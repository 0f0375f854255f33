"""Where the client gets its two tokens: the user's sign-in token and the platform's grant.

:class:`PlatformCredentials` asks the platform (``POST {platform}/hybrid/authorize``) for an
authorization token per (conversation, role) and reuses it until 30 s before it expires; the
authentication token comes from a callable the application supplies (its OIDC session).
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


def _expiry(token: str) -> float:
    # Read, not trusted: only to decide when to ask again. The key service verifies it.
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims.get("exp", 0))


class PlatformCredentials:
    """Sync credentials: grants from the platform (which sees the ``sign_in`` token), and the
    key service's authentication token from ``authentication`` (default: ``sign_in``; an
    identity provider usually mints one per audience)."""

    def __init__(
        self,
        platform_url: str,
        sign_in: Callable[[], str],
        *,
        authentication: Callable[[], str] | None = None,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = platform_url.rstrip("/") + "/hybrid/authorize"
        self._sign_in = sign_in
        self._authentication = authentication or sign_in
        self._http = http or httpx.Client(timeout=5.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._grants: dict[tuple[str, str, str], tuple[float, str]] = {}

    def __repr__(self) -> str:
        return "<PlatformCredentials tokens=<redacted>>"

    def authentication(self) -> str:
        return self._authentication()

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
    """The same over ``httpx.AsyncClient``; ``sign_in`` / ``authentication`` are coroutines."""

    def __init__(
        self,
        platform_url: str,
        sign_in: Callable[[], Awaitable[str]],
        *,
        authentication: Callable[[], Awaitable[str]] | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = platform_url.rstrip("/") + "/hybrid/authorize"
        self._sign_in = sign_in
        self._authentication = authentication or sign_in
        self._http = http or httpx.AsyncClient(timeout=5.0)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._grants: dict[tuple[str, str, str], tuple[float, str]] = {}

    def __repr__(self) -> str:
        return "<AsyncPlatformCredentials tokens=<redacted>>"

    async def authentication(self) -> str:
        return await self._authentication()

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
