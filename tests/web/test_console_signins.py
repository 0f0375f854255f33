"""Issue 23: one org admin signing in thousands of times a minute ended every org's console
sessions on the node. Sessions are capped per org, a full node refuses rather than ending
another org's session, and sign-in attempts are limited per client and per org. Every clock
here is moved by hand: no verdict depends on the machine's speed."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ownkey.service import BackgroundJobs, Runtime
from ownkey.storage import Database, SessionStore, TokenStore
from ownkey.web import console_router
from ownkey.web._guard import CLIENT_SIGNINS, ORG_SIGNINS
from ownkey.web._session import MAX_SESSIONS_PER_ORG, SESSION_SECONDS, Sessions, SessionsFull
from ownkey.web._throttle import Throttle
from tests.api.conftest import setup_orgs


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore]:
    """The sessions' table in a database of its own (the fleet's, in production)."""
    database = Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}")
    try:
        yield SessionStore(database)
    finally:
        database.close()


def test_hundreds_of_sign_ins_of_one_org_end_no_session_of_another(store: SessionStore) -> None:
    """Five times the org's cap (each sign-in a database transaction: 10,000 took 50 s here)."""
    clock = Clock()
    sessions = Sessions(store, clock=clock)
    victim = sessions.start(token_id="g", org="globex", actor="token:g")
    first = sessions.start(token_id="a", org="acme", actor="token:a")
    for _ in range(5 * MAX_SESSIONS_PER_ORG):
        latest = sessions.start(token_id="a", org="acme", actor="token:a")
    assert sessions.get(victim.session_id) == victim
    assert sessions.count("acme") == MAX_SESSIONS_PER_ORG  # the org's oldest went first
    assert sessions.get(first.session_id) is None
    assert sessions.get(latest.session_id) == latest
    assert sessions.count() == MAX_SESSIONS_PER_ORG + 1


def test_a_full_node_refuses_a_sign_in_rather_than_end_another_orgs_session(
    store: SessionStore,
) -> None:
    clock = Clock()
    sessions = Sessions(store, clock=clock, max_sessions=3, max_per_org=2)
    held = [
        sessions.start(token_id="t", org=org, actor="token:x") for org in ("acme", "acme", "globex")
    ]
    with pytest.raises(SessionsFull):
        sessions.start(token_id="t", org="initech", actor="token:y")
    assert [sessions.get(s.session_id) for s in held] == held
    again = sessions.start(token_id="t", org="acme", actor="token:x")  # ends acme's oldest only
    assert sessions.get(held[0].session_id) is None
    assert [sessions.get(s.session_id) for s in (held[1], held[2], again)] == [
        held[1],
        held[2],
        again,
    ]
    clock.now += SESSION_SECONDS  # every session has expired: room again
    assert sessions.start(token_id="t", org="initech", actor="token:y").org == "initech"
    assert sessions.count() == 1


def test_a_throttle_allows_a_burst_then_refills_with_the_clock() -> None:
    clock = Clock()
    throttle = Throttle(burst=3, period=60.0, clock=clock)
    assert [throttle.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.take("a") == pytest.approx(20.0)  # one attempt per 20 s
    assert throttle.take("b") == 0.0  # another key has its own budget
    clock.now += 19.0
    assert throttle.take("a") > 0
    clock.now += 1.0
    assert throttle.take("a") == 0.0
    clock.now -= 3600.0  # a clock stepping back refills nothing
    assert throttle.take("a") > 0
    assert Throttle.retry_after(0.2) == "1"
    assert Throttle.retry_after(20.0) == "20"


def test_a_throttle_forgets_the_key_unused_the_longest_past_its_bound() -> None:
    clock = Clock()
    throttle = Throttle(burst=1, period=60.0, clock=clock, max_keys=2)
    assert throttle.take("a") == throttle.take("b") == 0.0
    assert throttle.take("a") > 0  # a is now the most recently used
    assert throttle.take("c") == 0.0  # b goes
    assert throttle.take("a") > 0
    assert throttle.take("b") == 0.0  # forgotten, so a fresh budget


@dataclass
class Deps:
    runtime: Runtime
    tokens: TokenStore
    jobs: BackgroundJobs


@dataclass
class Node:
    app: FastAPI
    clock: Clock
    acme: str
    globex: str
    clients: list[TestClient] = field(default_factory=list)

    def client(self, address: str) -> TestClient:
        client = TestClient(self.app, client=(address, 50_000))
        self.clients.append(client)
        return client


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    home = tmp_path / "home"
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        setup_orgs(rt)
        tokens = TokenStore(rt.database)
        _, acme = tokens.issue("org", org="acme")
        _, globex = tokens.issue("org", org="globex")
        clock = Clock()
        app = FastAPI()
        app.include_router(console_router(Deps(rt, tokens, BackgroundJobs(rt)), clock=clock))
        found = Node(app, clock, acme, globex)
        yield found
        for client in found.clients:
            client.close()


def _sign_in(client: TestClient, token: str) -> int:
    """One sign-in attempt with a fresh form: its status (303 when a session began)."""
    form = client.get("/admin/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = client.post(
        "/admin/signin", data={"csrf": csrf.group(1), "token": token}, follow_redirects=False
    )
    if answer.status_code == 429:
        assert int(answer.headers["retry-after"]) >= 1
        assert "Too many sign-in attempts" in answer.text
        assert "ownkey_console=" not in answer.headers.get("set-cookie", "")
    return answer.status_code


def test_one_client_guessing_tokens_is_slowed_and_no_one_else(node: Node) -> None:
    burst, period = CLIENT_SIGNINS
    guesser = node.client("203.0.113.7")
    wrong = "okt_0000000000000000.bm90IGEgdG9rZW4"
    assert [_sign_in(guesser, wrong) for _ in range(burst)] == [401] * burst
    assert _sign_in(guesser, wrong) == 429
    assert _sign_in(guesser, node.acme) == 429  # even the right token, until the wait is over
    assert _sign_in(node.client("198.51.100.1"), node.acme) == 303  # another client
    node.clock.now += period
    assert _sign_in(guesser, node.acme) == 303


def test_sign_ins_into_one_org_are_limited_and_other_orgs_are_not(node: Node) -> None:
    burst, period = ORG_SIGNINS
    signed_in = [node.client(f"192.0.2.{i}") for i in range(burst + 1)]
    assert [_sign_in(c, node.acme) for c in signed_in[:burst]] == [303] * burst
    assert _sign_in(signed_in[burst], node.acme) == 429
    other = node.client("198.51.100.2")
    assert _sign_in(other, node.globex) == 303
    assert other.get("/admin/globex", follow_redirects=False).status_code == 200
    assert signed_in[0].get("/admin/acme", follow_redirects=False).status_code == 200
    node.clock.now += period
    assert _sign_in(signed_in[burst], node.acme) == 303


def test_a_full_node_answers_503_and_every_session_it_holds_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ownkey.web import _router

    monkeypatch.setattr(_router, "Sessions", functools.partial(Sessions, max_sessions=2))
    home = tmp_path / "home"
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        setup_orgs(rt)
        rt.create_org("initech")
        tokens = TokenStore(rt.database)
        issued = {org: tokens.issue("org", org=org)[1] for org in ("acme", "globex", "initech")}
        app = FastAPI()
        app.include_router(console_router(Deps(rt, tokens, BackgroundJobs(rt)), clock=Clock()))
        clients = {org: TestClient(app, client=(f"192.0.2.{i}", 1)) for i, org in enumerate(issued)}
        try:
            assert _sign_in(clients["acme"], issued["acme"]) == 303
            assert _sign_in(clients["globex"], issued["globex"]) == 303
            form = clients["initech"].get("/admin/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf is not None
            full = clients["initech"].post(
                "/admin/signin",
                data={"csrf": csrf.group(1), "token": issued["initech"]},
                follow_redirects=False,
            )
            assert full.status_code == 503
            assert full.headers["retry-after"] == "60"
            assert "no room for another session" in full.text
            for org in ("acme", "globex"):
                page = clients[org].get(f"/admin/{org}", follow_redirects=False)
                assert page.status_code == 200, org
        finally:
            for client in clients.values():
                client.close()
