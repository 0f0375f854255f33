"""Jobs started through the API run on a thread of the node that accepted them.

A job is stored before it starts (:meth:`Runtime.create_job`) and works in resumable batches, so a
node that stops half-way leaves it pending: ``ownkey jobs run`` (or the API, again) resumes it on
any node. One thread per running job; :meth:`close` waits for them.
"""

from __future__ import annotations

import logging
import threading

from ownkey.service._runtime import Runtime

__all__ = ["BackgroundJobs"]

_log = logging.getLogger("ownkey.jobs")


class BackgroundJobs:
    """Runs stored jobs on daemon threads of this process."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    def start(self, job_id: str) -> None:
        """Work on ``job_id`` in the background (a no-op if this node already is)."""
        with self._lock:
            running = self._threads.get(job_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(
                target=self._run, args=(job_id,), name=f"ownkey-job-{job_id}", daemon=True
            )
            self._threads[job_id] = thread
        thread.start()

    def _run(self, job_id: str) -> None:
        try:
            self._runtime.run_job(job_id)
        except Exception:  # the job's items record their own failures; this is the rest
            _log.exception("job %s stopped; it stays resumable", job_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every job started here; True if all finished within ``timeout``."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)

    def close(self, timeout: float = 10.0) -> None:
        """Wait (boundedly) for running jobs; what is unfinished stays resumable."""
        self.wait(timeout)
