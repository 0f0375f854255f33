"""The shipped migrations build exactly the schema the code uses, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ownkey.storage import Database, database_url
from ownkey.storage._schema import metadata


def test_migrations_match_schema(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_open_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        db = Database.open(database_url)
        assert "audit_records" in inspect(db.engine).get_table_names()
        db.close()


def test_sqlite_uses_wal(sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.close()


def test_default_location(tmp_path: Path) -> None:
    env = {"OWNKEY_HOME": str(tmp_path / "home")}
    assert database_url(env) == f"sqlite:///{tmp_path / 'home' / 'ownkey.db'}"
    env["OWNKEY_DATABASE_URL"] = "postgresql://u@h/db"
    assert database_url(env) == "postgresql+psycopg://u@h/db"
