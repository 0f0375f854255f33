"""The sealed 1001 message: the wrapped DEK and the message's binding travel with the envelope.

Layout (``OKH2``, docs/hybrid.md "Message format")::

    "OKH2" | u16 len(wrapped) | wrapped
           | u8 len(message) | message id (ASCII) | u8 len(author) | author (ASCII)
           | envelope (ownkey message suite, docs/spec/envelope-v2.md)

The envelope is sealed under the DEK with the context ``{org, service, conversation, message,
author}`` (service ``1001``, hybrid chat, or ``0008``, team chat under advanced chat encryption)
and key id ``h1:`` + the first 16 bytes of SHA-256(wrapped), so the envelope header commits to
the wrapped key it travels with: swapping in another message's wrapped key fails to open. The
key service binds the same five values into the wrap (the author is the user its identity
provider authenticated at ``/wrap``, not a value the client chose), so a message copied to
another id (a replay) or presented as another member's (a re-attribution) opens nowhere.

The message id and author are in clear: the platform stores and routes by them anyway. They
are authenticated only once the message opened; :func:`read_header` says what a message
claims, for display and routing, never as proof.

``OKH1`` (no message id, no author) was the format before issue 23; it is refused (CMK Hybrid
was not released with it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from ownkey.envelope import sha256
from ownkey.errors import InvalidCiphertext

__all__ = [
    "HYBRID_CHAT",
    "MAGIC",
    "TEAM_CHAT",
    "MessageHeader",
    "context",
    "join",
    "key_id",
    "read_header",
    "split",
]

MAGIC: Final = b"OKH2"
HYBRID_CHAT: Final = "1001"
TEAM_CHAT: Final = "0008"
_U16 = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """What a sealed message says it is: its id in the conversation and its author."""

    message: str
    author: str


def context(org: str, conversation: str, service: str, message: str, author: str) -> dict[str, str]:
    """The envelope's context: everything the message is bound to."""
    return {
        "org": org,
        "service": service,
        "conversation": conversation,
        "message": message,
        "author": author,
    }


def key_id(wrapped: bytes) -> bytes:
    return b"h1:" + sha256(wrapped)[:16]


def _short(value: str) -> bytes:
    raw = value.encode("ascii")
    if not 0 < len(raw) < 256:
        raise ValueError("a message id or author is 1 to 255 ASCII characters")
    return bytes((len(raw),)) + raw


def join(wrapped: bytes, header: MessageHeader, envelope: bytes) -> bytes:
    return (
        MAGIC
        + _U16.pack(len(wrapped))
        + wrapped
        + _short(header.message)
        + _short(header.author)
        + envelope
    )


def _take_short(sealed: bytes, at: int) -> tuple[str, int]:
    if at >= len(sealed) or sealed[at] == 0 or at + 1 + sealed[at] > len(sealed):
        raise InvalidCiphertext()
    raw = sealed[at + 1 : at + 1 + sealed[at]]
    if not raw.isascii():
        raise InvalidCiphertext()
    return raw.decode("ascii"), at + 1 + sealed[at]


def split(sealed: bytes) -> tuple[bytes, MessageHeader, bytes]:
    """(wrapped, header, envelope); InvalidCiphertext for anything that is not a sealed
    ``OKH2`` message."""
    if len(sealed) < 6 or sealed[:4] != MAGIC:
        raise InvalidCiphertext()
    (size,) = _U16.unpack_from(sealed, 4)
    if size == 0 or len(sealed) < 6 + size:
        raise InvalidCiphertext()
    message, at = _take_short(sealed, 6 + size)
    author, at = _take_short(sealed, at)
    return sealed[6 : 6 + size], MessageHeader(message, author), sealed[at:]


def read_header(sealed: bytes) -> MessageHeader:
    """The message id and author a sealed message *claims* (unauthenticated until
    ``open_message`` succeeds with them); InvalidCiphertext if it is not a sealed message."""
    return split(sealed)[1]
