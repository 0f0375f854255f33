"""Crash-safe, resumable jobs: a job is a set of items, each done at most once *effectively*.

A job (rotation re-wrap, backfill, rekey, crypto-shred) is stored with one ``job_items`` row per
item (a scope key id, an asset id). Workers claim batches of pending items, apply the job's step
to each, and mark them done together with the job's progress counter in one transaction. A worker
killed at any point leaves its batch pending; the next worker re-applies the step, so steps are
written to be idempotent (a re-wrap checks the wrap's version and swaps by compare-and-set).

On PostgreSQL the claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` held for the batch, so any
number of workers share one job without overlap; on SQLite (one machine) a worker reads a batch
and marks it afterwards, and the database's write lock serialises the marks.

Leases (migration 0012): an unfinished job names the node working on it (``owner``) until
``lease_until_ms``; the node renews it while it works (:meth:`JobStore.hold`, a compare-and-set
that also takes over a lease that lapsed), gives it up when it stops (:meth:`JobStore.release`),
and any node finds the jobs nobody holds (:meth:`JobStore.lapsed`). Lease times are the caller's
clock, never this module's. ``dedupe`` names the request a job was made for while it is pending
or running (unique): an equal request finds the job instead of making a second one. Named turns
(``leases``: the blob sweep) are held the same way by one node at a time
(:meth:`JobStore.take_turn`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ownkey.errors import NotFound
from ownkey.storage._engine import Database
from ownkey.storage._schema import job_items, jobs, leases

__all__ = ["JOB_KINDS", "JobLease", "JobStatus", "JobStore"]

#: The kinds of job (docs/storage.md).
JOB_KINDS = ("rewrap", "backfill", "rekey", "shred")
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
_INSERT_BATCH = 2000


def _now_ms() -> int:
    return round(time.time() * 1000)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class JobLease:
    """Who creates a job: the node that holds it until ``until`` (Unix seconds, its clock), and
    the request an equal job would repeat (``dedupe``, at most 64 characters; None: none)."""

    owner: str
    until: float
    dedupe: str | None = None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's progress as stored."""

    job_id: str
    kind: str
    org: str | None
    params: Mapping[str, Any]
    state: str
    total: int
    done: int
    failed: int
    error: str | None
    #: The node holding the job's lease and until when (Unix seconds); None when nobody does.
    owner: str | None = None
    lease_until: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)


class JobStore:
    """Creates jobs, hands out batches of their items, records progress."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @property
    def database(self) -> Database:
        """The database the jobs live in (the job runner keeps pending shreds beside them)."""
        return self._db

    def create(
        self,
        kind: str,
        items: Iterable[str],
        *,
        org: str | None = None,
        params: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        lease: JobLease | None = None,
    ) -> str:
        """Store a job and its items (all pending) in one transaction; return its id.

        Creating a job with an existing ``job_id`` returns that id unchanged (idempotent).
        ``lease``: the job is created held by that node; with a ``dedupe`` for which a job is
        pending or running, nothing is stored and that job's id is returned.
        """
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}; one of {', '.join(JOB_KINDS)}")
        job_id = job_id or uuid.uuid4().hex
        dedupe = None if lease is None else lease.dedupe
        if dedupe is not None:
            found = self.find_active(dedupe)
            if found is not None:
                return found
        try:
            self._insert(kind, items, org, params, job_id, lease)
        except IntegrityError:
            found = None if dedupe is None else self.find_active(dedupe)
            if found is None:  # pragma: no cover - an equal job that finished meanwhile
                raise
            return found  # an equal job created by another node at the same moment
        return job_id

    def find_active(self, dedupe: str) -> str | None:
        """The pending or running job made for the request ``dedupe``, if any."""
        with self._db.engine.connect() as conn:
            row = conn.execute(
                select(jobs.c.job_id).where(
                    jobs.c.dedupe == dedupe, jobs.c.state.in_((PENDING, RUNNING))
                )
            ).first()
        return None if row is None else str(row.job_id)

    def _insert(
        self,
        kind: str,
        items: Iterable[str],
        org: str | None,
        params: Mapping[str, Any] | None,
        job_id: str,
        lease: JobLease | None,
    ) -> None:
        with self._db.engine.begin() as conn:
            if conn.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)).first():
                return
            now = _now_ms()
            conn.execute(
                insert(jobs).values(
                    job_id=job_id,
                    kind=kind,
                    org=org,
                    params=json.dumps(dict(params or {}), sort_keys=True),
                    state=PENDING,
                    total=0,
                    done=0,
                    failed=0,
                    created_at_ms=now,
                    updated_at_ms=now,
                    owner=None if lease is None else lease.owner,
                    lease_until_ms=None if lease is None else _ms(lease.until),
                    dedupe=None if lease is None else lease.dedupe,
                )
            )
            total = 0
            batch: list[dict[str, Any]] = []
            for item in items:
                batch.append({"job_id": job_id, "item": item, "state": PENDING, "attempts": 0})
                if len(batch) >= _INSERT_BATCH:
                    conn.execute(insert(job_items), batch)
                    total += len(batch)
                    batch = []
            if batch:
                conn.execute(insert(job_items), batch)
                total += len(batch)
            conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(total=total))

    def status(self, job_id: str) -> JobStatus:
        with self._db.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return JobStatus(
            job_id=row.job_id,
            kind=row.kind,
            org=row.org,
            params=json.loads(row.params),
            state=row.state,
            total=int(row.total),
            done=int(row.done),
            failed=int(row.failed),
            error=row.error,
            owner=row.owner,
            lease_until=None if row.lease_until_ms is None else row.lease_until_ms / 1000,
        )

    def tally(self) -> list[tuple[str, str, int, int, int, int]]:
        """Jobs by (kind, state): how many, and their items' total, done and failed, in one
        query (``/metrics``; no org, no job id)."""
        query = select(
            jobs.c.kind,
            jobs.c.state,
            func.count(),
            func.coalesce(func.sum(jobs.c.total), 0),
            func.coalesce(func.sum(jobs.c.done), 0),
            func.coalesce(func.sum(jobs.c.failed), 0),
        ).group_by(jobs.c.kind, jobs.c.state)
        with self._db.engine.connect() as conn:
            return [
                (str(kind), str(state), int(count), int(total), int(done), int(failed))
                for kind, state, count, total, done, failed in conn.execute(query)
            ]

    def all(self) -> list[JobStatus]:
        with self._db.engine.connect() as conn:
            ids = [
                r.job_id for r in conn.execute(select(jobs.c.job_id).order_by(jobs.c.created_at_ms))
            ]
        return [self.status(job_id) for job_id in ids]

    def items(
        self, job_id: str, *, prefix: str = "", state: str | None = None
    ) -> Iterator[tuple[str, str, int, str | None]]:
        """The job's items starting with ``prefix`` (optionally in one state), in item order:
        ``(item, state, attempts, error)``."""
        after = ""
        while True:
            query = select(
                job_items.c.item, job_items.c.state, job_items.c.attempts, job_items.c.error
            ).where(job_items.c.job_id == job_id, job_items.c.item > after)
            if prefix:
                query = query.where(job_items.c.item.startswith(prefix, autoescape=True))
            if state is not None:
                query = query.where(job_items.c.state == state)
            with self._db.engine.connect() as conn:
                rows = list(conn.execute(query.order_by(job_items.c.item).limit(_INSERT_BATCH)))
            for row in rows:
                yield row.item, row.state, int(row.attempts), row.error
            if len(rows) < _INSERT_BATCH:
                return
            after = rows[-1].item

    # -- leases ----------------------------------------------------------------------------------

    def hold(self, job_id: str, owner: str, *, now: float, lease: float) -> bool:
        """Hold (or renew) the lease of an unfinished job for ``owner`` until ``now + lease``:
        granted if ``owner`` holds it already, nobody does, or its holder's lease ended by
        ``now`` (a node that died, or stopped renewing). False: another node holds it, or the
        job is finished or unknown. One compare-and-set, so two nodes never both win."""
        now_ms = _ms(now)
        with self._db.engine.begin() as conn:
            count = conn.execute(
                update(jobs)
                .where(
                    jobs.c.job_id == job_id,
                    jobs.c.state.in_((PENDING, RUNNING)),
                    or_(
                        jobs.c.owner.is_(None),
                        jobs.c.owner == owner,
                        jobs.c.lease_until_ms.is_(None),
                        jobs.c.lease_until_ms <= now_ms,
                    ),
                )
                .values(owner=owner, lease_until_ms=now_ms + _ms(lease))
            ).rowcount
        return bool(count)

    def release(self, job_id: str | None, owner: str) -> int:
        """Give up ``owner``'s lease of ``job_id`` (of every job it holds when None), so another
        node takes the job over at once; return how many leases were given up."""
        query = update(jobs).where(jobs.c.owner == owner)
        if job_id is not None:
            query = query.where(jobs.c.job_id == job_id)
        with self._db.engine.begin() as conn:
            count = conn.execute(query.values(owner=None, lease_until_ms=None)).rowcount
        return int(count)

    def lapsed(self, *, now: float) -> list[str]:
        """The unfinished jobs nobody holds at ``now`` (their node stopped, died, or never
        took a lease), oldest first."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(jobs.c.job_id)
                .where(
                    jobs.c.state.in_((PENDING, RUNNING)),
                    or_(
                        jobs.c.owner.is_(None),
                        jobs.c.lease_until_ms.is_(None),
                        jobs.c.lease_until_ms <= _ms(now),
                    ),
                )
                .order_by(jobs.c.created_at_ms)
            )
            return [str(row.job_id) for row in rows]

    def take_turn(self, name: str, owner: str, *, now: float, hold: float) -> bool:
        """Take the named turn (the blob sweep) for ``owner`` until ``now + hold`` if nobody
        holds it at ``now``; False if another node's turn has not ended. One compare-and-set:
        at most one node at a time, one turn per ``hold`` across all of them."""
        now_ms, until = _ms(now), _ms(now + hold)
        with self._db.engine.begin() as conn:
            if conn.execute(select(leases.c.name).where(leases.c.name == name)).first() is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(leases).values(name=name, owner=owner, until_ms=until))
                    return True
                except IntegrityError:
                    pass  # another node created it first: compete for it below
            count = conn.execute(
                update(leases)
                .where(leases.c.name == name, leases.c.until_ms <= now_ms)
                .values(owner=owner, until_ms=until)
            ).rowcount
        return bool(count)

    def retry_failed(self, job_id: str) -> int:
        """Put the job's failed items back to pending (after fixing their cause); return how
        many. The job runs again with :meth:`run`."""
        with self._db.engine.begin() as conn:
            count = conn.execute(
                update(job_items)
                .where(job_items.c.job_id == job_id, job_items.c.state == FAILED)
                .values(state=PENDING, error=None)
            ).rowcount
            if count:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.job_id == job_id)
                    .values(
                        failed=jobs.c.failed - count,
                        state=RUNNING,
                        error=None,
                        updated_at_ms=_now_ms(),
                    )
                )
        return int(count)

    def _claim(self, conn: Connection, job_id: str, limit: int) -> list[str]:
        query = (
            select(job_items.c.item)
            .where(job_items.c.job_id == job_id, job_items.c.state == PENDING)
            .order_by(job_items.c.item)
            .limit(limit)
        )
        if self._db.is_postgresql:
            query = query.with_for_update(skip_locked=True)
        return [row.item for row in conn.execute(query)]

    def _mark(self, conn: Connection, job_id: str, done: list[str], failed: dict[str, str]) -> None:
        if done:
            conn.execute(
                update(job_items)
                .where(job_items.c.job_id == job_id, job_items.c.item.in_(done))
                .values(state=DONE, attempts=job_items.c.attempts + 1)
            )
        for item, error in failed.items():
            conn.execute(
                update(job_items)
                .where(job_items.c.job_id == job_id, job_items.c.item == item)
                .values(state=FAILED, error=error[:2000], attempts=job_items.c.attempts + 1)
            )
        conn.execute(
            update(jobs)
            .where(jobs.c.job_id == job_id)
            .values(
                done=jobs.c.done + len(done),
                failed=jobs.c.failed + len(failed),
                state=RUNNING,
                updated_at_ms=_now_ms(),
            )
        )

    def _finish_if_drained(self, job_id: str) -> bool:
        with self._db.engine.begin() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(job_items)
                .where(job_items.c.job_id == job_id, job_items.c.state == PENDING)
            ).scalar_one()
            if pending:
                return False
            failed = conn.execute(
                select(func.count())
                .select_from(job_items)
                .where(job_items.c.job_id == job_id, job_items.c.state == FAILED)
            ).scalar_one()
            error = None
            if failed:
                first = conn.execute(
                    select(job_items.c.item, job_items.c.error)
                    .where(job_items.c.job_id == job_id, job_items.c.state == FAILED)
                    .order_by(job_items.c.item)
                    .limit(1)
                ).first()
                if first is not None:
                    error = f"{failed} item(s) failed; first {first.item}: {first.error}"[:2000]
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id)
                .values(
                    state=FAILED if failed else DONE,
                    error=error,
                    updated_at_ms=_now_ms(),
                    owner=None,
                    lease_until_ms=None,
                    dedupe=None,  # an equal request makes a new job from now on
                )
            )
            return True

    def run_batch(self, job_id: str, step: Callable[[str], None], *, limit: int = 100) -> int:
        """Claim up to ``limit`` pending items, apply ``step`` to each, record them; return
        how many were claimed (0: none left for this worker).

        A step that raises an :class:`Exception` marks its item failed with the message; the
        job then ends ``failed`` once every item is settled. A killed worker records nothing.
        """
        failed: dict[str, str] = {}
        done: list[str] = []
        if self._db.is_postgresql:
            with self._db.engine.begin() as conn:
                items = self._claim(conn, job_id, limit)
                for item in items:
                    try:
                        step(item)
                        done.append(item)
                    except Exception as exc:
                        failed[item] = f"{type(exc).__name__}: {exc}"
                self._mark(conn, job_id, done, failed)
            return len(items)
        with self._db.engine.begin() as conn:
            items = self._claim(conn, job_id, limit)
        for item in items:
            try:
                step(item)
                done.append(item)
            except Exception as exc:
                failed[item] = f"{type(exc).__name__}: {exc}"
        if items:
            with self._db.engine.begin() as conn:
                self._mark(conn, job_id, done, failed)
        return len(items)

    def run(
        self,
        job_id: str,
        step: Callable[[str], None],
        *,
        limit: int = 100,
        progress: Callable[[JobStatus], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> JobStatus:
        """Work on the job until no pending item is left; return its final status.

        ``stop``: asked before each batch; once it answers True the worker leaves the rest
        pending (a node shutting down) and returns the job's status as it is."""
        while stop is None or not stop():
            if not self.run_batch(job_id, step, limit=limit):
                self._finish_if_drained(job_id)
                break
            if progress is not None:
                progress(self.status(job_id))
        return self.status(job_id)
