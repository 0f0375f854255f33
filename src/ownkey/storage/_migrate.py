"""Alembic, driven from code: the migrations ship inside the package, no alembic.ini needed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from ownkey.errors import ConfigError

__all__ = ["alembic_config", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """An Alembic configuration pointing at the shipped migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` in one transaction.

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
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise ConfigError(
                        "the database migration left rows without their parent: nothing changed"
                    )
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, on=True)


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Switch SQLite's foreign keys on the raw connection: outside any transaction (SQLite
    ignores the pragma inside one), which the engine's connections are between statements."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
