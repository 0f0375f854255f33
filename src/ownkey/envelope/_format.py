"""Byte-level constants and header parsing shared by both suites (docs/spec/envelope-v1.md)."""

from __future__ import annotations

from ownkey.envelope._primitives import GCM_NONCE_BYTES, GCM_TAG_BYTES
from ownkey.errors import InvalidCiphertext

__all__ = [
    "COMMITMENT_BYTES",
    "FORMAT_VERSION",
    "MESSAGE_FIXED_OVERHEAD",
    "SALT_BYTES",
    "SUITE_MESSAGE",
    "SUITE_STREAM",
    "key_id_prefix",
    "peek_key_id",
    "split_key_id",
]

FORMAT_VERSION = 0x01
SUITE_MESSAGE = 0x01
SUITE_STREAM = 0x02
COMMITMENT_BYTES = 32
SALT_BYTES = 32
# version, suite, key-id length, nonce, commitment, tag: the bytes a message adds beyond its key id.
MESSAGE_FIXED_OVERHEAD = 3 + GCM_NONCE_BYTES + COMMITMENT_BYTES + GCM_TAG_BYTES


def key_id_prefix(suite: int, key_id: bytes) -> bytes:
    """The first bytes of every envelope of ``suite`` under ``key_id``."""
    return bytes((FORMAT_VERSION, suite, len(key_id))) + key_id


def split_key_id(envelope: bytes | memoryview) -> tuple[int, bytes, int]:
    """Return (suite, key id, offset after the key id); raise InvalidCiphertext if malformed."""
    if len(envelope) < 4 or envelope[0] != FORMAT_VERSION:
        raise InvalidCiphertext()
    suite, kid_len = envelope[1], envelope[2]
    if suite not in (SUITE_MESSAGE, SUITE_STREAM) or kid_len == 0 or len(envelope) < 3 + kid_len:
        raise InvalidCiphertext()
    return suite, bytes(envelope[3 : 3 + kid_len]), 3 + kid_len


def peek_key_id(envelope: bytes | memoryview) -> bytes:
    """The scope key id named in an envelope's header, read without any key.

    The id is not authenticated until the envelope is opened; it only says which key to fetch.
    """
    return split_key_id(envelope)[1]
