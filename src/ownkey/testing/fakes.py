"""Fakes for tests of ownkey and of the platform that uses it: a virtual clock, seeded randomness,
a key provider that fails on demand and counts its calls, an audit sink that can be broken.

They are small and deterministic on purpose: a test that proves a bounded back-off or a cache
expiry should run in microseconds of real time, and one that fails should fail the same way again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Mapping

from ownkey.audit import AuditEvent, MemoryAuditSink
from ownkey.errors import AccessDenied, KeyUnavailable
from ownkey.keys import DestructionReceipt, KeyDescription, KeyProvider

__all__ = ["FailingAuditSink", "FakeClock", "FaultyProvider", "SeededRandom"]


class FakeClock:
    """A clock that moves only when told; ``sleep`` advances it, so back-off costs no real time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the pause and move time forward by it."""
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


class SeededRandom:
    """Deterministic bytes from a seed (SHAKE-256 over seed and a counter); never for production."""

    def __init__(self, seed: int | bytes = 0) -> None:
        self._seed = seed if isinstance(seed, bytes) else seed.to_bytes(8, "big", signed=True)
        self._counter = 0
        self._lock = threading.Lock()

    def __call__(self, size: int) -> bytes:
        with self._lock:
            self._counter += 1
            counter = self._counter
        return hashlib.shake_256(self._seed + counter.to_bytes(8, "big")).digest(size)


class FaultyProvider:
    """Wraps a provider: counts every call by method and injects failures and pauses.

    - ``down = True``: every wrap, unwrap and describe raises KeyUnavailable (an outage);
    - ``fail_next(method, error, times)``: the next calls of one method raise ``error``;
    - ``deny = True``: wrap and unwrap raise AccessDenied (a revocation in the customer's KMS);
    - ``gate``: an Event that unwrap waits on, to hold concurrent callers inside one call.
    """

    def __init__(self, inner: KeyProvider) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.down = False
        self.deny = False
        self.gate: threading.Event | None = None
        self._failures: dict[str, list[Exception]] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    def fail_next(self, method: str, error: Exception, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``error``."""
        with self._lock:
            self._failures.setdefault(method, []).extend([error] * times)

    def _enter(self, method: str, *, data_plane: bool = False) -> None:
        with self._lock:
            self.calls[method] += 1
            queued = self._failures.get(method)
            error = queued.pop(0) if queued else None
        if error is not None:
            raise error
        if data_plane and self.down:
            raise KeyUnavailable(f"{self.name} is down (injected)")
        if data_plane and self.deny and method != "describe":
            raise AccessDenied(f"{self.name} denied (injected)", reason="provider_denied")

    def create_key(self, *, label: str) -> str:
        self._enter("create_key")
        return self.inner.create_key(label=label)

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        self._enter("wrap", data_plane=True)
        return self.inner.wrap(key_id, plaintext, context)

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        self._enter("unwrap", data_plane=True)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        return self.inner.unwrap(key_id, wrapped, context)

    def describe(self, key_id: str) -> KeyDescription:
        self._enter("describe", data_plane=True)
        return self.inner.describe(key_id)

    def rotate(self, key_id: str) -> str:
        self._enter("rotate")
        return self.inner.rotate(key_id)

    def disable(self, key_id: str) -> None:
        self._enter("disable")
        self.inner.disable(key_id)

    def enable(self, key_id: str) -> None:
        self._enter("enable")
        self.inner.enable(key_id)

    def schedule_destruction(self, key_id: str, *, destroy_at: float) -> None:
        self._enter("schedule_destruction")
        self.inner.schedule_destruction(key_id, destroy_at=destroy_at)

    def cancel_destruction(self, key_id: str) -> None:
        self._enter("cancel_destruction")
        self.inner.cancel_destruction(key_id)

    def destroy(self, key_id: str) -> DestructionReceipt:
        self._enter("destroy")
        return self.inner.destroy(key_id)


class FailingAuditSink(MemoryAuditSink):
    """A memory sink that raises while ``failing`` is set (a full disk, a dead database)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    def record(self, event: AuditEvent, /) -> None:
        if self.failing:
            raise OSError("audit storage is unavailable (injected)")
        super().record(event)
