"""Byte-level constants and header parsing shared by both suites (docs/spec/envelope-v2.md).

The version byte names the layout of a suite: the message suite is written as version 2 (a
per-instance salt and a commitment to key, header and context, ENV2-4); version 1 messages are
still opened. The stream suite's layout did not change and is still written as version 1.
"""

from __future__ import annotations

from ownkey.envelope._primitives import GCM_NONCE_BYTES, GCM_TAG_BYTES
from ownkey.errors import InvalidCiphertext

__all__ = [
    "COMMITMENT_BYTES",
    "FORMAT_VERSION",
    "LEGACY_MESSAGE_VERSION",
    "MESSAGE_FIXED_OVERHEAD",
    "MESSAGE_SALT_BYTES",
    "MESSAGE_VERSION",
    "SALT_BYTES",
    "STREAM_VERSION",
    "SUITE_MESSAGE",
    "SUITE_STREAM",
    "key_id_prefix",
    "peek_key_id",
    "split_key_id",
]

#: The format this code writes (its spec is docs/spec/envelope-v2.md).
FORMAT_VERSION = 0x02
MESSAGE_VERSION = 0x02
LEGACY_MESSAGE_VERSION = 0x01
STREAM_VERSION = 0x01
SUITE_MESSAGE = 0x01
SUITE_STREAM = 0x02
COMMITMENT_BYTES = 32
SALT_BYTES = 32
MESSAGE_SALT_BYTES = 16
# version, suite, key-id length, salt, nonce, commitment, tag: a message's bytes beyond its kid.
MESSAGE_FIXED_OVERHEAD = 3 + MESSAGE_SALT_BYTES + GCM_NONCE_BYTES + COMMITMENT_BYTES + GCM_TAG_BYTES
#: The (version, suite) pairs a reader accepts (ENV2-9.1).
_KNOWN = frozenset(
    {
        (MESSAGE_VERSION, SUITE_MESSAGE),
        (LEGACY_MESSAGE_VERSION, SUITE_MESSAGE),
        (STREAM_VERSION, SUITE_STREAM),
    }
)


def key_id_prefix(suite: int, key_id: bytes, version: int | None = None) -> bytes:
    """The first bytes of every envelope of ``suite`` under ``key_id`` (current version)."""
    if version is None:
        version = MESSAGE_VERSION if suite == SUITE_MESSAGE else STREAM_VERSION
    return bytes((version, suite, len(key_id))) + key_id


def split_key_id(envelope: bytes | memoryview) -> tuple[int, bytes, int]:
    """Return (suite, key id, offset after the key id); raise InvalidCiphertext if malformed."""
    if len(envelope) < 4:
        raise InvalidCiphertext()
    suite, kid_len = envelope[1], envelope[2]
    if (envelope[0], suite) not in _KNOWN or kid_len == 0 or len(envelope) < 3 + kid_len:
        raise InvalidCiphertext()
    return suite, bytes(envelope[3 : 3 + kid_len]), 3 + kid_len


def peek_key_id(envelope: bytes | memoryview) -> bytes:
    """The scope key id named in an envelope's header, read without any key.

    The id is not authenticated until the envelope is opened; it only says which key to fetch.
    """
    return split_key_id(envelope)[1]
