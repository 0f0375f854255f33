"""Message suite (0x01): single-shot envelopes for small payloads such as chat messages.

Layout (ENV-4)::

    0x01 | 0x01 | u8 kid_len | kid | nonce (12) | commitment (32) | ciphertext | tag (16)

The per-scope-key message key and the key commitment come from one HKDF-SHA256 expansion of the
scope key, computed once per :class:`MessageCipher`. Every message then costs one AES-GCM call and
a 12-byte random nonce, which is what lets chat seal at very high rates. The AAD is the header
(everything before the ciphertext) followed by the canonical context encoding.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import ClassVar

from ownkey.envelope._context import context_bytes
from ownkey.envelope._format import (
    COMMITMENT_BYTES,
    SUITE_MESSAGE,
    key_id_prefix,
)
from ownkey.envelope._keys import SECRET_KEY_ACCESS, ScopeKey
from ownkey.envelope._primitives import (
    AES_KEY_BYTES,
    GCM_NONCE_BYTES,
    GCM_TAG_BYTES,
    Aes256Gcm,
    constant_time_equal,
    hkdf_sha256,
)
from ownkey.errors import InvalidCiphertext, LimitExceeded

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MESSAGE_USE_LIMIT",
    "MessageCipher",
    "RandomSource",
    "open_message",
    "seal_message",
]

RandomSource = Callable[[int], bytes]
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Random 96-bit nonces under one key: 2^28 messages keep the chance of a repeat below 2^-41.
MESSAGE_USE_LIMIT = 2**28
_MESSAGE_INFO = b"ownkey/v1/message"
_NONCES_PER_REFILL = 256


class _NoncePool:
    """Random nonces drawn from the random source in batches, one syscall per 256 messages.

    A forked child must never reuse its parent's buffered nonces: every pool empties itself in the
    child right after ``fork``.
    """

    _live: ClassVar[weakref.WeakSet[_NoncePool]] = weakref.WeakSet()

    def __init__(self, random: RandomSource) -> None:
        self._random = random
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()
        _NoncePool._live.add(self)

    def take(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer = self._random(GCM_NONCE_BYTES * _NONCES_PER_REFILL)
                self._offset = 0
            start = self._offset
            self._offset = start + GCM_NONCE_BYTES
            return self._buffer[start : start + GCM_NONCE_BYTES]

    def forget(self) -> None:
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()

    @classmethod
    def forget_all(cls) -> None:
        for pool in list(cls._live):
            pool.forget()


os.register_at_fork(after_in_child=_NoncePool.forget_all)


class MessageCipher:
    """Seals and opens messages under one scope key; build once per scope key and reuse.

    ``use_limit`` bounds the number of seals (ENV-4.6); past it :class:`LimitExceeded` tells the
    key layer to move to a fresh scope key.
    """

    __slots__ = (
        "_aead",
        "_commitment",
        "_header_len",
        "_max_len",
        "_min_len",
        "_nonce_end",
        "_nonces",
        "_prefix",
        "_uses",
        "use_limit",
    )

    def __init__(
        self,
        key: ScopeKey,
        *,
        random: RandomSource = os.urandom,
        use_limit: int = MESSAGE_USE_LIMIT,
    ) -> None:
        okm = hkdf_sha256(
            key.material(SECRET_KEY_ACCESS),
            salt=None,
            info=_MESSAGE_INFO,
            length=AES_KEY_BYTES + COMMITMENT_BYTES,
        )
        self._aead = Aes256Gcm(okm[:AES_KEY_BYTES])
        self._commitment = okm[AES_KEY_BYTES:]
        self._prefix = key_id_prefix(SUITE_MESSAGE, key.key_id)
        self._nonce_end = len(self._prefix) + GCM_NONCE_BYTES
        self._header_len = self._nonce_end + COMMITMENT_BYTES
        self._min_len = self._header_len + GCM_TAG_BYTES
        self._max_len = self._min_len + MAX_MESSAGE_BYTES
        self._nonces = _NoncePool(random)
        self._uses = 0
        self.use_limit = use_limit

    def __repr__(self) -> str:
        return f"<MessageCipher uses={self._uses}/{self.use_limit} key=<redacted>>"

    @property
    def uses(self) -> int:
        """How many messages this cipher has sealed."""
        return self._uses

    def seal(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        """Seal ``plaintext`` bound to ``context``; the result names the scope key id."""
        if len(plaintext) > MAX_MESSAGE_BYTES:
            raise LimitExceeded("a message is limited to 64 MiB; use the stream suite")
        if self._uses >= self.use_limit:
            raise LimitExceeded("this scope key reached its message use limit")
        self._uses += 1
        nonce = self._nonces.take()
        header = self._prefix + nonce + self._commitment
        return header + self._aead.encrypt(nonce, plaintext, header + context_bytes(context))

    def open(self, envelope: bytes, context: Mapping[str, str]) -> bytes:
        """Open an envelope sealed by :meth:`seal` with the same key and context.

        Any difference at all raises :class:`InvalidCiphertext`, the same error every time.
        """
        header_len = self._header_len
        if (
            not self._min_len <= len(envelope) <= self._max_len
            or not envelope.startswith(self._prefix)
            or not constant_time_equal(envelope[self._nonce_end : header_len], self._commitment)
        ):
            raise InvalidCiphertext()
        return self._aead.decrypt(
            envelope[len(self._prefix) : self._nonce_end],
            memoryview(envelope)[header_len:],
            envelope[:header_len] + context_bytes(context),
        )


def seal_message(
    key: ScopeKey,
    plaintext: bytes,
    context: Mapping[str, str],
    *,
    random: RandomSource = os.urandom,
) -> bytes:
    """One-off seal; hot paths keep a :class:`MessageCipher` per scope key instead."""
    return MessageCipher(key, random=random).seal(plaintext, context)


def open_message(key: ScopeKey, envelope: bytes, context: Mapping[str, str]) -> bytes:
    """One-off open; hot paths keep a :class:`MessageCipher` per scope key instead."""
    return MessageCipher(key).open(envelope, context)
