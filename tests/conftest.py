"""Shared pytest configuration: the hypothesis profile and the databases.

The PostgreSQL server (ownkey.testing.postgres) starts once per session, on first use, and stops
at its end; if it cannot start, the PostgreSQL tests fail rather than skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from ownkey.storage import Database
from ownkey.testing import postgres

settings.register_profile(
    "ownkey",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ownkey")


#: What the CLI's ``--home`` / ``--database-url`` write into this process's environment.
_CLI_ENV = ("OWNKEY_HOME", "OWNKEY_DATABASE_URL")


@pytest.fixture(autouse=True)
def _restore_cli_environment() -> Iterator[None]:
    """An in-process CLI run with ``--home`` sets OWNKEY_HOME for the process; put it back, so
    no later test (or the subprocess it starts) inherits another test's home."""
    saved = {name: os.environ.get(name) for name in _CLI_ENV}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = postgres.acquire()
    try:
        yield url
    finally:
        postgres.release()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ownkey.db'}"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    url = postgres.create_database(postgres_server)
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.open(database_url)
    try:
        yield db
    finally:
        db.close()
