"""Pieces every key-manager adapter shares: blob framing, context binding, state gates.

A provider's wrapped blob starts with one format byte and the key version that made it::

    0x01 | u8 len(version) | version (ASCII) | provider body

so that ``unwrap`` knows which version to ask for without a round trip. The version is not trusted
on its own: every provider binds it, with the key id and the canonical encryption context, as
associated data of an AEAD (:func:`binding`), so a changed version, key id or context makes the
unwrap fail with :class:`~ownkey.errors.InvalidCiphertext`.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypedDict

from ownkey.envelope import EncryptionContext, encode_context
from ownkey.errors import AccessDenied, ConfigError, InvalidCiphertext, LimitExceeded
from ownkey.keys import KeyState

__all__ = [
    "BLOB_FORMAT",
    "MAX_PLAINTEXT_BYTES",
    "Adapter",
    "AdapterOptions",
    "StateMark",
    "binding",
    "check_plaintext",
    "context_bytes",
    "deny_unless_usable",
    "frame",
    "unframe",
]

BLOB_FORMAT = 0x01
#: The largest share a provider wraps (AWS KMS Encrypt takes at most 4096 bytes).
MAX_PLAINTEXT_BYTES = 4096
_MAX_VERSION_BYTES = 255
_U16 = struct.Struct(">H")


def context_bytes(context: Mapping[str, str]) -> bytes:
    """The canonical encoding of ``context`` (ENV-3), reusing an EncryptionContext's bytes."""
    if isinstance(context, EncryptionContext):
        return context.encoded
    return encode_context(context)


def binding(label: bytes, key_id: str, version: str, context: Mapping[str, str]) -> bytes:
    """Associated data that ties a wrapped blob to its provider, key, version and context.

    ``label || u16 len(key_id) || key_id || u8 len(version) || version || context``, all
    length-prefixed (the context encoding leads with its pair count), so two different tuples
    never give the same bytes.
    """
    kid = key_id.encode("utf-8")
    ver = version.encode("ascii")
    if len(kid) > 0xFFFF or len(ver) > _MAX_VERSION_BYTES:
        raise ValueError("key id or version too long to bind")
    return label + _U16.pack(len(kid)) + kid + bytes((len(ver),)) + ver + context_bytes(context)


def check_plaintext(plaintext: bytes) -> None:
    """Refuse an empty share or one larger than every provider accepts."""
    if not 1 <= len(plaintext) <= MAX_PLAINTEXT_BYTES:
        raise LimitExceeded(f"a wrapped share must be 1-{MAX_PLAINTEXT_BYTES} bytes")


def frame(version: str, body: bytes) -> bytes:
    """``0x01 | u8 len(version) | version | body``."""
    ver = version.encode("ascii")
    if not 1 <= len(ver) <= _MAX_VERSION_BYTES:
        raise ValueError("a key version name must be 1-255 ASCII characters")
    return bytes((BLOB_FORMAT, len(ver))) + ver + body


def unframe(blob: bytes) -> tuple[str, bytes]:
    """Split a blob made by :func:`frame`; any malformation is InvalidCiphertext."""
    if len(blob) < 3 or blob[0] != BLOB_FORMAT or blob[1] == 0 or len(blob) < 2 + blob[1]:
        raise InvalidCiphertext()
    try:
        version = blob[2 : 2 + blob[1]].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidCiphertext() from None
    return version, blob[2 + blob[1] :]


def deny_unless_usable(state: KeyState, what: str) -> None:
    """Raise AccessDenied (reason = the state) unless ``state`` lets the key wrap and unwrap."""
    if not state.usable:
        raise AccessDenied(f"{what} is {state.value}", reason=state.value)


@dataclass(frozen=True, slots=True)
class StateMark:
    """A lifecycle state the key manager itself cannot express, kept beside the key in it.

    PKCS#11 tokens and KMIP servers have no "pending destruction" (and forget a destroyed key
    completely), so those providers store this small JSON record as a data object next to the
    key, in the customer's own key manager: the state survives any ownkey database.
    """

    state: KeyState
    destroy_at: float | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"state": self.state.value, "destroy_at": self.destroy_at}, sort_keys=True
        ).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes) -> StateMark:
        try:
            raw = json.loads(data)
            state = KeyState(raw["state"])
            destroy_at = raw.get("destroy_at")
            if destroy_at is not None:
                destroy_at = float(destroy_at)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ValueError("unreadable ownkey state mark") from exc
        return cls(state, destroy_at)


class AdapterOptions(TypedDict, total=False):
    """The keyword arguments every key-manager adapter's constructor takes alike."""

    name: str
    timeout: float
    owns_destruction: bool
    random: Callable[[int], bytes]
    clock: Callable[[], float]


class Adapter:
    """The part every key-manager adapter shares, set once from its options: its ``name``, the
    bound on each call (``_timeout``, seconds), whether ownkey may destroy keys in the key
    manager (``owns_destruction``), and the injected ``_random`` and ``_clock``."""

    owns_destruction: bool

    def __init__(self, kind: str, options: AdapterOptions, *, timeout: float) -> None:
        """``name`` defaults to ``kind``; ConfigError for a timeout that is not positive."""
        self._timeout = options.get("timeout", timeout)
        if not self._timeout > 0:
            raise ConfigError(f"the {kind} timeout must be positive")
        self._name = options.get("name", kind)
        self.owns_destruction = options.get("owns_destruction", False)
        self._random = options.get("random", os.urandom)
        self._clock = options.get("clock", time.time)

    @property
    def name(self) -> str:
        return self._name
