"""Kill -9 at a random point, without racing the worker.

The parent used to poll the job's progress and kill when it passed a target; on a loaded machine
the poll came late and the worker could finish the job first. Now the worker watches its own
progress (a thread, so it is never more than a GIL switch behind the work) and prints
``reached`` once the job's done count passes the target given in ``OWNKEY_CRASH_TARGET``; the
parent, blocked on that line, kills after a random 0-20 ms, so the kill still lands anywhere:
mid-step, mid-commit or between batches.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable

TARGET_ENV = "OWNKEY_CRASH_TARGET"


def announce_target(done: Callable[[], int]) -> None:
    """In the worker: print ``reached`` when ``done()`` passes the target (if one is set)."""
    target = int(os.environ.get(TARGET_ENV, "-1"))
    if target < 0:
        return

    def watch() -> None:
        while done() < target:
            time.sleep(0.002)
        print("reached", flush=True)

    threading.Thread(target=watch, daemon=True).start()


def kill_at_target(worker: subprocess.Popen[str], rng: random.Random) -> None:
    """In the parent: wait for ``ready`` and ``reached``, then SIGKILL after 0-20 ms."""
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    assert worker.stdout.readline().strip() == "reached"
    time.sleep(rng.uniform(0.0, 0.02))
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    worker.stdout.close()
    if worker.stderr is not None:
        worker.stderr.close()
