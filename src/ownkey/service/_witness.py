"""The audit witness: each org's chain head, written into the org's own key manager's log.

Everything ownkey stores (records, checkpoints, the head row, the signing key on its disk) is
within reach of an operator with full database and disk access, who could cut or rewrite a
chain and re-sign it. The customer's key manager is not: so, every ``interval`` seconds (and on
demand, ``ownkey audit witness ORG``) the head of each org's chain, ``SEQ:HASH``, goes into the
encryption context (``ownkey.audit-head``) of one small wrap under the org's own customer key.
The manager logs the context it was called with (AWS KMS: CloudTrail's ``encryptionContext``;
ownkey's local store: ``local-keys.log``; a KMIP server that logs the associated data), so the
customer holds every head ownkey ever showed it, out of ownkey's reach. ``ownkey audit verify ORG
--witness-log FILE`` (or ``POST /v1/orgs/ORG/audit/verify``) checks each of them: a prefix of the
chain, heads only growing, no gap longer than the interval (docs/spec/audit-chain.md, AUD-13).
Checking only the newest head is not enough: after a cut the honest witness records a head of the
cut chain, and only the older heads show the cut.

The witness call is itself a wrap and is recorded in the chain like every key-manager call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from ownkey.audit._chain import format_head
from ownkey.audit._witness_log import HEAD_FIELD
from ownkey.errors import ConfigError, InvalidRequest, NotFound, OwnkeyError
from ownkey.keys import KeyRef
from ownkey.policy import parse_duration
from ownkey.service._runtime import Runtime

__all__ = ["HEAD_FIELD", "WITNESS_INTERVAL_ENV", "AuditWitness", "Witnessed", "witness"]

#: Seconds between two witnesses of every org's head; 0 turns the periodic witness off.
WITNESS_INTERVAL_ENV = "OWNKEY_AUDIT_WITNESS_INTERVAL"
DEFAULT_INTERVAL = 3600.0
#: The shortest interval: each round is one audited wrap per org in its customer's key manager.
MIN_INTERVAL = 60.0

_log = logging.getLogger("ownkey.audit.witness")


@dataclass(frozen=True, slots=True)
class Witnessed:
    """A head put in the key manager's log: which org, which head, under which key."""

    org: str
    head: str
    key: str
    provider: str
    key_id: str


def witness(runtime: Runtime, org: str) -> Witnessed:
    """Witness ``org``'s current head in its customer key's manager (one audited wrap).

    NotFound if the org has no audit log or no customer key; what the manager raises if it
    refuses (a disabled key cannot witness) or is down.
    """
    head = runtime.audit_log.head(org)
    if head is None or head[0] == 0:
        raise NotFound(f"no audit log for org {org!r}")
    ref = KeyRef.customer(org)
    admin = runtime.admin
    master = admin.key(ref)
    text = format_head(*head)
    admin.attest(ref, {HEAD_FIELD: text})
    return Witnessed(org, text, str(ref), master.provider, master.key_id)


def interval_from(env: Mapping[str, str]) -> float:
    """The witness interval setting: a duration (``3600``, ``15m``, ``24h``) of at least
    :data:`MIN_INTERVAL`, default 3600, ``0`` = off. ``inf`` killed the witness thread with a
    traceback (the server went on without witnessing) and ``0.0001`` would ask every customer's
    key manager for an audited wrap ten thousand times a second."""
    text = env.get(WITNESS_INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    if text in ("0", "0s", "0.0"):
        return 0.0
    try:
        return parse_duration(WITNESS_INTERVAL_ENV, text, minimum=MIN_INTERVAL)
    except InvalidRequest as exc:
        raise ConfigError(f"{exc} (0 turns the witness off)") from None


class AuditWitness:
    """Witnesses every org that has a usable customer key, every ``interval`` seconds, on a
    daemon thread (the first round one interval after :meth:`start`). A round that fails for
    one org (its key disabled, its manager down) is logged and the others go on."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        self._runtime = runtime
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ownkey-audit-witness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()

    def run_once(self) -> list[Witnessed]:
        """One round over every org with a usable customer key."""
        done: list[Witnessed] = []
        for master in self._runtime.list_keys():
            org = master.ref.org
            if org is None or master.ref != KeyRef.customer(org) or not master.state.usable:
                continue
            try:
                done.append(witness(self._runtime, org))
            except OwnkeyError as exc:
                _log.warning("audit witness of %s failed: %s", org, type(exc).__name__)
        self.rounds += 1
        return done
