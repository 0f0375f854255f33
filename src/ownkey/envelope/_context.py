"""The encryption context and its canonical encoding (spec: docs/spec/envelope-v1.md, section 3).

An encryption context is a small map of names to values (org, service ID, scope, epoch, asset id,
component, ...). It is bound to every ciphertext, so the encoding must be unambiguous: two
different maps never encode to the same bytes. Names are restricted to a small ASCII alphabet and
sorted, every name and value is length-prefixed, and the pair count leads.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Iterator, Mapping

__all__ = [
    "MAX_CONTEXT_PAIRS",
    "MAX_NAME_BYTES",
    "MAX_VALUE_BYTES",
    "ContextTemplate",
    "EncryptionContext",
    "encode_context",
    "encode_fields",
]

MAX_CONTEXT_PAIRS = 32
MAX_NAME_BYTES = 64
MAX_VALUE_BYTES = 1024
_NAME = re.compile(r"[a-z0-9_.-]{1,64}\Z")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


def encode_fields(*fields: bytes | str) -> bytes:
    """The canonical encoding of a tuple (ENV2-3.6): ``u32 count`` then ``u32 len || bytes`` per
    field, text as UTF-8. Every place above the envelope where a tuple becomes bytes (identity
    digests, stored lists, bindings) uses this, so two different tuples never meet: no separator
    character can be imitated by a value, and nesting is an encoded field inside a field."""
    parts = [_U32.pack(len(fields))]
    for field in fields:
        raw = field.encode("utf-8") if isinstance(field, str) else bytes(field)
        parts.append(_U32.pack(len(raw)) + raw)
    return b"".join(parts)


@functools.lru_cache(maxsize=4096)
def _name_prefix(name: str) -> bytes:
    """``u8 len(name) || name`` for a valid name; validated once per distinct name (hot path)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"encryption context name {name!r} must be 1-64 characters of [a-z0-9_.-]")
    return bytes((len(name),)) + name.encode("ascii")


def _pair(name: str, value: object) -> bytes:
    """``u8 len(name) || name || u16 len(value) || value`` for one valid pair."""
    prefix = _name_prefix(name) if isinstance(name, str) else _name_prefix.__wrapped__(name)
    if not isinstance(value, str):
        raise ValueError(f"encryption context value for {name!r} must be a string")
    raw = value.encode("utf-8")
    if len(raw) > MAX_VALUE_BYTES:
        raise ValueError(f"encryption context value for {name!r} exceeds 1024 bytes")
    return prefix + _U16.pack(len(raw)) + raw


def encode_context(pairs: Mapping[str, str]) -> bytes:
    """Encode a context canonically; raise ValueError naming the offending entry.

    Layout (ENV-3.x): ``u8 count`` then, for each pair in ascending byte order of its name,
    ``u8 len(name) || name || u16 len(value) || value`` with UTF-8 text.
    """
    if len(pairs) > MAX_CONTEXT_PAIRS:
        raise ValueError(f"encryption context has {len(pairs)} entries; the limit is 32")
    parts = [bytes((len(pairs),))]
    parts.extend(_pair(name, pairs[name]) for name in sorted(pairs))
    return b"".join(parts)


class ContextTemplate:
    """A context whose pairs are all fixed but one, for the hot loop of one container.

    The platform seals many assets of one scope: only ``asset_id`` changes from one message to
    the next. The fixed pairs are validated and encoded once; :meth:`encode` splices the one
    varying value into its sorted place, so ``template.encode(v)`` is byte for byte
    ``encode_context({**fixed, name: v})`` at the cost of one concatenation.
    """

    __slots__ = ("_head", "_name", "_tail")

    def __init__(self, fixed: Mapping[str, str], varying: str) -> None:
        if varying in fixed:
            raise ValueError(f"encryption context name {varying!r} is both fixed and varying")
        names = sorted([*fixed, varying])
        encode_context({**fixed, varying: ""})  # validates names, values and the pair count
        self._name = varying
        self._head = (
            bytes((len(names),))
            + b"".join(_pair(name, fixed[name]) for name in names if name < varying)
            + _name_prefix(varying)
        )
        self._tail = b"".join(_pair(name, fixed[name]) for name in names if name > varying)

    def encode(self, value: str) -> bytes:
        """The canonical encoding with ``value`` as the varying pair's value."""
        if not isinstance(value, str):
            raise ValueError(f"encryption context value for {self._name!r} must be a string")
        raw = value.encode("utf-8")
        if len(raw) > MAX_VALUE_BYTES:
            raise ValueError(f"encryption context value for {self._name!r} exceeds 1024 bytes")
        return self._head + _U16.pack(len(raw)) + raw + self._tail


class EncryptionContext(Mapping[str, str]):
    """An immutable encryption context that encodes itself once.

    Hot paths build the context once per asset and reuse ``encoded``; a plain ``dict`` is accepted
    everywhere too and encoded on each call.
    """

    __slots__ = ("_encoded", "_pairs")

    def __init__(self, pairs: Mapping[str, str] | None = None, /, **kwargs: str) -> None:
        merged = dict(pairs or {})
        merged.update(kwargs)
        self._encoded = encode_context(merged)
        self._pairs = dict(sorted(merged.items()))

    @property
    def encoded(self) -> bytes:
        """The canonical bytes bound to the ciphertext."""
        return self._encoded

    def __getitem__(self, name: str) -> str:
        return self._pairs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"EncryptionContext({self._pairs!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncryptionContext):
            return self._encoded == other._encoded
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(self._encoded)


def context_bytes(context: Mapping[str, str]) -> bytes:
    """The encoding of ``context``, reusing the cached bytes of an EncryptionContext."""
    if isinstance(context, EncryptionContext):
        return context.encoded
    return encode_context(context)
