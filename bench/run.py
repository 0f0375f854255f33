"""ownkey bench: envelope throughput beside raw AES-GCM and peer libraries, on this machine.

Run with ``make bench`` (or ``.venv/bin/python bench/run.py [--quick] [--json-only]``). The JSON
object goes to stdout; the tables and progress notes go to stderr, so ``make bench > out.json``
keeps the figures. Not a test and not part of CI: the numbers depend on the machine.

What is measured, and how:

* **1 KiB messages**, in this process: ops/s of ``MessageCipher.seal``/``open`` with a prebuilt
  ``EncryptionContext`` and with a fresh ``dict`` context per message, beside raw pyca ``AESGCM``
  doing one ``encrypt(os.urandom(12), msg, None)`` (one ``decrypt``) per message. The ratio is
  ownkey/raw of the medians.
* **Streams** (64 MiB and 1 GiB; 4 and 32 MiB with ``--quick``): MB/s (10^6 bytes/s of plaintext)
  of ``seal_stream``/``open_stream`` beside raw ``AESGCM`` making one call per 1 MiB chunk. Sealing
  reads from a generator-backed source that copies pseudo-random bytes (a seeded 8 MiB pattern,
  never the whole input) and writes to a sink that only counts; opening reads the sealed bytes
  from a temp file (hot in the page cache) into the same counting sink. Raw and ownkey use the
  same source, sink and file kinds.
* **Peak RSS**: every stream case runs in its own fresh subprocess. After its set-up (interpreter,
  imports, the 16 MiB source pattern) the child resets the kernel's peak-RSS mark (``5`` into
  ``/proc/self/clear_refs``) and reads its RSS; after the case it reads the peak (``VmHWM``). The
  table shows the growth (peak minus RSS before), the JSON both values and the child's
  ``ru_maxrss``. Where the mark cannot be reset, ``ru_maxrss`` before and after is used instead,
  and ``rss_method`` says so.
* **Ranged read**: latency of ``open_range`` for 1 MiB from the middle of the largest sealed
  stream, read from its temp file, beside raw AES-GCM decrypting the 1 MiB chunks that cover the
  same range.
* **Peers**, only when importable (``pip install -e '.[bench]'``): tink AEAD ``AES256_GCM`` and
  streaming AEAD ``AES256_GCM_HKDF_1MB``; aws-encryption-sdk with a raw AES-256 wrapping key
  (``RawMasterKey``, the legacy form of the raw AES keyring) and the committing suite without
  signatures, once with a new data key per message and once through its caching materials
  manager (which, like ownkey's scope key, reuses one data key across messages).

Every figure is the best and the median of a few repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import ownkey
from ownkey.envelope import (
    DEFAULT_SEGMENT_SIZE,
    EncryptionContext,
    MessageCipher,
    ScopeKey,
    open_range,
    open_stream,
    seal_stream,
    sealed_size,
)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MESSAGE_SIZE = 1 * KIB
CHUNK = 1 * MIB
TAG = 16
# A fixed, public benchmark key: the bench never sees a real one.
BENCH_KEY = bytes(range(32))
BENCH_KEY_ID = b"bench-scope-key"
CONTEXT_PAIRS = {
    "org": "acme",
    "service_id": "0008",
    "scope": "chat-4711",
    "epoch": "2026-11-01T10",
    "asset": "msg-000001",
    "component": "message",
}
PATTERN_LEN = 8 * MIB + 4099  # not a multiple of any segment size: segments never repeat
PATTERN_SEED = 20261101
RANGE_LEN = 1 * MIB

Stats = dict[str, float]


# --- sources and sinks shared by every implementation -------------------------------------


class PatternSource:
    """A readable of ``total`` pseudo-random bytes generated from a seeded pattern.

    Byte ``p`` is ``pattern[p % PATTERN_LEN]``, whatever the read sizes, so any range can be
    recomputed to check a ranged read. Only the pattern (16 MiB, doubled for contiguous slices)
    is ever held in memory.
    """

    _pattern: bytes | None = None

    def __init__(self, total: int) -> None:
        self.total = total
        self.position = 0
        self._view = memoryview(self.pattern())

    @classmethod
    def pattern(cls) -> bytes:
        if cls._pattern is None:
            once = random.Random(PATTERN_SEED).randbytes(PATTERN_LEN)
            cls._pattern = once + once
        return cls._pattern

    @classmethod
    def expected(cls, start: int, end: int) -> bytes:
        source = cls(end)
        source.position = start
        return source.read(end - start)

    def readinto(self, buffer: memoryview | bytearray) -> int:
        out = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(out) and self.position < self.total:
            offset = self.position % PATTERN_LEN
            count = min(len(out) - filled, self.total - self.position, PATTERN_LEN)
            out[filled : filled + count] = self._view[offset : offset + count]
            filled += count
            self.position += count
        return filled

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.total - self.position
        buffer = bytearray(min(size, self.total - self.position))
        count = self.readinto(buffer)
        return bytes(buffer[:count])

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class CountingSink:
    """A writable that keeps nothing and counts the bytes it was given."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        size = len(data) if isinstance(data, bytes) else data.nbytes
        self.count += size
        return size

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


def read_full(source: Any, buffer: memoryview) -> int:
    filled = 0
    while filled < len(buffer):
        count = source.readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled


# --- stream implementations: seal(source, sink) and open(path, sink) -----------------------


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def raw_seal(source: PatternSource, sink: CountingSink) -> None:
    aead = AESGCM(BENCH_KEY)
    buffer = memoryview(bytearray(CHUNK))
    index = 0
    while count := read_full(source, buffer):
        sink.write(aead.encrypt(_nonce(index), buffer[:count], None))
        index += 1


def raw_open(path: Path, sink: CountingSink) -> None:
    aead = AESGCM(BENCH_KEY)
    record = memoryview(bytearray(CHUNK + TAG))
    index = 0
    with path.open("rb") as file:
        while count := read_full(file, record):
            sink.write(aead.decrypt(_nonce(index), record[:count], None))
            index += 1


def raw_into_seal(source: PatternSource, sink: CountingSink) -> None:
    aead = AESGCM(BENCH_KEY)
    buffer = memoryview(bytearray(CHUNK))
    out = memoryview(bytearray(CHUNK + TAG))
    index = 0
    while count := read_full(source, buffer):
        size = aead.encrypt_into(_nonce(index), buffer[:count], None, out[: count + TAG])
        sink.write(out[:size])
        index += 1


def raw_into_open(path: Path, sink: CountingSink) -> None:
    aead = AESGCM(BENCH_KEY)
    record = memoryview(bytearray(CHUNK + TAG))
    out = memoryview(bytearray(CHUNK))
    index = 0
    with path.open("rb") as file:
        while count := read_full(file, record):
            size = aead.decrypt_into(_nonce(index), record[:count], None, out[: count - TAG])
            sink.write(out[:size])
            index += 1


def scope_key() -> ScopeKey:
    return ScopeKey(BENCH_KEY_ID, BENCH_KEY)


def ownkey_seal(segment_size: int) -> Callable[[PatternSource, CountingSink], None]:
    key, context = scope_key(), EncryptionContext(CONTEXT_PAIRS)

    def seal(source: PatternSource, sink: CountingSink) -> None:
        seal_stream(key, context, source, sink, segment_size=segment_size)

    return seal


def ownkey_open(path: Path, sink: CountingSink) -> None:
    with path.open("rb") as file:
        open_stream(scope_key(), EncryptionContext(CONTEXT_PAIRS), file, sink)


def tink_streaming(keyset_path: Path) -> Any:
    import tink
    from tink import secret_key_access, streaming_aead

    streaming_aead.register()
    handle = tink.json_proto_keyset_format.parse(keyset_path.read_text(), secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)


def tink_seal(keyset_path: Path) -> Callable[[PatternSource, CountingSink], None]:
    primitive = tink_streaming(keyset_path)
    associated = EncryptionContext(CONTEXT_PAIRS).encoded

    def seal(source: PatternSource, sink: CountingSink) -> None:
        buffer = memoryview(bytearray(CHUNK))
        stream = primitive.new_encrypting_stream(sink, associated)
        while count := read_full(source, buffer):
            stream.write(buffer[:count])
        stream.close()

    return seal


def tink_open(keyset_path: Path) -> Callable[[Path, CountingSink], None]:
    primitive = tink_streaming(keyset_path)
    associated = EncryptionContext(CONTEXT_PAIRS).encoded

    def open_(path: Path, sink: CountingSink) -> None:
        buffer = memoryview(bytearray(CHUNK))
        with path.open("rb") as file:
            stream = primitive.new_decrypting_stream(file, associated)
            while count := read_full(stream, buffer):
                sink.write(buffer[:count])
            stream.close()

    return open_


def esdk_parts() -> tuple[Any, Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import aws_encryption_sdk
        from aws_encryption_sdk.identifiers import (
            Algorithm,
            EncryptionKeyType,
            WrappingAlgorithm,
        )
        from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
        from aws_encryption_sdk.key_providers.raw import RawMasterKey

    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    master_key = RawMasterKey(
        provider_id="ownkey-bench",
        key_id=BENCH_KEY_ID,
        wrapping_key=WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=BENCH_KEY,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        ),
    )
    return client, master_key, Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY


def esdk_seal() -> Callable[[PatternSource, CountingSink], None]:
    client, master_key, algorithm = esdk_parts()

    def seal(source: PatternSource, sink: CountingSink) -> None:
        with client.stream(
            mode="e",
            source=source,
            key_provider=master_key,
            algorithm=algorithm,
            frame_length=CHUNK,
            encryption_context=dict(CONTEXT_PAIRS),
        ) as stream:
            while chunk := stream.read(CHUNK):
                sink.write(chunk)

    return seal


def esdk_open() -> Callable[[Path, CountingSink], None]:
    client, master_key, _ = esdk_parts()

    def open_(path: Path, sink: CountingSink) -> None:
        with (
            path.open("rb") as file,
            client.stream(mode="d", source=file, key_provider=master_key) as stream,
        ):
            while chunk := stream.read(CHUNK):
                sink.write(chunk)

    return open_


STREAM_IMPLS: dict[str, str] = {
    "raw_aesgcm": "raw AESGCM encrypt/decrypt, 1 MiB calls",
    "raw_aesgcm_into": "raw AESGCM encrypt_into/decrypt_into, 1 MiB calls",
    "ownkey": (
        f"ownkey seal_stream/open_stream, {DEFAULT_SEGMENT_SIZE // KIB} KiB segments (default)"
    ),
    "ownkey_1mib": "ownkey seal_stream/open_stream, 1 MiB segments",
    "tink": "tink streaming AEAD AES256_GCM_HKDF_1MB",
    "esdk": "aws-encryption-sdk stream, raw AES key, 1 MiB frames",
}
RAW_BASELINE = "raw_aesgcm"


def stream_sealer(impl: str, keyset: Path) -> Callable[[PatternSource, CountingSink], None]:
    sealers: dict[str, Callable[[], Callable[[PatternSource, CountingSink], None]]] = {
        "raw_aesgcm": lambda: raw_seal,
        "raw_aesgcm_into": lambda: raw_into_seal,
        "ownkey": lambda: ownkey_seal(DEFAULT_SEGMENT_SIZE),
        "ownkey_1mib": lambda: ownkey_seal(CHUNK),
        "tink": lambda: tink_seal(keyset),
        "esdk": esdk_seal,
    }
    return sealers[impl]()


def stream_opener(impl: str, keyset: Path) -> Callable[[Path, CountingSink], None]:
    openers: dict[str, Callable[[], Callable[[Path, CountingSink], None]]] = {
        "raw_aesgcm": lambda: raw_open,
        "raw_aesgcm_into": lambda: raw_into_open,
        "ownkey": lambda: ownkey_open,
        "ownkey_1mib": lambda: ownkey_open,
        "tink": lambda: tink_open(keyset),
        "esdk": esdk_open,
    }
    return openers[impl]()


def sealed_file_name(impl: str) -> str:
    # Both raw variants write the same records, so they open the same file.
    return "raw_aesgcm.sealed" if impl.startswith("raw_aesgcm") else f"{impl}.sealed"


# --- the child process: one stream case, its time and its peak RSS -------------------------


def proc_status_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return None


def start_rss_window() -> tuple[int, str]:
    """Reset the peak-RSS mark if Linux lets us; return (RSS now in KiB, method)."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    return proc_status_kib("VmRSS") or 0, "VmHWM"


def peak_rss_kib(method: str) -> int:
    if method == "VmHWM":
        return proc_status_kib("VmHWM") or 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    impl, op, size, repeat = spec["impl"], spec["op"], spec["size"], spec["repeat"]
    keyset = Path(spec["keyset"])
    times: list[float] = []
    counts: list[int] = []
    if op == "seal":
        PatternSource.pattern()
        sealer = stream_sealer(impl, keyset)
        rss_before, method = start_rss_window()
        for _ in range(repeat):
            source, sink = PatternSource(size), CountingSink()
            started = time.perf_counter()
            sealer(source, sink)
            times.append(time.perf_counter() - started)
            counts.append(sink.count)
    else:
        opener = stream_opener(impl, keyset)
        path = Path(spec["path"])
        rss_before, method = start_rss_window()
        for _ in range(repeat):
            sink = CountingSink()
            started = time.perf_counter()
            opener(path, sink)
            times.append(time.perf_counter() - started)
            counts.append(sink.count)
            if sink.count != size:
                raise SystemExit(f"{impl} opened {sink.count} bytes, expected {size}")
    return {
        "times_s": times,
        "output_bytes": counts[0],
        "rss_before_kib": rss_before,
        "rss_peak_kib": peak_rss_kib(method),
        "rss_method": method,
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


# --- the parent ---------------------------------------------------------------------------


def note(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def summary(times: list[float], work: float) -> Stats:
    """Rates (work per second) of the best and the median repetition."""
    return {"best": work / min(times), "median": work / statistics.median(times)}


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    function()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def peer_status() -> dict[str, str]:
    status = {}
    for name, module in (("tink", "tink"), ("aws-encryption-sdk", "aws_encryption_sdk")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imported = __import__(module)
            version = getattr(imported, "__version__", None)
            if version is None:
                from importlib.metadata import version as dist_version

                version = dist_version(name)
            status[name] = str(version)
        except ImportError:
            status[name] = "not installed"
    return status


def message_bench(ops: int, repeat: int, peers: dict[str, str]) -> dict[str, Any]:
    message = os.urandom(MESSAGE_SIZE)
    urandom = os.urandom
    raw = AESGCM(BENCH_KEY)
    cipher = MessageCipher(scope_key())
    context = EncryptionContext(CONTEXT_PAIRS)
    raw_nonce = urandom(12)
    raw_ct = raw.encrypt(raw_nonce, message, None)
    envelope = cipher.seal(message, context)

    def raw_seal_loop() -> None:
        encrypt = raw.encrypt
        for _ in range(ops):
            encrypt(urandom(12), message, None)

    def raw_open_loop() -> None:
        decrypt = raw.decrypt
        for _ in range(ops):
            decrypt(raw_nonce, raw_ct, None)

    def ownkey_seal_loop() -> None:
        seal = cipher.seal
        for _ in range(ops):
            seal(message, context)

    def ownkey_open_loop() -> None:
        open_ = cipher.open
        for _ in range(ops):
            open_(envelope, context)

    def ownkey_dict_seal_loop() -> None:
        seal = cipher.seal
        for _ in range(ops):
            seal(
                message,
                {
                    "org": "acme",
                    "service_id": "0008",
                    "scope": "chat-4711",
                    "epoch": "2026-11-01T10",
                    "asset": "msg-000001",
                    "component": "message",
                },
            )

    def ownkey_dict_open_loop() -> None:
        open_ = cipher.open
        for _ in range(ops):
            open_(
                envelope,
                {
                    "org": "acme",
                    "service_id": "0008",
                    "scope": "chat-4711",
                    "epoch": "2026-11-01T10",
                    "asset": "msg-000001",
                    "component": "message",
                },
            )

    cases: dict[str, tuple[Callable[[], None], Callable[[], None], int, str]] = {
        "raw_aesgcm": (
            raw_seal_loop,
            raw_open_loop,
            ops,
            "raw AESGCM, encrypt(os.urandom(12), msg, None) / decrypt",
        ),
        "ownkey_prebuilt_context": (
            ownkey_seal_loop,
            ownkey_open_loop,
            ops,
            "ownkey MessageCipher, prebuilt EncryptionContext",
        ),
        "ownkey_dict_context": (
            ownkey_dict_seal_loop,
            ownkey_dict_open_loop,
            ops,
            "ownkey MessageCipher, fresh dict context per message",
        ),
    }
    cases.update(protector_cases(message, ops))
    if peers["tink"] != "not installed":
        import tink
        from tink import aead

        aead.register()
        primitive = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
        associated = context.encoded
        tink_ct = primitive.encrypt(message, associated)

        def tink_seal_loop() -> None:
            for _ in range(ops):
                primitive.encrypt(message, associated)

        def tink_open_loop() -> None:
            for _ in range(ops):
                primitive.decrypt(tink_ct, associated)

        cases["tink_aead"] = (
            tink_seal_loop,
            tink_open_loop,
            ops,
            "tink AEAD AES256_GCM, context encoding as associated data",
        )
    if peers["aws-encryption-sdk"] != "not installed":
        cases.update(esdk_message_cases(message, max(200, ops // 50)))

    # Rounds outside, cases inside: on a shared machine the load drifts, and interleaving
    # gives every case the same conditions, so the ratios hold even when the rates move.
    times: dict[tuple[str, str], list[float]] = {}
    for seal_loop, open_loop, _, _ in cases.values():
        seal_loop()  # warm-up
        open_loop()
    for _ in range(repeat):
        for name, (seal_loop, open_loop, _, _) in cases.items():
            for op, loop in (("seal", seal_loop), ("open", open_loop)):
                started = time.perf_counter()
                loop()
                times.setdefault((name, op), []).append(time.perf_counter() - started)
    results: dict[str, Any] = {}
    for name, (_, _, count, label) in cases.items():
        results[name] = {
            "label": label,
            "ops": count,
            "seal_ops_s": summary(times[(name, "seal")], count),
            "open_ops_s": summary(times[(name, "open")], count),
        }
    base = results["raw_aesgcm"]
    tink_case = results.get("tink_aead")
    for entry in results.values():
        for op in ("seal", "open"):
            median = entry[f"{op}_ops_s"]["median"]
            entry[f"{op}_ratio"] = median / base[f"{op}_ops_s"]["median"]
            if tink_case is not None:
                entry[f"{op}_vs_tink"] = median / tink_case[f"{op}_ops_s"]["median"]
    return {
        "message_bytes": MESSAGE_SIZE,
        "envelope_bytes": len(envelope),
        "overhead_bytes": len(envelope) - MESSAGE_SIZE,
        "context_pairs": len(CONTEXT_PAIRS),
        "repeat": repeat,
        "ratio_basis": "median ops/s over raw_aesgcm median ops/s",
        "cases": results,
    }


def bench_request(asset_id: str = "msg-000001") -> dict[str, Any]:
    """A Team Chat message between two orgs with customer keys, as the platform sends it."""
    members = [
        {"user": "ann@acme.test", "org": "acme"},
        {"user": "bo@globex.test", "org": "globex"},
    ]
    return {
        "orgs": {
            "acme": {"cmk": True, "services": ["0008"], "licensed_users": ["ann@acme.test"]},
            "globex": {"cmk": True, "services": ["0008"], "licensed_users": ["bo@globex.test"]},
        },
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "owner": "ann@acme.test",
            "owner_kind": "user",
            "container": {"kind": "chat", "members": members},
            "component": "message",
        },
        "scope": "chat-4711",
        "asset_id": asset_id,
    }


def protector_cases(
    message: bytes, ops: int
) -> dict[str, tuple[Callable[[], None], Callable[[], None], int, str]]:
    """The full path through ``Protector`` (policy, key checks, cache, cipher), warm: the plain
    ``seal(request, data)`` (one request dict, read again on every call: the memo keys on its
    content, never on its identity), and the prepared handle."""
    from ownkey.service import ProtectorSettings, build_protector

    protector = build_protector(ProtectorSettings(auto_create_keys=True))
    request = {**bench_request(), "actor": "bo@globex.test"}
    sealed = protector.seal(request, message)
    # An ownkey before the prepared path (a baseline run) has no ``prepare``.
    handle = protector.prepare(request) if hasattr(protector, "prepare") else None
    # The same handle with the key-usage log's counting taken out, to measure what it costs
    # (issue 23: <= 25 % of the prepared path). Only here: no setting turns the log off.
    unlogged = None
    if handle is not None and hasattr(protector, "access_log"):
        quiet = build_protector(ProtectorSettings(auto_create_keys=True))
        quiet.access_log = _NoAccessLog()  # type: ignore[assignment]
        quiet.seal(request, message)
        unlogged = quiet.prepare(request)

    def plain_seal() -> None:
        seal = protector.seal
        for _ in range(ops):
            seal(request, message)

    def plain_open() -> None:
        open_ = protector.open
        for _ in range(ops):
            open_(request, sealed)

    def prepared_seal() -> None:
        assert handle is not None
        seal = handle.seal
        for _ in range(ops):
            seal("msg-000001", message, actor="ann@acme.test")

    def prepared_open() -> None:
        assert handle is not None
        open_ = handle.open
        for _ in range(ops):
            open_("msg-000001", sealed, actor="bo@globex.test")

    def unlogged_seal() -> None:
        assert unlogged is not None
        seal = unlogged.seal
        for _ in range(ops):
            seal("msg-000001", message, actor="ann@acme.test")

    def unlogged_open() -> None:
        assert unlogged is not None
        open_ = unlogged.open
        sealed_here = unlogged.seal("msg-000001", message)
        for _ in range(ops):
            open_("msg-000001", sealed_here, actor="bo@globex.test")

    cases = {
        "ownkey_protector": (
            plain_seal,
            plain_open,
            ops,
            "ownkey Protector.seal/open(request, data): policy, key checks, cache, cipher",
        ),
        "ownkey_prepared": (
            prepared_seal,
            prepared_open,
            ops,
            "ownkey Protector.prepare(request) handle: seal/open(asset_id, data), checks kept",
        ),
    }
    if unlogged is not None:
        cases["ownkey_prepared_unlogged"] = (
            unlogged_seal,
            unlogged_open,
            ops,
            "the prepared handle with the key-usage log's counting taken out (cost measure)",
        )
    if handle is None:
        del cases["ownkey_prepared"]
    return cases


class _NoAccessLog:
    """Counts nothing: the baseline of the key-usage log's cost on the prepared path."""

    def note(self, *args: Any, **kwargs: Any) -> None:
        return None

    def flush(self) -> int:
        return 0

    def close(self) -> None:
        return None


def esdk_message_cases(
    message: bytes, ops: int
) -> dict[str, tuple[Callable[[], None], Callable[[], None], int, str]]:
    from aws_encryption_sdk import CachingCryptoMaterialsManager, LocalCryptoMaterialsCache

    client, master_key, algorithm = esdk_parts()
    caching = CachingCryptoMaterialsManager(
        master_key_provider=master_key,
        cache=LocalCryptoMaterialsCache(capacity=100),
        max_age=3600.0,
        max_messages_encrypted=2**28,
    )
    context = dict(CONTEXT_PAIRS)

    def seal_with(**source: Any) -> bytes:
        ciphertext, _ = client.encrypt(
            source=message, algorithm=algorithm, encryption_context=context, **source
        )
        return bytes(ciphertext)

    plain_ct = seal_with(key_provider=master_key)
    cached_ct = seal_with(materials_manager=caching)

    def seal_plain() -> None:
        for _ in range(ops):
            seal_with(key_provider=master_key)

    def open_plain() -> None:
        for _ in range(ops):
            client.decrypt(source=plain_ct, key_provider=master_key)

    def seal_cached() -> None:
        for _ in range(ops):
            seal_with(materials_manager=caching)

    def open_cached() -> None:
        for _ in range(ops):
            client.decrypt(source=cached_ct, materials_manager=caching)

    return {
        "esdk_raw_aes": (
            seal_plain,
            open_plain,
            ops,
            "aws-encryption-sdk, raw AES key, new data key per message",
        ),
        "esdk_raw_aes_caching": (
            seal_cached,
            open_cached,
            ops,
            "aws-encryption-sdk, raw AES key, caching materials manager",
        ),
    }


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"stream case {spec} failed:\n{completed.stderr}")
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def prepare_sealed(impl: str, size: int, path: Path, keyset: Path) -> None:
    with path.open("wb") as file:
        stream_sealer(impl, keyset)(PatternSource(size), file)  # type: ignore[arg-type]


def stream_bench(
    size: int, repeat: int, workdir: Path, keyset: Path, impls: list[str], quiet: bool
) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    for impl in impls:
        entry: dict[str, Any] = {"label": STREAM_IMPLS[impl]}
        for op in ("seal", "open"):
            spec: dict[str, Any] = {
                "impl": impl,
                "op": op,
                "size": size,
                "repeat": repeat,
                "keyset": str(keyset),
            }
            if op == "open":
                path = workdir / sealed_file_name(impl)
                if not path.exists():
                    prepare_sealed(impl, size, path, keyset)
                spec["path"] = str(path)
                entry["sealed_bytes"] = path.stat().st_size
            note(f"  {label_size(size)} {op} {impl} ...", quiet)
            child = run_case(spec)
            entry[op] = {
                "mb_s": summary(child["times_s"], size / 1e6),
                "rss_before_kib": child["rss_before_kib"],
                "rss_peak_kib": child["rss_peak_kib"],
                "rss_growth_kib": child["rss_peak_kib"] - child["rss_before_kib"],
            }
        cases[impl] = entry
    base = cases[RAW_BASELINE]
    for entry in cases.values():
        for op in ("seal", "open"):
            entry[op]["ratio"] = entry[op]["mb_s"]["median"] / base[op]["mb_s"]["median"]
    return {
        "plaintext_bytes": size,
        "repeat": repeat,
        "ratio_basis": "median MB/s over raw_aesgcm median MB/s",
        "cases": cases,
    }


def range_bench(size: int, workdir: Path, repeat: int) -> dict[str, Any]:
    start = size // 2 + 12345  # unaligned, so the range straddles segment boundaries
    end = start + RANGE_LEN
    expected = PatternSource.expected(start, end)
    key, context = scope_key(), EncryptionContext(CONTEXT_PAIRS)
    ownkey_path = workdir / sealed_file_name("ownkey")
    raw_path = workdir / sealed_file_name("raw_aesgcm")
    result: dict[str, Any] = {"plaintext_bytes": size, "start": start, "length": RANGE_LEN}

    with ownkey_path.open("rb") as file:

        def ownkey_range() -> bytes:
            return open_range(key, context, file, start, end)

        if ownkey_range() != expected:
            raise SystemExit("ownkey ranged read returned the wrong bytes")
        times = timed(ownkey_range, repeat)
    segments = (end - 1) // DEFAULT_SEGMENT_SIZE - start // DEFAULT_SEGMENT_SIZE + 1
    result["ownkey"] = {
        "ms": {"best": min(times) * 1e3, "median": statistics.median(times) * 1e3},
        "segments_decrypted": segments + 1,  # the covering ones, and the final one (ENV-5.8)
        "segment_bytes": DEFAULT_SEGMENT_SIZE,
    }

    aead = AESGCM(BENCH_KEY)
    with raw_path.open("rb") as file:

        def raw_range() -> bytes:
            parts = []
            for index in range(start // CHUNK, (end - 1) // CHUNK + 1):
                file.seek(index * (CHUNK + TAG))
                plaintext = aead.decrypt(_nonce(index), file.read(CHUNK + TAG), None)
                base = index * CHUNK
                parts.append(plaintext[max(start - base, 0) : end - base])
            return b"".join(parts)

        if raw_range() != expected:
            raise SystemExit("raw ranged read returned the wrong bytes")
        times = timed(raw_range, repeat)
    result["raw_aesgcm"] = {
        "ms": {"best": min(times) * 1e3, "median": statistics.median(times) * 1e3},
        "chunks_decrypted": (end - 1) // CHUNK - start // CHUNK + 1,
    }
    result["peers"] = "tink-py and aws-encryption-sdk offer no ranged decryption"
    return result


def label_size(size: int) -> str:
    return f"{size // GIB} GiB" if size >= GIB and size % GIB == 0 else f"{size // MIB} MiB"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from cryptography.hazmat.backends.openssl.backend import backend

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "openssl": backend.openssl_version_text(),
        "ownkey": getattr(ownkey, "__version__", None) or _dist_version("ownkey"),
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def write_tink_keyset(path: Path) -> None:
    import tink
    from tink import secret_key_access, streaming_aead

    streaming_aead.register()
    handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    path.write_text(tink.json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN))


# --- output -------------------------------------------------------------------------------


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def render(report: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is a dependency of ownkey, but keep the bench usable without it
        render_plain(report)
        return
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = 120
    summary_rows = summary_table(report)
    if summary_rows:
        table = Table(title="Targets, ratios on this run (median rates)", title_justify="left")
        for column in SUMMARY_COLUMNS:
            table.add_column(column, justify="left" if column == "measure" else "right")
        for row in summary_rows:
            table.add_row(*row)
        console.print(table)
    if "message_1kib" in report:
        render_messages(console, report)
    if "streams" in report:
        render_streams(console, report)
    console.print(
        "Peers: " + ", ".join(f"{name} {status}" for name, status in report["peers"].items())
    )


SUMMARY_COLUMNS = ("measure", "ownkey", "baseline", "ratio", "target")


def summary_table(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per target of issue 13: ownkey's rate, the baseline's, the ratio, the target."""
    rows: list[tuple[str, ...]] = []
    cases = report.get("message_1kib", {}).get("cases", {})
    tink = cases.get("tink_aead")
    if tink is not None:
        for name, label, target in (
            ("ownkey_prepared", "prepared handle (access log on)", "0.80"),
            ("ownkey_prepared_unlogged", "prepared handle, access log off", "-"),
            ("ownkey_protector", "Protector.seal/open(request)", "0.30"),
            ("ownkey_prebuilt_context", "MessageCipher alone", "-"),
            ("raw_aesgcm", "raw AES-GCM (no context)", "-"),
            ("esdk_raw_aes_caching", "AWS ESDK, caching CMM", "-"),
            ("esdk_raw_aes", "AWS ESDK, data key per message", "-"),
        ):
            if name not in cases:
                continue
            for op in ("seal", "open"):
                rows.append(
                    (
                        f"1 KiB {op}, {label}",
                        f"{fmt(cases[name][f'{op}_ops_s']['median'])} ops/s",
                        f"tink {fmt(tink[f'{op}_ops_s']['median'])}",
                        f"{cases[name][f'{op}_vs_tink']:.2f}x",
                        target,
                    )
                )
    logged, unlogged = cases.get("ownkey_prepared"), cases.get("ownkey_prepared_unlogged")
    if logged is not None and unlogged is not None:
        for op in ("seal", "open"):
            on = logged[f"{op}_ops_s"]["median"]
            off = unlogged[f"{op}_ops_s"]["median"]
            rows.append(
                (
                    f"key-usage log cost, prepared {op} ({(1e6 / on - 1e6 / off):.2f} us/message)",
                    f"{fmt(on)} ops/s",
                    f"log off {fmt(off)}",
                    f"{on / off:.2f}x",
                    ">= 0.75",
                )
            )
    http = report.get("http")
    if http is not None:
        echo = http["cases"]["echo"]
        for op in ("seal", "open"):
            case = http["cases"][op]
            rows.append(
                (
                    f"HTTP 1 KiB {op} (p50 {case.get('p50_ms', 0):.1f} / "
                    f"p99 {case.get('p99_ms', 0):.1f} ms)",
                    f"{fmt(case['requests_s'])} req/s",
                    f"echo {fmt(echo['requests_s'])} (p50 {echo.get('p50_ms', 0):.1f} / "
                    f"p99 {echo.get('p99_ms', 0):.1f} ms)",
                    f"{case['ratio_to_echo']:.2f}x",
                    "0.70",
                )
            )
    if http is not None and "seal_batch" in http["cases"]:
        batch = http["cases"]["seal_batch"]
        rows.append(
            (
                f"HTTP 1 KiB seal, {batch['items']} a batch (p50 {batch.get('p50_ms', 0):.1f} ms)",
                f"{fmt(batch['messages_s'])} msg/s",
                f"single /v1/seal {fmt(http['cases']['seal']['requests_s'])} msg/s",
                f"{batch['ratio_to_single_seal']:.1f}x",
                ">= 10x",
            )
        )
    nodes = report.get("nodes")
    if nodes is not None:
        rows.append(
            (
                "HTTP 1 KiB seal, two nodes on one database (1 worker each)",
                f"{fmt(nodes['two_nodes_requests_s'])} req/s",
                f"one node {fmt(nodes['one_node_requests_s'])} req/s",
                f"{nodes['ratio']:.2f}x",
                "-",
            )
        )
    get = report.get("streamed_get")
    if get is not None:
        rows.append(
            (
                f"streamed GET, {label_size(get['plaintext_bytes'])}",
                f"{fmt(get['http_get_mb_s'])} MB/s",
                f"open_stream {fmt(get['open_stream_mb_s'])} MB/s",
                f"{get['ratio']:.2f}x",
                "-",
            )
        )
    return rows


def render_messages(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    messages = report["message_1kib"]
    table = Table(
        title=f"1 KiB messages, ops/s (best / median of {messages['repeat']}); "
        f"envelope {messages['envelope_bytes']} B",
        title_justify="left",
    )
    columns = ["implementation", "seal ops/s", "open ops/s", "seal/raw", "open/raw"]
    with_tink = "tink_aead" in messages["cases"]
    if with_tink:
        columns += ["seal/tink", "open/tink"]
    for column in columns:
        table.add_column(column, justify="left" if column == "implementation" else "right")
    for name, entry in messages["cases"].items():
        row = [
            name,
            f"{fmt(entry['seal_ops_s']['best'])} / {fmt(entry['seal_ops_s']['median'])}",
            f"{fmt(entry['open_ops_s']['best'])} / {fmt(entry['open_ops_s']['median'])}",
            f"{entry['seal_ratio']:.2f}x",
            f"{entry['open_ratio']:.2f}x",
        ]
        if with_tink:
            row += [f"{entry['seal_vs_tink']:.2f}x", f"{entry['open_vs_tink']:.2f}x"]
        table.add_row(*row)
    console.print(table)
    for name, entry in messages["cases"].items():
        console.print(f"  {name}: {entry['label']}")


def render_streams(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    for label, stream in report["streams"].items():
        table = Table(
            title=f"{label} stream, MB/s (best / median of {stream['repeat']}); "
            "RSS growth of a fresh process",
            title_justify="left",
        )
        for column in (
            "implementation",
            "seal MB/s",
            "open MB/s",
            "seal",
            "open",
            "RSS seal",
            "RSS open",
        ):
            table.add_column(column, justify="left" if column == "implementation" else "right")
        for name, entry in stream["cases"].items():
            table.add_row(
                name,
                f"{fmt(entry['seal']['mb_s']['best'])} / {fmt(entry['seal']['mb_s']['median'])}",
                f"{fmt(entry['open']['mb_s']['best'])} / {fmt(entry['open']['mb_s']['median'])}",
                f"{entry['seal']['ratio']:.2f}x",
                f"{entry['open']['ratio']:.2f}x",
                f"+{fmt(entry['seal']['rss_growth_kib'] / 1024, 1)} MiB",
                f"+{fmt(entry['open']['rss_growth_kib'] / 1024, 1)} MiB",
            )
        console.print(table)
    ranged = report["ranged_read"]
    shown = {name for stream in report["streams"].values() for name in stream["cases"]}
    for name, text in STREAM_IMPLS.items():
        if name in shown:
            console.print(f"  {name}: {text}")
    console.print(
        f"Ranged read of {ranged['length'] // MIB} MiB from the middle of "
        f"{label_size(ranged['plaintext_bytes'])}: ownkey "
        f"{ranged['ownkey']['ms']['median']:.2f} ms median "
        f"({ranged['ownkey']['segments_decrypted']} segments decrypted), raw AESGCM "
        f"{ranged['raw_aesgcm']['ms']['median']:.2f} ms "
        f"({ranged['raw_aesgcm']['chunks_decrypted']} chunks)"
    )


def render_plain(report: dict[str, Any]) -> None:
    out = sys.stderr
    for row in summary_table(report):
        print("  " + " | ".join(row), file=out)
    print("1 KiB messages (median ops/s, ratio to raw)", file=out)
    for entry in report.get("message_1kib", {}).get("cases", {}).values():
        print(
            f"  {entry['label']:<60} seal {fmt(entry['seal_ops_s']['median']):>12} "
            f"({entry['seal_ratio']:.2f}x)  open {fmt(entry['open_ops_s']['median']):>12} "
            f"({entry['open_ratio']:.2f}x)",
            file=out,
        )
    for label, stream in report.get("streams", {}).items():
        print(f"{label} stream (median MB/s, ratio to raw, RSS growth)", file=out)
        for entry in stream["cases"].values():
            print(
                f"  {entry['label']:<60} seal {fmt(entry['seal']['mb_s']['median']):>8} "
                f"({entry['seal']['ratio']:.2f}x)  open {fmt(entry['open']['mb_s']['median']):>8} "
                f"({entry['open']['ratio']:.2f}x)  "
                f"RSS +{entry['seal']['rss_growth_kib'] // 1024}/"
                f"+{entry['open']['rss_growth_kib'] // 1024} MiB",
                file=out,
            )


# --- entry --------------------------------------------------------------------------------


METHOD = {
    "messages": "in process; loops of one call per message; best and median of the repeats",
    "streams": (
        "one fresh subprocess per case; seal: pseudo-random generator-backed source -> "
        "counting sink; open: sealed temp file (page cache) -> counting sink; MB = 10^6 bytes "
        "of plaintext"
    ),
    "rss": (
        "one fresh process per case; after set-up, the peak-RSS mark is reset through "
        "/proc/self/clear_refs and VmRSS read (rss_before); VmHWM after the case is the peak; "
        "growth = peak - before; before includes the interpreter, imports and the 16 MiB "
        "source pattern"
    ),
    "ranged_read": ("open_range of 1 MiB at an unaligned offset in the middle, file already open"),
    "http": (
        "wrk (or a bounded async httpx client) on loopback, 16 connections, against ownkey serve's "
        "app with 2 uvicorn workers on SQLite; seal/open vs a bare echo route in the same server"
    ),
    "streamed_get": "PUT then full GET through ownkey serve vs open_stream in process",
}


SECTIONS = ("messages", "streams", "providers", "http", "get", "nodes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON object")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per measurement")
    parser.add_argument(
        "--no-providers", action="store_true", help="skip the key-manager call latencies"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--json-out",
        default=str(Path(__file__).with_name("results.json")),
        help="where to write the JSON report too (default: bench/results.json)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ownkey-bench-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0
    quiet = args.json_only
    if args.quick:
        message_ops, message_repeat = 20_000, 3
        sizes, stream_repeat = [4 * MIB, 32 * MIB], 2
    else:
        message_ops, message_repeat = 100_000, 5
        sizes, stream_repeat = [64 * MIB, 1 * GIB], 3
    if args.repeat:
        message_repeat = stream_repeat = args.repeat
    only = set(args.only.split(","))
    if args.no_providers:
        only.discard("providers")
    peers = peer_status()
    report: dict[str, Any] = {
        "machine": machine(),
        "peers": peers,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    note(f"ownkey bench on {report['machine']['cpu']} ({report['machine']['cores']} cores)", quiet)
    if "messages" in only:
        note("1 KiB messages ...", quiet)
        report["message_1kib"] = message_bench(message_ops, message_repeat, peers)
    if "streams" in only:
        run_streams(report, args, sizes, stream_repeat, peers, quiet)
    if "providers" in only:  # bench/providers.py: real key managers, started and stopped there
        note("key-manager latencies ...", quiet)
        import providers

        report["providers"] = providers.provider_bench(50 if args.quick else 200, quiet)
    if "nodes" in only:
        import http_load as nodes_load

        note("seals through one node, then two nodes on one database ...", quiet)
        report["nodes"] = nodes_load.nodes_bench(5 if args.quick else 15, 16, quiet)
    if "http" in only or "get" in only:
        import http_load

        if "http" in only:
            note("HTTP through ownkey serve (2 workers) ...", quiet)
            report["http"] = http_load.http_bench(5 if args.quick else 15, 16, quiet)
        if "get" in only:
            size = 64 * MIB if args.quick else GIB
            note(f"streamed GET of {label_size(size)} through ownkey serve ...", quiet)
            report["streamed_get"] = http_load.get_bench(size, quiet)
    report["method"] = METHOD
    if not quiet:
        render(report)
        if "providers" in report:
            import providers

            providers.render(report["providers"])
    text = json.dumps(report, indent=2)
    Path(args.json_out).write_text(text + "\n")
    print(text)
    return 0


def run_streams(
    report: dict[str, Any],
    args: argparse.Namespace,
    sizes: list[int],
    stream_repeat: int,
    peers: dict[str, str],
    quiet: bool,
) -> None:

    impls = ["raw_aesgcm", "raw_aesgcm_into", "ownkey", "ownkey_1mib"]
    impls += [
        name
        for name, dist in (("tink", "tink"), ("esdk", "aws-encryption-sdk"))
        if peers[dist] != "not installed"
    ]
    report["streams"] = {}
    with workspace() as workdir:
        keyset = workdir / "tink-keyset.json"
        if "tink" in impls:
            write_tink_keyset(keyset)
        for size in sizes:
            sizedir = workdir / label_size(size).replace(" ", "")
            sizedir.mkdir()
            # Small streams finish in tens of milliseconds: repeat them more.
            repeat = stream_repeat if args.repeat or size > 64 * MIB else stream_repeat + 2
            report["streams"][label_size(size)] = stream_bench(
                size, repeat, sizedir, keyset, impls, quiet
            )
            expected = sealed_size(size, key_id_len=len(BENCH_KEY_ID))
            if (sizedir / sealed_file_name("ownkey")).stat().st_size != expected:
                raise SystemExit("ownkey sealed stream has an unexpected size")
            if size == sizes[-1]:
                note(f"ranged read from {label_size(size)} ...", quiet)
                report["ranged_read"] = range_bench(size, sizedir, max(15, stream_repeat))
            for sealed in sizedir.iterdir():
                sealed.unlink()


if __name__ == "__main__":
    sys.exit(main())
