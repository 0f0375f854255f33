"""Small stream adapters: read an envelope's header to find its scope key, then replay it; read a
sealed stream's plaintext as a stream again (for rekey) in bounded memory; serve checked ranges of
a stream verified once (for downloads)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ownkey.envelope import (
    Readable,
    ScopeKey,
    SeekableReadable,
    StreamOpener,
    open_range_into,
    peek_key_id,
)
from ownkey.errors import InvalidCiphertext

__all__ = ["CheckedRanges", "PlaintextReader", "peek_stream_key_id"]


def _read_exact(source: Readable, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        count = source.readinto(view[filled:])
        if not count:
            raise InvalidCiphertext()
        filled += count
    return bytes(buffer)


def peek_stream_key_id(source: Readable) -> tuple[bytes, Readable]:
    """The scope key id in a stream's header, and a readable that replays the header first."""
    fixed = _read_exact(source, 3)
    prefix = fixed + _read_exact(source, fixed[2]) if fixed[2] else fixed
    return peek_key_id(prefix), _Replay(prefix, source)


class _Replay:
    """Yields ``prefix`` then the rest of ``source``."""

    def __init__(self, prefix: bytes, source: Readable) -> None:
        self._prefix = memoryview(prefix)
        self._source = source

    def readinto(self, buffer: memoryview, /) -> int | None:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        return self._source.readinto(buffer)


class _Into:
    """A writable that fills a memoryview."""

    def __init__(self, target: memoryview) -> None:
        self.target = target
        self.filled = 0

    def write(self, data: memoryview, /) -> int:
        self.target[self.filled : self.filled + len(data)] = data
        self.filled += len(data)
        return len(data)


class PlaintextReader:
    """Reads the plaintext of a sealed stream range by range (each range authenticated).

    Rekey pipes this into ``seal_stream``: memory stays bounded by one segment per side.
    """

    def __init__(
        self,
        key: ScopeKey,
        context: Mapping[str, str],
        source: SeekableReadable,
        length: int,
    ) -> None:
        self._key = key
        self._context = context
        self._source = source
        self._length = length
        self._position = 0

    def readinto(self, buffer: memoryview, /) -> int:
        stop = min(self._length, self._position + len(buffer))
        if stop <= self._position:
            return 0
        sink = _Into(buffer)
        open_range_into(self._key, self._context, self._source, sink, self._position, stop)
        self._position += sink.filled
        return sink.filled


class CheckedRanges:
    """Ranges of one sealed stream, its layout verified once, keys and rules checked per read.

    ``check`` is the access path's per-use check (a lease, or the full path when the lease
    ended): a revocation made while a long download runs stops it at the next read.
    """

    __slots__ = ("_check", "_opener")

    def __init__(self, opener: StreamOpener, check: Callable[[], object]) -> None:
        self._opener = opener
        self._check = check

    @property
    def plaintext_len(self) -> int:
        """The authenticated plaintext length."""
        return self._opener.plaintext_len

    def read(self, start: int, end: int | None = None) -> bytes:
        """Plaintext bytes ``[start, end)`` (clipped), after the check."""
        self._check()
        return self._opener.read(start, end)
