"""Jobs any node finishes (issue 28, item 4): two nodes (two Runtimes, each with its own
OWNKEY_HOME) on one database, SQLite and PostgreSQL, on one injected clock.

- a node that dies holding a job (it stops heartbeating; or a worker process kill -9'd mid-job)
  is replaced by the other within the stated bound, lease + sweep interval, and not before its
  lease ended;
- a node that stops normally hands its jobs over at once (the survivor's next look);
- heartbeats keep a live node's lease however long its job runs;
- an equal request while a job is pending or running answers that job, not a duplicate;
- the blob sweep runs on one node per interval, and aborts a crashed writer's S3 multipart
  upload on its schedule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ownkey.errors import ConfigError
from ownkey.keys import KeyRef, Selector
from ownkey.service import BackgroundJobs, Runtime
from ownkey.service._job_settings import JobSettings
from ownkey.testing.fakes import FakeClock
from tests.api.conftest import chat, setup_orgs

ACME = KeyRef.customer("acme")
ROOT_KEY = "22" * 32
LEASE, HEARTBEAT, SWEEP = 30.0, 10.0, 10.0
SCOPE_KEYS = 12


@dataclass
class Fleet:
    a: Runtime
    b: Runtime
    clock: FakeClock
    url: str
    env_a: dict[str, str]
    blobs: Path

    def versions(self) -> set[str]:
        """The versions of acme's key that acme's scope keys are wrapped under."""
        return {
            wrap.version
            for record in self.b.admin.scope_keys(Selector(key=ACME))
            for wrap in record.wraps
            if wrap.key == ACME
        }


def _env(home: Path, url: str, blobs: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OWNKEY_") and name != "COVERAGE_PROCESS_START"
    }
    return {
        **env,
        "OWNKEY_HOME": str(home),
        "OWNKEY_DATABASE_URL": url,
        "OWNKEY_ROOT_KEY": ROOT_KEY,
        "OWNKEY_BLOB_DIR": str(blobs),  # one blob store for the fleet
        "OWNKEY_JOB_LEASE": str(LEASE),
        "OWNKEY_JOB_HEARTBEAT": str(HEARTBEAT),
        "OWNKEY_JOB_SWEEP_INTERVAL": str(SWEEP),
        "OWNKEY_BLOB_SWEEP_INTERVAL": "1h",
    }


def _home(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def fleet(database_url: str, tmp_path: Path) -> Iterator[Fleet]:
    """acme with SCOPE_KEYS scope keys, its key rotated (v2) without a re-wrap: a re-wrap job
    of SCOPE_KEYS items to do. Node A made it all; node B shares only the database, the blob
    directory and the root key (and, while keys live in a home, a copy of A's key file)."""
    clock = FakeClock(time.time())
    blobs = tmp_path / "blobs"
    home_a, home_b = _home(tmp_path / "a"), _home(tmp_path / "b")
    env_a = _env(home_a, database_url, blobs)
    a = Runtime.open(home=home_a, url=database_url, env=env_a, clock=clock)
    setup_orgs(a)
    for n in range(SCOPE_KEYS):
        a.protector.seal(chat(scope=f"chat-{n}", asset_id=f"m{n}"), b"hello")
    a.admin.rotate_key(ACME, rewrap=False)
    keys = home_a / "local-keys.json"
    if keys.exists():
        shutil.copy2(keys, home_b / "local-keys.json")
    b = Runtime.open(
        home=home_b, url=database_url, env=_env(home_b, database_url, blobs), clock=clock
    )
    try:
        yield Fleet(a, b, clock, database_url, env_a, blobs)
    finally:
        b.close()
        a.close()


def _rewrap_on_a(fleet: Fleet) -> str:
    status, created = fleet.a.job_ops.submit("rewrap", key=ACME)
    assert created
    assert status.owner == fleet.a.node_id
    assert status.total == SCOPE_KEYS
    return status.job_id


def test_the_settings_and_the_bound(fleet: Fleet) -> None:
    assert fleet.a.job_ops.settings == JobSettings(lease=LEASE, heartbeat=HEARTBEAT)
    assert JobSettings().takeover_bound == 40.0  # the default: 30 s lease + 10 s look
    with pytest.raises(ConfigError, match="at most half"):
        JobSettings(lease=10, heartbeat=6)
    with pytest.raises(ConfigError, match="OWNKEY_JOB_LEASE"):
        JobSettings.from_env({"OWNKEY_JOB_LEASE": "soon"})
    assert JobSettings.from_env({"OWNKEY_BLOB_SWEEP_INTERVAL": "0"}).blob_sweep_interval == 0


def test_a_dead_nodes_job_is_finished_by_another_within_the_bound(fleet: Fleet) -> None:
    """A accepted the job and died before doing any of it (no heartbeat, no stop). B leaves it
    while A's lease lasts, and takes it over at its first look after: within lease + sweep."""
    job_id = _rewrap_on_a(fleet)
    b = BackgroundJobs(fleet.b)
    try:
        assert b.tick() == []
        fleet.clock.advance(LEASE - 1)
        assert b.tick() == []  # A's lease still holds: nobody works twice
        fleet.clock.advance(1)  # A's lease ended; B's next look comes at most SWEEP later
        assert b.tick() == [job_id]
        assert b.wait(120)
    finally:
        b.close()
    done = fleet.b.job(job_id)
    assert (done.state, done.done, done.failed) == ("done", SCOPE_KEYS, 0)
    assert (done.owner, done.lease_until) == (None, None)
    assert fleet.versions() == {"v2"}
    for n in range(SCOPE_KEYS):  # every scope key opens under its new wrap
        sealed = fleet.b.protector.seal(chat(scope=f"chat-{n}", asset_id=f"x{n}"), b"again")
        assert fleet.b.protector.open(chat(scope=f"chat-{n}", asset_id=f"x{n}"), sealed) == b"again"


def test_a_normal_stop_hands_the_job_over_at_once(fleet: Fleet) -> None:
    job_id = _rewrap_on_a(fleet)
    b = BackgroundJobs(fleet.b)
    try:
        assert b.tick() == []
        BackgroundJobs(fleet.a).close()  # A stops: its lease is given up, the clock stands still
        assert fleet.b.job(job_id).owner is None
        assert b.tick() == [job_id]
        assert b.wait(120)
    finally:
        b.close()
    assert fleet.b.job(job_id).state == "done"
    assert fleet.versions() == {"v2"}


def test_heartbeats_keep_a_live_nodes_lease(fleet: Fleet) -> None:
    job_id = _rewrap_on_a(fleet)
    b = BackgroundJobs(fleet.b)
    try:
        for _ in range(10):  # 100 s of work on A, three leases long
            fleet.clock.advance(HEARTBEAT)
            assert fleet.a.job_ops.hold(job_id)
            assert b.tick() == []
        assert not fleet.b.job_ops.hold(job_id)  # B cannot take a live lease either
        assert fleet.b.job(job_id).owner == fleet.a.node_id
    finally:
        b.close()


def test_an_equal_job_is_answered_while_one_runs(fleet: Fleet) -> None:
    job_id = _rewrap_on_a(fleet)
    again, created = fleet.b.job_ops.submit("rewrap", key=ACME)  # on the other node too
    assert (again.job_id, created) == (job_id, False)
    assert [job.job_id for job in fleet.b.list_jobs("acme")] == [job_id]
    fleet.a.run_job(job_id)
    fresh, created = fleet.b.job_ops.submit("rewrap", key=ACME)  # finished: a new job
    assert created
    assert fresh.job_id != job_id
    assert fresh.total == 0


def test_exactly_one_node_wins_a_lapsed_lease(fleet: Fleet) -> None:
    job_id = _rewrap_on_a(fleet)
    fleet.clock.advance(LEASE)
    store = fleet.b.jobs
    barrier = threading.Barrier(6)
    won: list[str] = []

    def race(node: str) -> None:
        barrier.wait()
        if store.hold(job_id, node, now=fleet.clock(), lease=LEASE):
            won.append(node)

    threads = [threading.Thread(target=race, args=(f"node-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 1
    assert fleet.b.job(job_id).owner == won[0]


def test_equal_requests_at_once_make_one_job(fleet: Fleet) -> None:
    barrier = threading.Barrier(4)
    answers: list[tuple[str, bool]] = []

    def submit(runtime: Runtime) -> None:
        barrier.wait()
        status, created = runtime.job_ops.submit("rewrap", key=ACME)
        answers.append((status.job_id, created))

    nodes = [fleet.a, fleet.b, fleet.a, fleet.b]
    threads = [threading.Thread(target=submit, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 4
    assert len({job_id for job_id, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1
    assert len(fleet.b.list_jobs("acme")) == 1


def test_a_stopping_worker_leaves_the_rest_for_another_node(fleet: Fleet) -> None:
    job_id = _rewrap_on_a(fleet)
    batches: list[int] = []
    stopped = fleet.a.job_ops.run_job(
        job_id, batch=4, progress=lambda s: batches.append(s.done), stop=lambda: bool(batches)
    )
    assert (stopped.state, stopped.done, stopped.owner) == ("running", 4, None)
    finished = fleet.b.job_ops.run_job(job_id, takeover=True)
    assert (finished.state, finished.done) == ("done", SCOPE_KEYS)


def test_the_blob_sweep_runs_on_one_node_per_interval(fleet: Fleet) -> None:
    def orphan(name: str) -> Path:
        path = fleet.blobs / "ab" / f"{name}-0123456789abcdef"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left by a crashed writer")
        old = time.time() - 7200
        os.utime(path, (old, old))
        return path

    fleet.a.assets  # noqa: B018 - the blob directory exists before the sweep
    first = orphan("0" * 64)
    a, b = BackgroundJobs(fleet.a), BackgroundJobs(fleet.b)
    try:
        a.tick()
        assert (a.sweeps, first.exists()) == (1, False)
        second = orphan("1" * 64)
        b.tick()
        a.tick()
        assert (a.sweeps, b.sweeps, second.exists()) == (1, 0, True)  # within the hour
        fleet.clock.advance(3600)
        b.tick()
        a.tick()
        assert (a.sweeps, b.sweeps, second.exists()) == (1, 1, False)
    finally:
        a.close()
        b.close()


_WORKER = """
import sys, time
from ownkey.service import Runtime
job_id = sys.argv[1]
runtime = Runtime.open()
print("ready", flush=True)
def hang(status):
    print("reached", flush=True)
    time.sleep(3600)  # mid-job: its lease held, renewed by its heartbeat, until the kill
runtime.job_ops.run_job(job_id, batch=3, progress=hang)
"""


def test_a_worker_killed_mid_job_is_replaced_within_the_bound(fleet: Fleet) -> None:
    """A real process works on the job, holding and renewing its lease (real clock), and is
    kill -9'd after its first batch; B leaves the job while the lease can still hold and takes
    it over once it cannot."""
    job_id = _rewrap_on_a(fleet)
    fleet.a.job_ops.release_all()  # the worker process is the node that works on it
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, job_id],
        env=fleet.env_a,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stderr is not None
    try:
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        assert worker.stdout.readline().strip() == "reached", worker.stderr.read()
        held = fleet.b.job(job_id)
        assert held.owner not in (None, fleet.a.node_id)
        assert held.done == 3
    finally:
        worker.kill()
        worker.wait(30)
        worker.stdout.close()
        worker.stderr.close()
    lease_until = fleet.b.job(job_id).lease_until  # its last heartbeat's (real clock)
    assert lease_until is not None
    fleet.clock.now = lease_until - 1
    b = BackgroundJobs(fleet.b)
    try:
        assert b.tick() == []  # the dead worker's lease still holds
        fleet.clock.now = lease_until + SWEEP  # at the latest, B's next look after it ended
        assert b.tick() == [job_id]
        assert b.wait(120)
    finally:
        b.close()
    done = fleet.b.job(job_id)
    assert (done.state, done.done, done.failed) == ("done", SCOPE_KEYS, 0)
    assert fleet.versions() == {"v2"}


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.providers import _servers

    with _servers.moto_server(tmp_path_factory.mktemp("moto-sweep")) as server:
        yield server.endpoint


def test_the_scheduled_sweep_aborts_a_crashed_writers_multipart_upload(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from ownkey.storage._blobs import blob_key

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"ownkey-sweep-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    home = _home(tmp_path / "home")
    env = {
        "OWNKEY_HOME": str(home),
        "OWNKEY_ROOT_KEY": ROOT_KEY,
        "OWNKEY_S3_BUCKET": bucket,
        "OWNKEY_S3_ENDPOINT_URL": moto_endpoint,
    }
    clock = FakeClock(time.time())
    with Runtime.open(home=home, env=env, clock=clock) as runtime:
        crashed = runtime.assets.store.blobs.writer(blob_key("recording"))
        crashed.write(os.urandom(9 << 20))  # one 8 MiB part uploaded, then the writer died
        orphan = f"ownkey/ab/{'0' * 64}-0123456789abcdef"
        s3.put_object(Bucket=bucket, Key=orphan, Body=b"no row names it")
        assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
        jobs = BackgroundJobs(runtime)
        try:
            jobs.tick()  # moto says every upload was initiated in 2010: old enough at once
            assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
            listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            assert [item["Key"] for item in listed] == [orphan]  # younger than an hour: kept
            clock.advance(3600 + 60)  # the orphan was written after the clock was read
            jobs.tick()  # the next turn, an hour later: the orphan is old enough now
            assert jobs.sweeps == 2
            assert s3.list_objects_v2(Bucket=bucket).get("Contents", []) == []
        finally:
            jobs.close()
