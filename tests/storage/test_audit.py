"""The SQL audit sink on SQLite and PostgreSQL: chains, checkpoints, tampering, fail closed.

Cites docs/spec/audit-chain.md (AUD-x). Tampering is done directly in the database, as someone
with write access to it would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from ownkey.audit import AuditAction, AuditEvent, Auditor, Outcome
from ownkey.errors import AuditUnavailable, ConfigError, LimitExceeded
from ownkey.storage import (
    PLATFORM_LOG,
    AuditLog,
    AuditQuery,
    AuditSigningKey,
    Database,
    SqlAuditSink,
)
from ownkey.storage._schema import audit_checkpoints, audit_heads, audit_records

KEY = AuditSigningKey.from_seed(bytes(range(32)))
PUBLIC = {KEY.key_id: KEY.public_key}
T0 = 1_714_521_600.0  # 2024-05-01T00:00:00Z


def event(i: int, org: str | None = "acme", **detail: str) -> AuditEvent:
    return AuditEvent(
        at=T0 + i * 0.5,
        action=AuditAction.UNWRAP if i % 3 else AuditAction.WRAP,
        outcome=Outcome.DENIED if i % 7 == 0 else Outcome.OK,
        org=org,
        key=f"customer:{org}" if org else "platform",
        actor=f"user{i % 5}@acme.test",
        detail={"service_id": "0008" if i % 2 else "0001", "asset_id": f"a{i}", **detail},
    )


def fill(database: Database, n: int, org: str = "acme", every: int = 256) -> SqlAuditSink:
    sink = SqlAuditSink(database, KEY, checkpoint_every=every, clock=lambda: T0)
    batch = 5000
    for start in range(0, n, batch):
        sink.record_many([event(i, org) for i in range(start, min(n, start + batch))])
    return sink


def test_untouched_chain_verifies(database: Database) -> None:
    """AUD-3, AUD-5, AUD-6: one record per event, a checkpoint every 256, and it verifies."""
    sink = fill(database, 1000)
    sink.record(event(1000))
    sink.record(event(1001, org=None))
    log = AuditLog(database)
    report = log.verify("acme", PUBLIC)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.unsigned_tail) == (1001, 3, 1001 - 768)
    assert log.verify(PLATFORM_LOG, PUBLIC).ok
    assert log.head("acme") is not None
    assert log.orgs() == [PLATFORM_LOG, "acme"]


def test_100k_events_no_false_positive(sqlite_url: str) -> None:
    """AUD-6 at the issue's scale: 100,000 events verify untouched (SQLite)."""
    database = Database.open(sqlite_url)
    started = time.perf_counter()
    fill(database, 100_000)
    written = time.perf_counter() - started
    report = AuditLog(database).verify("acme", PUBLIC)
    verified = time.perf_counter() - started - written
    database.close()
    assert report.ok, report.problems
    assert report.records == 100_000
    assert report.checkpoints == 100_000 // 256
    print(f"100k events: written in {written:.1f}s, verified in {verified:.1f}s")


def _ids(database: Database) -> list[int]:
    with database.engine.connect() as conn:
        return [r.id for r in conn.execute(select(audit_records.c.id).order_by("id"))]


def _edit(db: Database) -> None:
    ids = _ids(db)
    with db.engine.begin() as conn:
        body = conn.execute(select(audit_records.c.body).where(audit_records.c.id == ids[300]))
        tampered = bytes(body.scalar_one()).replace(b'"outcome":"ok"', b'"outcome":"denied"')
        tampered = tampered.replace(b'"outcome":"denied"', b'"outcome":"failed"', 1)
        conn.execute(
            update(audit_records).where(audit_records.c.id == ids[300]).values(body=tampered)
        )


def _delete(db: Database) -> None:
    ids = _ids(db)
    with db.engine.begin() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.id == ids[100]))


def _insert(db: Database) -> None:
    ids = _ids(db)
    with db.engine.begin() as conn:
        row = conn.execute(select(audit_records).where(audit_records.c.id == ids[50])).one()
        values = dict(row._mapping)
        del values["id"]
        conn.execute(insert(audit_records).values(**values))


def _reorder(db: Database) -> None:
    ids = _ids(db)
    cols = [audit_records.c.seq, audit_records.c.body, audit_records.c.hash]
    with db.engine.begin() as conn:
        a = conn.execute(select(*cols).where(audit_records.c.id == ids[10])).one()
        b = conn.execute(select(*cols).where(audit_records.c.id == ids[11])).one()
        for target, row in ((ids[10], b), (ids[11], a)):
            conn.execute(
                update(audit_records)
                .where(audit_records.c.id == target)
                .values(seq=row.seq, body=row.body, hash=row.hash)
            )


def _truncate_tail(db: Database) -> None:
    """Cut the unsigned tail (after the last checkpoint): the stored head shows it."""
    with db.engine.begin() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq > 900))


def _truncate_everything_consistently(db: Database) -> None:
    """Cut past a checkpoint and fix the head row too: the signed checkpoint shows it."""
    with db.engine.begin() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq > 600))
        row = conn.execute(select(audit_records.c.hash).where(audit_records.c.seq == 600)).one()
        conn.execute(update(audit_heads).values(seq=600, hash=row.hash))


def _rewrite_and_rehash(db: Database) -> None:
    """AUD-8: edit a record and recompute every later hash and the head (no signing key)."""
    from ownkey.audit._chain import ChainHead

    with db.engine.begin() as conn:
        rows = list(conn.execute(select(audit_records).order_by(audit_records.c.id)))
        head = ChainHead("acme")
        for row in rows:
            body = bytes(row.body)
            if row.seq == 400:
                body = body.replace(b'"outcome":"ok"', b'"outcome":"failed"')
                body = body.replace(b'"outcome":"denied"', b'"outcome":"failed"')
            record = head.append(body)
            conn.execute(
                update(audit_records)
                .where(audit_records.c.id == row.id)
                .values(body=record.body, hash=record.hash)
            )
        conn.execute(update(audit_heads).values(seq=head.seq, hash=head.hash))


def _forge_checkpoint(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            update(audit_checkpoints)
            .where(audit_checkpoints.c.seq == 512)
            .values(signature=bytes(64))
        )


TAMPERS: dict[str, tuple[Callable[[Database], None], set[str]]] = {
    "edit": (_edit, {"edited"}),
    "delete": (_delete, {"missing"}),
    "insert": (_insert, {"inserted", "out_of_order", "edited"}),
    "reorder": (_reorder, {"out_of_order", "inserted", "missing", "edited"}),
    "truncate_tail": (_truncate_tail, {"truncated"}),
    "truncate_with_head": (_truncate_everything_consistently, {"truncated"}),
    "rewrite_and_rehash": (_rewrite_and_rehash, {"bad_checkpoint"}),
    "forged_checkpoint": (_forge_checkpoint, {"bad_checkpoint"}),
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_tampering_is_detected(database: Database, kind: str) -> None:
    """AUD-7..AUD-9: every kind of change made directly in the database is reported."""
    fill(database, 1000)
    assert AuditLog(database).verify("acme", PUBLIC).ok
    tamper, expected = TAMPERS[kind]
    tamper(database)
    report = AuditLog(database).verify("acme", PUBLIC)
    assert not report.ok
    assert {p.kind for p in report.problems} & expected, report.problems


def test_unknown_signing_key_counts_for_nothing(database: Database) -> None:
    fill(database, 300)
    other = AuditSigningKey.from_seed(bytes(32))
    report = AuditLog(database).verify("acme", {other.key_id: other.public_key})
    assert [p.kind for p in report.problems] == ["bad_checkpoint"]


def test_concurrent_appends_stay_one_chain(database: Database) -> None:
    """AUD-3: appends for one org from several threads are serialised by the head row."""
    sink = SqlAuditSink(database, KEY, checkpoint_every=16)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(40):
                sink.record(event(n * 1000 + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = AuditLog(database).verify("acme", PUBLIC)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints) == (160, 10)


def test_sink_failure_refuses_the_operation(database: Database) -> None:
    """AUD-1: if the SQL sink cannot write, the Auditor raises AuditUnavailable (fail closed)."""
    sink = SqlAuditSink(database, KEY)
    auditor = Auditor(sink, clock=lambda: T0)
    auditor.emit(AuditAction.UNWRAP, org="acme", key="customer:acme")
    with database.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_records"))
    with pytest.raises(AuditUnavailable):
        auditor.emit(AuditAction.UNWRAP, org="acme", key="customer:acme")
    with database.engine.connect() as conn:
        assert conn.execute(select(audit_heads.c.seq)).scalar_one() == 1  # head not advanced


def test_query_filters(database: Database) -> None:
    fill(database, 500)
    log = AuditLog(database)

    def seqs(**kwargs: object) -> list[int]:
        return [e.seq for e in log.query("acme", AuditQuery(**kwargs))]  # type: ignore[arg-type]

    assert len(seqs()) == 500
    assert seqs(asset_id="a42") == [43]
    assert len(seqs(service_id="0008")) == 250
    assert all(s % 7 == 1 for s in seqs(outcome="denied"))
    assert len(seqs(operation="key_manager.wrap")) == 167
    assert len(seqs(user="user1@acme.test")) == 100
    since = int(T0 * 1000) + 10_000
    assert seqs(since_ms=since, until_ms=since + 1000) == [21, 22]
    with pytest.raises(LimitExceeded):
        seqs(since_ms=0, until_ms=32 * 86_400_000)
    with pytest.raises(ValueError, match="empty"):
        seqs(since_ms=10, until_ms=10)
    # A column edited to hide an event does not hide it: the hashed body decides.
    with database.engine.begin() as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 43).values(asset_id="x"))
        count = conn.execute(select(func.count()).select_from(audit_records)).scalar_one()
    assert count == 500
    assert seqs(asset_id="x") == []


def test_signing_key_file_is_created_once(tmp_path: Path) -> None:
    env = {"OWNKEY_HOME": str(tmp_path)}
    first = AuditSigningKey.load(env)
    assert (tmp_path / "audit-signing.key").stat().st_mode & 0o777 == 0o600
    assert AuditSigningKey.load(env).key_id == first.key_id
    seed_hex = bytes(range(32)).hex()
    assert AuditSigningKey.load({"OWNKEY_AUDIT_SIGNING_KEY": seed_hex}).key_id == KEY.key_id


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o606])
def test_a_signing_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    """Issue 11, finding 3: like the root key, a group/world-readable signing key is refused
    (whoever reads it can re-sign a rewritten chain)."""
    env = {"OWNKEY_HOME": str(tmp_path)}
    AuditSigningKey.load(env)
    path = tmp_path / "audit-signing.key"
    path.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        AuditSigningKey.load(env)
    given = tmp_path / "elsewhere.key"
    given.write_text(bytes(range(32)).hex())
    given.chmod(mode)
    with pytest.raises(ConfigError, match="readable by others"):
        AuditSigningKey.load({"OWNKEY_AUDIT_SIGNING_KEY": str(given)})
    given.chmod(0o600)
    assert AuditSigningKey.load({"OWNKEY_AUDIT_SIGNING_KEY": str(given)}).key_id == KEY.key_id


def test_an_edited_time_column_fails_verify(database: Database) -> None:
    """Issue 11, finding 4: editing only ``at_ms`` hides an event from a time-filtered export;
    verify now compares every query column with the hashed body (AUD-12)."""
    fill(database, 300)
    log = AuditLog(database)
    since = int(T0 * 1000) + 10_000
    assert [e.seq for e in log.query("acme", AuditQuery(since_ms=since, until_ms=since + 1))] == [
        21
    ]
    with database.engine.begin() as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 21).values(at_ms=0))
    report = log.verify("acme", PUBLIC)
    assert [(p.kind, p.seq) for p in report.problems] == [("edited", 21)]
    assert "at_ms" in report.problems[0].detail
    with database.engine.begin() as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 21).values(at_ms=since))
    assert log.verify("acme", PUBLIC).ok
    # the other copied columns select nothing in SQL: an edit there hides no event
    with database.engine.begin() as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 29).values(outcome="x"))
    assert [e.seq for e in log.query("acme", AuditQuery(outcome="denied"))].count(29) == 1


def test_deleting_checkpoints_and_rehashing_fails(database: Database) -> None:
    """Issue 11, finding 4: a checkpoint is expected every 256 records (AUD-10)."""
    fill(database, 600)
    with database.engine.begin() as conn:
        conn.execute(delete(audit_checkpoints))
    _rewrite_and_rehash(database)
    report = AuditLog(database).verify("acme", PUBLIC)
    assert [(p.kind, p.seq) for p in report.problems] == [("missing_checkpoint", 256)]


def test_checkpoints_are_chained_in_the_database(database: Database) -> None:
    """AUD-5 v2: each stored checkpoint links to the one before; removing an on-demand one
    in the middle is seen by the next."""
    sink = fill(database, 300)
    middle = sink.checkpoint("acme")
    assert middle is not None
    assert middle.previous is not None
    assert middle.previous != bytes(32)  # links to the checkpoint at 256
    for i in range(300, 520):
        sink.record(event(i))
    assert AuditLog(database).verify("acme", PUBLIC).ok
    with database.engine.begin() as conn:
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq == middle.seq))
    report = AuditLog(database).verify("acme", PUBLIC)
    assert [(p.kind, p.seq) for p in report.problems] == [("missing_checkpoint", 512)]


def _cut_consistently(db: Database, keep: int) -> None:
    """Truncate to ``keep`` records and fix the head row and the checkpoints too."""
    with db.engine.begin() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq > keep))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > keep))
        row = conn.execute(select(audit_records.c.hash).where(audit_records.c.seq == keep)).one()
        conn.execute(update(audit_heads).values(seq=keep, hash=row.hash))


def _rewrite_tail(db: Database) -> None:
    """Rewrite the unsigned tail (after 768) and re-hash it and the head: no checkpoint sees it."""
    from ownkey.audit._chain import link

    with db.engine.begin() as conn:
        rows = list(conn.execute(select(audit_records).order_by(audit_records.c.id)))
        previous = next(bytes(r.hash) for r in rows if r.seq == 800)
        for row in rows:
            if row.seq <= 800:
                continue
            body = bytes(row.body).replace(b'"outcome":"ok"', b'"outcome":"failed"')
            new = link("acme", previous, row.seq, body)
            outcome = "failed" if row.outcome == "ok" else row.outcome  # the column too
            conn.execute(
                update(audit_records)
                .where(audit_records.c.id == row.id)
                .values(body=body, hash=new, outcome=outcome)
            )
            previous = new
        conn.execute(update(audit_heads).values(hash=previous))


def _erase(db: Database) -> None:
    with db.engine.begin() as conn:
        for table in (audit_records, audit_checkpoints, audit_heads):
            conn.execute(delete(table).where(table.c.org == "acme"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda db: _cut_consistently(db, 900), "truncated"),
        (lambda db: _cut_consistently(db, 100), "truncated"),
        (_rewrite_tail, "edited"),
        (_erase, "erased"),
    ],
    ids=["cut_unsigned_tail", "cut_past_checkpoints", "rewrite_unsigned_tail", "erase"],
)
def test_a_remembered_head_detects_truncation_rewrite_and_erasure(
    database: Database, change: Callable[[Database], None], expected: str
) -> None:
    """Issue 11, finding 3 (AUD-11): each change, made consistently (records, head row and
    checkpoints), verifies without a remembered head but fails against one."""
    fill(database, 1000)
    log = AuditLog(database)
    first = log.verify("acme", PUBLIC)
    assert first.ok
    remembered = first.head
    change(database)
    if expected != "erased":
        assert log.verify("acme", PUBLIC).ok  # undetectable from the database alone
    report = log.verify("acme", PUBLIC, since_head=remembered)
    assert [p.kind for p in report.problems] == [expected]
