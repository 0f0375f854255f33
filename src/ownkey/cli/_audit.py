"""``ownkey audit``: verify an org's audit chain and export its key-usage log.

``verify ORG`` recomputes the org's hash chain from the database and checks every signed
checkpoint against the configured signing key, or only against the ``--public-key`` keys when
given (a verifier who does not trust the operator's disk); with ``--since-head SEQ:HASH`` (a
head printed by an earlier verify, or witnessed in the customer's key-manager log by ``audit
witness``) it also fails unless the chain still extends that head, so a cut, a rewrite or an
erasure shows; with ``--witness-log FILE`` (an export of the customer's own key-manager log:
CloudTrail JSON, the local store's ``local-keys.log``, a KMIP log as JSON lines) it checks every
head witnessed there: each a prefix of the chain, heads only growing, no gap longer than the
witness interval ("the witness stopped at ..."). It says which anchor it checked against and how
old it is. Exit 0 when it holds (and prints the head to remember), 1 with the problems.
``export ORG --format jsonl|csv`` prints the org's events (optionally filtered like a usage
report) with their sequence numbers and hashes; JSON lines carry the signed checkpoints too
(``{"checkpoint": {...}}`` lines). ``witness ORG`` puts the head in the org's key manager's log.

Both open the deployment like every other command (the runtime at ``--home`` /
``--database-url``, ``OWNKEY_HOME`` / ``OWNKEY_DATABASE_URL``). Errors are one line on stderr,
never a traceback nor the database URL: bad input (or an org without an audit log) exits 2; a
database, audit or configuration failure, or an event that cannot be read, exits 1.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ownkey.cli._common import (
    CLI_ACTOR,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    checked,
    emit_json,
    fail,
    moment,
    runtime,
)
from ownkey.errors import AuditDamaged, LimitExceeded, NotFound

if TYPE_CHECKING:
    from ownkey.audit._chain import ChainProblem, ChainReport
    from ownkey.audit._witness_log import WitnessEntry
    from ownkey.storage import AuditLog, AuditQuery
    from ownkey.storage._audit import ExportedEvent

audit_app = typer.Typer(
    help="Verify and export the tamper-evident audit log.", no_args_is_help=True
)

EXIT_TAMPERED = 1


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _time_ms(option: str, text: str | None) -> int | None:
    """Epoch milliseconds from ``2024-05-01``, ``2024-05-01T12:00:00Z`` or Unix *seconds*: the
    one time rule of every command (``revoke`` too), checked within 1970..9999."""
    seconds = moment(option, text)
    return None if seconds is None else int(seconds * 1000)


#: The outcomes an audit event records; ``--outcome`` takes one of them.
OUTCOMES = ("ok", "denied", "unavailable", "failed")


def audit_query(
    user: str | None,
    asset_id: str | None,
    service_id: str | None,
    operation: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    *,
    export: bool,
) -> AuditQuery:
    """The filters of ``audit export`` and ``audit events``, checked once for both (exit 2)."""
    from ownkey.policy import check_id, check_service_id
    from ownkey.storage import AuditQuery

    if service_id is not None:
        checked(check_service_id, "--service-id", service_id)
    if asset_id is not None:
        checked(check_id, "--asset-id", asset_id)
    if outcome is not None and outcome not in OUTCOMES:
        fail(f"--outcome: one of {', '.join(OUTCOMES)}; not {outcome!r}", EXIT_BAD_INPUT)
    query = AuditQuery(
        user=user,
        asset_id=asset_id,
        service_id=service_id,
        operation=operation,
        outcome=outcome,
        since_ms=_time_ms("--since", since),
        until_ms=_time_ms("--until", until),
        export=export,
    )
    try:
        query.window()
    except (ValueError, LimitExceeded) as exc:
        fail(f"--since/--until: {exc}", EXIT_BAD_INPUT)
    return query


def _public_keys(texts: list[str] | None) -> dict[str, bytes]:
    from ownkey.envelope import sha256

    keys: dict[str, bytes] = {}
    for text in texts or []:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            fail(f"--public-key: not hex: {text!r}", EXIT_BAD_INPUT)
        if len(raw) != 32:
            fail("--public-key: an Ed25519 public key is 32 bytes (64 hex digits)", EXIT_BAD_INPUT)
        keys["ed25519:" + sha256(raw).hex()[:16]] = raw
    return keys


def _unreadable(org: str, where: str) -> NoReturn:
    fail(
        f"the audit log of {org!r} holds an event that cannot be read ({where}); "
        f"run ownkey audit verify {org}",
        EXIT_FAILED,
    )


WitnessLogOption = Annotated[
    Path | None,
    typer.Option(
        "--witness-log",
        help="An export of the customer's own key-manager log (CloudTrail JSON or lookup-events "
        "output, the local store's local-keys.log, a KMIP log as JSON lines): every head "
        "witnessed there must be a prefix of the chain, heads only grow, and no gap may be "
        "longer than the witness interval.",
    ),
]
WitnessKeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--witness-key",
        help="Count only witness calls under this key (ARN or key id; repeatable).",
    ),
]
WitnessIntervalOption = Annotated[
    str | None,
    typer.Option(
        "--witness-interval",
        help="The interval the witness ran at (DURATION; default OWNKEY_AUDIT_WITNESS_INTERVAL, "
        "else 3600; 0: no gap check).",
    ),
]


def _interval_s(text: str | None) -> float:
    """The witness interval by the setting's rule (``serve``'s): a duration of at least 60 s,
    or 0; the setting's value when not given."""
    import os

    from ownkey.errors import InvalidRequest
    from ownkey.policy import parse_duration

    option = "--witness-interval"
    if text is None:
        text, option = os.environ.get(_INTERVAL_ENV, "").strip() or "3600", _INTERVAL_ENV
    if text.strip() in ("0", "0s", "0.0"):
        return 0.0
    try:
        return parse_duration(option, text, minimum=60.0)
    except InvalidRequest as exc:
        fail(f"{exc} (0: no gap check)", EXIT_BAD_INPUT)


_INTERVAL_ENV = "OWNKEY_AUDIT_WITNESS_INTERVAL"


class _Anchors:
    """The external anchors a verify checks against, and what they show beyond the chain."""

    def __init__(
        self,
        org: str,
        remembered: tuple[int, bytes] | None,
        log: Path | None,
        keys: list[str] | None,
        interval: str | None,
    ) -> None:
        import time

        self.org, self.remembered, self.log = org, remembered, log
        self.keys = keys or None
        self.interval_s = _interval_s(interval) if log is not None else 0.0
        self.now_ms = int(time.time() * 1000)
        self.entries: list[WitnessEntry] = []
        self.recorded: list[tuple[int, str, str]] = []
        if log is not None:
            from ownkey.audit._witness_log import read_witness_log, select_entries

            try:
                data = log.read_bytes()
            except OSError as exc:
                fail(f"--witness-log {log}: {exc.strerror or 'cannot be read'}", EXIT_BAD_INPUT)
            try:
                self.entries = select_entries(read_witness_log(org, data), self.keys)
            except ValueError as exc:
                fail(f"--witness-log {log}: {exc}", EXIT_BAD_INPUT)

    @property
    def heads(self) -> list[tuple[int, bytes]]:
        return [(e.seq, e.hash) for e in self.entries]

    def problems(self) -> list[ChainProblem]:
        """What the witness log shows beyond each head being a prefix (checked by verify)."""
        if self.log is None:
            return []
        from ownkey.audit._witness_log import check_recorded, check_timeline, grace_ms

        interval_ms = int(self.interval_s * 1000)
        grace = grace_ms(interval_ms)
        return check_timeline(
            self.org,
            self.entries,
            interval_ms=interval_ms,
            grace_ms=grace,
            until_ms=self.now_ms,
            keys=self.keys,
        ) + check_recorded(self.entries, self.recorded, grace_ms=grace, until_ms=self.now_ms)

    def read_recorded(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Note the witness calls the chain records (each must be in the log), if a log is
        checked against."""
        if self.log is not None:
            from ownkey.audit._witness_log import recorded_witnesses

            self.recorded = recorded_witnesses(bodies)

    def describe(self) -> list[dict[str, Any]]:
        from ownkey.audit._chain import format_head

        anchors: list[dict[str, Any]] = []
        if self.remembered is not None:
            anchors.append({"kind": "remembered_head", "head": format_head(*self.remembered)})
        if self.log is not None:
            from ownkey.audit._witness_log import describe_witness

            anchor = describe_witness(self.entries, self.now_ms)
            anchor.update(file=str(self.log), interval_seconds=int(self.interval_s))
            anchors.append(anchor)
        return anchors

    def lines(self) -> list[str]:
        found = self.describe()
        if not found:
            return [
                "anchor: none, the database alone: a cut of the newest events (any number, "
                "with their checkpoints) cannot show; give --witness-log or --since-head"
            ]
        out = []
        for anchor in found:
            if anchor["kind"] == "remembered_head":
                out.append(f"anchor: remembered head {anchor['head']}")
            elif anchor["newest"] is None:
                out.append(f"anchor: witness log {anchor['file']}: no witnessed head")
            else:
                out.append(
                    f"anchor: witness log {anchor['file']}: {anchor['heads']} witnessed heads, "
                    f"newest {anchor['newest']} at {anchor['newest_at']} "
                    f"({anchor['age_seconds']} s old); events after it rest on the chain alone"
                )
        return out


def _print_report(org: str, report: ChainReport, anchors: _Anchors, as_json: bool) -> None:
    """The verify report with its anchors; exit 1 unless the chain and every anchor hold."""
    from ownkey.audit._chain import format_head

    problems = list(report.problems)
    if report.ok:  # a broken chain says nothing reliable about the witness's timeline
        problems += anchors.problems()
    head = format_head(*report.head)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "org": report.org,
                    "ok": not problems,
                    "records": report.records,
                    "checkpoints": report.checkpoints,
                    "last_seq": report.last_seq,
                    "unsigned_tail": report.unsigned_tail,
                    "head": head,
                    "anchors": anchors.describe(),
                    "problems": [
                        {"seq": p.seq, "kind": p.kind, "detail": p.detail} for p in problems
                    ],
                },
                indent=2,
            )
        )
    else:
        for line in anchors.lines():
            typer.echo(f"{org}: {line}")
        for problem in problems:
            typer.echo(f"{org}: TAMPERED at seq {problem.seq}: {problem.kind} ({problem.detail})")
        if not problems:  # last: the head to remember ends the output
            typer.echo(
                f"{org}: OK, {report.records} events, {report.checkpoints} signed checkpoints, "
                f"{report.unsigned_tail} events after the last checkpoint; head {head}"
            )
    if problems:
        raise typer.Exit(code=EXIT_TAMPERED)


@audit_app.command("verify")
def verify(
    org: Annotated[str, typer.Argument(help="The organisation whose chain to verify.")],
    public_key: Annotated[
        list[str] | None,
        typer.Option(
            "--public-key",
            help="Trust only this Ed25519 public key (64 hex digits; repeatable), not the "
            "signing keys registered in the database under the fleet's root key.",
        ),
    ] = None,
    since_head: Annotated[
        str | None,
        typer.Option(
            "--since-head",
            help="A head seen before (SEQ:HASH): fail unless the chain still extends it.",
        ),
    ] = None,
    witness_log: WitnessLogOption = None,
    witness_key: WitnessKeyOption = None,
    witness_interval: WitnessIntervalOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute ORG's audit chain and check its signed checkpoints and its external anchors
    (a remembered head, every head witnessed in the customer's key-manager log)."""
    from ownkey.audit._chain import parse_head

    keys = _public_keys(public_key)
    remembered = None
    if since_head is not None:
        try:
            remembered = parse_head(since_head)
        except ValueError as exc:
            fail(f"--since-head: {exc}", EXIT_BAD_INPUT)
    anchors = _Anchors(org, remembered, witness_log, witness_key, witness_interval)
    with runtime() as rt:
        if not keys:
            keys.update(rt.audit_public_keys())  # every node's, registered (issue 28)
        log = rt.audit_log
        if log.head(org) is None and remembered is None and not anchors.entries:
            raise NotFound(f"no audit log for org {org!r}")
        report = log.verify(org, keys, since_head=remembered, witnessed_heads=anchors.heads)
        if report.ok and anchors.log is not None:
            from ownkey.storage import AuditQuery

            wraps = AuditQuery(operation="key_manager.wrap", export=True)
            anchors.read_recorded(e.body for e in log.query(org, wraps))
    _print_report(org, report, anchors, as_json)


def _events(log: AuditLog, org: str, query: AuditQuery) -> Iterator[ExportedEvent]:
    """The matching events. A stored body that is not a JSON event (edited in the database)
    ends the export with one line (exit 1), not a traceback: ``verify`` says what happened."""
    events = log.query(org, query)
    while True:
        try:
            event = next(events)
        except StopIteration:
            return
        except AuditDamaged:  # an edited body: not JSON, or not the object the filters read
            _unreadable(org, "not an event")
        yield event


def _csv_row(org: str, event: ExportedEvent) -> list[str]:
    """The event in the audit log's one CSV schema (the console's export is the same)."""
    from ownkey.audit._export import CSV_COLUMNS, csv_row

    try:
        row = csv_row(event.seq, event.hash.hex(), event.body)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        _unreadable(org, f"seq {event.seq}")
    return [row[name] for name in CSV_COLUMNS]


@audit_app.command("export")
def export(
    org: Annotated[str, typer.Argument(help="The organisation whose log to export.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.JSONL
    ),
    user: Annotated[str | None, typer.Option(help="Only events by or about this user.")] = None,
    asset_id: Annotated[str | None, typer.Option("--asset-id", help="Only this asset.")] = None,
    service_id: Annotated[
        str | None, typer.Option("--service-id", help="Only this service ID (4 digits).")
    ] = None,
    operation: Annotated[
        str | None, typer.Option(help="Only this action, e.g. key_manager.unwrap.")
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(help="Only this outcome.", metavar="<ok|denied|unavailable|failed>"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601 or Unix seconds).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this time (default: to the end of the log).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON array instead of the format.")
    ] = False,
) -> None:
    """Print ORG's audit events (all, or those matching the filters) with seq and hash."""
    query = audit_query(
        user, asset_id, service_id, operation, outcome, since, until, export=True
    )  # export: pages through the whole range, no 31-day cut
    with runtime() as rt:
        events = _events(rt.audit_log, org, query)
        if as_json:
            rows = [{"seq": e.seq, "hash": e.hash.hex(), "event": e.body} for e in events]
            typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        elif fmt is ExportFormat.JSONL:
            from ownkey.audit._chain import Checkpoint
            from ownkey.storage._audit import checkpoint_json, with_checkpoints

            for item in with_checkpoints(events, rt.audit_log.checkpoints(org)):
                if isinstance(item, Checkpoint):
                    line: dict[str, Any] = {"checkpoint": checkpoint_json(item)}
                else:
                    line = {"seq": item.seq, "hash": item.hash.hex(), "event": item.body}
                sys.stdout.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        else:
            from ownkey.audit._export import CSV_COLUMNS, spreadsheet_cell

            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)

            for e in events:
                writer.writerow([spreadsheet_cell(cell) for cell in _csv_row(org, e)])
        sys.stdout.flush()


@audit_app.command("verify-export")
def verify_export(
    org: Annotated[str, typer.Argument(help="The organisation the export is of.")],
    path: Annotated[str, typer.Argument(help="A full JSON-lines export ('-' for stdin).")],
    public_key: Annotated[
        list[str],
        typer.Option("--public-key", help="The Ed25519 public key to trust (64 hex digits)."),
    ],
    since_head: Annotated[
        str | None,
        typer.Option("--since-head", help="A head seen before (SEQ:HASH) it must extend."),
    ] = None,
    witness_log: WitnessLogOption = None,
    witness_key: WitnessKeyOption = None,
    witness_interval: WitnessIntervalOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify an unfiltered export offline, trusting only --public-key (no database, no
    OWNKEY_HOME): every hash, every checkpoint and its link, one every 256 records, the
    remembered head and every witnessed head. Exit 0 when it holds, 1 with the problems."""
    from ownkey.audit._chain import parse_head, verify_chain
    from ownkey.audit._export import bounded_lines, read_export

    keys = _public_keys(public_key)
    remembered = None
    if since_head is not None:
        try:
            remembered = parse_head(since_head)
        except ValueError as exc:
            fail(f"--since-head: {exc}", EXIT_BAD_INPUT)
    anchors = _Anchors(org, remembered, witness_log, witness_key, witness_interval)
    try:
        if path == "-":
            records, checkpoints = read_export(org, bounded_lines(sys.stdin))
        else:
            with open(path, encoding="utf-8") as handle:
                records, checkpoints = read_export(org, bounded_lines(handle))
    except OSError as exc:
        fail(f"{path}: {exc.strerror or 'cannot be read'}", EXIT_BAD_INPUT)
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text (an export is JSON lines)", EXIT_BAD_INPUT)
    except ValueError as exc:
        fail(f"{path}: {exc}", EXIT_BAD_INPUT)
    report = verify_chain(
        org, records, checkpoints, keys, remembered_head=remembered, witnessed_heads=anchors.heads
    )
    if report.ok:  # every body is the hashed one: read the witness calls it records
        anchors.read_recorded(json.loads(record.body) for record in records)
    _print_report(org, report, anchors, as_json)


@audit_app.command("witness")
def witness_head(
    org: Annotated[str, typer.Argument(help="The organisation whose chain head to witness.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Put ORG's chain head (SEQ:HASH) in its own key manager's log, as the encryption context
    field ownkey.audit-head of one audited wrap under its customer key. Later, `ownkey audit
    verify ORG --witness-log FILE` (the key manager's log) fails unless the chain still extends
    every head witnessed there. `ownkey serve` does this every OWNKEY_AUDIT_WITNESS_INTERVAL
    seconds (default 3600, 0 = off)."""
    from ownkey.service import witness

    with runtime() as rt:
        done = witness(rt, org)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "org": done.org,
                    "head": done.head,
                    "key": done.key,
                    "provider": done.provider,
                    "key_id": done.key_id,
                }
            )
        )
    else:
        typer.echo(
            f"{org}: head {done.head} witnessed by {done.provider} key {done.key_id} "
            "(encryption context ownkey.audit-head)"
        )


@audit_app.command("reconcile-restore")
def reconcile_restore(
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the database was restored on purpose.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """After a restore of the database: say so in every org's audit chain
    (audit.restore_reconciled) and let this deployment's nodes open content again. Nodes
    refuse opens while the database is behind the audit heads they saw (docs/operations.md,
    "Backup and restore"): first apply again what the restore lost (revocation rules, disabled
    keys, shreds after the dump; the audit export taken before lists them), then run this."""
    with runtime() as rt:
        behind = rt.restore_watch.check()
        if not behind and not yes:
            typer.echo("no org is behind what this node saw: nothing to reconcile")
            return
        if not yes:
            names = ", ".join(sorted(item.org for item in behind))
            fail(
                f"the database is behind for {len(behind)} org(s) ({names}); apply again what "
                "the restore lost, then add --yes"
            )
        told = rt.reconcile_restore(actor=CLI_ACTOR)
    if as_json:
        emit_json({"orgs_told": told, "behind": [item.org for item in behind]})
    else:
        typer.echo(f"restore reconciled: {told} org chain(s) record it; opens resume")
