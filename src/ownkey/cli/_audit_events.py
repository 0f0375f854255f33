"""``ownkey audit events ORG``: the key-usage log as a table, a page at a time.

The same filters as ``audit export`` (user, asset, service, operation, outcome, a time window of
at most 31 days), for a security admin reading the log at a terminal rather than feeding a SIEM:
one row per event (seq, time, action, outcome, key, actor, service, scope, asset, count),
oldest first, ``--limit`` rows a page (default 50); the footer names the command for the next page
(``--after SEQ``). ``--json`` prints the page as a JSON object with ``next_after``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ownkey.cli._audit import _events, audit_query
from ownkey.cli._common import EXIT_BAD_INPUT, console, emit_json, fail, runtime, table

__all__ = ["events"]

DEFAULT_PAGE = 50
MAX_PAGE = 1000


def events(
    org: Annotated[str, typer.Argument(help="The organisation whose log to read.")],
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
    until: Annotated[str | None, typer.Option(help="Before this time; at most 31 days.")] = None,
    after: Annotated[
        int, typer.Option(help="Start after this seq (the previous page's last).")
    ] = 0,
    limit: Annotated[int, typer.Option(help=f"Rows per page (1-{MAX_PAGE}).")] = DEFAULT_PAGE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page as JSON.")] = False,
) -> None:
    """ORG's audit events as a table (the export's filters), a page at a time."""
    if not 1 <= limit <= MAX_PAGE:
        fail(f"--limit: from 1 to {MAX_PAGE}, not {limit}", EXIT_BAD_INPUT)
    if after < 0:
        fail(f"--after: a seq, 0 or more, not {after}", EXIT_BAD_INPUT)
    query = audit_query(user, asset_id, service_id, operation, outcome, since, until, export=False)
    page: list[dict[str, Any]] = []
    more = False
    with runtime() as rt:
        for event in _events(rt.audit_log, org, query):
            if event.seq <= after:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(_row(event.seq, event.body))
    next_after = page[-1]["seq"] if more else None
    if as_json:
        emit_json({"org": org, "events": page, "next_after": next_after})
        return
    if not page:
        typer.echo(f"no matching events in {org}'s log" + (f" after seq {after}" if after else ""))
        return
    columns = ("seq", "at", "action", "outcome", "key", "actor", "service", "scope", "asset", "n")
    out = console()
    out.print(table(None, columns, [[row[c] for c in _ROW_KEYS] for row in page]))
    if next_after is not None:
        out.print(f"more: ownkey audit events {org} --after {next_after} (same filters)")


# As the console's table: who (actor), on what (service, scope, asset), how often (n: the count
# of an access record, a seal or open counted per minute).
_ROW_KEYS = (
    "seq",
    "at",
    "action",
    "outcome",
    "key",
    "actor",
    "service_id",
    "scope",
    "asset_id",
    "count",
)


def _row(seq: int, body: dict[str, Any]) -> dict[str, Any]:
    from ownkey.storage._audit import iso_ms

    detail = body.get("detail") or {}
    return {
        "seq": seq,
        "at": iso_ms(int(body.get("at_ms", 0))),
        "action": body.get("action"),
        "outcome": body.get("outcome"),
        "key": body.get("key"),
        "actor": body.get("actor"),
        "service_id": detail.get("service_id"),
        "scope": detail.get("scope"),
        "asset_id": detail.get("asset_id"),
        "operation": detail.get("operation"),
        "count": detail.get("count"),
    }
