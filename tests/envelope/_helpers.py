"""Small helpers shared by the envelope tests."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping

from ownkey.envelope import ScopeKey, open_stream, seal_stream


class DeterministicRandom:
    """A seeded byte source (SHA-256 in counter mode) for reproducible envelopes."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self.drawn = bytearray()

    def __call__(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        self.drawn += out[:size]
        return bytes(out[:size])


def seal_bytes(
    key: ScopeKey, context: Mapping[str, str], plaintext: bytes, segment_size: int, **kw: object
) -> bytes:
    sink = io.BytesIO()
    seal_stream(key, context, io.BytesIO(plaintext), sink, segment_size=segment_size, **kw)  # type: ignore[arg-type]
    return sink.getvalue()


def open_bytes(key: ScopeKey, context: Mapping[str, str], sealed: bytes) -> bytes:
    sink = io.BytesIO()
    open_stream(key, context, io.BytesIO(sealed), sink)
    return sink.getvalue()
