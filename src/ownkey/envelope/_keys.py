"""Scope keys as objects that never print their material, and the multi-share combiner.

Reading the material requires the greppable token :data:`SECRET_KEY_ACCESS`, so every place that
touches raw key bytes can be found with one search.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from ownkey.envelope._primitives import AES_KEY_BYTES, hkdf_sha256

__all__ = [
    "MAX_KEY_ID_BYTES",
    "MAX_SHARES",
    "SECRET_KEY_ACCESS",
    "ScopeKey",
    "SecretKeyAccess",
    "combine_shares",
]

MAX_KEY_ID_BYTES = 255
MAX_SHARES = 16
_COMBINE_INFO = b"ownkey/v1/combine-shares"
_COMBINE_INFO_V2 = b"ownkey/v2/combine-shares"


class SecretKeyAccess:
    """Type of the token that unlocks raw key bytes; there is exactly one instance."""

    def __repr__(self) -> str:
        return "SECRET_KEY_ACCESS"


SECRET_KEY_ACCESS: Final = SecretKeyAccess()


class ScopeKey:
    """A 256-bit scope key with its id (the id travels in every envelope header).

    ``repr`` and ``str`` show the id only; the material is reachable through
    :meth:`material` with :data:`SECRET_KEY_ACCESS`.
    """

    __slots__ = ("_material", "key_id")

    def __init__(self, key_id: bytes, material: bytes) -> None:
        if not 1 <= len(key_id) <= MAX_KEY_ID_BYTES:
            raise ValueError("scope key id must be 1-255 bytes")
        if len(material) != AES_KEY_BYTES:
            raise ValueError("scope key material must be 32 bytes")
        self.key_id = bytes(key_id)
        self._material = bytes(material)

    def material(self, token: SecretKeyAccess) -> bytes:
        """The raw key bytes; the token makes every such access greppable."""
        if token is not SECRET_KEY_ACCESS:
            raise PermissionError("reading key material needs SECRET_KEY_ACCESS")
        return self._material

    def __repr__(self) -> str:
        return f"<ScopeKey id={self.key_id.hex()} material=<redacted>>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ScopeKey)
            and self.key_id == other.key_id
            and self._material == other._material
        )

    def __hash__(self) -> int:
        return hash(self.key_id)


def combine_shares(shares: Sequence[bytes], binding: bytes | None = None) -> bytes:
    """Combine N 32-byte key shares into one scope-key material (ENV-6).

    HKDF-SHA256 over the concatenation of every share, in the order given, with the share count in
    ``info``: all N shares are needed to recompute the result, and learning N-1 of them teaches
    nothing about it. Callers list shares in the protection plan's key order.

    With ``binding`` (ENV2-6.1, scope-key records of format 2) the info also carries the
    canonical encoding of what the scope key is for (its id, orgs, service, scope and epoch), so
    a share moved to another record, or a record whose attributes were edited, yields another
    key: its content then fails the envelope's commitment.
    """
    if not 1 <= len(shares) <= MAX_SHARES:
        raise ValueError("combine_shares takes 1-16 shares")
    if any(len(share) != AES_KEY_BYTES for share in shares):
        raise ValueError("every key share must be 32 bytes")
    if binding is None:
        info = _COMBINE_INFO + struct.pack(">B", len(shares))
    else:
        info = _COMBINE_INFO_V2 + struct.pack(">B", len(shares)) + binding
    return hkdf_sha256(b"".join(shares), salt=None, info=info, length=AES_KEY_BYTES)
