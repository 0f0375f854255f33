"""Access records: who sealed and opened what under the key, at data-plane rates (issue 23).

A customer's security team asks of its key what Zoom's key usage report, Slack EKM's logs and its
own CloudTrail answer: which user, which object, which operation, when. The key-manager calls
cannot say it (one unwrap serves a scope key's whole cache period, thousands of messages), so the
data plane records every seal and open itself: cached or not, allowed or denied.

It must not cost a database write per chat message. So uses are counted in memory per
(org, service, scope, asset, actor, operation, outcome, minute) and written as one audit event per
count (action ``content.access``, ``detail.count``) into each org's chain, at most
``flush_after`` seconds after the first use of a batch (a timer) or as soon as ``max_pending``
distinct counts wait. The guarantee is stated in docs/spec/audit-chain.md (AU-ACCESS): access
records are written within ``flush_after`` seconds; a process that dies loses at most the counts
of that window; a flush the audit store refuses is kept and tried again. Key-manager calls keep
the stronger rule: their record exists before the key is released (FS-3).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ownkey.audit import AuditAction, Auditor, Outcome
from ownkey.errors import OwnkeyError

__all__ = ["AccessLog", "AccessRecord"]

_log = logging.getLogger("ownkey.access")
DEFAULT_FLUSH_AFTER = 1.0
DEFAULT_MAX_PENDING = 4096
#: Counts whose flush keeps failing are dropped beyond this many (and the loss is logged), so an
#: audit store that is down for long cannot grow a node's memory without bound.
_MAX_KEPT = 65_536


class AccessRecord(NamedTuple):
    """What one count is about (all text: it lands in the audit event as is)."""

    org: str
    service_id: str
    scope: str
    asset_id: str
    actor: str | None
    operation: str
    outcome: str
    minute: int


class AccessLog:
    """Counts data-plane uses and writes them to the orgs' audit chains in small batches.

    Thread-safe. :meth:`note` is on the hot path: a clock read and a dictionary update under a
    lock; the write happens on a timer thread (or in the caller that fills the batch).
    """

    def __init__(
        self,
        auditor: Auditor,
        clock: Callable[[], float],
        *,
        flush_after: float = DEFAULT_FLUSH_AFTER,
        max_pending: int = DEFAULT_MAX_PENDING,
        timers: bool = True,
    ) -> None:
        self._auditor = auditor
        self._clock = clock
        self._flush_after = flush_after
        self._max_pending = max_pending
        self._timers = timers
        self._pending: dict[AccessRecord, list[float]] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def note(
        self,
        orgs: Iterable[str],
        service_id: str,
        scope: str,
        asset_id: str,
        actor: str | None,
        operation: str,
        outcome: Outcome = Outcome.OK,
    ) -> None:
        """Count one use of ``asset_id`` by ``actor`` for every org in ``orgs``."""
        now = self._clock()
        minute = int(now // 60) * 60
        full = False
        with self._lock:
            for org in orgs:
                key = AccessRecord(
                    org, service_id, scope, asset_id, actor, operation, outcome.value, minute
                )
                seen = self._pending.get(key)
                if seen is None:
                    self._pending[key] = [1.0, now, now]
                else:
                    seen[0] += 1
                    seen[2] = now
            full = len(self._pending) >= self._max_pending
            if not full and self._timer is None and self._timers and not self._closed:
                self._timer = threading.Timer(self._flush_after, self._on_timer)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()

    def flush(self) -> int:
        """Write every pending count now; return how many events were written.

        A count the audit store refuses goes back to the batch: the next use (or ``close``)
        tries again; beyond ``_MAX_KEPT`` waiting counts the oldest are dropped and the loss is
        logged.
        """
        written = 0
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, {}
            failed: dict[AccessRecord, list[float]] = {}
            for record, (count, first, last) in batch.items():
                try:
                    self._write(record, int(count), first, last)
                    written += 1
                except OwnkeyError:
                    failed[record] = [count, first, last]
            if failed:
                self._keep(failed)
        return written

    def _keep(self, failed: dict[AccessRecord, list[float]]) -> None:
        with self._lock:
            for record, seen in failed.items():
                mine = self._pending.get(record)
                if mine is None:
                    self._pending[record] = seen
                else:
                    mine[0] += seen[0]
                    mine[1] = min(mine[1], seen[1])
            dropped = len(self._pending) - _MAX_KEPT
            if dropped > 0:
                for record in list(self._pending)[:dropped]:
                    del self._pending[record]
        _log.warning(
            "the audit store refused %d access record(s); kept for the next flush%s",
            len(failed),
            f", {dropped} dropped" if dropped > 0 else "",
        )

    def _write(self, record: AccessRecord, count: int, first: float, last: float) -> None:
        detail = {
            "operation": record.operation,
            "service_id": record.service_id,
            "scope": record.scope,
            "asset_id": record.asset_id,
            "count": str(count),
            "minute": str(record.minute),
            "first_at_ms": str(int(first * 1000)),
            "last_at_ms": str(int(last * 1000)),
        }
        self._auditor.emit(
            AuditAction.CONTENT_ACCESS,
            Outcome(record.outcome),
            org=record.org,
            actor=record.actor,
            detail=detail,
        )

    def close(self) -> None:
        """Stop the timer and write what is pending (a clean stop loses nothing)."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()
