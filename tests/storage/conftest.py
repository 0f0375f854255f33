"""Blob stores for the storage tests (the databases come from tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ownkey.storage import BlobStore, DirectoryBlobStore, S3BlobStore


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
