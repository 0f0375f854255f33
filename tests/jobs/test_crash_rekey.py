"""Crash test of a rekey of stored assets: kill -9 the worker at >= 20 random points.

1,000 assets (a quarter small chat messages kept inline, the rest streamed recordings in blob
files) under 20 scope keys are re-encrypted under fresh scope keys by a worker process that the
test kills with SIGKILL at random moments (mid-seal, mid-fsync, mid-commit, between batches) and
restarts. At the end: the job is done with 0 failures, every asset is present, opens to exactly
its original plaintext, and is under a fresh scope key; every old scope key is shredded; after a
sweep, the blob directory holds exactly one file per blob asset (no partial file, no orphan).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from tests.jobs._crash import TARGET_ENV, kill_at_target
from tests.jobs._rig import make_node
from tests.service._helpers import chat, single

N = 1_000
SCOPES = 20
KILLS = 20
ROOT = Path(__file__).resolve().parents[2]


def payload(i: int) -> bytes:
    size = 300 if i % 4 == 0 else 5_000 + i % 7_000
    return hashlib.shake_256(f"asset-{i}".encode()).digest(size)


def request(i: int) -> dict[str, object]:
    if i % 4 == 0:
        return chat(f"chat-{i % SCOPES}", f"a{i:05}")
    return single("0001", "video", scope=f"meeting-{i % SCOPES}", asset_id=f"a{i:05}")


def _worker(url: str, home: Path, job_id: str, target: int = -1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.rekey_worker", url, str(home), job_id],
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


def crash_and_resume(url: str, home: Path) -> None:
    node = make_node(url, home)
    started = time.perf_counter()
    for i in range(N):
        node.assets.put_asset(request(i), payload(i))
    seeded = time.perf_counter() - started
    old = {node.store.get(f"a{i:05}").scope_key_id for i in range(N)}
    assert len(old) == SCOPES  # 5 chats and 15 meetings
    job = node.runner.rekey("acme")
    total = job.total
    assert total == N + len(old)

    rng = random.Random()
    targets = sorted(rng.sample(range(total * 3 // 4), KILLS))  # room left for late polls
    progress: list[int] = []
    started = time.perf_counter()
    for target in targets:
        kill_at_target(_worker(url, home, job.job_id, target), rng)
        status = node.jobs.status(job.job_id)
        progress.append(status.done)
        assert not status.finished, "the job finished before 20 kills: slow the killer down"
    worker = _worker(url, home, job.job_id)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert out.splitlines()[-1] == f"finished done {total}/{total}"
    elapsed = time.perf_counter() - started

    status = node.jobs.status(job.job_id)
    assert (status.state, status.done, status.failed) == ("done", total, 0)
    lost = unreadable = still_old = 0
    for i in range(N):
        record = node.store.find(f"a{i:05}")
        if record is None:
            lost += 1
            continue
        still_old += record.scope_key_id in old
        try:
            if node.assets.get_asset(record.asset_id) != payload(i):
                unreadable += 1
        except Exception:
            unreadable += 1
    assert (lost, unreadable, still_old) == (0, 0, 0)
    assert all(node.admin.scope_key(key_id).shredded for key_id in old)
    swept = node.store.sweep(min_age=-1)
    files = [p for p in (home / "objects").rglob("*") if p.is_file()]
    blob_assets = sum(1 for r in node.store.scan(org="acme") if not r.inline)
    assert len(files) == blob_assets
    node.close()
    print(
        f"seeded {N} assets in {seeded:.1f}s; {KILLS} kills at done={progress}; "
        f"completed in {elapsed:.1f}s; sweep removed {swept.orphans} orphan(s), "
        f"{swept.partials} partial(s)"
    )


def test_crash_rekey_sqlite(tmp_path: Path) -> None:
    crash_and_resume(f"sqlite:///{tmp_path / 'crash.db'}", tmp_path / "home")


def test_crash_rekey_postgresql(postgres_url: str, tmp_path: Path) -> None:
    crash_and_resume(postgres_url, tmp_path / "home")
