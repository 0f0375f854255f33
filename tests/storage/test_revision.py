"""The cheap schema-version check (``ownkey.storage._revision``) agrees with Alembic and never
lets a database that is behind open without its migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from ownkey.storage import Database
from ownkey.storage._migrate import alembic_config, upgrade
from ownkey.storage._revision import VERSIONS, is_current, shipped_head


def test_shipped_head_is_alembics_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [shipped_head()]
    # Every migration file's number is its revision id, which the check relies on.
    for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"):
        assert script.get_revision(path.name[:4]) is not None, path.name


def _db(path: Path) -> Database:
    return Database.open(f"sqlite:///{path / 'ownkey.db'}", migrate=False, check=False)


def test_fresh_database_is_not_current_then_migrated(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        assert not is_current(db.engine)
        db.migrate()
        assert is_current(db.engine)
    finally:
        db.close()


def test_a_database_behind_head_is_upgraded_on_open(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        upgrade(db.engine, "0001")
        assert not is_current(db.engine)
        db.migrate()
        assert is_current(db.engine)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                shipped_head()
            )
    finally:
        db.close()


@pytest.mark.parametrize("rows", [[], ["0001"], ["9999"], ["0001", "0002"]])
def test_any_other_version_table_is_not_current(tmp_path: Path, rows: list[str]) -> None:
    db = _db(tmp_path)
    try:
        db.migrate()
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM alembic_version"))
            for row in rows:
                conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": row})
        assert not is_current(db.engine)
    finally:
        db.close()
