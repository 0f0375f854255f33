"""Pending shreds of scope keys: the waiting period between a rekey job and the deletion (RW-8).

A rekey job moves content to fresh scope keys; deleting the old keys' wrapped shares makes
whatever is still under them (content kept outside the asset store) unreadable forever. So the
job does not shred: it writes a ``scope_key_shreds`` row, ``pending`` with a due time, and only
a shred job run once that time has come deletes the shares. The row exists before anything is
deleted, and its state moves one way, so a crash anywhere leaves either a pending row (the next
shred job finishes it) or a cancelled or shredded one (nothing left to do):

    pending -cancel (before due)-> cancelled
    pending -shred (from due on)-> shredded
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from ownkey.storage._engine import Database
from ownkey.storage._schema import scope_key_shreds

__all__ = ["CANCELLED", "PENDING", "SHREDDED", "PendingShred", "ShredStore"]

PENDING, CANCELLED, SHREDDED = "pending", "cancelled", "shredded"


@dataclass(frozen=True, slots=True)
class PendingShred:
    """A scope key waiting to be shredded, or the record of one that was (or was cancelled)."""

    scope_key_id: bytes
    org: str
    reason: str
    job_id: str | None
    state: str
    due_at: float
    created_at: float
    changed_at: float
    actor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scope_key_id": self.scope_key_id.hex(),
            "org": self.org,
            "reason": self.reason,
            "job_id": self.job_id,
            "state": self.state,
            "due_at": self.due_at,
            "created_at": self.created_at,
            "changed_at": self.changed_at,
        }


def _shred(row: Row[Any]) -> PendingShred:
    return PendingShred(
        scope_key_id=bytes(row.scope_key_id),
        org=row.org,
        reason=row.reason,
        job_id=row.job_id,
        state=row.state,
        due_at=float(row.due_at),
        created_at=float(row.created_at),
        changed_at=float(row.changed_at),
        actor=row.actor,
    )


class ShredStore:
    """The ``scope_key_shreds`` table; every method is one short transaction."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, scope_key_id: bytes) -> PendingShred | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(
                select(scope_key_shreds).where(scope_key_shreds.c.scope_key_id == scope_key_id)
            ).first()
        return None if row is None else _shred(row)

    def schedule(
        self,
        scope_key_id: bytes,
        *,
        org: str,
        due_at: float,
        now: float,
        reason: str,
        job_id: str | None,
        actor: str | None,
    ) -> PendingShred:
        """Make the scope key pending shred at ``due_at``; return the row as it now is.

        Idempotent for one job: a row this job wrote already (pending, cancelled or shredded) is
        returned unchanged, so a redone step neither extends the wait nor revives a cancelled
        shred. A pending row of another job keeps its (earlier) due time; a finished one of
        another job is scheduled again."""
        with self._db.engine.begin() as conn:
            row = conn.execute(
                select(scope_key_shreds).where(scope_key_shreds.c.scope_key_id == scope_key_id)
            ).first()
            if row is not None and (row.job_id == job_id or row.state == PENDING):
                return _shred(row)
            values = {
                "org": org,
                "reason": reason,
                "job_id": job_id,
                "state": PENDING,
                "due_at": due_at,
                "created_at": now,
                "changed_at": now,
                "actor": actor,
            }
            if row is None:
                conn.execute(insert(scope_key_shreds).values(scope_key_id=scope_key_id, **values))
            else:
                conn.execute(
                    update(scope_key_shreds)
                    .where(scope_key_shreds.c.scope_key_id == scope_key_id)
                    .values(**values)
                )
        return PendingShred(
            scope_key_id, org, reason, job_id, PENDING, due_at, now, now, actor=actor
        )

    def _move(self, scope_key_id: bytes, state: str, now: float, actor: str | None) -> bool:
        with self._db.engine.begin() as conn:
            changed = conn.execute(
                update(scope_key_shreds)
                .where(
                    scope_key_shreds.c.scope_key_id == scope_key_id,
                    scope_key_shreds.c.state == PENDING,
                )
                .values(state=state, changed_at=now, actor=actor)
            ).rowcount
        return bool(changed)

    def cancel(self, scope_key_id: bytes, *, now: float, actor: str | None) -> bool:
        """pending -> cancelled; False if it was not pending (compare-and-set)."""
        return self._move(scope_key_id, CANCELLED, now, actor)

    def mark_shredded(self, scope_key_id: bytes, *, now: float, actor: str | None) -> bool:
        """pending -> shredded, once the wrapped shares are gone."""
        return self._move(scope_key_id, SHREDDED, now, actor)

    def pending(
        self, org: str | None = None, *, due_by: float | None = None
    ) -> Iterator[PendingShred]:
        """Pending shreds (of ``org``; due at or before ``due_by``), soonest first."""
        query = select(scope_key_shreds).where(scope_key_shreds.c.state == PENDING)
        if org is not None:
            query = query.where(scope_key_shreds.c.org == org)
        if due_by is not None:
            query = query.where(scope_key_shreds.c.due_at <= due_by)
        query = query.order_by(scope_key_shreds.c.due_at, scope_key_shreds.c.scope_key_id)
        with self._db.engine.connect() as conn:
            rows = list(conn.execute(query))
        return iter([_shred(row) for row in rows])
