"""Alembic, driven from code: the migrations ship inside the package, no alembic.ini needed.

Migrations run under one lock per database, so that any number of nodes may open (or
``ownkey db upgrade``) an empty or older database at once: PostgreSQL, a transaction-level
advisory lock on a fixed key (:data:`MIGRATION_LOCK`) taken first in the migrating transaction;
SQLite, the write lock every transaction takes up front (``BEGIN IMMEDIATE``). Under the lock the
schema is read again: the first node migrates, the others find it current and do nothing.
"""

from __future__ import annotations

from typing import Final

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from ownkey.errors import ConfigError
from ownkey.storage import _revision

__all__ = ["MIGRATION_LOCK", "alembic_config", "breaking_requirement", "upgrade"]

#: The PostgreSQL advisory lock key of ownkey's migrations ("ownkeymg" as a 64-bit integer).
MIGRATION_LOCK: Final = int.from_bytes(b"ownkeymg", "big") - 2**63


def alembic_config() -> Config:
    """An Alembic configuration pointing at the shipped migrations."""
    config = Config()
    config.set_main_option("script_location", str(_revision.MIGRATIONS))
    return config


def breaking_requirement(
    config: Config, up_to: str = "head", since: str | None = None
) -> str | None:
    """The newest ``breaks_builds_before`` declared by a migration after ``since`` (None: from
    the first) up to ``up_to``: the oldest build that may run against the schema once they are
    applied (None: all of them are expand-only)."""
    script = ScriptDirectory.from_config(config)
    found = [
        str(getattr(migration.module, "breaks_builds_before", None))
        for migration in script.iterate_revisions(up_to, since or "base")
        if migration is not None and getattr(migration.module, "breaks_builds_before", None)
    ]
    return max(found) if found else None


def upgrade(
    engine: Engine, revision: str = "head", *, breaking: bool = False
) -> tuple[_revision.SchemaStatus, _revision.SchemaStatus]:
    """Migrate the database behind ``engine`` to ``revision`` in one transaction, under the
    migration lock; the schema status before and after.

    A database found ahead of this build, or at a revision it does not know, is never handed to
    Alembic: ahead but allowed by the rolling-upgrade rule, nothing changes; otherwise
    :class:`ConfigError` with one line naming both revisions. A pending migration that older
    builds cannot run against (``breaks_builds_before``) is applied only with ``breaking`` (the
    operator's word that every node runs a build that can: ``ownkey db upgrade --breaking``),
    except to an empty database, which no node runs against yet.

    On SQLite the foreign keys are off while the migrations run. A batch migration there
    recreates a table (copy, drop, rename), and dropping the old table with foreign keys on
    deletes every row that references it ``ON DELETE CASCADE``: migration 0006 deleted the
    wrapped shares of every scope key (all content sealed before it), 0010 every key version
    (issue 23). Once the migrations are done, ``PRAGMA foreign_key_check`` must find no orphan,
    or the whole upgrade rolls back; then the foreign keys are on again.
    """
    config = alembic_config()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(connection, on=False)
        try:
            with connection.begin():  # SQLite: BEGIN IMMEDIATE, the database's write lock
                if not sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                before = _revision.read_status(connection)
                if before.state != "behind":  # current, or ahead: allowed or refused as it is
                    refusal = before.refusal()
                    if refusal is not None:
                        raise ConfigError(refusal)
                    return before, before
                pending = breaking_requirement(config, revision, before.revision)
                if pending is not None and before.revisions and not breaking:
                    target = before.head if revision == "head" else revision
                    raise ConfigError(
                        f"the migrations from revision {before.revision} to {target} stop "
                        f"builds older than revision {pending}; once every node runs one from "
                        f"{pending} on, run `ownkey db upgrade --breaking`"
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                _record_requirement(connection, breaking_requirement(config, revision))
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise ConfigError(
                        "the database migration left rows without their parent: nothing changed"
                    )
                after = _revision.read_status(connection)
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, on=True)
    return before, after


def _record_requirement(connection: Connection, oldest_build: str | None) -> None:
    """Write the rolling-upgrade requirement of the applied migrations (if any declares one) to
    ``schema_compat``, created on first need (bookkeeping, like ``alembic_version``)."""
    if oldest_build is None:
        return
    connection.execute(text("CREATE TABLE IF NOT EXISTS schema_compat (oldest_build VARCHAR(32))"))
    connection.execute(text("DELETE FROM schema_compat"))
    connection.execute(text("INSERT INTO schema_compat VALUES (:v)"), {"v": oldest_build})


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Switch SQLite's foreign keys on the raw connection: outside any transaction (SQLite
    ignores the pragma inside one), which the engine's connections are between statements."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
