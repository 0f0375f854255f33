"""Stream suite (0x02): segmented envelopes for large assets, opened whole or by byte range.

Layout (ENV-5)::

    header   0x01 | 0x02 | u8 kid_len | kid | u32 segment_size | salt (32) | commitment (32)
    segment  ciphertext of segment_size plaintext bytes (fewer in the last) | tag (16)

The asset's data key and its commitment are one HKDF-SHA256 expansion of the scope key, salted
with the random per-asset salt, with the header and the canonical context in ``info``: checking
the commitment checks the key, the header and the context before any segment is touched. Segment
``i`` is sealed with the nonce ``0x000000 || u64 i || last`` (the STREAM construction), so
segments cannot be reordered, dropped, duplicated or moved to another asset, and a stream cut at
a segment boundary fails because its new last segment was not sealed as the last one.

Memory stays bounded: sealing and opening hold two segment buffers and one output buffer.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Mapping
from typing import Protocol

from ownkey.envelope._context import context_bytes
from ownkey.envelope._format import (
    COMMITMENT_BYTES,
    SALT_BYTES,
    SUITE_STREAM,
    key_id_prefix,
)
from ownkey.envelope._keys import SECRET_KEY_ACCESS, ScopeKey
from ownkey.envelope._message import RandomSource
from ownkey.envelope._primitives import (
    AES_KEY_BYTES,
    GCM_TAG_BYTES,
    Aes256Gcm,
    constant_time_equal,
    hkdf_sha256,
)
from ownkey.errors import InvalidCiphertext, LimitExceeded

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "Readable",
    "SeekableReadable",
    "StreamLayout",
    "Writable",
    "open_range",
    "open_range_into",
    "open_stream",
    "seal_stream",
    "sealed_size",
    "stream_layout",
]

DEFAULT_SEGMENT_SIZE = 256 * 1024
MIN_SEGMENT_SIZE = 1
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
MAX_SEGMENTS = 2**32
_STREAM_INFO = b"ownkey/v1/stream"
_U32 = struct.Struct(">I")
_NONCE = struct.Struct(">3xQ?")


class Readable(Protocol):
    """Anything with ``readinto``: files, BytesIO, sockets' makefile, request bodies."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class SeekableReadable(Readable, Protocol):
    """A readable that can seek, needed for ranged reads."""

    def seek(self, offset: int, whence: int = ..., /) -> int: ...


class Writable(Protocol):
    """Anything with ``write``."""

    def write(self, data: memoryview, /) -> int | None: ...


def _nonce(index: int, last: bool) -> bytes:
    return _NONCE.pack(index, last)


def _read_full(source: Readable, buffer: memoryview) -> int:
    """Fill ``buffer`` unless the source ends first; return the byte count."""
    filled = 0
    while filled < len(buffer):
        count = source.readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled


def _write_all(sink: Writable, data: memoryview) -> None:
    while data:
        written = sink.write(data)
        if written is None:  # a non-blocking raw sink that could not take anything now
            raise OSError("sink refused the write")
        data = data[written:]


def _derive(
    key: ScopeKey, header_prefix: bytes, salt: bytes, context: bytes
) -> tuple[Aes256Gcm, bytes]:
    okm = hkdf_sha256(
        key.material(SECRET_KEY_ACCESS),
        salt=salt,
        info=_STREAM_INFO + header_prefix + context,
        length=AES_KEY_BYTES + COMMITMENT_BYTES,
    )
    return Aes256Gcm(okm[:AES_KEY_BYTES]), okm[AES_KEY_BYTES:]


def seal_stream(
    key: ScopeKey,
    context: Mapping[str, str],
    source: Readable,
    sink: Writable,
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    random: RandomSource = os.urandom,
) -> int:
    """Seal everything ``source`` yields into ``sink``; return the bytes written."""
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError("segment_size must be between 1 byte and 16 MiB")
    salt = random(SALT_BYTES)
    prefix = key_id_prefix(SUITE_STREAM, key.key_id) + _U32.pack(segment_size) + salt
    aead, commitment = _derive(key, prefix, salt, context_bytes(context))
    header = prefix + commitment
    _write_all(sink, memoryview(header))
    written = len(header)

    current = memoryview(bytearray(segment_size))
    ahead = memoryview(bytearray(segment_size))
    out = memoryview(bytearray(segment_size + GCM_TAG_BYTES))
    filled = _read_full(source, current)
    index = 0
    while True:
        if filled < segment_size:
            last, filled_ahead = True, 0
        else:
            filled_ahead = _read_full(source, ahead)
            last = filled_ahead == 0
        if index >= MAX_SEGMENTS:
            raise LimitExceeded("a stream is limited to 2^32 segments")
        size = aead.encrypt_into(
            _nonce(index, last), current[:filled], None, out[: filled + GCM_TAG_BYTES]
        )
        _write_all(sink, out[:size])
        written += size
        if last:
            return written
        current, ahead, filled = ahead, current, filled_ahead
        index += 1


class StreamLayout:
    """Where the segments of a sealed stream lie, computed from its header and total length."""

    __slots__ = (
        "aead",
        "header_len",
        "last_segment_ct",
        "plaintext_len",
        "segment_count",
        "segment_size",
    )

    def __init__(self, aead: Aes256Gcm, header_len: int, segment_size: int, total_len: int) -> None:
        self.aead = aead
        self.header_len = header_len
        self.segment_size = segment_size
        body = total_len - header_len
        stride = segment_size + GCM_TAG_BYTES
        if body < GCM_TAG_BYTES:
            raise InvalidCiphertext()
        self.segment_count = -(-body // stride)
        self.last_segment_ct = body - (self.segment_count - 1) * stride
        if (
            self.segment_count > MAX_SEGMENTS
            or self.last_segment_ct < GCM_TAG_BYTES
            or (self.segment_count > 1 and self.last_segment_ct == GCM_TAG_BYTES)
        ):
            raise InvalidCiphertext()
        self.plaintext_len = (self.segment_count - 1) * segment_size + (
            self.last_segment_ct - GCM_TAG_BYTES
        )

    def segment_span(self, index: int) -> tuple[int, int]:
        """(offset in the sealed stream, ciphertext length) of segment ``index``."""
        stride = self.segment_size + GCM_TAG_BYTES
        length = self.last_segment_ct if index == self.segment_count - 1 else stride
        return self.header_len + index * stride, length


def _read_header(
    key: ScopeKey, context: Mapping[str, str], source: Readable
) -> tuple[Aes256Gcm, int, int]:
    """Read and check a stream header; return (data-key cipher, segment size, header length)."""
    expected_prefix = key_id_prefix(SUITE_STREAM, key.key_id)
    fixed = len(expected_prefix) + 4 + SALT_BYTES + COMMITMENT_BYTES
    header = memoryview(bytearray(fixed))
    if _read_full(source, header) != fixed or header[: len(expected_prefix)] != expected_prefix:
        raise InvalidCiphertext()
    header_bytes = bytes(header)
    offset = len(expected_prefix)
    (segment_size,) = _U32.unpack_from(header_bytes, offset)
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise InvalidCiphertext()
    salt = header_bytes[offset + 4 : offset + 4 + SALT_BYTES]
    prefix = header_bytes[: offset + 4 + SALT_BYTES]
    aead, commitment = _derive(key, prefix, salt, context_bytes(context))
    if not constant_time_equal(header_bytes[len(prefix) :], commitment):
        raise InvalidCiphertext()
    return aead, segment_size, fixed


def open_stream(key: ScopeKey, context: Mapping[str, str], source: Readable, sink: Writable) -> int:
    """Open a whole sealed stream from ``source`` into ``sink``; return the plaintext bytes.

    Each segment is written only after its tag checked, but a stream that turns out to be cut
    short raises after earlier segments were written: on any error, discard what ``sink`` holds
    (ENV-5.9).
    """
    aead, segment_size, _ = _read_header(key, context, source)
    stride = segment_size + GCM_TAG_BYTES
    current = memoryview(bytearray(stride))
    ahead = memoryview(bytearray(stride))
    out = memoryview(bytearray(segment_size))
    filled = _read_full(source, current)
    index = 0
    total = 0
    while True:
        if filled < stride:
            last, filled_ahead = True, 0
        else:
            filled_ahead = _read_full(source, ahead)
            last = filled_ahead == 0
        if (
            filled < GCM_TAG_BYTES
            or index >= MAX_SEGMENTS
            or (last and index > 0 and filled == GCM_TAG_BYTES)
        ):
            raise InvalidCiphertext()
        size = aead.decrypt_into(
            _nonce(index, last), current[:filled], None, out[: filled - GCM_TAG_BYTES]
        )
        _write_all(sink, out[:size])
        total += size
        if last:
            return total
        current, ahead, filled = ahead, current, filled_ahead
        index += 1


def stream_layout(
    key: ScopeKey, context: Mapping[str, str], source: SeekableReadable
) -> StreamLayout:
    """Check a sealed stream's header and final segment; return its layout.

    Opening the final segment authenticates the plaintext length, so a stream cut at a segment
    boundary is refused even when the caller only wants its first bytes (ENV-5.8).
    """
    total_len = source.seek(0, io.SEEK_END)
    source.seek(0)
    aead, segment_size, header_len = _read_header(key, context, source)
    layout = StreamLayout(aead, header_len, segment_size, total_len)
    _open_segment(layout, source, layout.segment_count - 1)
    return layout


def _open_segment(layout: StreamLayout, source: SeekableReadable, index: int) -> bytes:
    offset, length = layout.segment_span(index)
    source.seek(offset)
    buffer = memoryview(bytearray(length))
    if _read_full(source, buffer) != length:
        raise InvalidCiphertext()
    return layout.aead.decrypt(_nonce(index, index == layout.segment_count - 1), buffer, None)


class StreamOpener:
    """A sealed stream checked once, then read by ranges: the reader of a ranged download.

    Building it reads the header, derives the asset key, checks the commitment and opens the
    final segment, which authenticates the plaintext length (ENV-5.8); each :meth:`read_into`
    then decrypts only the segments that cover its range. A download of many chunks pays the
    layout once instead of once per chunk.
    """

    __slots__ = ("_layout", "_source")

    def __init__(self, key: ScopeKey, context: Mapping[str, str], source: SeekableReadable) -> None:
        self._source = source
        self._layout = stream_layout(key, context, source)

    def __repr__(self) -> str:
        return f"<StreamOpener plaintext_len={self.plaintext_len} key=<redacted>>"

    @property
    def plaintext_len(self) -> int:
        """The authenticated plaintext length."""
        return self._layout.plaintext_len

    def read_into(self, sink: Writable, start: int, end: int | None = None) -> int:
        """Write plaintext bytes ``[start, end)`` to ``sink``; return the count.

        ``end`` defaults to the end of the plaintext and is clipped to it, like an HTTP Range;
        a start at or past the end yields nothing.
        """
        if start < 0 or (end is not None and end < start):
            raise ValueError("a range needs 0 <= start <= end")
        layout, source = self._layout, self._source
        stop = layout.plaintext_len if end is None else min(end, layout.plaintext_len)
        if start >= stop:
            return 0
        size = layout.segment_size
        written = 0
        for index in range(start // size, (stop - 1) // size + 1):
            plaintext = _open_segment(layout, source, index)
            base = index * size
            piece = memoryview(plaintext)[max(start - base, 0) : min(stop - base, len(plaintext))]
            _write_all(sink, piece)
            written += len(piece)
        return written

    def read(self, start: int, end: int | None = None) -> bytes:
        """Plaintext bytes ``[start, end)`` as bytes (see :meth:`read_into`)."""
        sink = io.BytesIO()
        self.read_into(sink, start, end)
        return sink.getvalue()


def blob_suite(source: SeekableReadable) -> int:
    """The suite of a sealed blob (:data:`SUITE_MESSAGE` or :data:`SUITE_STREAM`), read from its
    header and the position put back at 0; -1 if the blob is too short to say."""
    source.seek(0)
    head = memoryview(bytearray(2))
    filled = _read_full(source, head)
    source.seek(0)
    return head[1] if filled == 2 else -1


def open_range_into(
    key: ScopeKey,
    context: Mapping[str, str],
    source: SeekableReadable,
    sink: Writable,
    start: int,
    end: int | None = None,
) -> int:
    """Write plaintext bytes ``[start, end)`` of a sealed stream to ``sink``; return the count.

    Only the segments covering the range (and the final one) are decrypted. ``end`` defaults to
    the end of the plaintext and is clipped to it, like an HTTP Range; a start at or past the end
    yields nothing.
    """
    if start < 0 or (end is not None and end < start):
        raise ValueError("a range needs 0 <= start <= end")
    return StreamOpener(key, context, source).read_into(sink, start, end)


def open_range(
    key: ScopeKey,
    context: Mapping[str, str],
    source: SeekableReadable,
    start: int,
    end: int | None = None,
) -> bytes:
    """Plaintext bytes ``[start, end)`` of a sealed stream, as bytes (see open_range_into)."""
    sink = io.BytesIO()
    open_range_into(key, context, source, sink, start, end)
    return sink.getvalue()


def sealed_size(
    plaintext_len: int, *, key_id_len: int, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> int:
    """The exact length of a sealed stream, e.g. for a Content-Length header."""
    segments = max(1, -(-plaintext_len // segment_size))
    header = 3 + key_id_len + 4 + SALT_BYTES + COMMITMENT_BYTES
    return header + plaintext_len + segments * GCM_TAG_BYTES
