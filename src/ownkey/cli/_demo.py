"""``ownkey demo``: the envelope told in a few seconds, on a throwaway key, with nothing kept.

A thin interface: every cryptographic step is one call into :mod:`ownkey.envelope`; this module
only makes up content, moves bytes between files and narrates. It exits with code 1 if anything
it shows does not hold (a round trip that differs, a tampered envelope that opens), so a test can
rely on it.
"""

from __future__ import annotations

import resource
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ownkey.envelope import (
    MESSAGE_FIXED_OVERHEAD,
    EncryptionContext,
    MessageCipher,
    ScopeKey,
    open_range,
    seal_stream,
    stream_layout,
)
from ownkey.errors import InvalidCiphertext

__all__ = ["demo"]

MIB = 1024 * 1024
STREAM_BYTES = 64 * MIB
RANGE_BYTES = 3 * 64  # three lines of the made-up recording
_LINE_BYTES = 64
_LINES_PER_BATCH = 4096
CHAT_MESSAGE = "Lunch at noon? The Q3 numbers look good, let's celebrate."


# Line n of the made-up recording is _LINE % n: fixed width, so any offset names its line.
_LINE_TEXT = b"frame %09d | all-hands recording | acme | meeting-42"
_LINE = _LINE_TEXT + b" " * (_LINE_BYTES - 1 - len(_LINE_TEXT % 0)) + b"\n"


def _lines(first: int, count: int) -> bytes:
    return b"".join(map(_LINE.__mod__, range(first, first + count)))


def _expected(start: int, end: int) -> bytes:
    """The plaintext bytes [start, end) of the made-up recording, recomputed from scratch."""
    first, last = start // _LINE_BYTES, (end - 1) // _LINE_BYTES
    text = _lines(first, last - first + 1)
    offset = first * _LINE_BYTES
    return text[start - offset : end - offset]


class _RecordingSource:
    """A readable that generates the recording line by line: never more than a batch in memory."""

    def __init__(self, total: int, on_read: Callable[[int], None]) -> None:
        self._total = total
        self._position = 0
        self._pending = memoryview(b"")
        self._on_read = on_read

    def readinto(self, buffer: memoryview, /) -> int:
        filled = 0
        while filled < len(buffer) and self._position < self._total:
            if not self._pending:
                first = self._position // _LINE_BYTES
                batch = _lines(first, _LINES_PER_BATCH)
                skip = self._position - first * _LINE_BYTES
                self._pending = memoryview(batch)[skip:]
            count = min(len(buffer) - filled, len(self._pending), self._total - self._position)
            buffer[filled : filled + count] = self._pending[:count]
            self._pending = self._pending[count:]
            filled += count
            self._position += count
        self._on_read(filled)
        return filled


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _size(count: int) -> str:
    return f"{count / MIB:.0f} MiB" if count >= MIB else f"{count:,} bytes"


def demo() -> None:
    """Seal and open content with a throwaway key, narrated."""
    console = Console(highlight=False)
    started = time.perf_counter()

    def check(condition: bool, failure: str) -> None:
        if not condition:
            console.print(f"[bold red]FAILED:[/] {failure}")
            raise typer.Exit(code=1)

    console.print(
        Panel.fit(
            "[bold]ownkey demo[/]: content sealed under a key that never leaves this process.\n"
            "Everything runs on this machine with a throwaway key; nothing is kept afterwards.",
            border_style="cyan",
        )
    )

    # 1. A scope key: in production it is stored only wrapped under the customer's key.
    key = ScopeKey(b"demo-scope-key", secrets.token_bytes(32))
    console.print("\n[bold cyan]1. A scope key[/]")
    console.print(
        "In production a scope key is random, one per organisation, service, scope and time "
        "window, and stored only wrapped under the customer's own key. Here it is a throwaway "
        f"one, made for this run: {key!r} (its material never prints)."
    )

    # 2. A chat message, bound to its encryption context.
    console.print("\n[bold cyan]2. Sealing a chat message[/]")
    context = EncryptionContext(
        org="acme",
        service_id="0008",
        scope="chat-4711",
        epoch="2026-11-01T10",
        asset="msg-000001",
        component="message",
    )
    cipher = MessageCipher(key)
    message = CHAT_MESSAGE.encode("utf-8")
    envelope = cipher.seal(message, context)
    overhead = len(envelope) - len(message)
    console.print(f"Message: [italic]{CHAT_MESSAGE!r}[/]")
    context_text = ", ".join(f"{name}={value}" for name, value in context.items())
    console.print(f"Encryption context (bound to the ciphertext, not stored in it): {context_text}")
    sizes = Table(show_header=False, box=None, padding=(0, 2))
    sizes.add_row("plaintext", f"{len(message)} bytes")
    sizes.add_row("envelope", f"{len(envelope)} bytes")
    sizes.add_row(
        "overhead",
        f"{overhead} bytes = {len(key.key_id)} (scope key id) + {MESSAGE_FIXED_OVERHEAD} "
        "(version, suite, nonce, key commitment, tag)",
    )
    console.print(sizes)
    console.print(f"The envelope starts with [dim]{envelope[:24].hex()}...[/]")
    opened = cipher.open(envelope, context)
    check(opened == message, "the opened message differs from the original")
    console.print("[green]Opened the message with the same key and context: it matches.[/]")

    with tempfile.TemporaryDirectory(prefix="ownkey-demo-") as workdir:
        sealed_path = Path(workdir) / "recording.sealed"

        # 3. A large asset, streamed through in bounded memory.
        console.print("\n[bold cyan]3. Sealing a 64 MiB recording as a stream[/]")
        stream_context = EncryptionContext(
            org="acme",
            service_id="0001",
            scope="meeting-42",
            epoch="2026-11-01",
            asset="recording-7",
            component="video",
        )
        console.print(
            "The recording is generated on the fly and sealed segment by segment into a temp "
            "file: no more than a few segments are ever in memory."
        )
        progress = Progress(
            TextColumn("sealing"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            task = progress.add_task("seal", total=STREAM_BYTES)
            source = _RecordingSource(STREAM_BYTES, lambda count: progress.advance(task, count))
            seal_started = time.perf_counter()
            with sealed_path.open("wb") as sink:
                sealed_bytes = seal_stream(key, stream_context, source, sink)
            seal_seconds = time.perf_counter() - seal_started
        console.print(
            f"Sealed {_size(STREAM_BYTES)} into {sealed_bytes:,} bytes "
            f"(+{sealed_bytes - STREAM_BYTES:,} bytes of headers and tags) in "
            f"{seal_seconds:.2f} s, {STREAM_BYTES / seal_seconds / 1e6:,.0f} MB/s."
        )
        console.print(
            f"Peak memory of this whole process so far: {_peak_rss_mib():.0f} MiB "
            "(interpreter included), for a 64 MiB asset."
        )

        # 4. A ranged read: only the segments covering the range are decrypted.
        console.print("\n[bold cyan]4. Reading a range from the middle[/]")
        start = STREAM_BYTES // 2 - 2 * _LINE_BYTES  # straddles a segment boundary
        end = start + RANGE_BYTES
        with sealed_path.open("rb") as sealed:
            layout = stream_layout(key, stream_context, sealed)
            range_started = time.perf_counter()
            piece = open_range(key, stream_context, sealed, start, end)
            range_ms = (time.perf_counter() - range_started) * 1e3
        first, last = start // layout.segment_size, (end - 1) // layout.segment_size
        covering = f"segment {first}" if first == last else f"segments {first}-{last}"
        console.print(
            f"Bytes {start:,} to {end:,}: the stream has {layout.segment_count} segments of "
            f"{layout.segment_size // 1024} KiB; ownkey decrypted {covering} (and the final one, "
            f"which authenticates the length) in {range_ms:.1f} ms."
        )
        check(piece == _expected(start, end), "the ranged read differs from the original")
        for line in piece.decode("ascii").splitlines():
            console.print(f"  [dim]{line.rstrip()}[/]")
        console.print("[green]The range matches the original bytes.[/]")

        # 5. Everything that is not exactly right is refused, with one opaque error.
        console.print("\n[bold cyan]5. What is refused[/]")
        tampered = bytearray(envelope)
        tampered[len(envelope) // 2] ^= 0x01
        wrong_context = EncryptionContext({**context, "org": "globex"})
        # One byte inside the ciphertext of the segment that holds the range's first byte.
        segment_offset, _ = layout.segment_span(first)
        flip_at = segment_offset + start % layout.segment_size
        with sealed_path.open("r+b") as file:
            file.seek(flip_at)
            original = file.read(1)
            file.seek(flip_at)
            file.write(bytes((original[0] ^ 0x01,)))

        def message_wrong_key() -> object:
            other = ScopeKey(key.key_id, secrets.token_bytes(32))
            return MessageCipher(other).open(envelope, context)

        def message_wrong_context() -> object:
            return cipher.open(envelope, wrong_context)

        def message_tampered() -> object:
            return cipher.open(bytes(tampered), context)

        def stream_wrong_context() -> object:
            wrong = EncryptionContext({**stream_context, "asset": "recording-8"})
            with sealed_path.open("rb") as sealed:
                return open_range(key, wrong, sealed, 0, 100)

        def stream_tampered() -> object:
            with sealed_path.open("rb") as sealed:
                return open_range(key, stream_context, sealed, start, end)

        attempts = [
            ("the message with another key of the same id", message_wrong_key),
            ("the message with a wrong context (org=globex)", message_wrong_context),
            ("the message with a single tampered byte", message_tampered),
            ("the recording with a wrong context (another asset id)", stream_wrong_context),
            ("the recording's range with a single tampered byte", stream_tampered),
        ]
        errors: set[str] = set()
        for label, attempt in attempts:
            try:
                attempt()
            except InvalidCiphertext as exc:
                errors.add(f"{type(exc).__name__}: {exc}")
                console.print(f"Opening {label}: [red]refused with {type(exc).__name__}[/]")
            else:
                check(False, f"{label} was accepted")
        check(len(errors) == 1, "the refusals did not all raise the same error")
        console.print(
            f"[green]All {len(attempts)} refused with the same error ({errors.pop()}):[/] "
            "a wrong key, a wrong context and a changed byte look alike, so the error tells an "
            "attacker nothing."
        )

    console.print(
        f"\n[bold]Demo finished[/] in {time.perf_counter() - started:.2f} s; the temp files "
        "and the throwaway key are gone."
    )
