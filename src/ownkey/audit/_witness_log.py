"""The witness log: every head the customer's key manager logged, read back and checked.

A witness call (``ownkey audit witness``, ``ownkey serve`` every interval, the key service every
16 records) is one wrap under the customer's own key whose encryption context holds
``{"purpose": "ownkey.audit-witness", "org": ORG, "ownkey.audit-head": "SEQ:HASH"}``. The key
manager logs that context outside ownkey's reach, so the customer's export of its own log lists
every head ownkey ever showed it. :func:`read_witness_log` reads such an export;
:func:`check_timeline` checks what needs no chain (heads only grow, no gap longer than the
interval, one key); :func:`~ownkey.audit._chain.verify_chain` checks that each head is a prefix
of the chain (``witnessed_heads``).

Formats read (``docs/spec/audit-chain.md``, "The witness log"), detected from the content:

- AWS CloudTrail: a delivered log file ``{"Records": [...]}`` (gzip or not), the output of
  ``aws cloudtrail lookup-events`` ``{"Events": [{"CloudTrailEvent": "<json>"}]}``, a JSON array
  of records, or one record per line. A record counts when ``eventName`` is ``Encrypt`` or
  ``GenerateDataKey*``, it has no ``errorCode``, and ``requestParameters.encryptionContext``
  names the witness purpose and the org; ``eventTime`` is when, ``resources[0].ARN`` (else
  ``requestParameters.keyId``) which key.
- ownkey's local key store (``$OWNKEY_HOME/local-keys.log``): one CloudTrail-shaped record per
  line (``eventSource`` ``ownkey.local``).
- A KMIP server's log, as JSON lines ``{"time", "operation": "Encrypt", "unique_identifier",
  "aad"}`` with ``aad`` the hex of the associated data ownkey sent: the canonical context
  encoding (ENV-3), which carries the head.

Pure: the caller reads the file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import itertools
import json
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ownkey.audit._chain import ChainProblem, format_head, parse_head

__all__ = [
    "HEAD_FIELD",
    "MAX_LOG_BYTES",
    "WITNESS_PURPOSE",
    "WitnessEntry",
    "check_recorded",
    "check_sequence",
    "check_timeline",
    "decode_context",
    "describe_witness",
    "grace_ms",
    "read_witness_log",
    "recorded_witnesses",
    "select_entries",
]

#: The encryption-context field that carries the head, and the purpose of a witness call.
HEAD_FIELD: Final = "ownkey.audit-head"
WITNESS_PURPOSE: Final = "ownkey.audit-witness"
#: The largest log (after gunzip) read: a month of CloudTrail for one key is far less.
MAX_LOG_BYTES: Final = 512 * 1024 * 1024
#: The least grace past the interval before a gap is reported: a round takes time, and
#: CloudTrail delivers its records within about 15 minutes.
MIN_GRACE_MS: Final = 900_000
_ENCRYPTS: Final = ("Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext")
_U16 = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class WitnessEntry:
    """One head the key manager logged: when, which head, under which key, from which log."""

    at_ms: int
    seq: int
    hash: bytes
    key: str
    source: str


def decode_context(data: bytes) -> dict[str, str]:
    """The pairs of a canonical context encoding (ENV-3: ``u8 count``, then per pair ``u8
    len(name) || name || u16 len(value) || value``); ValueError if ``data`` is not one."""
    if not data:
        raise ValueError("empty context encoding")
    count, at, pairs = data[0], 1, {}
    for _ in range(count):
        if at >= len(data):
            raise ValueError("context encoding ends early")
        size = data[at]
        name = data[at + 1 : at + 1 + size]
        at += 1 + size
        if len(name) != size or at + 2 > len(data):
            raise ValueError("context encoding ends early")
        (size,) = _U16.unpack_from(data, at)
        value = data[at + 2 : at + 2 + size]
        at += 2 + size
        if len(value) != size:
            raise ValueError("context encoding ends early")
        pairs[name.decode("utf-8")] = value.decode("utf-8")
    if at != len(data):
        raise ValueError("bytes after the context encoding")
    return pairs


def _time_ms(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError("no time")
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _entry(org: str, at: object, context: object, key: str, source: str) -> WitnessEntry | None:
    """A witness entry of ``org`` from one logged call, or None if the call is not one."""
    if not isinstance(context, Mapping):
        return None
    if context.get("purpose") != WITNESS_PURPOSE or context.get("org") != org:
        return None
    head = context.get(HEAD_FIELD)
    if not isinstance(head, str):
        raise ValueError(f"a witness call without {HEAD_FIELD}")
    seq, digest = parse_head(head)
    return WitnessEntry(_time_ms(at), seq, digest, key, source)


def _cloudtrail(org: str, record: Mapping[str, Any]) -> WitnessEntry | None:
    if record.get("eventName") not in _ENCRYPTS or record.get("errorCode"):
        return None
    request = record.get("requestParameters") or {}
    if not isinstance(request, Mapping):
        return None
    resources = record.get("resources") or []
    key = ""
    if isinstance(resources, list) and resources and isinstance(resources[0], Mapping):
        key = str(resources[0].get("ARN") or "")
    key = key or str(request.get("keyId") or "")
    source = "local" if record.get("eventSource") == "ownkey.local" else "cloudtrail"
    return _entry(org, record.get("eventTime"), request.get("encryptionContext"), key, source)


def _kmip(org: str, record: Mapping[str, Any]) -> WitnessEntry | None:
    if record.get("operation") != "Encrypt" or record.get("result", "success") != "success":
        return None
    aad = record.get("aad")
    if not isinstance(aad, str):
        return None
    try:
        context = decode_context(bytes.fromhex(aad))
    except ValueError:
        return None  # associated data of another caller, not a context ownkey sent
    key = str(record.get("unique_identifier") or "")
    return _entry(org, record.get("time"), context, key, "kmip")


def _records(raw: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(raw, Mapping):
        if isinstance(raw.get("Records"), list):
            yield from (r for r in raw["Records"] if isinstance(r, Mapping))
        elif isinstance(raw.get("Events"), list):  # aws cloudtrail lookup-events
            for event in raw["Events"]:
                inner = event.get("CloudTrailEvent") if isinstance(event, Mapping) else None
                parsed = json.loads(inner) if isinstance(inner, str) else inner
                if isinstance(parsed, Mapping):
                    yield parsed
        else:
            yield raw
    elif isinstance(raw, list):
        yield from (r for r in raw if isinstance(r, Mapping))


def _documents(text: str) -> Iterator[object]:
    """The whole text as one JSON document, else one per non-empty line."""
    try:
        yield json.loads(text)
        return
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                raise ValueError(f"line {number} is not JSON") from None


def read_witness_log(org: str, data: bytes) -> list[WitnessEntry]:
    """The witnessed heads of ``org`` in a key manager's log export (any format above, gzip or
    not), in time order; ValueError if the data is not such a log or a witness call in it
    carries no readable head."""
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
                data = handle.read(MAX_LOG_BYTES + 1)
        except (OSError, EOFError):
            raise ValueError("not a gzip file") from None
    if len(data) > MAX_LOG_BYTES:
        raise ValueError(f"larger than {MAX_LOG_BYTES // 2**20} MiB: not a key manager log")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text (a key manager log is JSON)") from None
    entries: list[WitnessEntry] = []
    try:
        for document in _documents(text):
            for record in _records(document):
                entry = _kmip(org, record) if "aad" in record else _cloudtrail(org, record)
                if entry is not None:
                    entries.append(entry)
    except RecursionError:
        raise ValueError("nested too deep: not a key manager log") from None
    except (TypeError, AttributeError, OverflowError) as exc:
        raise ValueError(f"not a key manager log ({type(exc).__name__})") from None
    return sorted(entries, key=lambda e: (e.at_ms, e.seq))


def _iso(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ordered(entries: Sequence[WitnessEntry]) -> Iterator[tuple[WitnessEntry, WitnessEntry]]:
    return itertools.pairwise(entries)


def _common(entries: Sequence[WitnessEntry], keys: Iterable[str] | None) -> list[ChainProblem]:
    """Heads only grow, one seq has one hash, and (without ``keys``) one key throughout."""
    problems: list[ChainProblem] = []
    for before, after in _ordered(entries):
        if after.seq < before.seq:
            problems.append(
                ChainProblem(
                    after.seq,
                    "truncated",
                    f"the witnessed head went back from {before.seq} ({_iso(before.at_ms)}) "
                    f"to {after.seq} ({_iso(after.at_ms)})",
                )
            )
        elif after.seq == before.seq and after.hash != before.hash:
            problems.append(
                ChainProblem(after.seq, "edited", f"two witnessed hashes at seq {after.seq}")
            )
        if keys is None and after.key != before.key:
            problems.append(
                ChainProblem(
                    after.seq,
                    "witness_key_changed",
                    f"the witness moved from key {before.key} to {after.key} at "
                    f"{_iso(after.at_ms)}; name the customer's key(s) with --witness-key",
                )
            )
    return problems


def select_entries(
    entries: Sequence[WitnessEntry], keys: Iterable[str] | None
) -> list[WitnessEntry]:
    """The entries under one of ``keys`` (a key ARN, or its last path part, the key id); all
    of them if ``keys`` is None."""
    if keys is None:
        return list(entries)
    wanted = set(keys)
    return [e for e in entries if e.key in wanted or e.key.rsplit("/", 1)[-1] in wanted]


def check_timeline(
    org: str,
    entries: Sequence[WitnessEntry],
    *,
    interval_ms: int,
    grace_ms: int,
    until_ms: int,
    keys: Iterable[str] | None = None,
) -> list[ChainProblem]:
    """What the witness log shows without the chain, for a witness run every ``interval_ms``
    (``ownkey serve``): heads only grow; no two consecutive witnessed heads, nor the last one
    and ``until_ms`` (the end of the log), are more than ``interval_ms + grace_ms`` apart
    (*witness_gap*, "the witness stopped at ..."): a witness that stops, fails, or is sent to
    another key (a registry edit) shows. ``keys``: only calls under these keys count (ARN or
    key id); without, a change of key is reported. ``interval_ms`` 0: no gap check."""
    entries = select_entries(entries, keys)
    if not entries:
        return [ChainProblem(0, "witness_gap", f"no witnessed head of {org!r} in the log")]
    problems = _common(entries, keys)
    if interval_ms > 0:
        limit = interval_ms + grace_ms
        for before, after in _ordered(entries):
            if after.at_ms - before.at_ms > limit:
                problems.append(
                    ChainProblem(
                        before.seq,
                        "witness_gap",
                        f"the witness stopped at {_iso(before.at_ms)} (head {before.seq}) "
                        f"until {_iso(after.at_ms)}: {(after.at_ms - before.at_ms) // 1000} s, "
                        f"interval {interval_ms // 1000} s",
                    )
                )
        last = entries[-1]
        if until_ms - last.at_ms > limit:
            problems.append(
                ChainProblem(
                    last.seq,
                    "witness_gap",
                    f"the witness stopped at {_iso(last.at_ms)} (head {last.seq}): none "
                    f"since, {(until_ms - last.at_ms) // 1000} s, interval {interval_ms // 1000} s",
                )
            )
    return problems


def check_sequence(
    org: str,
    entries: Sequence[WitnessEntry],
    *,
    every: int,
    last_seq: int,
    keys: Iterable[str] | None = None,
) -> list[ChainProblem]:
    """The same for a witness made every ``every`` records (the key service's): heads only
    grow, and a multiple of ``every`` up to ``last_seq`` not witnessed is a *witness_gap*."""
    entries = select_entries(entries, keys)
    problems = _common(entries, keys)
    seen = {e.seq for e in entries}
    for seq in range(every, last_seq + 1, every):
        if seq not in seen:
            newest = max((s for s in seen if s < seq), default=0)
            problems.append(
                ChainProblem(
                    seq,
                    "witness_gap",
                    f"the witness stopped at seq {newest}: no witnessed head at {seq} "
                    f"(chain of {org!r} at {last_seq})",
                )
            )
            break
    return problems


def grace_ms(interval_ms: int) -> int:
    """How far past the interval a gap may run before it is reported: 900 s or a tenth of the
    interval, whichever is longer (AUD-13)."""
    return max(MIN_GRACE_MS, interval_ms // 10)


def describe_witness(entries: Sequence[WitnessEntry], now_ms: int) -> dict[str, Any]:
    """What a verify says about a witness log it checked against: how many heads, under which
    keys, the newest (in time) and how old it is at ``now_ms``."""
    newest = entries[-1] if entries else None
    return {
        "kind": "witness_log",
        "heads": len(entries),
        "keys": sorted({e.key for e in entries}),
        "newest": None if newest is None else format_head(newest.seq, newest.hash),
        "newest_at": None if newest is None else _iso(newest.at_ms),
        "age_seconds": None if newest is None else max(0, (now_ms - newest.at_ms) // 1000),
    }


def recorded_witnesses(bodies: Iterable[Mapping[str, Any]]) -> list[tuple[int, str, str]]:
    """The witness calls the chain itself records: ``(at_ms, "SEQ:HASH", key_id)`` of each
    ``key_manager.wrap`` event that succeeded with the witness purpose in its context."""
    found = []
    for body in bodies:
        detail = body.get("detail")
        if (
            body.get("action") == "key_manager.wrap"
            and body.get("outcome") == "ok"
            and isinstance(detail, Mapping)
            and detail.get("purpose") == WITNESS_PURPOSE
            and isinstance(detail.get(HEAD_FIELD), str)
            and isinstance(body.get("at_ms"), int)
        ):
            found.append((int(body["at_ms"]), str(detail[HEAD_FIELD]), str(detail.get("key_id"))))
    return found


def check_recorded(
    entries: Sequence[WitnessEntry],
    recorded: Iterable[tuple[int, str, str]],
    *,
    grace_ms: int,
    until_ms: int,
) -> list[ChainProblem]:
    """Each witness call the chain records (:func:`recorded_witnesses`) within the span the log
    covers (from its first entry to ``until_ms - grace_ms``, CloudTrail's delivery delay) must
    be in the log: one that is not went to another key (a registry edit) or another log, and
    shows at once, without waiting for a gap (*witness_not_in_log*)."""
    if not entries:
        return []
    logged = {format_head(e.seq, e.hash) for e in entries}
    start, end = entries[0].at_ms - grace_ms, until_ms - grace_ms
    for at_ms, head, key_id in recorded:
        if start <= at_ms <= end and head not in logged:
            seq = int(head.partition(":")[0]) if head.partition(":")[0].isdigit() else 0
            return [
                ChainProblem(
                    seq,
                    "witness_not_in_log",
                    f"the chain records a witness of head {head} at {_iso(at_ms)} under key "
                    f"{key_id} that the key manager's log does not hold: the witness went "
                    "to another key",
                )
            ]
    return []
