"""The hazardous corner: the only module of ownkey that imports ``cryptography.hazmat``.

Everything here is a thin, typed wrapper over pyca/cryptography, so that the rest of ownkey cannot
misuse a primitive by accident: AES-256-GCM only with 32-byte keys, 12-byte nonces and 16-byte tags;
HKDF only with SHA-256. A failed tag check becomes :class:`~ownkey.errors.InvalidCiphertext`, the
one opaque error of the envelope. A test pins this module as the only importer of ``hazmat``.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ownkey.errors import InvalidCiphertext

__all__ = [
    "AES_KEY_BYTES",
    "GCM_NONCE_BYTES",
    "GCM_TAG_BYTES",
    "HKDF_MAX_BYTES",
    "Aes256Gcm",
    "Ed25519Signer",
    "constant_time_equal",
    "ed25519_verify",
    "hkdf_sha256",
    "sha256",
    "sha256_hasher",
]

AES_KEY_BYTES = 32
GCM_NONCE_BYTES = 12
GCM_TAG_BYTES = 16
HKDF_MAX_BYTES = 255 * 32


class Aes256Gcm:
    """AES-256-GCM with a 96-bit nonce and a 128-bit tag, nothing else.

    One instance holds one expanded key, so hot paths (chat messages, stream segments) pay the key
    schedule once. ``repr`` never shows the key.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != AES_KEY_BYTES:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<Aes256Gcm key=<redacted>>"

    def encrypt(self, nonce: bytes, plaintext: bytes | memoryview, aad: bytes | None) -> bytes:
        """Return ciphertext || tag."""
        if len(nonce) != GCM_NONCE_BYTES:
            raise ValueError("AES-256-GCM here takes 12-byte nonces only")
        return self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes | None) -> bytes:
        """Return the plaintext, or raise InvalidCiphertext (never InvalidTag)."""
        if len(nonce) != GCM_NONCE_BYTES:
            raise ValueError("AES-256-GCM here takes 12-byte nonces only")
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise InvalidCiphertext() from None

    def encrypt_into(
        self, nonce: bytes, plaintext: bytes | memoryview, aad: bytes | None, out: memoryview
    ) -> int:
        """Write ciphertext || tag into ``out`` (exactly ``len(plaintext) + 16`` bytes)."""
        return self._aead.encrypt_into(nonce, plaintext, aad, out)

    def decrypt_into(
        self, nonce: bytes, ciphertext: bytes | memoryview, aad: bytes | None, out: memoryview
    ) -> int:
        """Write the plaintext into ``out`` (exactly ``len(ciphertext) - 16`` bytes)."""
        try:
            return self._aead.decrypt_into(nonce, ciphertext, aad, out)
        except InvalidTag:
            raise InvalidCiphertext() from None


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) extract-and-expand; ``salt=None`` means a string of zeros."""
    if not 1 <= length <= HKDF_MAX_BYTES:
        raise ValueError("HKDF-SHA256 output must be 1..8160 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


#: Compare two byte strings in time independent of where they differ (the stdlib's C routine,
#: bound directly: it sits on the hot path of every open).
constant_time_equal = hmac.compare_digest


#: SHA-256 through the stdlib's C routine, bound directly: the message suite's per-message
#: commitment sits on the hot path, where a hazmat ``Hash`` object costs three calls more.
sha256_hasher = hashlib.sha256


def sha256(data: bytes) -> bytes:
    """SHA-256 of ``data``."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


class Ed25519Signer:
    """An Ed25519 signing key made from a 32-byte seed (RFC 8032); ``repr`` hides the seed."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)

    def __repr__(self) -> str:
        return "<Ed25519Signer seed=<redacted>>"

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature over ``message``."""
        return self._key.sign(message)

    def public_key(self) -> bytes:
        """The 32-byte public key that verifies this signer's signatures."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` under ``public_key``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
