"""Each org's key-manager calls in a compartment of their own, and what those calls cost.

Why: a customer's slow key manager (6 s an answer) held another org's request for 6.2 s (issue
28, item 6). The node serves requests from one pool of worker threads; a call to a key manager
holds its thread until the manager answers, so enough requests of one org waiting on its slow
manager take every thread, and the next org's request waits for a thread it would need for
microseconds. :class:`KeyManagerCalls` bounds, per org (the platform key's calls are a
compartment of their own):

- ``concurrent`` calls in flight at once;
- ``waiting`` more callers queued for a slot, each for at most ``wait`` seconds.

A caller beyond the queue, or one whose wait ran out, gets
:class:`~ownkey.errors.KeyUnavailable` at once (503 with ``Retry-After``, the answer of an
unreachable key manager): one org can thus hold at most ``concurrent + waiting`` threads of a
node, and another org's calls never queue behind it. No key manager was called, so nothing is
audited; the refusal is counted (``rejected``).

The same object counts every call by provider kind and action, with its outcome and latency (a
histogram), for ``/metrics``: no org names, since an org's name is not a metric label.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from ownkey.errors import ConfigError, KeyUnavailable

__all__ = ["LATENCY_BUCKETS", "CallLimits", "CallStats", "KeyCallReport", "KeyManagerCalls"]

#: Upper bounds (seconds) of the latency histogram's buckets; the last is +Inf.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The compartment of the platform key's calls (org names cannot be empty).
_PLATFORM = ""


@dataclass(frozen=True, slots=True)
class CallLimits:
    """How much of a node one org's key-manager calls may hold (see the module docstring)."""

    concurrent: int = 8
    waiting: int = 8
    wait: float = 2.0

    def __post_init__(self) -> None:
        if self.concurrent < 1 or self.waiting < 0 or not 0 <= self.wait <= 60:
            raise ConfigError(
                "key-manager call limits need concurrent >= 1, waiting >= 0, 0 <= wait <= 60"
            )


@dataclass(slots=True)
class CallStats:
    """One (provider kind, action)'s calls: counts by outcome and a latency histogram."""

    outcomes: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0
    total: float = 0.0

    def add(self, outcome: str, seconds: float) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.count += 1
        self.total += seconds
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1
                break

    def copy(self) -> CallStats:
        return CallStats(dict(self.outcomes), list(self.buckets), self.count, self.total)


@dataclass(frozen=True, slots=True)
class KeyCallReport:
    """A snapshot for ``/metrics``: per (kind, action) stats; slots now in use and waited for
    (all orgs together); calls refused by the bulkhead, by why (``queue_full``, ``wait``)."""

    calls: dict[tuple[str, str], CallStats]
    in_flight: int
    waiting: int
    rejected: dict[str, int]
    limits: CallLimits


class _Compartment:
    __slots__ = ("in_flight", "slots", "waiting")

    def __init__(self, limits: CallLimits) -> None:
        self.slots = threading.BoundedSemaphore(limits.concurrent)
        self.waiting = 0
        self.in_flight = 0


class KeyManagerCalls:
    """The per-org bulkhead and the call counters of one node (thread-safe)."""

    def __init__(
        self,
        limits: CallLimits | None = None,
        *,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.limits = limits if limits is not None else CallLimits()
        self._timer = timer
        self._lock = threading.Lock()
        self._compartments: dict[str, _Compartment] = {}
        self._stats: dict[tuple[str, str], CallStats] = {}
        self._rejected: dict[str, int] = {}

    def _compartment(self, org: str | None) -> _Compartment:
        name = _PLATFORM if org is None else org
        with self._lock:
            found = self._compartments.get(name)
            if found is None:
                found = self._compartments[name] = _Compartment(self.limits)
            return found

    def _reject(self, why: str, org: str | None) -> KeyUnavailable:
        with self._lock:
            self._rejected[why] = self._rejected.get(why, 0) + 1
        whose = "the platform key's" if org is None else "this org's"
        return KeyUnavailable(f"too many calls to {whose} key manager are in flight ({why})")

    @contextmanager
    def slot(self, org: str | None) -> Iterator[None]:
        """Hold one of ``org``'s slots for the calls made inside (retries included);
        KeyUnavailable when its queue is full or the wait runs out."""
        compartment = self._compartment(org)
        acquired = compartment.slots.acquire(blocking=False)
        if not acquired:
            with self._lock:
                full = compartment.waiting >= self.limits.waiting
                if not full:
                    compartment.waiting += 1
            if full:
                raise self._reject("queue_full", org)
            try:
                acquired = compartment.slots.acquire(timeout=self.limits.wait)
            finally:
                with self._lock:
                    compartment.waiting -= 1
            if not acquired:
                raise self._reject("wait", org)
        with self._lock:
            compartment.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                compartment.in_flight -= 1
            compartment.slots.release()

    @contextmanager
    def timed(self, kind: str, action: str) -> Iterator[Callable[[str], None]]:
        """Time one call to a key manager of ``kind``; the caller names its outcome with the
        function it is given (``ok`` unless it does; an exception counts as ``error``)."""
        outcome = ["ok"]
        started = self._timer()
        try:
            yield lambda name: outcome.__setitem__(0, name)
        except BaseException:
            if outcome[0] == "ok":
                outcome[0] = "error"
            raise
        finally:
            seconds = max(0.0, self._timer() - started)
            with self._lock:
                stats = self._stats.get((kind, action))
                if stats is None:
                    stats = self._stats[(kind, action)] = CallStats()
                stats.add(outcome[0], seconds)

    def in_flight(self, org: str | None) -> int:
        """How many of ``org``'s calls hold a slot now (tests, reports)."""
        compartment = self._compartment(org)
        with self._lock:
            return compartment.in_flight

    def report(self) -> KeyCallReport:
        with self._lock:
            return KeyCallReport(
                calls={name: stats.copy() for name, stats in self._stats.items()},
                in_flight=sum(c.in_flight for c in self._compartments.values()),
                waiting=sum(c.waiting for c in self._compartments.values()),
                rejected=dict(self._rejected),
                limits=self.limits,
            )
