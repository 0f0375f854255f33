"""Crash test (issue 6): a re-wrap of 10,000 scope keys, kill -9 at >= 20 random points.

A subprocess works on the job; the test kills it with SIGKILL at random moments, restarts it,
and at the end proves that the job completed and that every one of the 10,000 scope keys is
present and opens, under the new key version, to the share it was created with.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from ownkey.keys._records import ScopeKeyRecord, Selector
from ownkey.storage import Database, SqlScopeKeyStore
from ownkey.storage._jobs import JobStore
from tests.jobs._crash import TARGET_ENV, kill_at_target
from tests.jobs.rewrap import master, share_of, unwrap, wrap

N = 10_000
KILLS = 20
ROOT = Path(__file__).resolve().parents[2]


def _seed(database: Database) -> str:
    store = SqlScopeKeyStore(database)
    records = []
    for i in range(N):
        key_id = i.to_bytes(4, "big") + b"sk"
        blank = ScopeKeyRecord(key_id, ("acme",), "0008", f"chat:{i}", 0, 3600, (), 0.0)
        w = wrap(blank, "v1", share_of(key_id))
        records.append(ScopeKeyRecord(key_id, ("acme",), "0008", f"chat:{i}", 0, 3600, (w,), 0.0))
    for start in range(0, N, 2000):
        store.create_many(records[start : start + 2000])
    return JobStore(database).create(
        "rewrap", [r.key_id.hex() for r in records], org="acme", params={"to": "v2"}
    )


def _worker(url: str, job_id: str, target: int = -1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.rewrap", url, job_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT),
            TARGET_ENV: str(target),
        },
    )


def crash_and_resume(url: str) -> None:
    database = Database.open(url)
    job_id = _seed(database)
    jobs = JobStore(database)
    rng = random.Random()
    started = time.perf_counter()
    kills, progress = 0, []
    # Kill points spread over the whole job: when progress passes a random target, plus a
    # random delay, so the kill lands anywhere in a batch (mid-step, mid-commit, between).
    targets = sorted(rng.sample(range(N * 3 // 4), KILLS))  # room left: a loaded machine polls late
    while kills < KILLS:
        kill_at_target(_worker(url, job_id, targets[kills]), rng)
        status = jobs.status(job_id)
        progress.append(status.done)
        kills += 1
        assert not status.finished, "the job finished before 20 kills: slow the killer down"
    worker = _worker(url, job_id)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert out.splitlines()[-1] == f"finished done {N}/{N}"
    elapsed = time.perf_counter() - started

    status = jobs.status(job_id)
    assert (status.state, status.done, status.failed, status.total) == ("done", N, 0, N)
    store = SqlScopeKeyStore(database)
    records = list(store.scan(Selector(org="acme"), include_shredded=True))
    assert len(records) == N  # 0 lost
    unreadable = 0
    for record in records:
        (w,) = record.wraps
        if w.version != "v2" or unwrap(record, w) != share_of(record.key_id):
            unreadable += 1
    assert unreadable == 0
    assert master("v1") != master("v2")
    database.close()
    print(f"{kills} kills at done={progress}; completed in {elapsed:.1f}s")


def test_crash_sqlite(tmp_path: Path) -> None:
    crash_and_resume(f"sqlite:///{tmp_path / 'crash.db'}")


def test_crash_postgresql(postgres_url: str) -> None:
    crash_and_resume(postgres_url)
