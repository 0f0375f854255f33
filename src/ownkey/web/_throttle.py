"""How often a key (a client address, an org) may try something: a token bucket per key.

Why: signing in to the console creates a session and shows a token to the token store. Without
a limit, one org admin could sign in thousands of times a minute (issue 23), and anyone could
guess tokens as fast as the node answers. Each key gets ``burst`` attempts at once, refilled at
``burst`` per ``period`` seconds; an attempt beyond that is told how long to wait.

The clock is injected (the tests move it by hand; nothing here sleeps or reads the wall clock
on its own), and the table is bounded: past ``max_keys`` keys the one unused the longest is
forgotten, so memory stays bounded whatever the number of addresses a caller has.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Throttle"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Throttle:
    """At most ``burst`` attempts per key at once, ``burst`` more every ``period`` seconds."""

    def __init__(
        self,
        *,
        burst: int,
        period: float,
        clock: Callable[[], float],
        max_keys: int = 10_000,
    ) -> None:
        if burst < 1 or not period > 0 or max_keys < 1:
            raise ValueError("a throttle needs burst >= 1, period > 0 and max_keys >= 1")
        self._burst = float(burst)
        self._rate = burst / period
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one attempt for ``key``: 0.0 when allowed, else the seconds to wait (> 0)."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(self._burst, now)
                while len(self._buckets) >= self._max_keys:
                    self._buckets.popitem(last=False)
            elapsed = max(0.0, now - bucket.at)  # a clock that steps back refills nothing
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.at = now
            self._buckets[key] = bucket  # the most recently used last
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self._rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """A ``Retry-After`` value for ``wait`` seconds (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))
