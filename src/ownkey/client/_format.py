"""The sealed 1001 message: the wrapped DEK travels with the envelope.

Layout::

    "OKH1" | u16 len(wrapped) | wrapped | envelope (ownkey message suite, docs/spec/envelope-v2.md)

The envelope is sealed under the DEK with the context ``{org, service, conversation}`` (service
``1001``, hybrid chat, or ``0008``, team chat under advanced chat encryption)
and key id ``h1:`` + the first 16 bytes of SHA-256(wrapped), so the envelope header commits to
the wrapped key it travels with: swapping in another message's wrapped key fails to open.
"""

from __future__ import annotations

import struct
from typing import Final

from ownkey.envelope import sha256
from ownkey.errors import InvalidCiphertext

__all__ = ["HYBRID_CHAT", "MAGIC", "TEAM_CHAT", "context", "join", "key_id", "split"]

MAGIC: Final = b"OKH1"
HYBRID_CHAT: Final = "1001"
TEAM_CHAT: Final = "0008"
_U16 = struct.Struct(">H")


def context(org: str, conversation: str, service: str = HYBRID_CHAT) -> dict[str, str]:
    return {"org": org, "service": service, "conversation": conversation}


def key_id(wrapped: bytes) -> bytes:
    return b"h1:" + sha256(wrapped)[:16]


def join(wrapped: bytes, envelope: bytes) -> bytes:
    return MAGIC + _U16.pack(len(wrapped)) + wrapped + envelope


def split(sealed: bytes) -> tuple[bytes, bytes]:
    """(wrapped, envelope); InvalidCiphertext for anything that is not a sealed 1001 message."""
    if len(sealed) < 6 or sealed[:4] != MAGIC:
        raise InvalidCiphertext()
    (size,) = _U16.unpack_from(sealed, 4)
    if size == 0 or len(sealed) < 6 + size:
        raise InvalidCiphertext()
    return sealed[6 : 6 + size], sealed[6 + size :]
