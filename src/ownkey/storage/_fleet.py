"""What every node of a fleet needs, kept in the database (migration 0012, issue 28 item 2).

Rows only; what they mean is the service's (``service/_fleet.py``), which seals and opens them
with the fleet's root key. Nothing here is secret in the clear: a ``local_keys`` body holds key
versions sealed under the root key, a ``fleet_secrets`` value is sealed under it.

- :meth:`FleetStore.get_key` / :meth:`add_key` / :meth:`replace_key` / :meth:`all_keys`: the
  embedded local key store's records, one JSON body per key; ``replace_key`` is a
  compare-and-set on the whole body, as the JSON file's was on the whole record.
- :meth:`FleetStore.secret` / :meth:`add_secret` / :meth:`secrets`: named sealed values, first
  writer wins (a second node that races the first adopts the first's value).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ownkey.storage._engine import Database
from ownkey.storage._schema import fleet_secrets, local_keys

__all__ = ["FleetStore"]


class FleetStore:
    """The ``local_keys`` and ``fleet_secrets`` rows of one database."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = database
        self._clock = clock

    def __repr__(self) -> str:
        return f"<FleetStore database={self._db.dialect}>"

    # -- the embedded key store ---------------------------------------------------------------

    def get_key(self, key_id: str) -> str | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(
                select(local_keys.c.body).where(local_keys.c.key_id == key_id)
            ).first()
        return None if row is None else str(row.body)

    def add_key(self, key_id: str, body: str) -> bool:
        """Insert a new record; False if the id is taken."""
        try:
            with self._db.engine.begin() as conn:
                conn.execute(insert(local_keys).values(key_id=key_id, body=body))
        except IntegrityError:
            return False
        return True

    def replace_key(self, key_id: str, expected: str, body: str) -> bool:
        """Store ``body`` if the row still holds ``expected``; say if it did."""
        with self._db.engine.begin() as conn:
            done = conn.execute(
                update(local_keys)
                .where(local_keys.c.key_id == key_id, local_keys.c.body == expected)
                .values(body=body)
            )
        return bool(done.rowcount == 1)

    def all_keys(self) -> list[tuple[str, str]]:
        """Every (key id, body), in key-id order."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(select(local_keys).order_by(local_keys.c.key_id))
            return [(str(row.key_id), str(row.body)) for row in rows]

    # -- sealed values ------------------------------------------------------------------------

    def secret(self, name: str) -> bytes | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(
                select(fleet_secrets.c.sealed).where(fleet_secrets.c.name == name)
            ).first()
        return None if row is None else bytes(row.sealed)

    def add_secret(self, name: str, sealed: bytes) -> bytes:
        """Store ``sealed`` under ``name`` unless a value is there; the value that is."""
        try:
            with self._db.engine.begin() as conn:
                conn.execute(
                    insert(fleet_secrets).values(
                        name=name, sealed=sealed, created_at_ms=round(self._clock() * 1000)
                    )
                )
        except IntegrityError:
            found = self.secret(name)
            if found is None:  # pragma: no cover - a row is never deleted
                raise
            return found
        return sealed

    def secrets(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every (name, sealed value) whose name starts with ``prefix``, by name."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(fleet_secrets.c.name, fleet_secrets.c.sealed)
                .where(fleet_secrets.c.name.startswith(prefix, autoescape=True))
                .order_by(fleet_secrets.c.name)
            )
            return [(str(row.name), bytes(row.sealed)) for row in rows]
