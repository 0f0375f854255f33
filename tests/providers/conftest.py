"""Session-wide key managers for the provider tests: SoftHSM2, PyKMIP's server, moto.

Each starts once, on first use, and stops at the end of the session. If one cannot start, the
tests that need it fail (a ServerFailedError), they do not skip: CI must prove the providers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.providers import _servers


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_servers.SoftHsm]:
    with _servers.softhsm(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


@pytest.fixture(scope="session")
def kmip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_servers.KmipServer]:
    with _servers.kmip_server(tmp_path_factory.mktemp("kmip")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_servers.MotoServer]:
    with _servers.moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server
