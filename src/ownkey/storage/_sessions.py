"""The security console's sessions, in the database so that every node of a fleet knows them.

A session is stored by SHA-256 of its id (the cookie's value), so a copy of the database signs
nobody in; the row names the org, the id of the token that signed in (never the token: the
console re-checks that id on every page, :meth:`TokenStore.active`), the audit actor, the form
(CSRF) token, and when it began, was last seen (to the minute) and ends.

The caps are counted in the database, in the transaction that adds a session: an org holds at
most ``max_per_org`` sessions (a new one ends that org's oldest), the database at most
``max_total`` (then a sign-in is refused rather than end another org's session). Sign-ins are
serialised for that count: SQLite's write lock (every transaction is ``BEGIN IMMEDIATE``), on
PostgreSQL a transaction advisory lock (:data:`SESSION_LOCK`), held for the few statements of one
sign-in. Reading a session is one indexed query: a sign-out on any node ends it on every node
from the next page on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Row

from ownkey.envelope import sha256
from ownkey.storage._engine import Database
from ownkey.storage._schema import console_sessions

__all__ = ["SESSION_LOCK", "SessionRecord", "SessionStore"]

#: The PostgreSQL advisory lock key that serialises sign-ins ("ownkeyss" as an integer).
SESSION_LOCK: Final = int.from_bytes(b"ownkeyss", "big") - 2**63
#: ``last_seen_ms`` is rewritten only when it is older than this.
LAST_SEEN_GRANULARITY_MS: Final = 60_000

_TABLE = console_sessions


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored session (without its id, which is stored only hashed)."""

    org: str
    token_id: str
    actor: str
    csrf: str = field(repr=False)
    created_at_ms: int
    last_seen_ms: int
    expires_at_ms: int


def _record(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        org=row.org,
        token_id=row.token_id,
        actor=row.actor,
        csrf=row.csrf,
        created_at_ms=int(row.created_at_ms),
        last_seen_ms=int(row.last_seen_ms),
        expires_at_ms=int(row.expires_at_ms),
    )


def _digest(session_id: str) -> bytes:
    return sha256(session_id.encode("utf-8"))


class SessionStore:
    """Console sessions in ``console_sessions``; times are the caller's (milliseconds)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def start(
        self,
        session_id: str,
        record: SessionRecord,
        *,
        max_per_org: int,
        max_total: int,
    ) -> bool:
        """Store a new session at ``record.created_at_ms``: expired sessions are dropped, then
        the org's oldest while it holds ``max_per_org``; False (nothing stored) when
        ``max_total`` live sessions remain."""
        now_ms = record.created_at_ms
        with self._db.engine.begin() as conn:
            if self._db.is_postgresql:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SESSION_LOCK})
            conn.execute(delete(_TABLE).where(_TABLE.c.expires_at_ms <= now_ms))
            mine = list(
                conn.execute(
                    select(_TABLE.c.seq).where(_TABLE.c.org == record.org).order_by(_TABLE.c.seq)
                ).scalars()
            )
            excess = len(mine) - max_per_org + 1
            if excess > 0:
                conn.execute(delete(_TABLE).where(_TABLE.c.seq.in_(mine[:excess])))
            if _count(conn) >= max_total:
                return False
            conn.execute(
                insert(_TABLE).values(
                    digest=_digest(session_id),
                    org=record.org,
                    token_id=record.token_id,
                    actor=record.actor,
                    csrf=record.csrf,
                    created_at_ms=record.created_at_ms,
                    last_seen_ms=record.last_seen_ms,
                    expires_at_ms=record.expires_at_ms,
                )
            )
        return True

    def get(self, session_id: str, *, now_ms: int) -> SessionRecord | None:
        """The live session of that id, or None (unknown, ended, or expired: then dropped).
        Records the visit in ``last_seen_ms``, to the minute."""
        digest = _digest(session_id)
        with self._db.engine.connect() as conn:
            row = conn.execute(select(_TABLE).where(_TABLE.c.digest == digest)).first()
        if row is None:
            return None
        found = _record(row)
        if found.expires_at_ms <= now_ms:
            self.end(session_id)
            return None
        if now_ms - found.last_seen_ms >= LAST_SEEN_GRANULARITY_MS:
            with self._db.engine.begin() as conn:
                conn.execute(
                    update(_TABLE).where(_TABLE.c.digest == digest).values(last_seen_ms=now_ms)
                )
        return found

    def end(self, session_id: str) -> None:
        """Delete a session (sign-out, or its token no longer active); unknown ids are ignored."""
        with self._db.engine.begin() as conn:
            conn.execute(delete(_TABLE).where(_TABLE.c.digest == _digest(session_id)))

    def count(self, org: str | None = None) -> int:
        """How many sessions are stored (of ``org``, or of every org): expired ones included
        until the next sign-in drops them."""
        with self._db.engine.connect() as conn:
            return _count(conn, org)


def _count(conn: Connection, org: str | None = None) -> int:
    query = select(func.count()).select_from(_TABLE)
    if org is not None:
        query = query.where(_TABLE.c.org == org)
    return int(conn.execute(query).scalar_one())
