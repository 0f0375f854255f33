"""CMK Hybrid rates on this machine: the client's seal/open (warm and cold DEK cache) and the key
service's requests/s. Not a test; the numbers depend on the machine and its load.

Run ``.venv/bin/python bench/hybrid.py [--n 200]``: it starts the whole stack on loopback
(ownkey.testing.hybrid: identity provider, platform routes, key service, each its own process)
and prints one JSON object. What is measured, sequentially from one client thread (plus one
4-thread case for the key service):

* ``seal``: ``HybridClient.seal_message`` of 1 KiB: one ``/wrap`` round trip per message (a fresh
  DEK each time; the grant and the sign-in token are reused, as a client would);
* ``open_cold``: ``open_message`` with the DEK cache cleared before each call (one ``/unwrap``);
* ``open_warm``: ``open_message`` of messages whose DEK is cached (no network);
* ``kacls_unwrap``: raw ``POST /unwrap`` with valid tokens, 1 and 4 client threads (req/s).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from ownkey.client._format import split
from ownkey.testing.hybrid import KACLS_AUDIENCE, HybridStack

ORG = "acme"
ALICE, BOB = "alice@acme.example", "bob@acme.example"
MEMBERS = {ORG: {"users": [ALICE, BOB], "conversations": {"c": [ALICE, BOB]}}}


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def _unwrap_rates(stack: HybridStack, sealed: bytes, n: int) -> tuple[float, float]:
    """Seconds for ``n`` raw ``POST /unwrap`` calls of one sealed message with one client
    thread, then with four."""
    wrapped, header, _ = split(sealed)
    body = {
        "authentication": stack.sign_in(BOB, KACLS_AUDIENCE),
        "authorization": stack.grant(BOB, "c", "reader"),
        "wrapped_key": base64.b64encode(wrapped).decode(),
        "message": header.message,
        "author": header.author,
    }
    url = stack.kacls_url + "/unwrap"

    def burst(count: int) -> None:
        with httpx.Client(timeout=10.0) as http:
            for _ in range(count):
                http.post(url, json=body).raise_for_status()

    start = time.perf_counter()
    burst(n)
    one = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(burst, [n // 4] * 4))
    return one, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    n = parser.parse_args().n
    payload = os.urandom(1024)
    with tempfile.TemporaryDirectory() as root, HybridStack(Path(root), ORG, MEMBERS) as stack:
        alice, bob = stack.client(ALICE), stack.client(BOB)
        alice.seal_message("c", payload, message="warm")  # grants, tokens, connections, JWKS
        ids = [f"m-{i}" for i in range(n)]
        start = time.perf_counter()
        sealed = [alice.seal_message("c", payload, message=i) for i in ids]
        seal = time.perf_counter() - start
        bob.open_message("c", sealed[0], message=ids[0])
        start = time.perf_counter()
        for i, message in zip(ids, sealed, strict=True):
            bob.cache.clear()
            bob.open_message("c", message, message=i)
        cold = time.perf_counter() - start
        for i, message in zip(ids, sealed, strict=True):
            bob.open_message("c", message, message=i)  # fill the cache
        start = time.perf_counter()
        for _ in range(10):
            for i, message in zip(ids, sealed, strict=True):
                bob.open_message("c", message, message=i)
        warm = time.perf_counter() - start
        one, four = _unwrap_rates(stack, sealed[0], n)
    # The same /unwrap burst against a key service that flushes every audit record to disk
    # (audit_sync: full, the behaviour before issue 25), in the same run.
    with (
        tempfile.TemporaryDirectory() as root,
        HybridStack(Path(root), ORG, MEMBERS, audit_sync="full") as durable,
    ):
        durable.client(ALICE).seal_message("c", payload, message="warm")
        full_sealed = durable.client(ALICE).seal_message("c", payload, message="m-0")
        full_one, full_four = _unwrap_rates(durable, full_sealed, n)
    result = {
        "messages": n,
        "payload_bytes": len(payload),
        "seal_per_s": _rate(n, seal),
        "open_cold_per_s": _rate(n, cold),
        "open_warm_per_s": _rate(10 * n, warm),
        "kacls_unwrap_req_per_s_1_thread": _rate(n, one),
        "kacls_unwrap_req_per_s_4_threads": _rate(4 * (n // 4), four),
        "kacls_unwrap_full_sync_req_per_s_1_thread": _rate(n, full_one),
        "kacls_unwrap_full_sync_req_per_s_4_threads": _rate(4 * (n // 4), full_four),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
