"""What the pages show, shaped from the service layer's answers (no rule decided here).

Sums for the charts, the per-day counts of the usage log, CSV rows and the time window of a
filter form: presentation only. Which service is under which key, what a rule denies, what a
key may do next and what a query may span are the service layer's answers, passed through.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ownkey.audit import AuditAction
from ownkey.audit._export import CSV_COLUMNS as AUDIT_CSV_COLUMNS
from ownkey.audit._export import csv_row, spreadsheet_cell
from ownkey.errors import InvalidRequest
from ownkey.policy import check_time
from ownkey.service import Coverage
from ownkey.storage import AuditQuery
from ownkey.storage._audit import ExportedEvent, iso_ms

__all__ = [
    "CSV_COLUMNS",
    "USES",
    "Bar",
    "DayCount",
    "KeyCount",
    "UsageFilter",
    "coverage_summary",
    "csv_text",
    "day_counts",
    "parse_time",
    "row_of",
]

#: Audit actions that are a use of the key (a wrap or an unwrap at the key manager).
USES = frozenset({AuditAction.WRAP.value, AuditAction.UNWRAP.value})
#: The audit log's one CSV schema (the CLI's export writes the same columns).
CSV_COLUMNS = AUDIT_CSV_COLUMNS
_DAY_MS = 86_400_000
#: The widest window a usage query may span (the storage layer refuses more: LimitExceeded).
WINDOW_DAYS = 31
PAGE_ROWS = 100


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a chart: a label, its value, its share of the widest bar in percent."""

    label: str
    value: int
    percent: float
    text: str


@dataclass(frozen=True, slots=True)
class KeyCount:
    """Services and their stored assets and bytes by the key their new content goes under;
    scope keys by the key that wraps them now."""

    protection: str
    label: str
    services: int = 0
    scope_keys: int = 0
    assets: int = 0
    asset_bytes: int = 0


_LABELS = {
    "customer": "Your key (customer)",
    "platform": "Platform key",
    "client_side": "Encrypted on the client",
}


def coverage_summary(coverage: Coverage) -> list[KeyCount]:
    """The coverage report summed by the key each service's new content goes under."""
    sums: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in _LABELS}
    for service in coverage.services:
        row = sums.setdefault(service.protection, [0, 0, 0, 0])
        row[0] += 1
        row[2] += service.assets
        row[3] += service.asset_bytes
        # scope keys by the key that wraps them now (a backfill moves them between the two)
        sums["customer"][1] += service.customer_scope_keys
        sums["platform"][1] += service.platform_scope_keys
    return [
        KeyCount(name, _LABELS.get(name, name), *values)
        for name, values in sums.items()
        if name in _LABELS or any(values)
    ]


def bars(values: Sequence[tuple[str, int, str]]) -> list[Bar]:
    """Bars scaled to the largest value (an all-zero chart draws empty bars)."""
    top = max((value for _, value, _ in values), default=0)
    return [
        Bar(label, value, 0.0 if top == 0 else round(100.0 * value / top, 1), text)
        for label, value, text in values
    ]


@dataclass(frozen=True, slots=True)
class DayCount:
    """One UTC day of the usage chart."""

    day: str
    uses: int
    denials: int


def day_counts(events: Iterable[Mapping[str, Any]], since_ms: int, until_ms: int) -> list[DayCount]:
    """Uses (wraps and unwraps that succeeded) and denials per UTC day of the window."""
    first = since_ms - since_ms % _DAY_MS
    days = {start: [0, 0] for start in range(first, until_ms, _DAY_MS)}
    for body in events:
        at = int(body.get("at_ms", 0))
        slot = days.get(at - at % _DAY_MS)
        if slot is None:
            continue
        if body.get("outcome") == "denied":
            slot[1] += 1
        elif body.get("action") in USES and body.get("outcome") == "ok":
            slot[0] += 1
    return [DayCount(iso_ms(start)[:10], uses, denials) for start, (uses, denials) in days.items()]


def row_of(event: ExportedEvent) -> dict[str, str]:
    """One usage-log row, as the table and the CSV show it (the hashed body's own fields); a
    body edited into something that is not an event shows as such (``audit verify`` says more)."""
    try:
        return csv_row(event.seq, event.hash.hex(), event.body)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update(seq=str(event.seq), action="(not an event)", hash=event.hash.hex())
        return row


def csv_text(rows: Iterable[Mapping[str, str]]) -> Iterable[str]:
    """The CSV lines of ``rows`` (header first), produced as they are read."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([spreadsheet_cell(row[name]) for name in CSV_COLUMNS])
        yield buffer.getvalue()


def parse_time(text: str, name: str) -> int | None:
    """A ``datetime-local`` value (read as UTC) in Unix milliseconds; None when empty.

    The time itself must pass the one rule of ``ownkey.policy`` (1970..9999), like the CLI's and
    the API's; InvalidRequest names the field."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(name, "not a date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        seconds = moment.timestamp()
    except (OverflowError, OSError, ValueError):
        raise InvalidRequest(name, "out of range") from None
    return int(check_time(name, seconds) * 1000)


def _local(ms: int) -> str:
    """Unix milliseconds as a ``datetime-local`` value in UTC, to the millisecond (so that a
    link pins exactly the window a page showed)."""
    moment = dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}"


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """The usage log's filter form, read from the query string; the window defaults to the
    31 days up to now and is never wider (the storage layer's limit, checked there too)."""

    user: str = ""
    asset_id: str = ""
    service_id: str = ""
    operation: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""
    after: int = 0
    now_ms: int = 0
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, params: Mapping[str, str], now_ms: int) -> UsageFilter:
        after = params.get("after", "") or "0"
        if not after.isdigit():
            raise ValueError("after: not a sequence number")
        names = ("user", "asset_id", "service_id", "operation", "outcome", "since", "until")
        values = {name: params.get(name, "").strip() for name in names}
        return cls(
            after=int(after),
            now_ms=now_ms,
            params={k: v for k, v in values.items() if v},
            **values,
        )

    def window(self) -> tuple[int, int]:
        """[since, until) in ms: given ends, else the 31 days up to now (inclusive)."""
        since = parse_time(self.since, "since")
        until = parse_time(self.until, "until")
        span = WINDOW_DAYS * _DAY_MS
        if until is None:
            until = self.now_ms + 1 if since is None else since + span
        if since is None:
            since = until - span
        return since, until

    def query(self) -> AuditQuery:
        """The storage query of the form (its ``window()`` refuses over 31 days)."""
        since, until = self.window()
        query = AuditQuery(
            user=self.user or None,
            asset_id=self.asset_id or None,
            service_id=self.service_id or None,
            operation=self.operation or None,
            outcome=self.outcome or None,
            since_ms=since,
            until_ms=until,
        )
        query.window()
        return query

    def shifted(self, days: int) -> dict[str, str]:
        """The form's parameters with the window moved by ``days`` (paging through time)."""
        since, until = self.window()
        moved = days * _DAY_MS
        params = dict(self.params)
        params["since"] = _local(since + moved)
        params["until"] = _local(until + moved)
        return params

    def pinned(self, **extra: str | int) -> dict[str, str]:
        """The form's parameters with the window this page used written out (CSV, paging)."""
        since, until = self.window()
        params = {**self.params, "since": _local(since), "until": _local(until)}
        params.update({name: str(value) for name, value in extra.items()})
        return params

    def described(self) -> str:
        """The window in words, for the page."""
        since, until = self.window()
        return f"{iso_ms(since)} to {iso_ms(until)}"
