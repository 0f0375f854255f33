"""Single-flight: concurrent callers asking for the same thing share one computation (CA-2).

When a hundred threads open messages of a channel whose scope key just left the cache, one of them
calls the key manager and the others wait for its answer, success or error. This is what keeps
the number of key-manager calls at one per scope key per cache period under load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, cast

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Runs at most one ``fn`` per key at a time; callers that arrive meanwhile share its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        """Return ``fn()``, or the result (or error) of the call already in flight for ``key``."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return cast(T, flight.value)  # set whenever error is None
        try:
            flight.value = fn()
            return flight.value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def in_flight(self) -> int:
        """How many computations are running now (for reports and tests)."""
        with self._lock:
            return len(self._flights)
