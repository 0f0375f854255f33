"""Jobs any node finishes, with a real ``ownkey serve`` (issue 28, item 4): a node accepted a
re-wrap job and died before doing any of it; another node, an ``ownkey serve`` process with its
own OWNKEY_HOME on the same database, finishes it once the dead node's lease has ended, with no
request from anyone. Its look for lapsed jobs runs every second here (lease 2 s, heartbeat 1 s),
so the test waits seconds; the bound itself is tested on an injected clock in test_fleet.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from ownkey.keys import KeyRef
from ownkey.service import Runtime
from ownkey.storage import TokenStore
from tests.api.conftest import bearer, chat, setup_orgs
from tests.api.test_nodes import _serve, _wait_healthy

ACME = KeyRef.customer("acme")
ROOT_KEY = "33" * 32
SCOPE_KEYS = 8


def _env(home: Path, url: str, blobs: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    return {
        **keep,
        "OWNKEY_HOME": str(home),
        "OWNKEY_DATABASE_URL": url,
        "OWNKEY_ROOT_KEY": ROOT_KEY,
        "OWNKEY_BLOB_DIR": str(blobs),
        "OWNKEY_JOB_LEASE": "2",
        "OWNKEY_JOB_HEARTBEAT": "1",
        "OWNKEY_JOB_SWEEP_INTERVAL": "1",
    }


def test_a_serve_node_finishes_the_job_a_dead_node_held(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ownkey.db'}"
    blobs = tmp_path / "blobs"
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    home_a.mkdir(mode=0o700)
    home_b.mkdir(mode=0o700)
    env_a = _env(home_a, url, blobs)
    with Runtime.open(home=home_a, url=url, env=env_a) as a:
        setup_orgs(a)
        for n in range(SCOPE_KEYS):
            a.protector.seal(chat(scope=f"chat-{n}", asset_id=f"m{n}"), b"hello")
        a.admin.rotate_key(ACME, rewrap=False)
        job, created = a.job_ops.submit("rewrap", key=ACME)
        assert created
        assert (job.owner, job.total, job.done) == (a.node_id, SCOPE_KEYS, 0)
        admin = bearer(TokenStore(a.database).issue("org", org="acme")[1])
    # A is gone (closed without giving its lease up, as after a kill -9): only B runs.
    log = tmp_path / "b.log"
    node_b, base = _serve(_env(home_b, url, blobs), 1.0, log)
    try:
        _wait_healthy(base, node_b, log)
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=base, timeout=10) as b:
            while True:
                seen = b.get(f"/v1/orgs/acme/jobs/{job.job_id}", headers=admin)
                assert seen.status_code == 200, seen.text
                if seen.json()["state"] == "done":
                    break
                assert time.monotonic() < deadline, f"never taken over: {seen.json()}"
                time.sleep(0.2)
        body = seen.json()
        assert (body["done"], body["failed"], body["node"]) == (SCOPE_KEYS, 0, None)
    finally:
        node_b.terminate()
        node_b.wait(30)
    with Runtime.open(home=home_b, url=url, env=_env(home_b, url, blobs)) as b_rt:
        versions = {
            wrap.version
            for record in b_rt.admin.scope_keys()
            for wrap in record.wraps
            if wrap.key == ACME
        }
    assert versions == {"v2"}
