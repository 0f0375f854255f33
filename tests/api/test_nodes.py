"""Several nodes on one PostgreSQL: a revocation made through node A is refused by node B within
1 s (p99 over 100 revocations), with B's periodic re-check set to 30 s so that only the
LISTEN/NOTIFY path can explain it. Two real ``ownkey serve`` processes."""

from __future__ import annotations

import base64
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ownkey.service import Runtime
from ownkey.storage import TokenStore
from ownkey.testing import postgres
from tests.api.conftest import bearer, chat, setup_orgs

REVOCATIONS = 100


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    url = postgres.acquire()
    try:
        yield url
    finally:
        postgres.release()


@pytest.fixture
def db_url(postgres_server: str) -> Iterator[str]:
    url = postgres.create_database(postgres_server)
    try:
        yield url
    finally:
        postgres.drop_database(url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(env: dict[str, str], recheck: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with log.open("wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ownkey",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--recheck-interval",
                str(recheck),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ownkey serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("ownkey serve did not become healthy")


def test_revocations_reach_another_node_within_a_second(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "OWNKEY_HOME": str(home), "OWNKEY_DATABASE_URL": db_url}
    with Runtime.open(home=home, url=db_url, env=env) as runtime:
        setup_orgs(runtime)
        tokens = TokenStore(runtime.database)
        platform = bearer(tokens.issue("platform")[1])
        admin = bearer(tokens.issue("org", org="acme")[1])
    node_a, base_a = _serve(env, 1.0, tmp_path / "a.log")
    node_b, base_b = _serve(env, 30.0, tmp_path / "b.log")
    try:
        _wait_healthy(base_a, node_a, tmp_path / "a.log")
        _wait_healthy(base_b, node_b, tmp_path / "b.log")
        time.sleep(0.5)  # both listeners are up (each LISTENs right after start-up)
        with (
            httpx.Client(base_url=base_a, timeout=10) as a,
            httpx.Client(base_url=base_b, timeout=10) as b,
        ):
            sealed = []
            for i in range(REVOCATIONS):
                request = chat(scope=f"chat-{i}", asset_id=f"m-{i}")
                answer = b.post(
                    "/v1/seal",
                    json={"request": request, "data": base64.b64encode(b"hi").decode()},
                    headers=platform,
                )
                assert answer.status_code == 200, answer.text
                sealed.append((request, answer.json()["sealed"]))
                opened = b.post(
                    "/v1/open",
                    json={"request": request, "sealed": sealed[-1][1]},
                    headers=platform,
                )
                assert opened.status_code == 200  # B has the scope key cached now
            delays = []
            for i, (request, envelope) in enumerate(sealed):
                started = time.perf_counter()
                rule = a.post(
                    "/v1/orgs/acme/revocations", json={"scope": f"chat-{i}"}, headers=admin
                )
                assert rule.status_code == 201, rule.text
                while True:
                    answer = b.post(
                        "/v1/open",
                        json={"request": request, "sealed": envelope},
                        headers=platform,
                    )
                    if answer.status_code == 403:
                        assert answer.json()["reason"] == "revocation_rule"
                        break
                    assert answer.status_code == 200, answer.text
                    assert time.perf_counter() - started < 5, "node B never refused"
                delays.append(time.perf_counter() - started)
            other = b.post(
                "/v1/open",
                json={"request": sealed[0][0], "sealed": sealed[1][1]},
                headers=platform,
            )
            assert other.status_code in (403, 422)
        delays.sort()
        p50 = statistics.median(delays)
        p99 = delays[int(0.99 * len(delays)) - 1]
        print(
            f"\ntwo-node revocation propagation over {len(delays)} revocations: "
            f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
        )
        assert p99 < 1.0
    finally:
        for process in (node_a, node_b):
            process.terminate()
        for process in (node_a, node_b):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
