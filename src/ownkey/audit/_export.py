"""Read a full JSON-lines export back into records and checkpoints, to verify it offline.

A customer who does not trust the operator's database verifies the export it received with the
public key alone (``ownkey audit verify-export``): each event line gives the record's ``seq``,
``hash`` and body (canonical JSON round-trips byte for byte, AUD-2), each ``checkpoint`` line a
signed checkpoint (AUD-5). Both line shapes are read: the command line's
``{"seq", "hash", "event"}`` and the API's flat ``{"seq", "hash", "at", **body}``. Pure: the
caller reads the file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from ownkey.audit._chain import ChainRecord, Checkpoint, canonical_body

__all__ = [
    "CSV_COLUMNS",
    "MAX_LINE_CHARS",
    "bounded_lines",
    "csv_row",
    "read_export",
    "spreadsheet_cell",
]

#: The one CSV schema of the audit log: ``ownkey audit export --format csv`` and the console's
#: usage export write these columns, in this order (issue 23). ``operation`` and ``count`` are
#: those of access records (``content.access``: a seal or open counted per minute); ``detail``
#: is the whole detail as JSON, so nothing of the hashed body is lost.
CSV_COLUMNS = (
    "seq",
    "at",
    "at_ms",
    "action",
    "outcome",
    "actor",
    "user",
    "service_id",
    "scope",
    "asset_id",
    "operation",
    "count",
    "key",
    "reason",
    "detail",
    "hash",
)


def _iso_ms(at_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


def csv_row(seq: int, hash_hex: str, body: Mapping[str, Any]) -> dict[str, str]:
    """One event as a CSV row of :data:`CSV_COLUMNS` (plain text; the caller guards cells with
    :func:`spreadsheet_cell`). Raises KeyError, TypeError or ValueError for a body that is not
    an event (an edited row)."""
    detail = body.get("detail") or {}
    if not isinstance(detail, Mapping):
        raise TypeError("detail is not an object")
    at_ms = int(body["at_ms"])

    def text(value: object) -> str:
        return "" if value is None else str(value)

    return {
        "seq": str(seq),
        "at": _iso_ms(at_ms),
        "at_ms": str(at_ms),
        "action": text(body["action"]),
        "outcome": text(body["outcome"]),
        "actor": text(body.get("actor")),
        "user": text(detail.get("user")),
        "service_id": text(detail.get("service_id")),
        "scope": text(detail.get("scope")),
        "asset_id": text(detail.get("asset_id")),
        "operation": text(detail.get("operation")),
        "count": text(detail.get("count")),
        "key": text(body.get("key")),
        "reason": text(detail.get("reason")),
        "detail": json.dumps(dict(detail), sort_keys=True, ensure_ascii=False),
        "hash": hash_hex,
    }


def spreadsheet_cell(value: object) -> str:
    """``value`` as a CSV cell a spreadsheet will not run as a formula (CSV injection): a cell
    starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``.
    Both CSV exports (``ownkey audit export --format csv``, the console's) write every cell so."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


#: The longest line an export may have: an event's body is a few KiB at most, so a longer "line"
#: is not an export (``cat /dev/zero | ownkey audit verify-export ... -`` grew without bound).
MAX_LINE_CHARS = 1024 * 1024


def bounded_lines(handle: TextIO, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of ``handle``, each read with at most ``limit`` characters in memory;
    ValueError naming the line once one is longer."""
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise ValueError(f"line {number} is longer than {limit} characters: not an export")
        yield line


def _whole(value: object) -> int:
    """A JSON integer, as the export writes it: not ``1.9`` read as 1, not ``true``, not
    ``1e999``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not an integer")
    return value


def _checkpoint(raw: dict[str, Any]) -> Checkpoint:
    previous = raw.get("previous")
    return Checkpoint(
        org=str(raw["org"]),
        seq=_whole(raw["seq"]),
        hash=bytes.fromhex(raw["hash"]),
        signed_at=_whole(raw["signed_at"]),
        key_id=str(raw["key_id"]),
        signature=bytes.fromhex(raw["signature"]),
        previous=None if previous is None else bytes.fromhex(previous),
    )


def read_export(org: str, lines: Iterable[str]) -> tuple[list[ChainRecord], list[Checkpoint]]:
    """The records and checkpoints of ``org``'s export; ValueError naming the line otherwise."""
    records: list[ChainRecord] = []
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if "checkpoint" in raw:
                checkpoints.append(_checkpoint(raw["checkpoint"]))
                continue
            if "event" in raw:
                body = raw["event"]
            else:
                body = {k: v for k, v in raw.items() if k not in ("seq", "hash", "at")}
            records.append(
                ChainRecord(
                    org, _whole(raw["seq"]), canonical_body(body), bytes.fromhex(raw["hash"])
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            # RecursionError: a line nested thousands deep (json.loads gives up, not a traceback)
            raise ValueError(f"line {number} is not an export line") from None
    return records, checkpoints
