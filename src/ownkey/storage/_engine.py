"""Where the database is and how to open it: settings, engines, migrations on open.

``OWNKEY_DATABASE_URL`` (``postgresql+psycopg://user@host/db``) selects PostgreSQL; otherwise
the database is the SQLite file ``$OWNKEY_HOME/ownkey.db`` (``OWNKEY_HOME`` defaults to
``~/.ownkey``), opened in WAL mode with a busy timeout so that several processes can share it,
and with ``secure_delete`` on, so that a deleted row (a shredded wrapped share) is overwritten
with zeros in its page instead of lingering in free space. An open either migrates the schema to
this build's newest migration (under the migration lock, ``_migrate.py``) or only checks that
this build may run against it (``migrate=False``: ``ownkey serve``); docs/operations.md, "Upgrades".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection

from ownkey.errors import ConfigError, KeyUnavailable
from ownkey.storage._files import private_dir, private_file

if TYPE_CHECKING:
    from ownkey.storage._revision import SchemaStatus

__all__ = ["Database", "database_url", "ownkey_home"]

DATABASE_URL_ENV = "OWNKEY_DATABASE_URL"
HOME_ENV = "OWNKEY_HOME"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: The PostgreSQL advisory lock key of a node's first-open set-up ("ownkeyst" as an integer);
#: the migrations have their own (``_migrate.MIGRATION_LOCK``).
SETUP_LOCK: Final = int.from_bytes(b"ownkeyst", "big") - 2**63


#: A database error's text never shows a statement's values (token hashes, wrapped keys, asset
#: ids): it reaches logs and tracebacks, and those are read by more people than the database.
_HIDE_PARAMETERS: Final = True


def ownkey_home(env: Mapping[str, str] | None = None) -> Path:
    """The directory for ownkey's local state (``OWNKEY_HOME``, default ``~/.ownkey``)."""
    env = os.environ if env is None else env
    return Path(env.get(HOME_ENV) or Path.home() / ".ownkey")


def database_url(env: Mapping[str, str] | None = None) -> str:
    """``OWNKEY_DATABASE_URL`` if set, else the SQLite file under :func:`ownkey_home`."""
    env = os.environ if env is None else env
    url = env.get(DATABASE_URL_ENV)
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return f"sqlite:///{ownkey_home(env) / 'ownkey.db'}"


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        database = Path(path)
        private_dir(database.parent)
        # SQLite gives -wal and -shm the mode of the database file: 0600 for all three.
        private_file(database)
        for suffix in ("-wal", "-shm"):
            companion = database.with_name(database.name + suffix)
            if companion.exists():
                private_file(companion)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        hide_parameters=_HIDE_PARAMETERS,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, say when transactions begin (the documented recipe),
        # so that every transaction is BEGIN IMMEDIATE: writers serialise up front instead of
        # failing on a lock upgrade half-way.
        dbapi.isolation_level = None
        cursor = dbapi.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # A shred must not leave the deleted bytes in the page's free space (KL-9). Fail closed
        # on a build of SQLite that cannot do it (compiled with SQLITE_OMIT_SECURE_DELETE...).
        row = cursor.execute("PRAGMA secure_delete = ON").fetchone()
        cursor.close()
        if row is None or int(row[0]) != 1:
            raise ConfigError("this SQLite cannot overwrite deleted rows (secure_delete)")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """One engine plus what the stores need to know about its dialect.

    Build it with :meth:`open` (which migrates, or checks the schema) in the composition root;
    stores receive it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, check: bool = True) -> Database:
        """Connect to ``url`` (default: :func:`database_url`) and migrate it to this build's
        newest migration; with ``migrate=False`` only check that this build may run against the
        schema as it is (:meth:`check_schema`), and with ``check=False`` not even that
        (``ownkey db status`` and ``db upgrade``, which say what they find)."""
        url = url or database_url()
        try:
            if url.startswith("sqlite"):
                engine = _sqlite_engine(url)
            elif url.startswith("postgresql+psycopg"):
                engine = create_engine(url, pool_pre_ping=True, hide_parameters=_HIDE_PARAMETERS)
            else:
                raise ConfigError(
                    "OWNKEY_DATABASE_URL must be a postgresql+psycopg:// or sqlite:/// URL"
                )
        except ImportError as exc:
            raise ConfigError(
                "the SQL storage needs the 'sql' extra: pip install 'ownkey[sql]'"
            ) from exc
        database = cls(engine)
        try:
            if migrate:
                database.migrate()
            elif check:
                database.check_schema()
        except BaseException:
            database.close()
            raise
        return database

    @contextlib.contextmanager
    def setup_lock(self) -> Iterator[None]:
        """Hold the set-up lock for a block: a node's first-open set-up (creating the platform
        key when there is none) is then one node's at a time, and a node that waited finds the
        key the first one made, instead of registering a second one over it.

        PostgreSQL: a session advisory lock (:data:`SETUP_LOCK`) on a connection of its own,
        released at the end of the block. SQLite: an exclusive ``flock`` on ``<database>.lock``
        beside the file (the nodes of a SQLite file are one host's processes); nothing for an
        in-memory database."""
        if not self.is_postgresql:
            path = self.engine.url.database
            if not path or path == ":memory:":
                yield
                return
            import fcntl

            fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SETUP_LOCK})
                conn.commit()

    def purge_deleted(self) -> None:
        """Make rows deleted so far unreadable from the database's files (KL-9).

        SQLite (``secure_delete`` zeroes a deleted row in its page, but the page as it was before
        the delete is still a frame of ``ownkey.db-wal``, and a plain checkpoint copies frames
        without emptying the log): a ``TRUNCATE`` checkpoint copies every frame into the
        database, then truncates the WAL to zero bytes. It waits for readers up to the busy
        timeout; if one still holds an old snapshot the log cannot be emptied, and this raises
        :class:`KeyUnavailable` (try again) rather than report a clean shred that is not.

        PostgreSQL: nothing can be done from a transaction; the old row version stays in the
        heap until VACUUM reuses its space and in WAL segments until they are recycled, and in
        every base backup and WAL archive taken meanwhile (docs/storage.md).
        """
        if self.dialect != "sqlite":
            return
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            raw.close()
        # (busy, frames in the log, frames checkpointed): (0, 0, 0) once the log is empty.
        if row is None or int(row[0]) != 0 or int(row[1]) not in (0, -1):
            raise KeyUnavailable(
                "the SQLite WAL could not be emptied after a shred (a reader holds it); "
                "shred again to finish"
            )

    def schema(self) -> SchemaStatus:
        """The schema's revision against this build's newest migration (one cheap query)."""
        from ownkey.storage._revision import schema_status

        return schema_status(self.engine)

    def check_schema(self) -> SchemaStatus:
        """The schema status if this build may run against it as it is: at its newest
        migration, or ahead of it where the rolling-upgrade rule allows. Otherwise
        :class:`ConfigError`, one line: behind (``run `ownkey db upgrade```), ahead past a
        migration older builds cannot run against, or a revision this build does not know."""
        status = self.schema()
        refusal = status.refusal()
        if refusal is not None:
            raise ConfigError(refusal)
        return status

    def migrate(self, *, breaking: bool = False) -> SchemaStatus:
        """Run the shipped Alembic migrations up to head under the migration lock (idempotent,
        safe from any number of processes at once); the schema status after. A database already
        at head is recognised by one cheap query, without importing Alembic
        (:mod:`ownkey.storage._revision`); one ahead of this build is left as it is, and
        refused unless the rolling-upgrade rule allows it (:meth:`check_schema`). A migration
        that older builds cannot run against is applied only with ``breaking``."""
        status = self.schema()
        if status.state != "behind":
            return self.check_schema()
        from ownkey.storage._migrate import upgrade

        return upgrade(self.engine, breaking=breaking)[1]

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
