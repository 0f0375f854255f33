"""Change notifications between nodes: PostgreSQL ``LISTEN/NOTIFY`` on ``ownkey_changes``.

Migration 0005 installs triggers that ``NOTIFY ownkey_changes`` with a small JSON payload after
every committed change to revocation rules, key records, org settings, and to scope keys that
were shredded, retired or moved to other keys. So every change reaches every listening node,
whichever process made it (an API node, the CLI, a job), at commit. Payloads:

=================  ==========================================================================
table              payload fields (besides ``table`` and ``op``)
=================  ==========================================================================
revocation_rules   ``rule_id``, ``org``, ``key_ref``, ``service_id``, ``scope``, ``since``,
                   ``until`` (``scope`` is null and ``partial`` true if it was too long)
master_keys        ``ref``, ``state``
orgs               ``name``
scope_keys         ``key_id`` (hex)
providers          none (migration 0010; the node re-reads every provider row)
=================  ==========================================================================

:class:`ChangeListener` holds one dedicated connection in a daemon thread, hands each payload
to a callback, and calls ``on_gap`` whenever it (re)connects: notifications sent while it was
not listening are lost, so the caller must then re-read everything it caches. SQLite has no
notifications; there only the callers' periodic re-checks apply.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ownkey.storage._engine import Database

__all__ = ["CHANNEL", "Change", "ChangeListener"]

CHANNEL: Final = "ownkey_changes"
_log = logging.getLogger("ownkey.nodes")


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change another process made: which table, which operation, which row."""

    table: str
    op: str
    row: Mapping[str, Any]

    @classmethod
    def parse(cls, payload: str) -> Change | None:
        """A payload of the trigger, or None if it is not one."""
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("table"), str):
            return None
        return cls(data["table"], str(data.get("op", "")), data)


class ChangeListener:
    """Listens on :data:`CHANNEL` from a daemon thread; reconnects with back-off."""

    def __init__(
        self,
        database: Database,
        on_change: Callable[[Change], None],
        on_gap: Callable[[], None],
        *,
        poll_interval: float = 0.25,
        max_backoff: float = 5.0,
    ) -> None:
        if not database.is_postgresql:
            raise ValueError("change notifications need PostgreSQL")
        self._conninfo = database.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._on_change = on_change
        self._on_gap = on_gap
        self._poll = poll_interval
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up."""
        return self._listening.is_set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ownkey-listen", daemon=True)
        self._thread.start()

    def wait_listening(self, timeout: float) -> bool:
        """Wait until the first LISTEN is in place (tests, start-up)."""
        return self._listening.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        import psycopg

        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    backoff = 0.1
                    self._on_gap()  # whatever happened before this LISTEN was not heard
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=self._poll):
                            self._deliver(notify.payload)
            except Exception:
                _log.warning("change listener lost its connection; reconnecting", exc_info=True)
            self._listening.clear()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _deliver(self, payload: str) -> None:
        change = Change.parse(payload)
        if change is None:
            return
        try:
            self._on_change(change)
        except Exception:
            _log.exception("a change notification could not be applied; re-reading everything")
            self._on_gap()
