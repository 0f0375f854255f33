"""A serve node's share of the fleet's jobs: those it accepts, those other nodes left, the sweep.

A job is stored before it starts (:meth:`JobOperations.submit`), held by the node that made it
for one lease, and works in resumable batches (:mod:`ownkey.service._job_settings`). This class
runs jobs on daemon threads of this process (one per job, holding its lease while it runs) and,
once :meth:`start_sweeper` is called (``ownkey serve``), looks every ``sweep_interval`` seconds
for jobs whose lease lapsed (their node died or stopped) and takes each over, and sweeps the
blob store when it is this node's turn (one node of the fleet per ``blob_sweep_interval``).
:meth:`close` stops between batches and gives every lease this node holds up, so a survivor
resumes its jobs at its next look.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ownkey.service._runtime import Runtime

if TYPE_CHECKING:
    from ownkey.storage._assets import SweepReport

__all__ = ["BLOB_SWEEP_TURN", "BackgroundJobs"]

_log = logging.getLogger("ownkey.jobs")

#: The named turn (``leases`` row) of the scheduled blob sweep.
BLOB_SWEEP_TURN = "blob-sweep"


class BackgroundJobs:
    """Runs stored jobs on daemon threads of this process; takes over lapsed ones."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.settings = runtime.job_ops.settings  # read once, checked at start
        self.sweeps = 0

    def start(self, job_id: str, *, takeover: bool = False) -> bool:
        """Work on ``job_id`` in the background (a no-op if this node already is, or stops);
        ``takeover``: only if this node wins its lease. True if a thread was started."""
        with self._lock:
            if self._stopping.is_set():
                return False
            running = self._threads.get(job_id)
            if running is not None and running.is_alive():
                return False
            thread = threading.Thread(
                target=self._run,
                args=(job_id, takeover),
                name=f"ownkey-job-{job_id}",
                daemon=True,
            )
            self._threads[job_id] = thread
        thread.start()
        return True

    def _run(self, job_id: str, takeover: bool) -> None:
        try:
            self._runtime.job_ops.run_job(job_id, stop=self._stopping.is_set, takeover=takeover)
        except Exception:  # the job's items record their own failures; this is the rest
            _log.exception("job %s stopped; it stays resumable", job_id)

    def tick(self) -> list[str]:
        """One look: take over every job whose lease lapsed (started on threads here; the
        node that wins each lease works on it), then sweep the blob store if it is this
        node's turn. Returns the jobs this node tried to take over."""
        tried = [
            job_id for job_id in self._runtime.job_ops.lapsed() if self.start(job_id, takeover=True)
        ]
        for job_id in tried:
            _log.info("taking over job %s (its lease lapsed)", job_id)
        self.sweep_blobs()
        return tried

    def sweep_blobs(self) -> SweepReport | None:
        """Sweep orphan blobs, partial writes and abandoned multipart uploads older than
        ``blob_sweep_min_age`` if no other node has swept within ``blob_sweep_interval``;
        None when it is not this node's turn (or the scheduled sweep is off)."""
        interval = self.settings.blob_sweep_interval
        if interval <= 0 or not self._runtime.job_ops.take_turn(BLOB_SWEEP_TURN, interval):
            return None
        report = self._runtime.assets.store.sweep(
            min_age=self.settings.blob_sweep_min_age, now=self._runtime.job_ops.now()
        )
        self.sweeps += 1
        _log.info(
            "blob sweep: %d examined, %d orphans and %d partial writes removed",
            report.examined,
            report.orphans,
            report.partials,
        )
        return report

    def start_sweeper(self) -> None:
        """Look for lapsed jobs (and the blob sweep's turn) now and every ``sweep_interval``
        seconds, on a daemon thread, until :meth:`close`."""
        with self._lock:
            if self._sweeper is not None or self._stopping.is_set():
                return
            self._sweeper = threading.Thread(target=self._sweep, name="ownkey-jobs", daemon=True)
        self._sweeper.start()

    def _sweep(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:  # the database is down: look again next time
                _log.exception("looking for lapsed jobs failed; trying again")
            self._stopping.wait(self.settings.sweep_interval)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every job started here; True if all finished within ``timeout``."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)

    def close(self, timeout: float = 10.0) -> None:
        """Stop: no new batch starts, running ones finish (boundedly), and every lease this
        node holds is given up, so another node resumes its jobs at its next look."""
        self._stopping.set()
        sweeper = self._sweeper
        if sweeper is not None:
            sweeper.join(timeout)
        self.wait(timeout)
        try:
            released = self._runtime.job_ops.release_all()
        except Exception:  # the database is gone: the leases lapse on their own
            _log.exception("could not give the job leases up; they lapse within the lease")
            return
        if released:
            _log.info("gave up %d job lease(s) for other nodes", released)
