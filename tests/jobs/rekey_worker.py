"""The crash test's rekey worker: ``python -m tests.jobs.rekey_worker URL HOME JOB_ID``.

A node on the test's database and home (the same local key store, blobs and audit chain) that
works on the rekey job until it is done; the crash test kill -9s it at random moments.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.jobs._crash import announce_target
from tests.jobs._rig import make_node


def main() -> None:
    url, home, job_id = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    node = make_node(url, home, migrate=False)
    print("ready", flush=True)
    announce_target(lambda: node.jobs.status(job_id).done)
    status = node.runner.run(job_id, batch=int(sys.argv[4]) if len(sys.argv) > 4 else 20)
    print(f"finished {status.state} {status.done}/{status.total}", flush=True)


if __name__ == "__main__":
    main()
