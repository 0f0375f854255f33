"""Seal and open 1001 messages for a conversation, with the customer's key service.

Seal: a fresh 256-bit DEK per message; the key service wraps it (``POST /wrap``, with the user's
two tokens, the resource being the conversation, and the message id) and answers the author it
bound (the user its identity provider authenticated); the message is sealed under the DEK with
ownkey's message suite, context ``{org, service, conversation, message, author}`` (service 1001,
or 0008 for the team chat of an org with advanced chat encryption on: the same path); the result
is ``ownkey.client._format``'s framing of (wrapped DEK, message id, author, envelope). If the
key service cannot be reached the call raises :class:`~ownkey.errors.KeyUnavailable` before
anything is produced: no code path returns or sends the plaintext.

Open: the caller names the message id it asked the platform for (and, if it shows one, the
author the platform reported); a message whose header names another id or author is refused
before any key is asked for. The wrapped DEK goes to ``POST /unwrap`` (unless a bounded
:class:`DekCache` holds it); the key service checks the tokens, the role, the revocations, and
unwraps only under the same org, conversation, message id and author, so a message moved to
another conversation or id, or credited to another member, does not open.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any

import httpx

from ownkey.client._cache import DekCache
from ownkey.client._credentials import AsyncCredentials, Credentials
from ownkey.client._format import (
    HYBRID_CHAT,
    TEAM_CHAT,
    MessageHeader,
    context,
    join,
    key_id,
    split,
)
from ownkey.client._http import raise_for_answer, unavailable
from ownkey.envelope import MessageCipher, RandomSource, ScopeKey
from ownkey.errors import InvalidCiphertext, InvalidRequest, KeyUnavailable
from ownkey.policy import canonical_email

__all__ = ["AsyncHybridClient", "HybridClient"]

_DEK_BYTES = 32
_WHAT = "key service"


def _service(service: str) -> str:
    if service not in (HYBRID_CHAT, TEAM_CHAT):
        raise InvalidRequest("service", "client-side content is service 1001 or 0008")
    return service


_MESSAGE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")


def _message_id(message: str) -> str:
    """A message id by the platform's rule (its slot in the conversation)."""
    if not isinstance(message, str) or not _MESSAGE_ID.match(message):
        raise InvalidRequest("message", "must be 1-128 characters of [A-Za-z0-9._-]")
    return message


def _header(sealed: bytes, message: str, author: str | None) -> tuple[bytes, MessageHeader, bytes]:
    """Split ``sealed`` and check that it claims to be ``message`` (and by ``author``): a
    message the platform replayed under another id, or credited to another member, is refused
    before any key is asked for (and would not open anyway: both are bound)."""
    wrapped, header, envelope = split(sealed)
    if header.message != _message_id(message):
        raise InvalidCiphertext()
    if author is not None and header.author != canonical_email("author", author):
        raise InvalidCiphertext()
    return wrapped, header, envelope


def _wrap_answer(response: httpx.Response) -> tuple[bytes, str]:
    """(wrapped DEK, the author the key service bound) of a ``/wrap`` answer."""
    wrapped = _answer(response, "wrapped_key")
    try:
        return wrapped, canonical_email("author", response.json()["author"])
    except (ValueError, KeyError, TypeError, InvalidRequest) as exc:
        raise KeyUnavailable("key service answered a malformed response") from exc


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
        self,
        conversation: str,
        service: str,
        plaintext: bytes,
        dek: bytes,
        wrapped: bytes,
        header: MessageHeader,
    ) -> bytes:
        cipher = _cipher(wrapped, dek)
        bound = context(self.org, conversation, service, header.message, header.author)
        sealed = join(wrapped, header, cipher.seal(plaintext, bound))
        self.cache.put(f"{service}/{conversation}", wrapped, cipher)
        return sealed

    def _open(
        self,
        conversation: str,
        service: str,
        header: MessageHeader,
        envelope: bytes,
        cipher: MessageCipher,
    ) -> bytes:
        bound = context(self.org, conversation, service, header.message, header.author)
        return cipher.open(envelope, bound)


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
        self,
        conversation: str,
        plaintext: bytes,
        *,
        message: str,
        reason: str = "",
        service: str = HYBRID_CHAT,
    ) -> bytes:
        """Seal message ``message`` (its id, the platform's slot for it) for ``conversation``:
        1001, or 0008 (team chat, advanced chat encryption). The id and the author are bound."""
        service = _service(service)
        message = _message_id(message)
        dek = self._random(_DEK_BYTES)
        body = {
            "authentication": self._credentials.authentication(),
            "authorization": self._credentials.authorization(conversation, "writer", service),
            "key": base64.b64encode(dek).decode("ascii"),
            "message": message,
            "reason": reason,
        }
        wrapped, author = _wrap_answer(self._post("wrap", body))
        header = MessageHeader(message, author)
        return self._seal(conversation, service, plaintext, dek, wrapped, header)

    def open_message(
        self,
        conversation: str,
        sealed: bytes,
        *,
        message: str,
        author: str | None = None,
        reason: str = "",
        service: str = HYBRID_CHAT,
    ) -> bytes:
        """Open message ``message`` of ``conversation`` (the id it was fetched under; and, when
        given, the ``author`` the platform reported): InvalidCiphertext if it is bound to
        another id or author, AccessDenied if the key service refuses."""
        service = _service(service)
        wrapped, header, envelope = _header(sealed, message, author)
        slot = f"{service}/{conversation}"
        cipher = self.cache.get(slot, wrapped)
        if cipher is None:
            body = {
                "authentication": self._credentials.authentication(),
                "authorization": self._credentials.authorization(conversation, "reader", service),
                "wrapped_key": base64.b64encode(wrapped).decode("ascii"),
                "message": header.message,
                "author": header.author,
                "reason": reason,
            }
            dek = _answer(self._post("unwrap", body), "key")
            if len(dek) != _DEK_BYTES:
                raise InvalidCiphertext()
            cipher = _cipher(wrapped, dek)
            plaintext = self._open(conversation, service, header, envelope, cipher)
            self.cache.put(slot, wrapped, cipher)
            return plaintext
        return self._open(conversation, service, header, envelope, cipher)


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
        self,
        conversation: str,
        plaintext: bytes,
        *,
        message: str,
        reason: str = "",
        service: str = HYBRID_CHAT,
    ) -> bytes:
        """Seal message ``message`` (its id, the platform's slot for it) for ``conversation``:
        1001, or 0008 (team chat, advanced chat encryption). The id and the author are bound."""
        service = _service(service)
        message = _message_id(message)
        dek = self._random(_DEK_BYTES)
        body = {
            "authentication": await self._credentials.authentication(),
            "authorization": await self._credentials.authorization(conversation, "writer", service),
            "key": base64.b64encode(dek).decode("ascii"),
            "message": message,
            "reason": reason,
        }
        wrapped, author = _wrap_answer(await self._post("wrap", body))
        header = MessageHeader(message, author)
        return self._seal(conversation, service, plaintext, dek, wrapped, header)

    async def open_message(
        self,
        conversation: str,
        sealed: bytes,
        *,
        message: str,
        author: str | None = None,
        reason: str = "",
        service: str = HYBRID_CHAT,
    ) -> bytes:
        """Open message ``message`` of ``conversation`` (the id it was fetched under; and, when
        given, the ``author`` the platform reported): InvalidCiphertext if it is bound to
        another id or author, AccessDenied if the key service refuses."""
        service = _service(service)
        wrapped, header, envelope = _header(sealed, message, author)
        slot = f"{service}/{conversation}"
        cipher = self.cache.get(slot, wrapped)
        if cipher is None:
            body = {
                "authentication": await self._credentials.authentication(),
                "authorization": await self._credentials.authorization(
                    conversation, "reader", service
                ),
                "wrapped_key": base64.b64encode(wrapped).decode("ascii"),
                "message": header.message,
                "author": header.author,
                "reason": reason,
            }
            dek = _answer(await self._post("unwrap", body), "key")
            if len(dek) != _DEK_BYTES:
                raise InvalidCiphertext()
            cipher = _cipher(wrapped, dek)
            plaintext = self._open(conversation, service, header, envelope, cipher)
            self.cache.put(slot, wrapped, cipher)
            return plaintext
        return self._open(conversation, service, header, envelope, cipher)
