"""The audit port: an :class:`AuditSink` records events; :class:`Auditor` makes that fail closed.

Every key-manager call, every admin change and every denial must be recorded
(``docs/spec/audit-chain.md``), and a key operation must fail when its record cannot be
written. Sinks therefore raise on failure (any exception), and :class:`Auditor` turns that into
:class:`~ownkey.errors.AuditUnavailable`, which the key layer lets through instead of the result.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from ownkey.audit._events import AuditAction, AuditEvent, Outcome
from ownkey.errors import AuditUnavailable

__all__ = ["AuditSink", "Auditor", "MemoryAuditSink"]


class AuditSink(Protocol):
    """Where audit events go. ``record`` returns only once the event is stored, or raises."""

    def record(self, event: AuditEvent, /) -> None: ...


class MemoryAuditSink:
    """Keeps events in a list: the default for one process and for tests."""

    def __init__(self) -> None:
        self._events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def record(self, event: AuditEvent, /) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[AuditEvent]:
        """A copy of every event recorded so far, oldest first."""
        with self._lock:
            return list(self._events)

    def of(self, action: AuditAction) -> list[AuditEvent]:
        """The events of one action, oldest first."""
        return [event for event in self.events if event.action is action]

    def clear(self) -> None:
        """Forget every event (tests use it between phases)."""
        with self._lock:
            self._events.clear()


class Auditor:
    """Builds events with the injected clock and records them, failing closed.

    If the sink raises, :meth:`emit` raises :class:`AuditUnavailable` chained to the sink's
    error; the caller must then not complete (or must discard the result of) the operation.
    """

    def __init__(self, sink: AuditSink, clock: Callable[[], float]) -> None:
        self._sink = sink
        self._clock = clock
        self._failures = itertools.count()
        #: How many events the sink refused (``/metrics``: audit append failures).
        self.failures = 0

    def emit(
        self,
        action: AuditAction,
        outcome: Outcome = Outcome.OK,
        *,
        org: str | None = None,
        key: str | None = None,
        actor: str | None = None,
        detail: Mapping[str, str] | None = None,
    ) -> AuditEvent:
        """Record one event now; return it."""
        event = AuditEvent(
            at=self._clock(),
            action=action,
            outcome=outcome,
            org=org,
            key=key,
            actor=actor,
            detail=detail or {},
        )
        try:
            self._sink.record(event)
        except Exception as exc:
            self.failures = next(self._failures) + 1
            raise AuditUnavailable(
                f"the audit sink could not record {action.value}; the operation was refused"
            ) from exc
        return event
