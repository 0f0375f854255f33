"""``ownkey demo``: the whole ownkey story on embedded defaults, narrated, in under a minute.

Everything goes through the :class:`~ownkey.service.Runtime` that ``ownkey serve`` and the admin
commands use: a SQLite database, the embedded local key store and the audit chain under a
throw-away ``OWNKEY_HOME`` (or ``--home``, which must be new or empty, to look around afterwards).
The story: two orgs (acme with a customer key and licensed users, globex partly licensed), a
200 MiB recording sealed as a stream in bounded memory and read back by range, a cross-org chat
under both orgs' keys, personal identifiers, excluded components under the platform key,
coverage, a channel revoked then the whole key (tombstones), access restored, a rotation that
re-wraps without touching content, the audit chain verified, and crypto-shredding.

Every claim the narration makes is checked as it is made; if one does not hold the demo prints
``FAILED: ...`` and exits with code 1, so ``make demo`` and the tests can rely on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ownkey.errors import AccessDenied, InvalidCiphertext, LifecycleError, OwnkeyError

if TYPE_CHECKING:  # rich and the hybrid chapter are imported when the demo runs (startup)
    from rich.console import Console

    from ownkey.keys import RevocationRule
    from ownkey.service import Protector, Runtime

__all__ = ["demo"]

MIB = 1024 * 1024
DAY = 86_400.0
RECORDING_MIB = 200
#: The demo fails if sealing the recording grows the process's peak memory by more than this.
MEMORY_BOUND_MIB = 64
TIME_BOUND_SECONDS = 60.0
_LINE_BYTES = 64
_LINES_PER_BATCH = 4096

ANN, AL = "ann@acme.test", "al@acme.test"  # acme: both licensed
BO, CY = "bo@globex.test", "cy@globex.test"  # globex: bo licensed, cy not

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
    """A readable that generates the recording (hashing it): never more than a batch in memory."""

    def __init__(self, total: int, on_read: Callable[[int], None]) -> None:
        self._total = total
        self._position = 0
        self._pending = memoryview(b"")
        self._on_read = on_read
        self.digest = hashlib.sha256()

    def readinto(self, buffer: memoryview, /) -> int:
        filled = 0
        while filled < len(buffer) and self._position < self._total:
            if not self._pending:
                first = self._position // _LINE_BYTES
                batch = _lines(first, _LINES_PER_BATCH)
                skip = self._position - first * _LINE_BYTES
                self._pending = memoryview(batch)[skip:]
            count = min(len(buffer) - filled, len(self._pending), self._total - self._position)
            chunk = self._pending[:count]
            buffer[filled : filled + count] = chunk
            self.digest.update(chunk)
            self._pending = self._pending[count:]
            filled += count
            self._position += count
        self._on_read(filled)
        return filled


class _HashSink:
    """A writable that only hashes what it is given."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: memoryview, /) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


class _DemoClock:
    """Wall-clock time that the demo can fast-forward (a destruction's waiting period)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _flip(path: Path, offset: int) -> None:
    """Flip the lowest bit of one byte of a file, in place."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes((byte[0] ^ 1,)))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def _keys(plan: Any) -> str:
    return " + ".join(str(key) for key in plan.keys)


# -- requests --------------------------------------------------------------------------------------


def _asset(
    service_id: str,
    org: str,
    owner: str | None,
    component: str,
    *,
    owner_kind: str = "user",
    container: dict[str, Any] | None = None,
    creator: str | None = None,
) -> dict[str, Any]:
    asset: dict[str, Any] = {
        "service_id": service_id,
        "org": org,
        "owner": owner,
        "owner_kind": owner_kind,
        "component": component,
    }
    if container is not None:
        asset["container"] = container
    if creator is not None:
        asset["creator"] = creator
    return asset


def _request(asset: dict[str, Any], scope: str, asset_id: str) -> dict[str, Any]:
    return {"asset": asset, "scope": scope, "asset_id": asset_id}


def _chat(members: list[tuple[str, str]]) -> dict[str, Any]:
    return {"kind": "chat", "members": [{"user": u, "org": o} for u, o in members]}


def _channel(members: list[tuple[str, str]]) -> dict[str, Any]:
    return {"kind": "channel", "members": [{"user": u, "org": o} for u, o in members]}


RECORDING = _request(
    _asset("0001", "acme", ANN, "video", container={"kind": "meeting", "members": []}),
    "meeting-42",
    "recording-42",
)
POLL = _request(
    _asset("0001", "acme", ANN, "poll", container={"kind": "meeting", "members": []}),
    "meeting-42",
    "poll-42",
)
CROSS_ORG = _request(
    _asset("0008", "acme", ANN, "message", container=_chat([(ANN, "acme"), (BO, "globex")])),
    "chat-ann-bo",
    "msg-1",
)
HALF_LICENSED = _request(
    _asset("0008", "globex", CY, "message", container=_chat([(CY, "globex"), (AL, "acme")])),
    "chat-cy-al",
    "msg-2",
)
REACTION = _request(
    _asset("0008", "acme", ANN, "reaction", container=_chat([(ANN, "acme"), (BO, "globex")])),
    "chat-ann-bo",
    "reaction-1",
)
IDENTIFIER = _request(
    _asset("9999", "acme", None, "picture", owner_kind="room"),
    "room-7",
    "name-tag-photo",
)
CHANNELS = {
    name: _request(
        _asset("0008", "acme", ANN, "message", container=_channel([(ANN, "acme"), (AL, "acme")])),
        name,
        f"{name}-msg-1",
    )
    for name in ("chan-eng", "chan-sales")
}


#: Chapter 3's assets: (label, request, the keys its plan must name).
_CASES = [
    ("cross-org chat ann(acme) <-> bo(globex)", CROSS_ORG, "customer:acme + customer:globex"),
    ("chat cy(globex, unlicensed) <-> al(acme)", HALF_LICENSED, "customer:acme + platform"),
    ("room name-tag photo (9999)", IDENTIFIER, "customer:acme"),
    ("poll in ann's meeting (0001, excluded)", POLL, "platform"),
    ("reaction in the chat (0008, excluded)", REACTION, "platform"),
]
_CROSS_LABEL, _HALF_LABEL, _IDENTIFIER_LABEL, _POLL_LABEL = (case[0] for case in _CASES[:4])


# -- the story -------------------------------------------------------------------------------------


class _Story:
    def __init__(self, console: Console, recording_bytes: int) -> None:
        self.console = console
        self.recording_bytes = recording_bytes
        self.started = time.perf_counter()
        self.claims = 0
        self.clock = _DemoClock()
        self.recording_path: Path | None = None

    def fail(self, failure: str) -> NoReturn:
        self.console.print(f"[bold red]FAILED:[/] {failure}")
        raise typer.Exit(code=1)

    def check(self, condition: bool, failure: str) -> None:
        self.claims += 1
        if not condition:
            self.fail(failure)

    def chapter(self, number: int, title: str, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        self.console.print(f"\n[bold cyan]{number}. {title}[/] [dim]({elapsed:.1f} s)[/]")
        self.console.print(text)

    def denied(self, call: Callable[[], object], what: str) -> AccessDenied:
        """Run ``call``, which must be denied; render the tombstone the platform would show."""
        try:
            call()
        except AccessDenied as exc:
            self.console.print(
                f"  [red]\u2020 tombstone[/] {what}: [italic]content unavailable[/] "
                f"[dim](AccessDenied, reason {exc.reason})[/]"
            )
            self.claims += 1
            return exc
        self.fail(f"{what} opened although it should have been denied")

    def opens(self, call: Callable[[], bytes], expected: bytes, what: str) -> None:
        try:
            got = call()
        except OwnkeyError as exc:
            self.fail(f"{what} did not open: {type(exc).__name__}: {exc}")
        self.check(got == expected, f"{what} opened to other bytes")
        self.console.print(f"  [green]\u2713 opens[/] {what}")


@contextlib.contextmanager
def _home(given: Path | None) -> Iterator[Path]:
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="ownkey-demo-") as workdir:
        yield Path(workdir) / "home"


def demo(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Keep the demo's state here (a new directory) instead of a temp one."
        ),
    ] = None,
    recording_mib: Annotated[
        int, typer.Option(help="Size of the made-up recording, in MiB.", min=1, max=4096)
    ] = RECORDING_MIB,
) -> None:
    """Tell the ownkey story on embedded defaults, narrated; exit 1 if a claim does not hold."""
    from ownkey.service import Runtime

    if home is None and isinstance(ctx.obj, dict) and ctx.obj.get("home") is not None:
        home = Path(ctx.obj["home"])  # ownkey --home DIR demo
    if home is not None and home.exists() and (not home.is_dir() or any(home.iterdir())):
        typer.echo(f"ownkey: --home {home} is not empty; the demo needs a new home", err=True)
        raise typer.Exit(code=2)
    from rich.console import Console
    from rich.panel import Panel

    console = Console(highlight=False)
    story = _Story(console, recording_mib * MIB)
    console.print(
        Panel.fit(
            "[bold]ownkey demo[/]: two organisations, their content sealed under keys they "
            "control. Everything runs on this machine: SQLite, the embedded key store and the "
            "audit chain under a throw-away OWNKEY_HOME. Every claim below is checked as it "
            "is made.",
            border_style="cyan",
        )
    )
    with _home(home) as where, tempfile.TemporaryDirectory(prefix="ownkey-demo-blobs-") as blobs:
        env = {"OWNKEY_HOME": str(where)}
        runtime = Runtime.open(env=env, clock=story.clock)
        try:
            _tell(story, runtime, Path(blobs))
            runtime.close()
            _shredded_forever(story, Runtime.open(env=env, clock=story.clock))
            from ownkey.cli import _demo_hybrid

            _demo_hybrid.tell(story)
        finally:
            runtime.close()
        elapsed = time.perf_counter() - story.started
        story.check(
            elapsed < TIME_BOUND_SECONDS,
            f"the demo took {elapsed:.1f} s, more than {TIME_BOUND_SECONDS:.0f} s",
        )
        console.print(
            f"\n[bold]Demo finished in {elapsed:.1f} s[/] (under a minute): "
            f"{story.claims} claims checked, all held."
        )
        if home is not None:
            console.print(
                f"Look around: [bold]ownkey --home {where} coverage acme[/], "
                f"[bold]ownkey --home {where} audit export acme[/]",
                soft_wrap=True,
            )


@dataclasses.dataclass
class _Tale:
    """What the chapters share: the story, the runtime, and what earlier chapters sealed."""

    story: _Story
    rt: Runtime
    blobs: Path
    recording: Path = Path()
    start: int = 0
    end: int = 0
    sealed: dict[str, bytes] = dataclasses.field(default_factory=dict)
    rules: list[RevocationRule] = dataclasses.field(default_factory=list)

    @property
    def console(self) -> Console:
        return self.story.console

    @property
    def protector(self) -> Protector:
        return self.rt.protector

    def read_range(self) -> bytes:
        """The three lines in the middle of the sealed recording (chapter 2 seals it)."""
        with self.recording.open("rb") as stream:
            result: bytes = self.protector.open_range(RECORDING, stream, self.start, self.end)
            return result


def _tell(story: _Story, rt: Runtime, blobs: Path) -> None:
    """The story, chapter by chapter; each checks every claim it makes."""
    tale = _Tale(story, rt, blobs)
    for chapter in (
        _two_orgs,
        _the_recording,
        _who_holds_the_keys,
        _coverage,
        _revocation,
        _re_enabling,
        _rotation,
        _the_audit_chain,
        _crypto_shredding,
    ):
        chapter(tale)
    story.recording_path = tale.recording


def _two_orgs(t: _Tale) -> None:
    story, rt, console = t.story, t.rt, t.console
    story.chapter(
        1,
        "Two organisations",
        "acme creates a customer key in the embedded key store, turns CMK on for recordings "
        "(0001) and team chat (0008), and licenses both its users. globex does the same for "
        "team chat only, with one of its two users licensed.",
    )
    for org, services, users in (
        ("acme", ["0001", "0008"], [(ANN, True), (AL, True)]),
        ("globex", ["0008"], [(BO, True), (CY, False)]),
    ):
        rt.create_org(org, actor="demo")
        rt.create_key(org, actor="demo")
        rt.update_org(org, cmk=True, enable=services, actor="demo")
        for user, licensed in users:
            rt.add_users(org, [user], licensed=licensed, actor="demo")
    from rich.table import Table

    orgs = Table(title=None, header_style="bold")
    for column in ("org", "customer key", "CMK on for", "licensed users", "unlicensed"):
        orgs.add_column(column)
    for entry in rt.orgs():
        key = rt.list_keys(entry.name)[0]
        orgs.add_row(
            entry.name,
            f"{key.ref} ({key.provider} {key.key_id}, {key.state.value})",
            ", ".join(entry.services) + " (+9999 always)",
            ", ".join(u.user for u in rt.users(entry.name, licensed=True)),
            ", ".join(u.user for u in rt.users(entry.name, licensed=False)) or "-",
        )
    console.print(orgs)
    story.check(len(rt.list_keys()) == 3, "expected two customer keys and the platform key")


def _the_recording(t: _Tale) -> None:
    story, rt, console, protector = t.story, t.rt, t.console, t.protector
    size = story.recording_bytes
    story.chapter(
        2,
        f"A {size // MIB} MiB meeting recording, sealed as a stream",
        "ann organised the meeting and holds a CMK licence, so the recording goes under acme's "
        f"key: plan [bold]{_keys(rt.explain(RECORDING))}[/]. The platform sends only the asset; "
        "ownkey reads acme's settings from its directory. The recording is generated on the fly "
        "and sealed segment by segment into a file.",
    )
    t.recording = t.blobs / "recording-42.sealed"
    rss_before = _peak_rss_mib()
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
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
        task = progress.add_task("seal", total=size)
        source = _RecordingSource(size, lambda count: progress.advance(task, count))
        started = time.perf_counter()
        with t.recording.open("wb") as out:
            sealed_size = protector.seal_stream(RECORDING, source, out)
        seconds = time.perf_counter() - started
    growth = _peak_rss_mib() - rss_before
    console.print(
        f"Sealed {size // MIB} MiB into {sealed_size:,} bytes in {seconds:.2f} s "
        f"({size / seconds / 1e6:,.0f} MB/s); peak memory grew by {growth:.0f} MiB."
    )
    story.check(t.recording.stat().st_size == sealed_size, "the sealed file has another size")
    story.check(
        growth < MEMORY_BOUND_MIB,
        f"sealing grew peak memory by {growth:.0f} MiB (bound {MEMORY_BOUND_MIB} MiB)",
    )
    start = t.start = size // 2 - 2 * _LINE_BYTES
    end = t.end = start + 3 * _LINE_BYTES
    started = time.perf_counter()
    piece = t.read_range()
    range_ms = (time.perf_counter() - started) * 1000
    story.check(piece == _expected(t.start, t.end), "the ranged read differs from the original")
    console.print(
        f"Bytes {start:,} to {end:,} from the middle, in {range_ms:.1f} ms (only the segments "
        "covering them are decrypted):"
    )
    for line in piece.decode("ascii").splitlines():
        console.print(f"  [dim]{line.rstrip()}[/]")
    whole = _HashSink()
    with t.recording.open("rb") as stream:
        protector.open_stream(RECORDING, stream, whole)
    story.check(
        whole.size == size and whole.digest.digest() == source.digest.digest(),
        "the whole recording did not open to the original bytes",
    )
    console.print("[green]The range matches, and the whole recording opens to the same SHA-256.[/]")
    segment = rt.settings.segment_size
    header = sealed_size - size - 16 * -(-size // segment)  # what precedes the first segment
    flip_at = header + start + 16 * (start // segment)  # the ciphertext of plaintext byte `start`
    _flip(t.recording, flip_at)
    try:
        t.read_range()
    except InvalidCiphertext:
        story.check(True, "")
        console.print(
            f"One bit flipped at byte {flip_at:,} of the sealed file: the range read is refused "
            "(InvalidCiphertext, the same opaque error for any change); bit flipped back."
        )
    else:
        story.fail("a tampered recording opened")
    finally:
        _flip(t.recording, flip_at)


def _who_holds_the_keys(t: _Tale) -> None:
    story, rt, console, protector, sealed = t.story, t.rt, t.console, t.protector, t.sealed
    story.chapter(
        3,
        "Who holds the keys, asset by asset",
        "Each asset's plan comes from the seed's rules and the orgs' settings. A chat between "
        "two licensed users of different orgs needs both orgs' keys; with an unlicensed side "
        "the platform key stands in for it. Personal identifiers (9999) need no enabling and no "
        "licence. Polls (0001) and reactions (0008) are excluded by the seed.",
    )
    from rich.table import Table

    plans = Table(header_style="bold")
    for column in ("asset", "keys needed to open", "protection", "envelope"):
        plans.add_column(column)
    for label, request, expected in _CASES:
        plan = rt.explain(request)
        keys = _keys(plan)
        story.check(keys == expected, f"{label}: plan {keys}, expected {expected}")
        payload = f"{label}: hello".encode()
        sealed[label] = protector.seal(request, payload)
        story.check(
            protector.open(request, sealed[label]) == payload, f"{label} did not round-trip"
        )
        plans.add_row(label, keys, plan.protection.value, f"{len(sealed[label])} bytes")
    console.print(plans)
    reason = rt.explain(CROSS_ORG).reasons[-1]
    console.print(f"[dim]why: {reason.rule}: {reason.text}[/]")


def _coverage(t: _Tale) -> None:
    story, rt, console, protector, sealed = t.story, t.rt, t.console, t.protector, t.sealed
    from ownkey.cli._org import coverage_table

    for channel in CHANNELS.values():
        sealed[channel["scope"]] = protector.seal(
            channel, b"roadmap for " + channel["scope"].encode()
        )
    story.chapter(
        4,
        "Coverage: what acme's key protects",
        "Scope keys per service: one per scope (meeting, chat, channel, room) and epoch, "
        "stored only wrapped. A cross-org chat counts for both orgs.",
    )
    report = rt.coverage("acme")
    rows = {s.service_id: s for s in report.services if s.enabled}
    console.print(coverage_table(dataclasses.replace(report, services=tuple(rows.values()))))
    story.check(rows["0001"].customer_scope_keys == 1, "0001: expected one customer scope key")
    story.check(rows["0001"].platform_scope_keys == 1, "0001: expected the poll's platform SK")
    story.check(rows["0008"].customer_scope_keys == 4, "0008: expected 4 customer scope keys")
    story.check(rows["9999"].customer_scope_keys == 1, "9999: expected one customer scope key")


def _revocation(t: _Tale) -> None:
    story, rt, console, protector, sealed = t.story, t.rt, t.console, t.protector, t.sealed
    from ownkey.keys import RevocationRule

    story.chapter(
        5,
        "acme revokes one channel, then its whole key",
        "A revocation rule acts on the very next call, cached scope keys or not; content it "
        "covers is refused with AccessDenied, which the platform renders as a tombstone.",
    )
    eng, sales = CHANNELS["chan-eng"], CHANNELS["chan-sales"]
    channel_rule = RevocationRule(org="acme", service_id="0008", scope="chan-eng", note="demo")
    preview = rt.preview(channel_rule)
    console.print(
        f"Preview of revoking chan-eng: {preview.scope_keys} scope key(s) "
        f"{dict(preview.scope_keys_by_service)}; nothing changed yet."
    )
    story.check(preview.scope_keys == 1, "the preview should count one scope key")
    channel_rule = rt.revoke(channel_rule, actor="demo")
    console.print(f"Rule {channel_rule.rule_id}: customer:acme denied for chan-eng.")
    story.denied(lambda: protector.open(eng, sealed["chan-eng"]), "chan-eng message")
    story.opens(
        lambda: protector.open(sales, sealed["chan-sales"]),
        b"roadmap for chan-sales",
        "chan-sales message (another channel)",
    )
    key_rule = rt.revoke(RevocationRule(org="acme", note="demo: whole key"), actor="demo")
    console.print(f"Rule {key_rule.rule_id}: all of customer:acme denied.")
    t.rules = [key_rule, channel_rule]
    story.denied(t.read_range, "the recording (range read)")
    story.denied(lambda: protector.open(CROSS_ORG, sealed[_CROSS_LABEL]), "the cross-org chat")
    story.denied(
        lambda: protector.open(IDENTIFIER, sealed[_IDENTIFIER_LABEL]), "the name-tag photo"
    )
    story.denied(lambda: protector.seal(eng, b"new"), "sealing new chan-eng content")
    story.opens(
        lambda: protector.open(POLL, sealed[_POLL_LABEL]),
        f"{_POLL_LABEL}: hello".encode(),
        "the poll (platform key: not acme's to revoke)",
    )
    console.print(
        "globex's own key is untouched, yet the cross-org chat is denied: either "
        "org's revocation is effective."
    )


def _re_enabling(t: _Tale) -> None:
    story, rt, protector, sealed = t.story, t.rt, t.protector, t.sealed
    story.chapter(
        6,
        "acme re-enables",
        "Revocation is reversible, unlike destruction: acme lifts both rules. Disabling the key "
        "itself denies everything under it the same way, and enabling it restores access.",
    )
    for rule in t.rules:
        rt.admin.lift(rule.rule_id, actor="demo")
    rt.admin.disable_key("customer:acme", actor="demo")
    story.denied(t.read_range, "the recording, key disabled")
    rt.admin.enable_key("customer:acme", actor="demo")
    story.opens(t.read_range, _expected(t.start, t.end), "the recording range")
    story.opens(
        lambda: protector.open(CHANNELS["chan-eng"], sealed["chan-eng"]),
        b"roadmap for chan-eng",
        "chan-eng message",
    )
    story.opens(
        lambda: protector.open(CROSS_ORG, sealed[_CROSS_LABEL]),
        f"{_CROSS_LABEL}: hello".encode(),
        "the cross-org chat",
    )


def _rotation(t: _Tale) -> None:
    story, rt, console, protector, sealed = t.story, t.rt, t.console, t.protector, t.sealed
    story.chapter(
        7,
        "acme rotates its key",
        "A new key version; every scope key wrapped under acme's key is re-wrapped under it by a "
        "resumable job. The content is not touched: same ciphertext bytes, still opening.",
    )
    before = _file_sha256(t.recording)
    chat_before = sealed[_CROSS_LABEL]
    rotation = rt.admin.rotate_key("customer:acme", rewrap=False, actor="demo")
    job = rt.create_job("rewrap", key="customer:acme")
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(
        TextColumn("re-wrapping"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
    ) as bar:
        task = bar.add_task("rewrap", total=job.total)
        status = rt.run_job(job.job_id, progress=lambda s: bar.update(task, completed=s.done))
    story.check(status.state == "done", f"the re-wrap job ended {status.state}")
    acme_ref = rotation.key.ref
    versions = {
        wrap.version
        for record in rt.admin.scope_keys()
        for wrap in record.wraps
        if wrap.key == acme_ref
    }
    story.check(versions == {rotation.key.version}, f"wraps still under versions {versions}")
    after = _file_sha256(t.recording)
    story.check(before == after, "the sealed recording changed")
    console.print(
        f"acme's key is now at {rotation.key.version}; {status.done} scope keys re-wrapped, all "
        f"now under {rotation.key.version}. Sealed recording SHA-256 before and after: "
        f"{before[:16]}... = {after[:16]}..."
    )
    story.opens(t.read_range, _expected(t.start, t.end), "the recording range (unchanged bytes)")
    story.opens(
        lambda: protector.open(CROSS_ORG, chat_before),
        f"{_CROSS_LABEL}: hello".encode(),
        "the cross-org chat (unchanged bytes)",
    )


def _the_audit_chain(t: _Tale) -> None:
    story, rt = t.story, t.rt
    story.chapter(
        8,
        "The audit chain",
        "Every key-manager call, admin change and denial went into a per-org hash chain (a "
        "checkpoint is signed every 256 events). Verifying recomputes every hash. acme's log "
        "is its key-usage report:",
    )
    _usage(story, rt)
    _verify_audit(story, rt)


def _crypto_shredding(t: _Tale) -> None:
    story, rt, console, protector, sealed = t.story, t.rt, t.console, t.protector, t.sealed
    story.chapter(
        9,
        "acme crypto-shreds",
        "Destruction takes two steps: disable, then schedule it after a waiting period (7 days "
        "by default, cancellable). The demo fast-forwards its clock by 7 days; destroying "
        "deletes every wrapped share under the key.",
    )
    admin = rt.admin
    admin.disable_key("customer:acme", actor="demo")
    scheduled = admin.schedule_key_destruction("customer:acme", actor="demo")
    console.print(f"customer:acme disabled, destruction scheduled (state {scheduled.state.value}).")
    story.check(
        _raises(lambda: admin.destroy_key("customer:acme"), LifecycleError),
        "the key was destroyed before its waiting period ended",
    )
    console.print("Destroying now is refused: the waiting period is not over. Fast-forward 7 days.")
    story.clock.advance(7 * DAY + 1)
    evidence = admin.destroy_key("customer:acme", actor="demo")
    console.print(
        f"Destroyed: {evidence.scope_keys} scope keys crypto-shredded "
        f"(evidence SHA-256 {evidence.digest[:16]}... in the audit log)."
    )
    story.check(evidence.scope_keys >= 6, f"only {evidence.scope_keys} scope keys shredded")
    story.denied(t.read_range, "the recording")
    story.denied(lambda: protector.open(CROSS_ORG, sealed[_CROSS_LABEL]), "the cross-org chat")
    story.check(
        _raises(lambda: admin.enable_key("customer:acme"), LifecycleError),
        "a destroyed key could be enabled again",
    )
    console.print("Enabling the destroyed key is refused: destruction is final.")
    story.opens(
        lambda: protector.open(POLL, sealed[_POLL_LABEL]),
        f"{_POLL_LABEL}: hello".encode(),
        "the poll (platform key)",
    )
    story.denied(
        lambda: protector.open(HALF_LICENSED, sealed[_HALF_LABEL]),
        "globex's chat with al (it needed acme's key too)",
    )
    _verify_audit(story, rt)


def _shredded_forever(story: _Story, rt: Runtime) -> None:
    """A new process on the same home: the shredded content still does not open."""
    try:
        path = story.recording_path
        if path is None:
            story.fail("the story ended before the recording was sealed")
        story.console.print("\nA fresh runtime on the same home (as after a restart) tries again:")

        def read() -> bytes:
            with path.open("rb") as sealed:
                result: bytes = rt.protector.open_range(RECORDING, sealed, 0, 64)
                return result

        exc = story.denied(read, "the recording, after a restart")
        story.check(exc.reason == "destroyed", f"denied for {exc.reason}, not destroyed")
    finally:
        rt.close()


def _raises(call: Callable[[], object], error: type[Exception]) -> bool:
    try:
        call()
    except error:
        return True
    return False


def _verify_audit(story: _Story, rt: Runtime) -> None:
    log = rt.audit_log
    keys = rt.audit_public_keys()
    rows = []
    for org in ("acme", "globex", ":platform"):
        report = log.verify(org, keys)
        story.check(report.ok, f"the audit chain of {org} does not verify: {report.problems}")
        rows.append((org, report.records, report.checkpoints, "OK"))
    from rich.table import Table

    table = Table(header_style="bold")
    for column in ("chain", "events", "signed checkpoints", "verify"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    story.console.print(table)


def _usage(story: _Story, rt: Runtime) -> None:
    from ownkey.storage import AuditQuery

    counts: dict[str, int] = {}
    for record in rt.audit_log.query("acme", AuditQuery()):
        action = f"{record.body['action']} ({record.body['outcome']})"
        counts[action] = counts.get(action, 0) + 1
    story.check(counts.get("access.denied (denied)", 0) >= 5, "the denials were not audited")
    story.console.print(
        "  " + ", ".join(f"{action} x{count}" for action, count in sorted(counts.items()))
    )
