"""A bounded cache of unwrapped DEKs: at most ``max_entries``, each for at most ``max_age``.

Caching trades revocation latency for speed: a DEK already in the cache opens its message again
without asking the key service, so a revocation reaches a cached message only when its entry
ages out. The bounds say how far: ``max_age`` seconds (default 60) and ``max_entries`` (default
1024, least recently used evicted). ``max_entries=0`` turns the cache off.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ownkey.envelope import MessageCipher

__all__ = ["DekCache"]


class DekCache:
    """Ciphers keyed by (conversation, wrapped key); ``repr`` never shows a key."""

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        max_age: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0 or max_age < 0:
            raise ValueError("cache bounds must be non-negative")
        self.max_entries = max_entries
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, bytes], tuple[float, MessageCipher]] = OrderedDict()

    def __repr__(self) -> str:
        return f"<DekCache entries={len(self._entries)} max={self.max_entries}>"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, conversation: str, wrapped: bytes) -> MessageCipher | None:
        key = (conversation, wrapped)
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if self._clock() - found[0] > self.max_age:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, conversation: str, wrapped: bytes, cipher: MessageCipher) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[(conversation, wrapped)] = (self._clock(), cipher)
            self._entries.move_to_end((conversation, wrapped))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
