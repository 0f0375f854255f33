"""Provider call latencies: wrap and unwrap of one 32-byte share against each real key manager.

Run alone (``.venv/bin/python bench/providers.py [--calls N] [--json-only]``) or as part of
``make bench`` (bench/run.py calls :func:`provider_bench`). It starts the same key managers as
the provider tests (tests/providers/_servers.py): the embedded local store in a temp
``OWNKEY_HOME``, SoftHSM2 in a temp token directory, PyKMIP's server on loopback with mutual TLS,
and moto's KMS server on loopback; then, per provider, it creates a key, warms up, and times
``calls`` sequential wraps and unwraps (p50, p95, mean in ms) and 8 threads doing round trips
(round trips per second). Servers are stopped at the end. A manager that cannot start is
reported as an error in the JSON, and the others still run.

What the numbers mean: one wrap or unwrap is what ownkey pays per scope key and cache period
(DESIGN.md: one key-manager call per scope key, not per message). moto is an emulator in Python,
so its figures say nothing about AWS KMS in a region (typically a few ms inside the region).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The key-manager launchers live with the provider tests; this script runs from the repo.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.providers import _servers

from ownkey.keys import KeyProvider

CONTEXT = {
    "purpose": "ownkey.scope-key",
    "orgs": "acme",
    "org": "acme",
    "service_id": "0008",
    "scope": "chat:bench",
    "epoch": "2026-01-01T00:00:00Z",
    "epoch_seconds": "3600",
    "scope_key_id": "00" * 16,
}
THREADS = 8


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(_percentile(ms, 0.95), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def measure(provider: KeyProvider, calls: int) -> dict[str, Any]:
    key_id = provider.create_key(label="bench")
    share = os.urandom(32)
    for _ in range(5):
        provider.unwrap(key_id, provider.wrap(key_id, share, CONTEXT), CONTEXT)
    wraps, unwraps = [], []
    for _ in range(calls):
        started = time.perf_counter()
        wrapped = provider.wrap(key_id, share, CONTEXT)
        middle = time.perf_counter()
        if provider.unwrap(key_id, wrapped, CONTEXT) != share:
            raise SystemExit("a round trip returned other bytes")
        wraps.append(middle - started)
        unwraps.append(time.perf_counter() - middle)
    per_thread = max(5, calls // THREADS)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(per_thread):
                provider.unwrap(key_id, provider.wrap(key_id, share, CONTEXT), CONTEXT)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {
        "calls": calls,
        "wrap": _summary(wraps),
        "unwrap": _summary(unwraps),
        "threads": THREADS,
        "round_trips_per_s": round(THREADS * per_thread / elapsed, 1),
    }


@contextlib.contextmanager
def _providers(workdir: Path) -> Iterator[dict[str, Callable[[], KeyProvider]]]:
    """Factories for each provider; each server starts when its factory is first called."""
    stack = contextlib.ExitStack()
    made: dict[str, Callable[[], KeyProvider]] = {}

    def local() -> KeyProvider:
        from ownkey.providers import LocalKeyStoreProvider

        return LocalKeyStoreProvider(env={"OWNKEY_HOME": str(workdir / "home")})

    def pkcs11() -> KeyProvider:
        from ownkey.providers import Pkcs11Provider

        (workdir / "softhsm").mkdir()
        hsm = stack.enter_context(_servers.softhsm(workdir / "softhsm"))
        return Pkcs11Provider(library=hsm.library, token_label=hsm.token_label, pin=hsm.pin)

    def kmip() -> KeyProvider:
        from ownkey.providers import KmipProvider

        (workdir / "kmip").mkdir()
        server = stack.enter_context(_servers.kmip_server(workdir / "kmip"))
        provider = KmipProvider(
            host=server.host, port=server.port, certfile=str(server.pki.client_cert),
            keyfile=str(server.pki.client_key), ca_file=str(server.pki.ca),
        )
        stack.callback(provider.close)
        return provider

    def aws_kms_moto() -> KeyProvider:
        from ownkey.providers import AwsKmsProvider

        (workdir / "moto").mkdir()
        server = stack.enter_context(_servers.moto_server(workdir / "moto"))
        return AwsKmsProvider(
            region="us-east-1", endpoint_url=server.endpoint,
            credentials={"aws_access_key_id": "bench", "aws_secret_access_key": "bench"},
        )

    made.update(local=local, pkcs11=pkcs11, kmip=kmip, aws_kms_moto=aws_kms_moto)
    with stack:
        yield made


def provider_bench(calls: int = 200, quiet: bool = False) -> dict[str, Any]:
    """Latencies per provider (the ``providers`` section of bench/run.py's JSON)."""
    report: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="ownkey-bench-providers-") as name,
        _providers(Path(name)) as factories,
    ):
        for provider_name, factory in factories.items():
            if not quiet:
                print(f"provider {provider_name} ...", file=sys.stderr)
            try:
                report[provider_name] = measure(factory(), calls)
            except Exception as exc:  # a manager that cannot start: say so, go on
                report[provider_name] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def render(report: dict[str, Any], out: Any = sys.stderr) -> None:
    print("provider        wrap p50/p95 ms    unwrap p50/p95 ms   8 threads rt/s", file=out)
    for name, entry in report.items():
        if "error" in entry:
            print(f"{name:<15} error: {entry['error']}", file=out)
            continue
        wrap, unwrap = entry["wrap"], entry["unwrap"]
        print(
            f"{name:<15} {wrap['p50_ms']:>7.3f} / {wrap['p95_ms']:<8.3f} "
            f"{unwrap['p50_ms']:>7.3f} / {unwrap['p95_ms']:<8.3f} "
            f"{entry['round_trips_per_s']:>10.1f}",
            file=out,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="sequential calls per provider")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    report = provider_bench(args.calls, quiet=args.json_only)
    if not args.json_only:
        render(report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
