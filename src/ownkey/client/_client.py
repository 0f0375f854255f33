"""Seal and open 1001 messages for a conversation, with the customer's key service.

Seal: a fresh 256-bit DEK per message; the key service wraps it (``POST /wrap``, with the user's
two tokens, the resource being the conversation); the message is sealed under the DEK with
ownkey's message suite, context ``{org, service, conversation}`` (service 1001, or 0008 for the
team chat of an org with advanced chat encryption on: the same path); the result is
``ownkey.client._format``'s framing of (wrapped DEK, envelope). If the key service cannot be
reached the call raises :class:`~ownkey.errors.KeyUnavailable` before anything is produced: no
code path returns or sends the plaintext.

Open: the wrapped DEK goes to ``POST /unwrap`` (unless a bounded :class:`DekCache` holds it);
the key service checks the tokens, the role, the revocations, and unwraps only under the same
org and conversation, so a message moved to another conversation does not open.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx

from ownkey.client._cache import DekCache
from ownkey.client._credentials import AsyncCredentials, Credentials
from ownkey.client._format import HYBRID_CHAT, TEAM_CHAT, context, join, key_id, split
from ownkey.client._http import raise_for_answer, unavailable
from ownkey.envelope import MessageCipher, RandomSource, ScopeKey
from ownkey.errors import InvalidCiphertext, InvalidRequest, KeyUnavailable

__all__ = ["AsyncHybridClient", "HybridClient"]

_DEK_BYTES = 32
_WHAT = "key service"


def _service(service: str) -> str:
    if service not in (HYBRID_CHAT, TEAM_CHAT):
        raise InvalidRequest("service", "client-side content is service 1001 or 0008")
    return service


def _cipher(wrapped: bytes, dek: bytes) -> MessageCipher:
    return MessageCipher(ScopeKey(key_id(wrapped), dek))


def _answer(response: httpx.Response, field: str) -> bytes:
    raise_for_answer(response, _WHAT)
    try:
        return base64.b64decode(response.json()[field], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyUnavailable("key service answered a malformed response") from exc


class _Base:
    def __init__(
        self, kacls_url: str, *, org: str, cache: DekCache | None, random: RandomSource
    ) -> None:
        self._url = kacls_url.rstrip("/")
        self.org = org
        self.cache = DekCache() if cache is None else cache
        self._random = random

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._url} org={self.org}>"

    def _seal(
        self, conversation: str, service: str, plaintext: bytes, dek: bytes, wrapped: bytes
    ) -> bytes:
        cipher = _cipher(wrapped, dek)
        sealed = join(wrapped, cipher.seal(plaintext, context(self.org, conversation, service)))
        self.cache.put(f"{service}/{conversation}", wrapped, cipher)
        return sealed

    def _open(
        self, conversation: str, service: str, envelope: bytes, cipher: MessageCipher
    ) -> bytes:
        return cipher.open(envelope, context(self.org, conversation, service))


class HybridClient(_Base):
    """Synchronous client: ``seal_message`` / ``open_message`` for one org's users."""

    def __init__(
        self,
        kacls_url: str,
        *,
        org: str,
        credentials: Credentials,
        cache: DekCache | None = None,
        http: httpx.Client | None = None,
        random: RandomSource = os.urandom,
    ) -> None:
        super().__init__(kacls_url, org=org, cache=cache, random=random)
        self._credentials = credentials
        self._http = http or httpx.Client(timeout=5.0)

    def close(self) -> None:
        self._http.close()

    def _post(self, op: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.post(f"{self._url}/{op}", json=body)
        except httpx.TransportError as exc:
            raise unavailable(_WHAT) from exc

    def seal_message(
        self, conversation: str, plaintext: bytes, *, reason: str = "", service: str = HYBRID_CHAT
    ) -> bytes:
        """Seal for ``conversation``: 1001, or 0008 (team chat, advanced chat encryption)."""
        service = _service(service)
        dek = self._random(_DEK_BYTES)
        body = {
            "authentication": self._credentials.authentication(),
            "authorization": self._credentials.authorization(conversation, "writer", service),
            "key": base64.b64encode(dek).decode("ascii"),
            "reason": reason,
        }
        wrapped = _answer(self._post("wrap", body), "wrapped_key")
        return self._seal(conversation, service, plaintext, dek, wrapped)

    def open_message(
        self, conversation: str, sealed: bytes, *, reason: str = "", service: str = HYBRID_CHAT
    ) -> bytes:
        service = _service(service)
        wrapped, envelope = split(sealed)
        slot = f"{service}/{conversation}"
        cipher = self.cache.get(slot, wrapped)
        if cipher is None:
            body = {
                "authentication": self._credentials.authentication(),
                "authorization": self._credentials.authorization(conversation, "reader", service),
                "wrapped_key": base64.b64encode(wrapped).decode("ascii"),
                "reason": reason,
            }
            dek = _answer(self._post("unwrap", body), "key")
            if len(dek) != _DEK_BYTES:
                raise InvalidCiphertext()
            cipher = _cipher(wrapped, dek)
            plaintext = self._open(conversation, service, envelope, cipher)
            self.cache.put(slot, wrapped, cipher)
            return plaintext
        return self._open(conversation, service, envelope, cipher)


class AsyncHybridClient(_Base):
    """The same client over ``httpx.AsyncClient``."""

    def __init__(
        self,
        kacls_url: str,
        *,
        org: str,
        credentials: AsyncCredentials,
        cache: DekCache | None = None,
        http: httpx.AsyncClient | None = None,
        random: RandomSource = os.urandom,
    ) -> None:
        super().__init__(kacls_url, org=org, cache=cache, random=random)
        self._credentials = credentials
        self._http = http or httpx.AsyncClient(timeout=5.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, op: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return await self._http.post(f"{self._url}/{op}", json=body)
        except httpx.TransportError as exc:
            raise unavailable(_WHAT) from exc

    async def seal_message(
        self, conversation: str, plaintext: bytes, *, reason: str = "", service: str = HYBRID_CHAT
    ) -> bytes:
        """Seal for ``conversation``: 1001, or 0008 (team chat, advanced chat encryption)."""
        service = _service(service)
        dek = self._random(_DEK_BYTES)
        body = {
            "authentication": await self._credentials.authentication(),
            "authorization": await self._credentials.authorization(conversation, "writer", service),
            "key": base64.b64encode(dek).decode("ascii"),
            "reason": reason,
        }
        wrapped = _answer(await self._post("wrap", body), "wrapped_key")
        return self._seal(conversation, service, plaintext, dek, wrapped)

    async def open_message(
        self, conversation: str, sealed: bytes, *, reason: str = "", service: str = HYBRID_CHAT
    ) -> bytes:
        service = _service(service)
        wrapped, envelope = split(sealed)
        slot = f"{service}/{conversation}"
        cipher = self.cache.get(slot, wrapped)
        if cipher is None:
            body = {
                "authentication": await self._credentials.authentication(),
                "authorization": await self._credentials.authorization(
                    conversation, "reader", service
                ),
                "wrapped_key": base64.b64encode(wrapped).decode("ascii"),
                "reason": reason,
            }
            dek = _answer(await self._post("unwrap", body), "key")
            if len(dek) != _DEK_BYTES:
                raise InvalidCiphertext()
            cipher = _cipher(wrapped, dek)
            plaintext = self._open(conversation, service, envelope, cipher)
            self.cache.put(slot, wrapped, cipher)
            return plaintext
        return self._open(conversation, service, envelope, cipher)
