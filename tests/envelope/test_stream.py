"""ENV-5: the stream suite, whole and ranged."""

from __future__ import annotations

import io
import os
import tracemalloc

import pytest

from ownkey.envelope import (
    EncryptionContext,
    ScopeKey,
    open_range,
    open_stream,
    peek_key_id,
    seal_stream,
    sealed_size,
    stream_layout,
)
from ownkey.errors import InvalidCiphertext

from ._helpers import open_bytes, seal_bytes

KEY = ScopeKey(b"sk-rec", bytes(range(32)))
CTX = EncryptionContext(
    org="acme", service_id="0001", scope="mtg-9", epoch="20261129", asset_id="r1"
)
HEADER = 3 + len(KEY.key_id) + 4 + 32 + 32


@pytest.mark.parametrize(
    ("size", "segment"), [(0, 16), (1, 16), (16, 16), (17, 16), (48, 16), (1000, 7)]
)
def test_segment_count_and_size(size: int, segment: int) -> None:
    """ENV-5.4: n = max(1, ceil(len/segment)), last segment empty only for an empty stream."""
    sealed = seal_bytes(KEY, CTX, os.urandom(size), segment)
    segments = max(1, -(-size // segment))
    assert len(sealed) == HEADER + size + 16 * segments
    assert len(sealed) == sealed_size(size, key_id_len=len(KEY.key_id), segment_size=segment)
    assert peek_key_id(sealed) == KEY.key_id


def _segments(sealed: bytes, segment: int) -> list[bytes]:
    body = sealed[HEADER:]
    stride = segment + 16
    return [body[i : i + stride] for i in range(0, len(body), stride)]


def test_reordered_dropped_duplicated_segments_fail() -> None:
    """ENV-5.6, ENV-7.1: the STREAM nonces pin every segment's position and the last flag."""
    segment = 8
    sealed = seal_bytes(KEY, CTX, os.urandom(40), segment)
    header, parts = sealed[:HEADER], _segments(sealed, segment)
    assert len(parts) == 5
    variants = [
        parts[1:],  # first dropped
        parts[:-1],  # cut at a segment boundary
        [parts[1], parts[0], *parts[2:]],  # swapped
        [parts[0], *parts],  # duplicated
        [*parts, parts[-1]],  # last repeated
        [*parts, parts[0]],  # extra appended
    ]
    for variant in variants:
        with pytest.raises(InvalidCiphertext):
            open_bytes(KEY, CTX, header + b"".join(variant))


def test_segments_cannot_move_between_assets() -> None:
    """ENV-5.2: every asset has its own key, so a spliced segment fails."""
    segment = 8
    first = seal_bytes(KEY, CTX, bytes(40), segment)
    second = seal_bytes(KEY, CTX, bytes(40), segment)
    spliced = first[: HEADER + 24] + second[HEADER + 24 : HEADER + 48] + first[HEADER + 48 :]
    with pytest.raises(InvalidCiphertext):
        open_bytes(KEY, CTX, spliced)


def test_wrong_key_or_context_fails_before_any_output() -> None:
    """ENV-5.6: the commitment is checked before any segment is decrypted."""
    sealed = seal_bytes(KEY, CTX, b"x" * 100, 10)
    for key, ctx in ((ScopeKey(KEY.key_id, bytes(32)), CTX), (KEY, {**CTX, "asset_id": "r2"})):
        sink = io.BytesIO()
        with pytest.raises(InvalidCiphertext):
            open_stream(key, ctx, io.BytesIO(sealed), sink)
        assert sink.getvalue() == b""


def test_ranged_read_decrypts_only_covering_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENV-5.8: a range reads its segments plus the final one, nothing else."""
    segment = 100
    plaintext = os.urandom(100 * 50)
    sealed = seal_bytes(KEY, CTX, plaintext, segment)
    layout = stream_layout(KEY, CTX, io.BytesIO(sealed))
    opened: list[int] = []
    original = type(layout.aead).decrypt

    def spy(self: object, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        opened.append(int.from_bytes(nonce[3:11], "big"))
        return original(self, nonce, data, aad)  # type: ignore[arg-type]

    monkeypatch.setattr(type(layout.aead), "decrypt", spy)
    assert open_range(KEY, CTX, io.BytesIO(sealed), 1050, 1250) == plaintext[1050:1250]
    assert sorted(set(opened)) == [10, 11, 12, 49]


def test_ranged_read_notices_a_cut_stream() -> None:
    """ENV-5.8: a stream cut at a segment boundary fails even for a range before the cut."""
    sealed = seal_bytes(KEY, CTX, os.urandom(1000), 100)
    cut = sealed[: HEADER + 5 * 116]
    with pytest.raises(InvalidCiphertext):
        open_range(KEY, CTX, io.BytesIO(cut), 0, 10)


@pytest.mark.parametrize(
    ("start", "end"), [(0, None), (990, 2000), (1000, 1001), (5000, None), (7, 7)]
)
def test_range_bounds_are_clipped_like_http(start: int, end: int | None) -> None:
    """ENV-5.8."""
    plaintext = os.urandom(1000)
    sealed = seal_bytes(KEY, CTX, plaintext, 64)
    assert open_range(KEY, CTX, io.BytesIO(sealed), start, end) == plaintext[start:end]


def test_bad_ranges_are_refused() -> None:
    sealed = seal_bytes(KEY, CTX, b"abc", 64)
    for start, end in ((-1, 2), (2, 1)):
        with pytest.raises(ValueError, match="range"):
            open_range(KEY, CTX, io.BytesIO(sealed), start, end)


@pytest.mark.parametrize("segment", [0, 16 * 1024 * 1024 + 1])
def test_segment_size_bounds(segment: int) -> None:
    """ENV-5.1."""
    with pytest.raises(ValueError, match="segment_size"):
        seal_bytes(KEY, CTX, b"abc", segment)


class _Zeros:
    """A readable that yields ``size`` zero bytes without holding them."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, buffer: memoryview) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: memoryview) -> int:
        self.count += len(data)
        return len(data)


def test_memory_stays_bounded_for_a_large_stream() -> None:
    """ENV-5.10: 64 MiB through 64 KiB segments allocates a few segments, not the asset."""
    size, segment = 64 * 1024 * 1024, 64 * 1024
    tracemalloc.start()
    try:
        sink = _Counter()
        seal_stream(KEY, CTX, _Zeros(size), sink, segment_size=segment)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.count == sealed_size(size, key_id_len=len(KEY.key_id), segment_size=segment)
    assert peak < 8 * segment


def test_a_short_reading_source_is_handled() -> None:
    """Sources that return fewer bytes than asked (pipes, sockets) seal the same plaintext."""

    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            count = min(3, len(buffer), len(self.data))
            buffer[:count] = self.data[:count]
            self.data = self.data[count:]
            return count

    plaintext = os.urandom(1000)
    sink = io.BytesIO()
    seal_stream(KEY, CTX, Trickle(plaintext), sink, segment_size=64)
    assert open_bytes(KEY, CTX, sink.getvalue()) == plaintext
