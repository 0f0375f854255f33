"""Issue 28 item 7: a 10 s database outage under warm traffic, on two nodes of one database.

The token check rides it out (each node's copy of a token's row serves for 30 s past its last
read: ``tests/api/test_tokens.py``), and so do the org directory's re-check, the key records'
and rules' read caches and a cached scope key's record re-check (``ownkey/_outage.py``): the
last answer serves for 30 s, read again at most once a second. Past that the calls fail (503),
as before. The clock is moved by hand."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from ownkey.api import create_app
from ownkey.service import Runtime
from ownkey.storage import TokenStore
from ownkey.testing.fakes import FakeClock
from tests.api.conftest import bearer, chat, setup_orgs

ROOT_KEY = "44" * 32


def _down(*_args: object, **_kwargs: object) -> None:
    raise OperationalError("SELECT", {}, Exception("connection refused"))


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[FakeClock, list[tuple[Runtime, TestClient]], str]]:
    url = f"sqlite:///{tmp_path / 'ownkey.db'}"
    clock = FakeClock(1_800_000_000.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    opened: list[tuple[Runtime, TestClient]] = []
    try:
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir(mode=0o700)
            runtime = Runtime.open(
                home=home,
                url=url,
                env={**env, "OWNKEY_HOME": str(home), "OWNKEY_ROOT_KEY": ROOT_KEY},
                clock=clock,
            )
            if name == "a":
                setup_orgs(runtime)
            client = TestClient(
                create_app(runtime, tokens=TokenStore(runtime.database, clock=clock))
            )
            client.__enter__()
            opened.append((runtime, client))
        _, platform = TokenStore(opened[0][0].database, clock=clock).issue("platform")
        yield clock, opened, platform
    finally:
        for runtime, client in reversed(opened):
            client.__exit__(None, None, None)
            runtime.close()


def test_warm_traffic_rides_out_a_ten_second_outage_on_every_node(
    nodes: tuple[FakeClock, list[tuple[Runtime, TestClient]], str],
) -> None:
    clock, opened, platform = nodes
    start = clock.now
    request = chat()
    data = base64.b64encode(b"hello").decode()
    sealed = {}
    for runtime, client in opened:  # warm: the token, the plan, the scope key on each node
        answer = client.post(
            "/v1/seal", json={"request": request, "data": data}, headers=bearer(platform)
        )
        assert answer.status_code == 200, answer.text
        sealed[id(runtime)] = answer.json()["sealed"]
    for runtime, _ in opened:
        event.listen(runtime.database.engine, "before_cursor_execute", _down)
    statuses = []
    for second in range(11):  # the outage: 0 to 10 s
        clock.now = start + second
        for runtime, client in opened:
            seal = client.post(
                "/v1/seal", json={"request": request, "data": data}, headers=bearer(platform)
            )
            opening = client.post(
                "/v1/open",
                json={"request": request, "sealed": sealed[id(runtime)]},
                headers=bearer(platform),
            )
            statuses.append((second, seal.status_code, opening.status_code))
    for runtime, _ in opened:
        event.remove(runtime.database.engine, "before_cursor_execute", _down)
    assert {(s, o) for _, s, o in statuses} == {(200, 200)}, statuses


def test_past_the_grace_the_calls_fail_closed(
    nodes: tuple[FakeClock, list[tuple[Runtime, TestClient]], str],
) -> None:
    """An outage longer than the grace (30 s) is not ridden out: 503, never an answer from a
    state older than the bound."""
    clock, opened, platform = nodes
    request = chat()
    data = base64.b64encode(b"hello").decode()
    runtime, client = opened[0]
    warm = client.post(
        "/v1/seal", json={"request": request, "data": data}, headers=bearer(platform)
    )
    assert warm.status_code == 200
    event.listen(runtime.database.engine, "before_cursor_execute", _down)
    try:
        clock.now += 40
        late = client.post(
            "/v1/seal", json={"request": request, "data": data}, headers=bearer(platform)
        )
        assert late.status_code == 503
    finally:
        event.remove(runtime.database.engine, "before_cursor_execute", _down)
