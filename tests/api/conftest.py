"""An API over a real Runtime (SQLite in a temp home): acme with a customer key and a licensed
user, globex without CMK, and one token of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.service import Runtime
from ownkey.storage import TokenStore

ANN = "ann@acme.test"
AL = "al@acme.test"
BO = "bo@globex.test"


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    platform: dict[str, str]
    acme: dict[str, str]
    globex: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def setup_orgs(rt: Runtime) -> None:
    rt.create_org("acme")
    rt.create_key("acme", actor="test")
    rt.update_org("acme", cmk=True, enable=["0001", "0008"], actor="test")
    rt.add_users("acme", [ANN], licensed=True)
    rt.add_users("acme", [AL])
    rt.create_org("globex")
    rt.add_users("globex", [BO])


def chat(scope: str = "chat-1", asset_id: str = "m1") -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {
                "kind": "chat",
                "members": [{"user": ANN, "org": "acme"}, {"user": BO, "org": "globex"}],
            },
            "component": "message",
        },
        "scope": scope,
        "asset_id": asset_id,
    }


def recording(asset_id: str = "rec-1", scope: str = "meeting-1") -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": scope,
        "asset_id": asset_id,
    }


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    home = tmp_path / "home"
    env = {"OWNKEY_HOME": str(home)}
    with Runtime.open(home=home, env=env) as rt:
        setup_orgs(rt)
        yield rt


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    tokens = TokenStore(runtime.database)
    _, platform = tokens.issue("platform")
    _, acme = tokens.issue("org", org="acme")
    _, globex = tokens.issue("org", org="globex")
    with TestClient(create_app(runtime, tokens=tokens)) as client:
        yield Api(client, runtime, bearer(platform), bearer(acme), bearer(globex))
