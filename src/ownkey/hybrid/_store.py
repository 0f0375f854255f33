"""The key service's own database: revocations and the audit hash chain, in one SQLite file.

The customer runs the key service apart from the platform, so it keeps its state in its own
file (``$HOME/hybrid.db``), never in the platform's database. Revocations are read on every call,
so a revocation written by ``ownkey hybrid revoke`` (another process) takes effect on the next
call. Audit records are appended inside ``BEGIN IMMEDIATE``, reading the head in the same
transaction, so writers in several processes extend one chain and never fork it. The chain is
ownkey's (``docs/spec/audit-chain.md``): each record hashes the previous hash, its sequence
number and its canonical JSON body; every ``checkpoint_every``-th record is followed, in the same
transaction, by an Ed25519-signed checkpoint (when the store has the home's signer), so that a
truncation of the log behind a checkpoint is detected too.

Nothing in this file is out of reach of whoever can write it (the key service's operator), so
the chain is anchored outside it: after every ``checkpoint_every``-th record commits, its head
``SEQ:HASH`` goes into the encryption context of one wrap under the service's own key
(:func:`head_witness`, ``ownkey.audit-head`` as the platform's witness does), and the key
manager's log (CloudTrail, ``keys/local-keys.log``) holds it. ``ownkey hybrid audit verify
--witness-log FILE`` checks every such head against the chain.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ownkey.audit._chain import (
    GENESIS_HASH,
    ChainHead,
    ChainRecord,
    ChainReport,
    Checkpoint,
    canonical_body,
    checkpoint_link,
    format_head,
    link,
    sign_checkpoint,
    verify_chain,
)
from ownkey.audit._witness_log import HEAD_FIELD, WITNESS_PURPOSE
from ownkey.envelope import Ed25519Signer, sha256
from ownkey.errors import AuditUnavailable, ConfigError, InvalidRequest, OwnkeyError
from ownkey.keys import KeyProvider
from ownkey.policy import canonical_email, check_id, check_org

__all__ = ["AUDIT_SYNC", "REVOCATION_KINDS", "HybridStore", "head_witness", "signer_key_id"]

_log = logging.getLogger("ownkey.hybrid.audit")
#: Called with each witnessed head (seq, hash) once its record is committed.
Witness = Callable[[int, bytes], None]


def head_witness(provider: KeyProvider, key_id: str, org: str) -> Witness:
    """Put a head in the key manager's log: one wrap of 32 random bytes under ``key_id`` with
    ``{"purpose": "ownkey.audit-witness", "org", "ownkey.audit-head": "SEQ:HASH"}`` as its
    encryption context (docs/spec/audit-chain.md, AUD-13)."""

    def witness(seq: int, chain_hash: bytes) -> None:
        context = {"purpose": WITNESS_PURPOSE, "org": org, HEAD_FIELD: format_head(seq, chain_hash)}
        provider.wrap(key_id, os.urandom(32), context)

    return witness


#: What can be revoked: one user (email), one conversation (resource name), the whole org.
REVOCATION_KINDS: Final = ("user", "conversation", "org")


def _revocation_key(kind: str, value: str) -> str:
    """What a revocation of ``kind`` is stored under (a user by lower-cased email); a kind or a
    value that no call could carry is refused, so a typo is not recorded as a revocation."""
    if kind not in REVOCATION_KINDS:
        raise InvalidRequest("kind", f"must be one of {', '.join(REVOCATION_KINDS)}")
    if kind == "org":
        return check_org("value", value)
    if kind == "user":
        return canonical_email("value", value)
    return check_id("value", value)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS revocations (
    kind TEXT NOT NULL, value TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (kind, value));
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, body BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, signed_at INTEGER NOT NULL,
    key_id TEXT NOT NULL, signature BLOB NOT NULL, previous BLOB NOT NULL);
"""


def signer_key_id(public_key: bytes) -> str:
    """The id a checkpoint names its verifying key by: hex of SHA-256(public key)[:8]."""
    return "hybrid-audit-" + sha256(public_key)[:8].hex()


#: How each audit record reaches the disk before a key leaves (``HybridStore``'s ``audit_sync``).
AUDIT_SYNC = ("normal", "full")


class HybridStore:
    """Revocations and audit of one key service (one org)."""

    def __init__(
        self,
        path: Path,
        org: str,
        *,
        signer: Ed25519Signer | None = None,
        checkpoint_every: int = 16,
        witness: Witness | None = None,
        audit_sync: str = "normal",
    ) -> None:
        """``audit_sync`` (``hybrid.json``'s ``audit_sync``): ``normal`` writes each record to
        the write-ahead log before the key leaves (a crash of the key service loses none; a
        power loss of its host may lose the last ones, SQLite's WAL with synchronous=NORMAL);
        ``full`` also flushes it to disk first, at the cost of one fsync per call (issue 25:
        about 150x fewer records a second here)."""
        if audit_sync not in AUDIT_SYNC:
            raise ConfigError(f"audit_sync: one of {', '.join(AUDIT_SYNC)}, not {audit_sync!r}")
        self.path = path
        self.org = org
        self._signer = signer
        self._public = signer.public_key() if signer is not None else None
        self._every = checkpoint_every
        self._witness = witness
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={audit_sync.upper()}")  # one of two literals
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
        key = _revocation_key(kind, value)
        with self._immediate() as db:
            db.execute(
                "INSERT OR REPLACE INTO revocations (kind, value, at_ms) VALUES (?, ?, ?)",
                (kind, key, at_ms),
            )

    def restore(self, kind: str, value: str) -> None:
        key = _revocation_key(kind, value)
        with self._immediate() as db:
            db.execute("DELETE FROM revocations WHERE kind = ? AND value = ?", (kind, key))

    def revoked(self, *, user: str | None, conversation: str | None) -> str | None:
        """The first revocation that applies (``org``, ``user`` or ``conversation``), or None."""
        wanted = [("org", self.org)]
        if user is not None:
            wanted.append(("user", user))
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
                self._checkpoint(db, record)
        except sqlite3.Error as exc:
            raise AuditUnavailable("key service audit log unavailable") from exc
        if self._witness is not None and record.seq % self._every == 0:
            try:
                self._witness(record.seq, record.hash)
            except OwnkeyError as exc:  # the record stands; the missing head shows as a gap
                _log.warning("audit witness of seq %d failed: %s", record.seq, type(exc).__name__)
        return record

    @property
    def every(self) -> int:
        """Records between two checkpoints, and between two witnessed heads."""
        return self._every

    def _checkpoint(self, db: sqlite3.Connection, record: ChainRecord) -> None:
        """Sign every ``checkpoint_every``-th record, in the transaction that wrote it."""
        if self._signer is None or self._public is None or record.seq % self._every:
            return
        last = self._last_checkpoint(db)
        checkpoint = sign_checkpoint(
            ChainHead(self.org, record.seq, record.hash),
            self._signer,
            signer_key_id(self._public),
            int(time.time()),
            GENESIS_HASH if last is None else checkpoint_link(last),
        )
        db.execute(
            "INSERT INTO checkpoints (seq, hash, signed_at, key_id, signature, previous)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                checkpoint.seq,
                checkpoint.hash,
                checkpoint.signed_at,
                checkpoint.key_id,
                checkpoint.signature,
                checkpoint.previous,
            ),
        )

    def _last_checkpoint(self, db: sqlite3.Connection) -> Checkpoint | None:
        """The newest checkpoint: the next one links to it (AUD-5), so none can be dropped."""
        row = db.execute(
            "SELECT seq, hash, signed_at, key_id, signature, previous FROM checkpoints"
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else self._checkpoint_of(row)

    def _checkpoint_of(self, row: tuple[Any, ...]) -> Checkpoint:
        seq, digest, at, kid, signature, previous = row
        return Checkpoint(
            self.org, int(seq), bytes(digest), int(at), str(kid), bytes(signature), bytes(previous)
        )

    def records(self) -> Iterator[ChainRecord]:
        with self._lock:
            rows = self._db.execute("SELECT seq, body, hash FROM audit ORDER BY seq").fetchall()
        for seq, body, digest in rows:
            yield ChainRecord(self.org, int(seq), bytes(body), bytes(digest))

    def checkpoints(self) -> list[Checkpoint]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, hash, signed_at, key_id, signature, previous FROM checkpoints"
                " ORDER BY seq"
            ).fetchall()
        return [self._checkpoint_of(row) for row in rows]

    def verify(
        self,
        public_keys: Mapping[str, bytes] | None = None,
        *,
        witnessed_heads: Sequence[tuple[int, bytes]] = (),
    ) -> ChainReport:
        """Recompute the chain and check every checkpoint (with this store's key, or the
        ``public_keys`` given: a verifier need not hold the signing seed) and that each of
        ``witnessed_heads`` (read from the key manager's log) is a prefix of it."""
        keys = dict(public_keys or {})
        if self._public is not None:
            keys[signer_key_id(self._public)] = self._public
        every = self._every if keys else None  # with a key known, a checkpoint at each multiple
        return verify_chain(
            self.org,
            self.records(),
            self.checkpoints(),
            keys,
            witnessed_heads=witnessed_heads,
            checkpoint_every=every,
        )
