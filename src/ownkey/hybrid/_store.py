"""The key service's own database: revocations and the audit hash chain, in one SQLite file.

The customer runs the key service apart from the platform, so it keeps its state in its own
file (``$HOME/hybrid.db``), never in the platform's database. Revocations are read on every call,
so a revocation written by ``ownkey hybrid revoke`` (another process) takes effect on the next
call. Audit records are appended inside ``BEGIN IMMEDIATE``, reading the head in the same
transaction, so writers in several processes extend one chain and never fork it. The chain is
ownkey's (``docs/spec/audit-chain.md``): each record hashes the previous hash, its sequence
number and its canonical JSON body.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ownkey.audit._chain import ChainRecord, ChainReport, canonical_body, link, verify_chain
from ownkey.errors import AuditUnavailable, InvalidRequest

__all__ = ["REVOCATION_KINDS", "HybridStore"]

#: What can be revoked: one user (email), one conversation (resource name), the whole org.
REVOCATION_KINDS: Final = ("user", "conversation", "org")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS revocations (
    kind TEXT NOT NULL, value TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (kind, value));
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, body BLOB NOT NULL, hash BLOB NOT NULL);
"""


class HybridStore:
    """Revocations and audit of one key service (one org)."""

    def __init__(self, path: Path, org: str) -> None:
        self.path = path
        self.org = org
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- revocations --------------------------------------------------------------------------

    def revoke(self, kind: str, value: str, at_ms: int) -> None:
        if kind not in REVOCATION_KINDS:
            raise InvalidRequest("kind", f"must be one of {', '.join(REVOCATION_KINDS)}")
        key = value.lower() if kind == "user" else value
        with self._immediate() as db:
            db.execute(
                "INSERT OR REPLACE INTO revocations (kind, value, at_ms) VALUES (?, ?, ?)",
                (kind, key, at_ms),
            )

    def restore(self, kind: str, value: str) -> None:
        key = value.lower() if kind == "user" else value
        with self._immediate() as db:
            db.execute("DELETE FROM revocations WHERE kind = ? AND value = ?", (kind, key))

    def revoked(self, *, user: str | None, conversation: str | None) -> str | None:
        """The first revocation that applies (``org``, ``user`` or ``conversation``), or None."""
        wanted = [("org", self.org)]
        if user is not None:
            wanted.append(("user", user.lower()))
        if conversation is not None:
            wanted.append(("conversation", conversation))
        with self._lock:
            for kind, value in wanted:
                row = self._db.execute(
                    "SELECT 1 FROM revocations WHERE kind = ? AND value = ?", (kind, value)
                ).fetchone()
                if row is not None:
                    return kind
        return None

    # -- audit ----------------------------------------------------------------------------------

    def append(self, event: Mapping[str, Any]) -> ChainRecord:
        """Link ``event`` to the chain; AuditUnavailable if it cannot be written (fail closed)."""
        body = canonical_body(event)
        try:
            with self._immediate() as db:
                row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, previous = (row[0], bytes(row[1])) if row else (0, bytes(32))
                record = ChainRecord(
                    self.org, seq + 1, body, link(self.org, previous, seq + 1, body)
                )
                db.execute(
                    "INSERT INTO audit (seq, body, hash) VALUES (?, ?, ?)",
                    (record.seq, record.body, record.hash),
                )
        except sqlite3.Error as exc:
            raise AuditUnavailable("key service audit log unavailable") from exc
        return record

    def records(self) -> Iterator[ChainRecord]:
        with self._lock:
            rows = self._db.execute("SELECT seq, body, hash FROM audit ORDER BY seq").fetchall()
        for seq, body, digest in rows:
            yield ChainRecord(self.org, int(seq), bytes(body), bytes(digest))

    def verify(self) -> ChainReport:
        return verify_chain(self.org, self.records(), [], {})
