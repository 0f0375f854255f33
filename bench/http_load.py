"""HTTP figures for ``make bench``: the data plane through ``ownkey serve`` (2 workers) on loopback.

* **1 KiB seal and open** (``POST /v1/seal``, ``POST /v1/open``, a Team Chat request) beside a bare
  FastAPI echo route in the same server (``bench/http_app.py``), driven by ``wrk`` when it is
  installed (Debian: ``apt-get install wrk``), else by a bounded async httpx client. Requests/s
  and p50/p99 latency; the ratio is route/echo of requests/s.
* **Streamed GET of a large object** (``PUT`` then ``GET /v1/objects/{id}``, read by curl when it
  is installed): MB/s of plaintext, beside ``Protector.open_stream`` of the same sealed object in
  this process.

The server runs on SQLite in a temporary ``OWNKEY_HOME``: acme with a customer key and a licensed
user, globex without CMK, one platform token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ANN, BO = "ann@acme.test", "bo@globex.test"
MESSAGE = bytes(range(256)) * 4  # 1 KiB
CHUNK = 1 << 20


#: Messages per request of the batch case (``POST /v1/seal/batch``).
BATCH_ITEMS = 100


def chat_request(asset_id: str = "m1") -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {
                "kind": "chat",
                "members": [{"user": ANN, "org": "acme"}, {"user": BO, "org": "globex"}],
            },
            "component": "message",
        },
        "scope": "chat-1",
        "asset_id": asset_id,
        "actor": ANN,  # every request lands in the key-usage log with its actor (issue 23)
    }


def recording(asset_id: str) -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "meeting-1",
        "asset_id": asset_id,
    }


def prepare_home(home: Path) -> str:
    """Orgs, keys and a platform token in a fresh home; return the token."""
    from ownkey.service import Runtime
    from ownkey.storage import TokenStore

    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="bench")
        rt.update_org("acme", cmk=True, enable=["0001", "0008"], actor="bench")
        rt.add_users("acme", [ANN], licensed=True)
        rt.create_org("globex")
        rt.add_users("globex", [BO])
        _, token = TokenStore(rt.database).issue("platform")
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(home: Path, workers: int, database_url: str | None = None) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, OWNKEY_HOME=str(home))
    if database_url is not None:  # a node of a fleet: its own home, the fleet's database
        env["OWNKEY_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "http_app:make_app",
            "--factory",
            "--workers",
            str(workers),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code < 500:
                    break
            time.sleep(0.2)
        time.sleep(1.0)  # every worker up
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_run(url: str, path: str, body: str, token: str, seconds: int, connections: int) -> Any:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("errors %d %d\\n", summary.errors.status, '
            "summary.requests))\n"
            "end\n"
        )
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                f"{url}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    latency = {f"p{m[0]}_ms": float(m[1]) * _UNITS[m[2]] for m in _WRK_LATENCY.findall(out)}
    errors = re.search(r"errors (\d+) (\d+)", out)
    return {
        "requests_s": float(_WRK_RATE.findall(out)[0]),
        **latency,
        "non_2xx": int(errors.group(1)) if errors else None,
        "requests": int(errors.group(2)) if errors else None,
    }


async def _httpx_load(url: str, path: str, body: bytes, token: str, seconds: int, n: int) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failures = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < stop:
                started = time.perf_counter()
                answer = await client.post(path, content=body)
                latencies.append(time.perf_counter() - started)
                failures += answer.status_code >= 300

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(n)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
        "non_2xx": failures,
        "requests": len(latencies),
    }


def load(url: str, path: str, body: str, token: str, seconds: int, connections: int) -> Any:
    if shutil.which("wrk"):
        return {"driver": "wrk", **wrk_run(url, path, body, token, seconds, connections)}
    result = asyncio.run(_httpx_load(url, path, body.encode(), token, seconds, connections))
    return {"driver": "httpx", **result}


def http_bench(seconds: int, connections: int, quiet: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ownkey-bench-http-") as name:
        home = Path(name) / "home"
        token = prepare_home(home)
        with server(home, workers=2) as url:
            headers = {"Authorization": f"Bearer {token}"}
            data = base64.b64encode(MESSAGE).decode()
            sealed = httpx.post(
                f"{url}/v1/seal", json={"request": chat_request(), "data": data}, headers=headers
            )
            sealed.raise_for_status()
            container = {k: v for k, v in chat_request().items() if k != "asset_id"}
            batch = [{"asset_id": f"m{n}", "data": data} for n in range(BATCH_ITEMS)]
            bodies = {
                "echo": json.dumps({"request": chat_request(), "data": data}),
                "seal": json.dumps({"request": chat_request(), "data": data}),
                "open": json.dumps({"request": chat_request(), "sealed": sealed.json()["sealed"]}),
                "seal_batch": json.dumps({"request": container, "items": batch}),
            }
            paths = {
                "echo": "/bench/echo",
                "seal": "/v1/seal",
                "open": "/v1/open",
                "seal_batch": "/v1/seal/batch",
            }
            results: dict[str, Any] = {}
            for name_, body in bodies.items():
                if not quiet:
                    print(f"  HTTP {name_} ...", file=sys.stderr, flush=True)
                load(url, paths[name_], body, token, 2, connections)  # warm-up
                results[name_] = load(url, paths[name_], body, token, seconds, connections)
    echo = results["echo"]["requests_s"]
    for name_ in ("seal", "open"):
        results[name_]["ratio_to_echo"] = results[name_]["requests_s"] / echo
    # Issue 25: messages per second through batches against single seals, same run.
    batch_case = results["seal_batch"]
    batch_case["items"] = BATCH_ITEMS
    batch_case["messages_s"] = batch_case["requests_s"] * BATCH_ITEMS
    batch_case["ratio_to_single_seal"] = batch_case["messages_s"] / results["seal"]["requests_s"]
    return {
        "server": "ownkey serve's app, 2 uvicorn workers, SQLite home, loopback",
        "connections": connections,
        "seconds": seconds,
        "message_bytes": len(MESSAGE),
        "cases": results,
    }


def nodes_bench(seconds: int, connections: int, quiet: bool) -> dict[str, Any]:
    """Issue 28: 1 KiB seals per second through one ``ownkey serve`` node (one worker), then
    through two nodes (one worker each, separate homes given the same root key) on the same
    database, the load split between them; same machine, same run."""
    with tempfile.TemporaryDirectory(prefix="ownkey-bench-nodes-") as name:
        home_a, home_b = Path(name) / "a", Path(name) / "b"
        token = prepare_home(home_a)
        shutil.copytree(home_a, home_b, ignore=shutil.ignore_patterns("ownkey.db*", "objects"))
        url = f"sqlite:///{home_a / 'ownkey.db'}"
        data = base64.b64encode(MESSAGE).decode()
        body = json.dumps({"request": chat_request(), "data": data})
        results: dict[str, Any] = {}
        with server(home_a, 1, url) as first:
            if not quiet:
                print("  one node ...", file=sys.stderr, flush=True)
            load(first, "/v1/seal", body, token, 2, connections)  # warm-up
            results["one_node"] = load(first, "/v1/seal", body, token, seconds, connections)
            with server(home_b, 1, url) as second:
                if not quiet:
                    print("  two nodes ...", file=sys.stderr, flush=True)
                load(second, "/v1/seal", body, token, 2, connections)  # warm-up
                both: list[Any] = [None, None]

                def run(index: int, target: str) -> None:
                    both[index] = load(target, "/v1/seal", body, token, seconds, connections // 2)

                threads = [
                    threading.Thread(target=run, args=(index, target))
                    for index, target in enumerate((first, second))
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        two = sum(part["requests_s"] for part in both)
        results["two_nodes"] = {"requests_s": two, "per_node": both}
    return {
        "server": "ownkey serve's app, 1 uvicorn worker a node, one SQLite database, loopback",
        "connections": connections,
        "seconds": seconds,
        "one_node_requests_s": results["one_node"]["requests_s"],
        "two_nodes_requests_s": two,
        "ratio": two / results["one_node"]["requests_s"],
        "cases": results,
    }


class _Pattern:
    """``size`` bytes of a repeating pattern, read in chunks (never held whole)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(CHUNK)

    def __iter__(self) -> Iterator[bytes]:
        while self.left > 0:
            take = min(self.left, CHUNK)
            self.left -= take
            yield self.block[:take]


def get_bench(size: int, quiet: bool) -> dict[str, Any]:
    """PUT one object of ``size`` bytes, then time a full streamed GET of it, beside
    ``Protector.open_stream`` of the same sealed blob in this process."""
    with tempfile.TemporaryDirectory(prefix="ownkey-bench-get-") as name:
        home = Path(name) / "home"
        token = prepare_home(home)
        headers = {"Authorization": f"Bearer {token}"}
        with server(home, workers=2) as url:
            if not quiet:
                print(f"  PUT {size >> 20} MiB ...", file=sys.stderr, flush=True)
            put = httpx.put(
                f"{url}/v1/objects/big-1",
                content=iter(_Pattern(size)),
                headers={**headers, "Ownkey-Request": json.dumps(recording("big-1"))},
                timeout=600,
            )
            put.raise_for_status()
            times = [_timed_get(url, token, size) for _ in range(2)]
        in_process = _open_stream_in_process(home, size)
    http_mb_s = size / 1e6 / min(times)
    return {
        "plaintext_bytes": size,
        "http_get_mb_s": http_mb_s,
        "open_stream_mb_s": in_process,
        "ratio": http_mb_s / in_process,
        "client": "curl" if shutil.which("curl") else "httpx",
        "basis": "best of 2 full GETs over best of 2 in-process open_stream",
    }


def _timed_get(url: str, token: str, size: int) -> float:
    """Seconds for one full GET, with curl when installed (a Python client reads slower than
    the server sends: httpx tops out near 300 MB/s here), else httpx."""
    started = time.perf_counter()
    if shutil.which("curl"):
        out = subprocess.run(
            [
                "curl",
                "-s",
                "-f",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                "-H",
                f"Authorization: Bearer {token}",
                f"{url}/v1/objects/big-1",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        received = int(out.stdout.strip())
    else:
        received = 0
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.stream("GET", f"{url}/v1/objects/big-1", headers=headers, timeout=600) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_raw(CHUNK):
                received += len(chunk)
    elapsed = time.perf_counter() - started
    if received != size:
        raise SystemExit(f"GET returned {received} bytes, expected {size}")
    return elapsed


def _open_stream_in_process(home: Path, size: int) -> float:
    from ownkey.service import Runtime

    class Counter:
        count = 0

        def write(self, data: bytes | memoryview) -> int:
            self.count += len(data)
            return len(data)

    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        request = recording("big-1")  # the runtime's protector fills the orgs itself
        _, reader = rt.assets.store.open("big-1")
        best = 0.0
        for _ in range(2):
            reader.seek(0)
            sink = Counter()
            started = time.perf_counter()
            rt.protector.open_stream(request, reader, sink)  # type: ignore[arg-type]
            best = max(best, size / 1e6 / (time.perf_counter() - started))
            if sink.count != size:
                raise SystemExit("open_stream returned the wrong size")
        reader.close()
    return best
