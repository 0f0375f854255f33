"""Restores cannot un-revoke quietly: a node notices a database that went back in time (issue 28).

Restoring a dump brings back everything the dump held, and loses everything after it: revocation
rules added since, keys disabled since, shreds since. Content revoked after the dump would open
again, and ``audit verify`` on the restored database alone says OK (a consistent earlier state).

So each node remembers, outside the database, the newest audit head it saw of every org
(``OWNKEY_HOME/audit-heads.json``, 0600, written atomically): seq, hash, and when it saw it. At
start and every ``interval`` seconds it reads the heads again (one query). An org whose chain no
longer extends the remembered head (a lower seq, or another hash at that seq) means the database
is behind what this node saw: a restore, or a cut. The node then refuses every open
(:class:`~ownkey.errors.KeyUnavailable`, 503 with a retry: the platform keeps the content, it is
not a tombstone) until an operator reconciles: ``ownkey audit reconcile-restore --yes`` appends
``audit.restore_reconciled`` to every org's chain (the customer sees the restore in its own log),
after which each node takes the database's heads as its new memory and opens again.

What it does not cover, said plainly in docs/operations.md: a node with a new, empty home has no
memory (the customer's witness log still shows the cut: ``audit verify --witness-log``), and what
the restore lost (rules, disables, shreds after the dump) must be applied again from the audit
export taken before, which the procedure lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ownkey.audit import AuditAction, Auditor
from ownkey.errors import KeyUnavailable

if TYPE_CHECKING:  # the memory profile never loads storage (SQLAlchemy) for the gate
    from ownkey.storage import AuditLog

__all__ = ["HEADS_FILE", "OpenGate", "RestoreWatch"]

_log = logging.getLogger("ownkey.restore")
HEADS_FILE = "audit-heads.json"
DEFAULT_INTERVAL = 10.0


class OpenGate:
    """Whether this node may open content: shut while a restore waits for an operator.

    Every open reads ``reason`` (one attribute: about 30 ns on the prepared path) and raises
    while it is set.
    """

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def shut(self) -> bool:
        return self.reason is not None

    def check(self) -> None:
        """Raise KeyUnavailable while shut."""
        reason = self.reason
        if reason is not None:
            raise KeyUnavailable(reason)

    def close(self, reason: str) -> None:
        self.reason = reason

    def open(self) -> None:
        self.reason = None


@dataclass(frozen=True, slots=True)
class Behind:
    """One org whose chain no longer extends what this node saw."""

    org: str
    remembered_seq: int
    database_seq: int | None


class RestoreWatch:
    """Remembers the heads this node saw and shuts the gate when the database falls behind."""

    def __init__(
        self,
        log: AuditLog,
        home: Path,
        gate: OpenGate,
        clock: Callable[[], float],
        *,
        database: str = "",
    ) -> None:
        """``database`` names the database the heads are of (its URL without a password): a
        home that serves, or tested, several databases keeps one memory per database, and a
        node pointed at another database has no memory of it (never a false alarm)."""
        self._log = log
        self._path = home / HEADS_FILE
        self._database = hashlib.sha256(database.encode("utf-8")).hexdigest()[:32]
        self._gate = gate
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.behind: list[Behind] = []

    # -- memory ----------------------------------------------------------------------------------

    def _read_all(self) -> dict[str, Any]:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A memory that cannot be read is no memory: say so, never crash the node for it.
            _log.warning("%s cannot be read (%s); starting a new one", self._path, exc)
            return {}
        return raw if isinstance(raw, dict) else {}

    def _read(self) -> dict[str, dict[str, Any]]:
        """This database's part of the memory: {org: {"seq", "hash", "at"}}."""
        mine = self._read_all().get(self._database)
        return mine if isinstance(mine, dict) else {}

    def _write(self, memory: dict[str, dict[str, Any]]) -> None:
        everything = self._read_all()
        everything[self._database] = memory
        self._write_all(everything)

    def _write_all(self, memory: dict[str, Any]) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a home: the owner's only
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".audit-heads.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(memory, handle, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- checking --------------------------------------------------------------------------------

    def check(self) -> list[Behind]:
        """Compare the database's heads with this node's memory; shut or open the gate; return
        the orgs behind. A reconciled org (``audit.restore_reconciled`` after the memory was
        written) and every org that moved forward are remembered at their new head."""
        with self._lock:
            now = self._clock()
            memory = self._read()
            heads = self._log.heads()
            behind: list[Behind] = []
            remembered: dict[str, tuple[int, str, float, str]] = {}
            for org, seen in memory.items():
                try:
                    remembered[org] = (
                        int(seen["seq"]),
                        str(seen["hash"]),
                        float(seen["at"]),
                        str(seen.get("first", "")),
                    )
                except (KeyError, TypeError, ValueError):
                    continue
            # the hash at each remembered seq where the chain moved on, and each chain's first
            # record (its lineage): one read for all
            places = [(org, 1) for org in remembered]
            places += [
                (org, seq)
                for org, (seq, _, _, _) in remembered.items()
                if org in heads and heads[org][0] > seq
            ]
            stored = self._log.hashes_at(places)
            lineage = [
                stored[(org, 1)].hex() == first
                for org, (_, _, _, first) in remembered.items()
                if first and (org, 1) in stored
            ]
            if lineage and not any(lineage):
                # Every chain still here starts with another first record: another database
                # at the same place (started over), not a restore of the one remembered (a
                # restore keeps the first records). Editing every first hash to look so is a
                # database writer's act that `audit verify` reports (AUD-7).
                remembered, memory = {}, {}
            for org, (seq, digest, seen_at, _first) in remembered.items():
                head = heads.get(org)
                if head is not None and head[0] >= seq:
                    at_seq = head[1] if head[0] == seq else stored.get((org, seq))
                    if at_seq is not None and at_seq.hex() == digest:
                        continue  # the chain extends what this node saw
                action = AuditAction.RESTORE_RECONCILED.value
                if not heads or self._log.recorded_since(action, int(seen_at * 1000), org):
                    continue  # an operator acknowledged it (or a new, empty database)
                if head is None and self._log.recorded_since(action, int(seen_at * 1000)):
                    continue  # an org the restore erased: acknowledged in the others' chains
                behind.append(Behind(org, seq, None if head is None else head[0]))
            lagging = {item.org for item in behind}
            for org in [org for org in memory if org not in heads and org not in lagging]:
                del memory[org]  # acknowledged as gone (or never had a chain here)
            firsts = self._log.hashes_at(
                [(org, 1) for org in heads if org not in lagging and org not in remembered]
            )
            firsts.update({place: value for place, value in stored.items() if place[1] == 1})
            for org, (head_seq, head_hash) in heads.items():
                if org not in lagging:
                    genesis = firsts.get((org, 1))
                    memory[org] = {
                        "seq": head_seq,
                        "hash": head_hash.hex(),
                        "at": now,
                        "first": "" if genesis is None else genesis.hex(),
                    }
            self._write(memory)
            self.behind = behind
            if behind:
                names = ", ".join(sorted(lagging)[:5]) + (" ..." if len(lagging) > 5 else "")
                self._gate.close(
                    "this node's database is behind the audit heads it saw for "
                    f"{len(lagging)} org(s) ({names}): a restore or a cut; opens are refused "
                    "until an operator runs `ownkey audit reconcile-restore` (docs/operations.md)"
                )
                if not self._was_shut:
                    _log.error("restore detected: %d org(s) behind; opens refused", len(lagging))
            else:
                self._gate.open()
            self._was_shut = bool(behind)
            return behind

    _was_shut = False

    def reconcile(self, auditor: Auditor, *, actor: str) -> int:
        """Acknowledge a restore: ``audit.restore_reconciled`` in every org's chain (what each
        customer's log then shows), then check again; return how many orgs were told."""
        behind = {item.org: item for item in self.check()}
        orgs = sorted(self._log.heads())
        for org in orgs:
            seen = behind.get(org)
            detail = {"node_memory": str(self._path.parent)}
            if seen is not None:
                detail["remembered_seq"] = str(seen.remembered_seq)
                detail["database_seq"] = str(seen.database_seq)
            auditor.emit(AuditAction.RESTORE_RECONCILED, org=org, actor=actor, detail=detail)
        self.check()
        return len(orgs)

    # -- background ------------------------------------------------------------------------------

    def start(self, interval: float = DEFAULT_INTERVAL) -> None:
        """Check every ``interval`` seconds on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.check()
                except Exception:  # a failed check changes nothing: the next one tries again
                    _log.exception("the restore check failed")

        self._thread = threading.Thread(target=loop, name="ownkey-restore-watch", daemon=True)
        self._thread.start()

    def remember(self) -> None:
        """Check once more at a clean stop, so that the heads this process wrote are
        remembered; a failure is logged, never raised (the process is stopping)."""
        try:
            self.check()
        except Exception:
            _log.exception("the restore check at stop failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
