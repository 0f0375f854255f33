"""Message suite (0x01): single-shot envelopes for small payloads such as chat messages.

Layout of version 2, the one written (ENV2-4)::

    0x02 | 0x01 | u8 kid_len | kid | salt (16) | nonce (12) | commitment (32) | ct | tag (16)

Every :class:`MessageCipher` draws a random 128-bit salt and derives its own message key and
commitment key from the scope key and that salt, so no two instances (threads, processes, nodes,
cache reloads, epochs of any length) ever share an AES key. Each instance counts its seals with
an atomic counter and moves to a fresh salt after :data:`SEALS_PER_MESSAGE_KEY`: the nonce
collision bound holds per AES key by construction, whatever the deployment does (ENV2-4.6). The
commitment is ``SHA-256(K_com || header-before-commitment || CTX)``: it commits to the key, the
salt, the nonce and the full context, so an envelope opens under at most one (key, context).

Version 1 envelopes (one message key per scope key, ``docs/spec/envelope-v1.md``) still open.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

from ownkey.envelope._context import context_bytes
from ownkey.envelope._format import (
    COMMITMENT_BYTES,
    LEGACY_MESSAGE_VERSION,
    MESSAGE_SALT_BYTES,
    MESSAGE_VERSION,
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
    sha256_hasher,
)
from ownkey.errors import InvalidCiphertext, LimitExceeded

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SEALS_PER_MESSAGE_KEY",
    "MessageCipher",
    "RandomSource",
    "open_message",
    "seal_message",
]

RandomSource = Callable[[int], bytes]
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Seals under one derived message key before the cipher draws a fresh salt. Random 96-bit
#: nonces: q = 2^20 messages repeat a nonce with probability <= q^2 / 2^97 = 2^-57 (ENV2-4.6).
SEALS_PER_MESSAGE_KEY = 2**20
_V2_INFO = b"ownkey/v2/message"
_V1_INFO = b"ownkey/v1/message"
_NONCES_PER_REFILL = 256
#: Derived keys an opener keeps (one per sender instance and 2^20 messages): a miss costs one
#: HKDF, so the bound only caps memory.
_OPEN_KEYS = 256
_MAX_SEALED_BODY = GCM_TAG_BYTES + MAX_MESSAGE_BYTES


class _NoncePool:
    """Random nonces drawn from the random source in batches, one syscall per 256 messages.

    Lock-free on the hot path: a batch and its counter travel together, ``next`` on the counter
    holds the GIL, so each slot of a batch is handed out once; two threads that find a batch
    spent may each draw a fresh one (both are random, neither is reused). A forked child must
    never reuse its parent's buffered nonces: every pool empties itself in the child right after
    ``fork`` (ENV2-4.3).
    """

    _live: ClassVar[weakref.WeakSet[_NoncePool]] = weakref.WeakSet()

    def __init__(self, random: RandomSource) -> None:
        self._random = random
        self._batch: tuple[bytes, Iterator[int]] = (b"", itertools.count())
        _NoncePool._live.add(self)

    def take(self) -> bytes:
        while True:
            buffer, slots = self._batch
            start = next(slots) * GCM_NONCE_BYTES
            if start < len(buffer):
                return buffer[start : start + GCM_NONCE_BYTES]
            fresh = self._random(GCM_NONCE_BYTES * _NONCES_PER_REFILL)
            if len(fresh) != GCM_NONCE_BYTES * _NONCES_PER_REFILL:
                raise ValueError("the random source returned a short batch of nonces")
            self._batch = (fresh, itertools.count())

    def forget(self) -> None:
        self._batch = (b"", itertools.count())

    @classmethod
    def forget_all(cls) -> None:
        for pool in list(cls._live):
            pool.forget()


class _MessageKey:
    """One derived message key: its AEAD, its commitment key and the header bytes before the
    nonce. ``count`` hands out seal numbers atomically (``next`` on ``itertools.count`` holds the
    GIL), so no thread can push a key past its budget."""

    __slots__ = ("aead", "commit_key", "count", "prefix")

    def __init__(self, aead: Aes256Gcm, commit_key: bytes, prefix: bytes) -> None:
        self.aead = aead
        self.commit_key = commit_key
        self.prefix = prefix
        self.count = itertools.count()


class MessageCipher:
    """Seals and opens messages under one scope key; build once per scope key and reuse.

    Sealing never runs out: the cipher moves to a fresh derived key every
    :data:`SEALS_PER_MESSAGE_KEY` seals, and a forked child draws its own salt before its first
    seal. ``uses`` counts every seal of this instance, for reports.
    """

    __slots__ = (
        "__weakref__",
        "_header_len",
        "_kid_prefix",
        "_legacy",
        "_lock",
        "_material",
        "_nonce_end",
        "_nonces",
        "_opening",
        "_random",
        "_salt_end",
        "_sealing",
        "_uses",
    )

    _live: ClassVar[weakref.WeakSet[MessageCipher]] = weakref.WeakSet()

    def __init__(self, key: ScopeKey, *, random: RandomSource = os.urandom) -> None:
        self._material = key.material(SECRET_KEY_ACCESS)
        self._kid_prefix = key_id_prefix(SUITE_MESSAGE, key.key_id, MESSAGE_VERSION)
        # Offsets of a version 2 envelope under this key, computed once for every open.
        self._salt_end = len(self._kid_prefix) + MESSAGE_SALT_BYTES
        self._nonce_end = self._salt_end + GCM_NONCE_BYTES
        self._header_len = self._nonce_end + COMMITMENT_BYTES
        self._random = random
        self._nonces = _NoncePool(random)
        self._lock = threading.Lock()
        self._opening: dict[bytes, _MessageKey] = {}
        self._legacy: tuple[Aes256Gcm, bytes, bytes] | None = None
        self._sealing: _MessageKey | None = None  # drawn at the first seal: openers never need one
        self._uses = 0
        MessageCipher._live.add(self)

    def __repr__(self) -> str:
        return f"<MessageCipher uses={self.uses} key=<redacted>>"

    @property
    def uses(self) -> int:
        """How many messages this cipher has sealed (a report: concurrent seals may under-count;
        the per-key budget is enforced by each key's own atomic counter)."""
        return self._uses

    # -- derived keys ------------------------------------------------------------------------------

    def _derive(self, salt: bytes) -> _MessageKey:
        okm = hkdf_sha256(
            self._material,
            salt=salt,
            info=_V2_INFO + self._kid_prefix[2:],
            length=AES_KEY_BYTES + COMMITMENT_BYTES,
        )
        return _MessageKey(
            Aes256Gcm(okm[:AES_KEY_BYTES]), okm[AES_KEY_BYTES:], self._kid_prefix + salt
        )

    def _remember(self, salt: bytes, key: _MessageKey) -> None:
        with self._lock:
            if len(self._opening) >= _OPEN_KEYS:
                self._opening.pop(next(iter(self._opening)))
            self._opening[salt] = key

    def _fresh_key(self) -> _MessageKey:
        salt = self._random(MESSAGE_SALT_BYTES)
        if len(salt) != MESSAGE_SALT_BYTES:
            raise ValueError("the random source returned a short salt")
        key = self._derive(salt)
        self._remember(salt, key)
        return key

    def _next_key(self, spent: _MessageKey | None) -> _MessageKey:
        """The key to seal with after ``spent`` (None at the first seal, else its budget is used
        up), drawing a fresh salt unless another thread already did."""
        with self._lock:
            current = self._sealing
        if current is not spent and current is not None:
            return current
        fresh = self._fresh_key()
        with self._lock:
            current = self._sealing
            if current is spent or current is None:
                self._sealing = current = fresh
            return current

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._sealing = None  # the child draws its own salt: it never shares a key's budget

    @classmethod
    def _renew_all(cls) -> None:
        for cipher in list(cls._live):
            cipher._after_fork()

    # -- seal and open -----------------------------------------------------------------------------

    def seal(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        """Seal ``plaintext`` bound to ``context``; the result names the scope key id."""
        return self.seal_encoded(plaintext, context_bytes(context))

    def seal_encoded(self, plaintext: bytes, context: bytes) -> bytes:
        """:meth:`seal` with the context already encoded (an ``EncryptionContext.encoded`` or a
        ``ContextTemplate.encode`` result): the hot loop encodes nothing twice."""
        if len(plaintext) > MAX_MESSAGE_BYTES:
            raise LimitExceeded("a message is limited to 64 MiB; use the stream suite")
        key = self._sealing or self._next_key(None)
        while next(key.count) >= SEALS_PER_MESSAGE_KEY:
            key = self._next_key(key)
        self._uses += 1
        nonce = self._nonces.take()
        aad = key.prefix + nonce + context
        commitment = sha256_hasher(key.commit_key + aad).digest()
        return key.prefix + nonce + commitment + key.aead.encrypt(nonce, plaintext, aad)

    def open(self, envelope: bytes, context: Mapping[str, str]) -> bytes:
        """Open an envelope sealed by :meth:`seal` with the same key and context.

        Any difference at all raises :class:`InvalidCiphertext`, the same error every time.
        """
        return self.open_encoded(envelope, context_bytes(context))

    def open_encoded(self, envelope: bytes, context: bytes) -> bytes:
        """:meth:`open` with the context already encoded."""
        if envelope[:1] == b"\x01":
            return self._open_v1(envelope, context)
        salt_end, nonce_end, header_len = self._salt_end, self._nonce_end, self._header_len
        if not (
            header_len + GCM_TAG_BYTES <= len(envelope) <= header_len + _MAX_SEALED_BODY
            and envelope.startswith(self._kid_prefix)
        ):
            raise InvalidCiphertext()
        salt = envelope[salt_end - MESSAGE_SALT_BYTES : salt_end]
        key = self._opening.get(salt)
        if key is None:
            key = self._derive(salt)
            self._remember(salt, key)
        aad = envelope[:nonce_end] + context
        if not constant_time_equal(
            envelope[nonce_end:header_len], sha256_hasher(key.commit_key + aad).digest()
        ):
            raise InvalidCiphertext()
        return key.aead.decrypt(
            envelope[salt_end:nonce_end], memoryview(envelope)[header_len:], aad
        )

    def _open_v1(self, envelope: bytes, context: bytes) -> bytes:
        """Version 1 (docs/spec/envelope-v1.md): one message key and commitment per scope key."""
        if self._legacy is None:
            okm = hkdf_sha256(
                self._material, salt=None, info=_V1_INFO, length=AES_KEY_BYTES + COMMITMENT_BYTES
            )
            prefix = bytes((LEGACY_MESSAGE_VERSION,)) + self._kid_prefix[1:]
            self._legacy = (Aes256Gcm(okm[:AES_KEY_BYTES]), okm[AES_KEY_BYTES:], prefix)
        aead, commitment, prefix = self._legacy
        nonce_end = len(prefix) + GCM_NONCE_BYTES
        header_len = nonce_end + COMMITMENT_BYTES
        if (
            not header_len + GCM_TAG_BYTES
            <= len(envelope)
            <= header_len + GCM_TAG_BYTES + MAX_MESSAGE_BYTES
            or not envelope.startswith(prefix)
            or not constant_time_equal(envelope[nonce_end:header_len], commitment)
        ):
            raise InvalidCiphertext()
        return aead.decrypt(
            envelope[len(prefix) : nonce_end],
            memoryview(envelope)[header_len:],
            envelope[:header_len] + context,
        )


def _after_fork_in_child() -> None:
    _NoncePool.forget_all()
    MessageCipher._renew_all()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
