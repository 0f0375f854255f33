"""The SQL audit sink: per-org hash chains with signed checkpoints (docs/spec/audit-chain.md).

:class:`SqlAuditSink` is an :class:`~ownkey.audit.AuditSink`. Each ``record`` appends one event to
its org's chain inside one transaction that holds the org's head row: ``SELECT ... FOR UPDATE``
on PostgreSQL, a ``BEGIN IMMEDIATE`` write transaction on SQLite, so appends for one org are
serialised across processes and nodes (AUD-3). Every ``checkpoint_every`` records (256) the head
is signed with the configured Ed25519 key (AUD-5). If anything fails, ``record`` raises and the
:class:`~ownkey.audit.Auditor` refuses the key operation (AUD-1).

:class:`AuditLog` reads the chains back: verification, the usage-report query and export.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.engine import Connection

from ownkey.audit._chain import (
    CHECKPOINT_INTERVAL,
    GENESIS_HASH,
    ChainHead,
    ChainProblem,
    ChainRecord,
    ChainReport,
    Checkpoint,
    canonical_body,
    checkpoint_link,
    sign_checkpoint,
    verify_chain,
)
from ownkey.audit._events import AuditEvent
from ownkey.envelope import Ed25519Signer, sha256
from ownkey.errors import AuditDamaged, ConfigError, LimitExceeded
from ownkey.storage._engine import Database, ownkey_home
from ownkey.storage._schema import audit_checkpoints, audit_heads, audit_records

__all__ = [
    "CHECKPOINT_EVERY",
    "MAX_QUERY_DAYS",
    "PLATFORM_LOG",
    "AuditLog",
    "AuditQuery",
    "AuditSigningKey",
    "SqlAuditSink",
    "checkpoint_json",
    "event_body",
    "with_checkpoints",
]

CHECKPOINT_EVERY = CHECKPOINT_INTERVAL
MAX_QUERY_DAYS = 31
#: The chain of events that belong to no org (platform-key calls).
PLATFORM_LOG = ":platform"
SIGNING_KEY_ENV = "OWNKEY_AUDIT_SIGNING_KEY"
#: The signing key's file under a home written before issue 28 (imported into the database).
SIGNING_KEY_FILE = "audit-signing.key"
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class AuditSigningKey:
    """The Ed25519 key that signs checkpoints, and its id (a digest of the public key)."""

    signer: Ed25519Signer
    key_id: str
    public_key: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> AuditSigningKey:
        signer = Ed25519Signer(seed)
        public = signer.public_key()
        return cls(signer, "ed25519:" + sha256(public).hex()[:16], public)

    @classmethod
    def given(cls, env: Mapping[str, str] | None = None) -> AuditSigningKey | None:
        """The key ``OWNKEY_AUDIT_SIGNING_KEY`` gives (64 hex digits, or a file holding them or
        32 raw bytes), or None when it is not set."""
        env = os.environ if env is None else env
        setting = env.get(SIGNING_KEY_ENV, "")
        if not setting:
            return None
        if len(setting) == 64 and all(c in "0123456789abcdefABCDEF" for c in setting):
            return cls.from_seed(bytes.fromhex(setting))
        path = Path(setting)
        if not path.exists():
            raise ConfigError(f"{SIGNING_KEY_ENV}: no such file {path}")
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: Path) -> AuditSigningKey:
        """The key in ``path`` (:meth:`read_seed`)."""
        return cls.from_seed(cls.read_seed(path))

    @staticmethod
    def read_seed(path: Path) -> bytes:
        """The seed in ``path`` (64 hex digits or 32 raw bytes). A key file that its group or
        others may read or write is refused (ConfigError)."""
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Like the root key: whoever reads this key can re-sign a rewritten chain (AUD-8).
            raise ConfigError(
                f"the audit signing key file {path} is readable by others "
                f"(mode {stat.S_IMODE(mode):o}); run chmod 600 on it"
            )
        data = path.read_bytes()
        text = data.strip()
        try:
            seed = bytes.fromhex(text.decode("ascii")) if len(text) == 64 else data
        except (UnicodeDecodeError, ValueError):
            seed = data
        if len(seed) != 32:
            raise ConfigError(f"the audit signing key in {path} is not a 32-byte Ed25519 seed")
        return seed

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> AuditSigningKey:
        """From ``OWNKEY_AUDIT_SIGNING_KEY`` (:meth:`given`), else from
        ``$OWNKEY_HOME/audit-signing.key``, created (mode 0600) on first use. A runtime keeps the
        fleet's key in its database instead (``service/_fleet.py``)."""
        env = os.environ if env is None else env
        given = cls.given(env)
        if given is not None:
            return given
        path = ownkey_home(env) / SIGNING_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first: read theirs
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(os.urandom(32).hex() + "\n")
        return cls.from_file(path)


def _checkpoint_of(row: Any) -> Checkpoint:
    return Checkpoint(
        row.org,
        int(row.seq),
        bytes(row.hash),
        int(row.signed_at),
        row.key_id,
        bytes(row.signature),
        None if row.previous is None else bytes(row.previous),
    )


def log_name(event: AuditEvent) -> str:
    """The chain an event belongs to: its org's, or the platform's."""
    return event.org if event.org else PLATFORM_LOG


def event_body(event: AuditEvent) -> dict[str, Any]:
    """The event as the chain hashes it: :meth:`AuditEvent.to_json` with integer ms (AUD-2)."""
    body = event.to_json()
    body.pop("at", None)
    body["at_ms"] = round(event.at * 1000)
    return body


class SqlAuditSink:
    """Appends events to per-org chains; signs a checkpoint every ``checkpoint_every`` records."""

    def __init__(
        self,
        database: Database,
        signing_key: AuditSigningKey,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be positive")
        self._db = database
        self._key = signing_key
        self._every = checkpoint_every
        self._clock = clock

    def _lock_head(self, conn: Connection, org: str) -> ChainHead:
        if self._db.is_postgresql:
            # Imported here: the PostgreSQL dialect costs SQLite users ~0.1 s at every start.
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(
                pg_insert(audit_heads)
                .values(org=org, seq=0, hash=GENESIS_HASH)
                .on_conflict_do_nothing(index_elements=["org"])
            )
            row = conn.execute(
                select(audit_heads).where(audit_heads.c.org == org).with_for_update()
            ).one()
        else:  # SQLite: the transaction is BEGIN IMMEDIATE, so it already holds the write lock
            found = conn.execute(select(audit_heads).where(audit_heads.c.org == org)).first()
            if found is None:
                conn.execute(insert(audit_heads).values(org=org, seq=0, hash=GENESIS_HASH))
                return ChainHead(org)
            row = found
        return ChainHead(org, int(row.seq), bytes(row.hash))

    def record(self, event: AuditEvent, /) -> None:
        self.record_many([event])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """Append events in one transaction per org (bulk loads, tests)."""
        by_org: dict[str, list[AuditEvent]] = {}
        for event in events:
            by_org.setdefault(log_name(event), []).append(event)
        for org, org_events in by_org.items():
            with self._db.engine.begin() as conn:
                head = self._lock_head(conn, org)
                rows = []
                checkpoints: list[dict[str, Any]] = []
                last: list[bytes] = []
                for event in org_events:
                    body = event_body(event)
                    record = head.append(canonical_body(body))
                    detail = body["detail"]
                    rows.append(
                        {
                            "org": org,
                            "seq": record.seq,
                            "body": record.body,
                            "hash": record.hash,
                            "at_ms": body["at_ms"],
                            "action": body["action"],
                            "outcome": body["outcome"],
                            "actor": body["actor"],
                            "asset_id": detail.get("asset_id"),
                            "service_id": detail.get("service_id"),
                        }
                    )
                    if record.seq % self._every == 0:
                        if not last:
                            last.append(self._last_link(conn, org))
                        values = self._checkpoint(head, last[-1])
                        checkpoints.append(values)
                        last.append(checkpoint_link(Checkpoint(**values)))
                conn.execute(insert(audit_records), rows)
                if checkpoints:
                    conn.execute(insert(audit_checkpoints), checkpoints)
                conn.execute(
                    update(audit_heads)
                    .where(audit_heads.c.org == org)
                    .values(seq=head.seq, hash=head.hash)
                )

    @staticmethod
    def _last_link(conn: Connection, org: str) -> bytes:
        """The link to the org's latest checkpoint (read under the head lock), or zeros."""
        row = conn.execute(
            select(audit_checkpoints)
            .where(audit_checkpoints.c.org == org)
            .order_by(audit_checkpoints.c.seq.desc())
            .limit(1)
        ).first()
        return GENESIS_HASH if row is None else checkpoint_link(_checkpoint_of(row))

    def _checkpoint(self, head: ChainHead, previous: bytes) -> dict[str, Any]:
        signed_at = round(self._clock() * 1000)
        checkpoint = sign_checkpoint(head, self._key.signer, self._key.key_id, signed_at, previous)
        return {
            "org": checkpoint.org,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "signed_at": checkpoint.signed_at,
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
            "previous": checkpoint.previous,
        }

    def checkpoint(self, org: str) -> Checkpoint | None:
        """Sign the org's current head now (on demand); None for an empty chain."""
        with self._db.engine.begin() as conn:
            head = self._lock_head(conn, org)
            if head.seq == 0:
                return None
            exists = conn.execute(
                select(audit_checkpoints).where(
                    audit_checkpoints.c.org == org, audit_checkpoints.c.seq == head.seq
                )
            ).first()
            if exists is not None:
                return _checkpoint_of(exists)
            values = self._checkpoint(head, self._last_link(conn, org))
            conn.execute(insert(audit_checkpoints).values(**values))
        return Checkpoint(**values)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The filters of a usage report; every filter set must match.

    The time window is ``[since_ms, until_ms)``; it may span at most 31 days. With only one
    end given the other is 31 days away (:attr:`cut` says so, and the API answers it); with
    neither, the whole log is selected (full export). An ``export`` query has no span limit:
    one end given leaves the other open, so the export pages through the whole range rather
    than silently stopping 31 days after ``since``.
    """

    user: str | None = None
    asset_id: str | None = None
    service_id: str | None = None
    operation: str | None = None
    outcome: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    export: bool = False

    @property
    def cut(self) -> bool:
        """Whether the window is narrower than asked: one end given, 31 days to the other."""
        return not self.export and (self.since_ms is None) != (self.until_ms is None)

    def window(self) -> tuple[int | None, int | None]:
        since, until = self.since_ms, self.until_ms
        if self.export:
            if since is not None and until is not None and until <= since:
                raise ValueError("the time range is empty: since must be before until")
            return since, until
        limit = MAX_QUERY_DAYS * _DAY_MS
        if since is not None and until is None:
            until = since + limit
        elif until is not None and since is None:
            since = until - limit
        if since is not None and until is not None:
            if until <= since:
                raise ValueError("the time range is empty: since must be before until")
            if until - since > limit:
                raise LimitExceeded(f"the time range spans more than {MAX_QUERY_DAYS} days")
        return since, until

    def matches(self, body: Mapping[str, Any]) -> bool:
        detail = body.get("detail") or {}
        since, until = self.window()
        at = body.get("at_ms", 0)
        return (
            (self.user is None or self.user in (body.get("actor"), detail.get("user")))
            and (self.asset_id is None or detail.get("asset_id") == self.asset_id)
            and (self.service_id is None or detail.get("service_id") == self.service_id)
            and (self.operation is None or body.get("action") == self.operation)
            and (self.outcome is None or body.get("outcome") == self.outcome)
            and (since is None or at >= since)
            and (until is None or at < until)
        )


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    """One event of an export: its place in the chain, its hash and its body."""

    org: str
    seq: int
    hash: bytes
    body: dict[str, Any]


class AuditLog:
    """Reads the chains: records in stored order, checkpoints, verification, query, export."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def orgs(self) -> list[str]:
        with self._db.engine.connect() as conn:
            return [row.org for row in conn.execute(select(audit_heads.c.org).order_by("org"))]

    def head(self, org: str) -> tuple[int, bytes] | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(select(audit_heads).where(audit_heads.c.org == org)).first()
        return None if row is None else (int(row.seq), bytes(row.hash))

    def heads(self) -> dict[str, tuple[int, bytes]]:
        """Every org's head (seq, hash), in one read: what a node remembers to notice a
        restore (service/_restore.py)."""
        with self._db.engine.connect() as conn:
            return {
                row.org: (int(row.seq), bytes(row.hash))
                for row in conn.execute(select(audit_heads))
            }

    def hashes_at(self, places: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        """The stored hashes of records ``(org, seq)``, read in batches of 500 (those that
        exist)."""
        found: dict[tuple[str, int], bytes] = {}
        with self._db.engine.connect() as conn:
            for start in range(0, len(places), 500):
                batch = list(places[start : start + 500])
                rows = conn.execute(
                    select(audit_records.c.org, audit_records.c.seq, audit_records.c.hash).where(
                        tuple_(audit_records.c.org, audit_records.c.seq).in_(batch)
                    )
                )
                for row in rows:
                    found[(row.org, int(row.seq))] = bytes(row.hash)
        return found

    def recorded_since(self, action: str, since_ms: int, org: str | None = None) -> bool:
        """Whether ``org``'s chain (any org's, for None) holds an ``action`` event later than
        ``since_ms``."""
        where = [audit_records.c.action == action, audit_records.c.at_ms > since_ms]
        if org is not None:
            where.append(audit_records.c.org == org)
        with self._db.engine.connect() as conn:
            row = conn.execute(select(audit_records.c.seq).where(*where).limit(1)).first()
        return row is not None

    def records(self, org: str, *, batch: int = 5000) -> Iterator[ChainRecord]:
        """The org's records in stored order (by row id), read in batches."""
        after = 0
        while True:
            with self._db.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(
                            audit_records.c.id,
                            audit_records.c.org,
                            audit_records.c.seq,
                            audit_records.c.body,
                            audit_records.c.hash,
                        )
                        .where(audit_records.c.org == org, audit_records.c.id > after)
                        .order_by(audit_records.c.id)
                        .limit(batch)
                    )
                )
            for row in rows:
                yield ChainRecord(row.org, int(row.seq), bytes(row.body), bytes(row.hash))
            if len(rows) < batch:
                return
            after = int(rows[-1].id)

    def checkpoints(self, org: str) -> list[Checkpoint]:
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(audit_checkpoints)
                .where(audit_checkpoints.c.org == org)
                .order_by(audit_checkpoints.c.seq)
            )
            return [_checkpoint_of(row) for row in rows]

    def verify(
        self,
        org: str,
        public_keys: Mapping[str, bytes],
        *,
        since_head: tuple[int, bytes] | None = None,
        witnessed_heads: Sequence[tuple[int, bytes]] = (),
    ) -> ChainReport:
        """Recompute the org's chain and check its checkpoints, its stored head and, if given,
        a head remembered outside the database (``since_head``: a previous verify's) and every
        head of the customer's key-manager log (``witnessed_heads``) (AUD-6..AUD-13).

        The ``at_ms`` column is a copy of the hashed body's time that time-filtered queries
        select by; one that differs is reported *edited*, since it would hide the event from a
        filtered export (AUD-12).
        """
        head = self.head(org)
        columns: list[ChainProblem] = []
        report = verify_chain(
            org,
            self._checked_records(org, columns),
            self.checkpoints(org),
            public_keys,
            expected_head=head if head is not None and head[0] > 0 else None,
            remembered_head=since_head,
            witnessed_heads=witnessed_heads,
        )
        if columns and report.ok:
            report = dataclasses.replace(report, problems=tuple(columns[:1]))
        return report

    def _checked_records(self, org: str, problems: list[ChainProblem]) -> Iterator[ChainRecord]:
        """:meth:`records`, comparing each row's query columns with its body on the way."""
        after = 0
        while True:
            with self._db.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(
                            audit_records.c.id,
                            audit_records.c.org,
                            audit_records.c.seq,
                            audit_records.c.body,
                            audit_records.c.hash,
                            audit_records.c.at_ms,
                        )
                        .where(audit_records.c.org == org, audit_records.c.id > after)
                        .order_by(audit_records.c.id)
                        .limit(5000)
                    )
                )
            for row in rows:
                if not problems:
                    changed = _column_mismatch(row)
                    if changed is not None:
                        problems.append(
                            ChainProblem(
                                int(row.seq),
                                "edited",
                                f"the {changed} column differs from the hashed event",
                            )
                        )
                yield ChainRecord(row.org, int(row.seq), bytes(row.body), bytes(row.hash))
            if len(rows) < 5000:
                return
            after = int(rows[-1].id)

    def query(self, org: str, query: AuditQuery) -> Iterator[ExportedEvent]:
        """The org's events that match ``query``, in chain order.

        Indexed columns narrow the search; each candidate is then checked against its hashed
        body, which is authoritative (a column edited to hide an event changes nothing).
        """
        since, until = query.window()
        where: list[Any] = [audit_records.c.org == org]
        if since is not None:
            where.append(audit_records.c.at_ms >= since)
        if until is not None:
            where.append(audit_records.c.at_ms < until)
        after = 0
        while True:
            with self._db.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(
                            audit_records.c.id,
                            audit_records.c.seq,
                            audit_records.c.hash,
                            audit_records.c.body,
                        )
                        .where(*where, audit_records.c.id > after)
                        .order_by(audit_records.c.id)
                        .limit(5000)
                    )
                )
            for row in rows:
                body = _readable_body(org, int(row.seq), bytes(row.body), query)
                if body is not None:
                    yield ExportedEvent(org, int(row.seq), bytes(row.hash), body)
            if len(rows) < 5000:
                return
            after = int(rows[-1].id)


_AT_MS = b'"at_ms":'


def _column_mismatch(row: Any) -> str | None:
    """``"at_ms"`` if the row's ``at_ms`` column is not its body's (None if it is).

    ``at_ms`` is the one copied column a query selects rows by in SQL (the time window); every
    other filter is checked against the hashed body, so an edit of those columns hides nothing.
    A canonical body has sorted keys, so its top-level ``"at_ms":`` comes before ``detail``,
    after two string values whose quotes are escaped: the first match is the field itself."""
    body = bytes(row.body)
    at = body.find(_AT_MS)
    if at < 0:
        return "at_ms"
    start = at + len(_AT_MS)
    stop = start
    while stop < len(body) and body[stop] in b"-0123456789":
        stop += 1
    try:
        value = int(body[start:stop])
    except ValueError:
        return "at_ms"
    return None if value == row.at_ms else "at_ms"


def _readable_body(org: str, seq: int, raw: bytes, query: AuditQuery) -> dict[str, Any] | None:
    """The event body if ``query`` matches it; a body that is no longer an event is damage."""
    try:
        body = json.loads(raw)
        if not isinstance(body, dict) or not isinstance(body.get("detail") or {}, dict):
            raise TypeError("not an event object")
        return body if query.matches(body) else None
    except (ValueError, TypeError, AttributeError):
        raise AuditDamaged(
            f"the audit log of {org!r} holds a record (seq {seq}) that is not an event; "
            f"run ownkey audit verify {org}"
        ) from None


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint as an export line's ``checkpoint`` object (bytes as hex): with the public
    key, anyone can check it offline and see that the exported events extend it (AUD-5)."""
    return {
        "org": checkpoint.org,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash.hex(),
        "signed_at": checkpoint.signed_at,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature.hex(),
        "previous": None if checkpoint.previous is None else checkpoint.previous.hex(),
    }


def with_checkpoints(
    events: Iterator[ExportedEvent], checkpoints: Sequence[Checkpoint]
) -> Iterator[ExportedEvent | Checkpoint]:
    """The events in chain order with the org's checkpoints between them: each checkpoint
    right after the last event at or before its seq, the rest at the end."""
    pending = sorted(checkpoints, key=lambda c: c.seq)
    at = 0
    for event in events:
        while at < len(pending) and pending[at].seq < event.seq:
            yield pending[at]
            at += 1
        yield event
    yield from pending[at:]


def iso_ms(at_ms: int) -> str:
    """An ISO 8601 UTC time with milliseconds."""
    moment = dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"
