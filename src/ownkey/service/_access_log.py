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
from collections.abc import Callable
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


#: The key a use is counted under: (orgs, service, scope, asset, actor, operation, outcome,
#: minute). A flat tuple: built and hashed in well under a microsecond.
_Key = tuple[tuple[str, ...], str, str, str, "str | None", str, str, int]


class AccessLog:
    """Counts data-plane uses and writes them to the orgs' audit chains in small batches.

    Thread-safe. :meth:`note` is on the hot path: a clock read, one tuple and a dictionary
    update under a lock; the write happens on a timer thread (or in the caller that fills the
    batch). ``bench/run.py`` measures what it costs the prepared path.
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
        self._pending: dict[_Key, int] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def note(
        self,
        orgs: tuple[str, ...],
        service_id: str,
        scope: str,
        asset_id: str,
        actor: str | None,
        operation: str,
        outcome: str = "ok",
    ) -> None:
        """Count one use of ``asset_id`` by ``actor`` for every org in ``orgs`` (``outcome``:
        an :class:`~ownkey.audit.Outcome` value)."""
        counted = (
            orgs,
            service_id,
            scope,
            asset_id,
            actor,
            operation,
            outcome,
            int(self._clock()) // 60,
        )
        with self._lock:
            pending = self._pending
            pending[counted] = pending.get(counted, 0) + 1
            if self._timer is not None and len(pending) < self._max_pending:
                return
        self._arm_or_flush()

    def _arm_or_flush(self) -> None:
        """The slow path of :meth:`note`: start the timer of a new batch, or write a full one."""
        with self._lock:
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
            failed: dict[_Key, int] = {}
            for counted, count in batch.items():
                orgs, service_id, scope, asset_id, actor, operation, outcome, minute = counted
                for org in orgs:
                    record = AccessRecord(
                        org, service_id, scope, asset_id, actor, operation, outcome, minute * 60
                    )
                    try:
                        self._write(record, count)
                        written += 1
                    except OwnkeyError:
                        # kept under this org alone: the orgs written already are not again
                        alone: _Key = (
                            (org,),
                            service_id,
                            scope,
                            asset_id,
                            actor,
                            operation,
                            outcome,
                            minute,
                        )
                        failed[alone] = count
            if failed:
                self._keep(failed)
        return written

    def _keep(self, failed: dict[_Key, int]) -> None:
        with self._lock:
            for counted, count in failed.items():
                self._pending[counted] = self._pending.get(counted, 0) + count
            dropped = len(self._pending) - _MAX_KEPT
            if dropped > 0:
                for counted in list(self._pending)[:dropped]:
                    del self._pending[counted]
        _log.warning(
            "the audit store refused %d access record(s); kept for the next flush%s",
            len(failed),
            f", {dropped} dropped" if dropped > 0 else "",
        )

    def _write(self, record: AccessRecord, count: int) -> None:
        detail = {
            "operation": record.operation,
            "service_id": record.service_id,
            "scope": record.scope,
            "asset_id": record.asset_id,
            "count": str(count),
            "minute": str(record.minute),
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
