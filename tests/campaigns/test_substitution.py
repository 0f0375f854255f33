"""Campaign 2: the substitution matrix (issue 12), through the library and the REST API.

5 orgs x 8 services x N assets (two scopes per org and service) are sealed; every envelope is
then opened under other contexts: another org, service, scope or asset id, one field at a time
against every alternative, plus random combinations. Not one may open: 0 accepted. make test
uses 4 assets per (org, service) and the single-field substitutions (every alternative value)
plus a few random ones; make soak the full 20 assets and the full cross product (library) and
a large sample of it (API).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.catalog import asset_type
from ownkey.errors import AccessDenied, InvalidCiphertext, InvalidRequest, OwnkeyError
from ownkey.service import Runtime
from ownkey.storage import TokenStore
from tests.api.conftest import bearer
from tests.campaigns.conftest import size, soak

ORGS = ("acme", "globex", "initech", "umbrella", "hooli")
SERVICES = ("0001", "0010", "0011", "0002", "0003", "0009", "0017", "0018")


@dataclass(frozen=True)
class Context:
    org: str
    service_id: str
    scope: str
    asset_id: str

    def request(self) -> dict[str, Any]:
        entry = asset_type(self.service_id)
        component = next(c for c in entry.components if c not in entry.excluded)
        return {
            "asset": {
                "service_id": self.service_id,
                "org": self.org,
                "owner": f"ann@{self.org}.test",
                "owner_kind": "user",
                "container": {"kind": "meeting", "members": []},
                "component": component,
            },
            "scope": self.scope,
            "asset_id": self.asset_id,
        }


def _contexts(assets: int) -> list[Context]:
    return [
        Context(org, service, f"{org}-{service}-scope-{index % 2}", f"{org}-{service}-a{index}")
        for org in ORGS
        for service in SERVICES
        for index in range(assets)
    ]


def _alternatives(
    sealed: Context, every: list[Context], rng: random.Random, *, full: bool, others: int = 8
) -> Iterator[Context]:
    """Every one-field substitution (each alternative value), then the full cross product
    (``full``) or ``others`` random other contexts."""
    orgs = sorted({c.org for c in every})
    services = sorted({c.service_id for c in every})
    scopes = sorted({c.scope for c in every if c.org == sealed.org})
    assets = sorted({c.asset_id for c in every if c.org == sealed.org})
    for org in orgs:
        if org != sealed.org:
            yield Context(org, sealed.service_id, sealed.scope, sealed.asset_id)
    for service in services:
        if service != sealed.service_id:
            yield Context(sealed.org, service, sealed.scope, sealed.asset_id)
    for scope in scopes:
        if scope != sealed.scope:
            yield Context(sealed.org, sealed.service_id, scope, sealed.asset_id)
    for asset in assets:
        if asset != sealed.asset_id:
            yield Context(sealed.org, sealed.service_id, sealed.scope, asset)
    if full:
        yield from (c for c in every if c != sealed)  # the full cross product
    else:
        for other in rng.sample(every, min(others, len(every))):
            if other != sealed:
                yield other


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    home = tmp_path_factory.mktemp("substitution") / "home"
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        for org in ORGS:
            rt.create_org(org)
            rt.create_key(org, actor="test")
            rt.update_org(org, cmk=True, enable=list(SERVICES), actor="test")
            rt.add_users(org, [f"ann@{org}.test"], licensed=True)
        yield rt


def _refused(open_it: Any) -> str:
    try:
        open_it()
    except (AccessDenied, InvalidCiphertext, InvalidRequest) as exc:
        return type(exc).__name__
    except OwnkeyError as exc:  # pragma: no cover - any other refusal is still a refusal
        return type(exc).__name__
    return "ACCEPTED"


def test_no_envelope_opens_under_another_context_library(world: Runtime) -> None:
    contexts = _contexts(size(4, 20))
    protector = world.protector
    sealed = {c: protector.seal(c.request(), c.asset_id.encode()) for c in contexts}
    rng = random.Random(12)
    outcomes: dict[str, int] = {}
    for context, envelope in sealed.items():
        assert protector.open(context.request(), envelope) == context.asset_id.encode()
        for other in _alternatives(context, contexts, rng, full=soak()):
            name = _refused(lambda o=other, e=envelope: protector.open(o.request(), e))
            outcomes[name] = outcomes.get(name, 0) + 1
    tried = sum(outcomes.values())
    print(f"substitution (library): {len(sealed)} envelopes, {tried} substitutions, {outcomes}")
    assert outcomes.get("ACCEPTED", 0) == 0
    assert tried >= len(sealed) * (len(ORGS) - 1 + len(SERVICES) - 1)


def test_no_envelope_opens_under_another_context_api(world: Runtime) -> None:
    tokens = TokenStore(world.database)
    _, platform = tokens.issue("platform")
    headers = bearer(platform)
    contexts = _contexts(size(1, 20))
    rng = random.Random(13)
    outcomes: dict[str, int] = {}
    with TestClient(create_app(world, tokens=tokens)) as client:
        for context in contexts:
            data = base64.b64encode(context.asset_id.encode()).decode()
            body = {"request": context.request(), "data": data}
            sealed = client.post("/v1/seal", json=body, headers=headers).json()["sealed"]
            mine = {"request": context.request(), "sealed": sealed}
            assert client.post("/v1/open", json=mine, headers=headers).json()["data"] == data
            # The full cross product through HTTP is 787,200 requests (hours here): the soak run
            # takes every one-field substitution and 50 random others per envelope instead.
            others = list(
                _alternatives(context, contexts, rng, full=False, others=50 if soak() else 8)
            )
            for other in others if soak() else rng.sample(others, min(5, len(others))):
                answer = client.post(
                    "/v1/open", json={"request": other.request(), "sealed": sealed}, headers=headers
                )
                status = answer.status_code
                key = "ACCEPTED" if status == 200 else f"{status} {answer.json()['type'][19:]}"
                outcomes[key] = outcomes.get(key, 0) + 1
    tried = sum(outcomes.values())
    print(f"substitution (api): {len(contexts)} envelopes, {tried} substitutions, {outcomes}")
    assert outcomes.get("ACCEPTED", 0) == 0
    assert not any(key.startswith("5") for key in outcomes)
    assert tried >= len(contexts) * 5
