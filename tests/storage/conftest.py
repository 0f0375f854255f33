"""Databases for the storage tests: a SQLite file per test, and a real PostgreSQL server.

The PostgreSQL server (ownkey.testing.postgres) starts once per session and stops at its end;
if it cannot start, the PostgreSQL tests fail rather than skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ownkey.storage import BlobStore, Database, DirectoryBlobStore, S3BlobStore
from ownkey.testing import postgres


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


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server on a loopback port, for the S3 blob store (started once, stopped at end)."""
    from tests.providers import _servers

    with _servers.moto_server(tmp_path_factory.mktemp("moto-s3")) as server:
        yield server.endpoint


@pytest.fixture
def s3_client(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    name = "ownkey-" + uuid.uuid4().hex[:12]
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["directory", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each blob store the asset store can use: a directory, and S3 on moto's server."""
    if request.param == "directory":
        return DirectoryBlobStore(tmp_path / "objects")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    return S3BlobStore(client, bucket, part_size=5 << 20, read_block=64 << 10)
