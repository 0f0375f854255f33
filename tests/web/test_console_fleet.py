"""Issue 28 item 7: console sessions are the fleet's, not one node's. Two nodes (each its own
Runtime, app and ``OWNKEY_HOME``) share one database, on SQLite and on PostgreSQL: a session
made on A opens pages on B, a sign-out on either ends it on both at once, a revoked token ends
it everywhere within the token's re-check bound (1 s), and the per-org and overall caps count
the sessions in the database. Clocks are moved by hand."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.service import Runtime
from ownkey.storage import SessionStore, TokenStore
from ownkey.testing.fakes import FakeClock
from ownkey.web._session import SESSION_SECONDS, Sessions, SessionsFull
from tests.api.conftest import setup_orgs

ROOT_KEY = "33" * 32


@dataclass
class Node:
    runtime: Runtime
    tokens: TokenStore
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        client = TestClient(create_app(self.runtime, tokens=self.tokens))
        client.__enter__()  # the app's lifespan: what it starts, its end stops
        self.clients.append(client)
        return client


@dataclass
class Fleet:
    a: Node
    b: Node
    clock: FakeClock
    acme: str
    acme_id: str


def _env(home: Path, url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OWNKEY_")}
    return {
        **env,
        "OWNKEY_HOME": str(home),
        "OWNKEY_DATABASE_URL": url,
        "OWNKEY_ROOT_KEY": ROOT_KEY,
    }


@pytest.fixture
def fleet(database_url: str, tmp_path: Path) -> Iterator[Fleet]:
    clock = FakeClock(1_800_000_000.0)
    nodes: list[Node] = []
    try:
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir(mode=0o700)
            runtime = Runtime.open(
                home=home, url=database_url, env=_env(home, database_url), clock=clock
            )
            nodes.append(Node(runtime, TokenStore(runtime.database, clock=clock)))
            if name == "a":
                setup_orgs(runtime)
        issued, acme = nodes[0].tokens.issue("org", org="acme")
        yield Fleet(nodes[0], nodes[1], clock, acme, issued.token_id)
    finally:
        for node in reversed(nodes):
            for client in node.clients:
                client.__exit__(None, None, None)
            node.runtime.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


def _sign_in(client: TestClient, token: str) -> tuple[str, str]:
    """Sign in; the session cookie and the session's CSRF token."""
    form = client.get("/admin/signin")
    answer = client.post("/admin/signin", data={"csrf": _csrf(form.text), "token": token})
    assert answer.status_code == 200, answer.text[:300]
    cookie = client.cookies.get("ownkey_console")
    assert cookie is not None
    return cookie, _csrf(answer.text)


def _page(client: TestClient, cookie: str, path: str = "/admin/acme") -> int:
    client.cookies.clear()
    answer = client.get(
        path, headers={"Cookie": f"ownkey_console={cookie}"}, follow_redirects=False
    )
    return answer.status_code


def test_a_session_made_on_one_node_opens_pages_on_another(fleet: Fleet) -> None:
    cookie, csrf = _sign_in(fleet.a.client(), fleet.acme)
    on_b = fleet.b.client()
    assert _page(on_b, cookie) == 200
    assert _page(on_b, cookie, "/admin/acme/key") == 200
    # a change posted on B with the CSRF token of the session made on A
    changed = on_b.post(
        "/admin/acme/coverage/0010",
        data={"csrf": csrf, "enable": "1"},
        headers={"Cookie": f"ownkey_console={cookie}"},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert "0010" in fleet.b.runtime.org("acme").settings.services


def test_signing_out_on_one_node_ends_the_session_on_every_node_at_once(fleet: Fleet) -> None:
    on_a = fleet.a.client()
    cookie, csrf = _sign_in(on_a, fleet.acme)
    on_b = fleet.b.client()
    assert _page(on_b, cookie) == 200
    out = on_b.post(
        "/admin/signout",
        data={"csrf": csrf},
        headers={"Cookie": f"ownkey_console={cookie}"},
        follow_redirects=False,
    )
    assert out.status_code == 303
    assert _page(on_a, cookie) == 303  # no clock moved: at once
    assert _page(on_b, cookie) == 303


def test_a_revoked_token_ends_its_sessions_on_every_node_within_a_second(fleet: Fleet) -> None:
    cookie, _ = _sign_in(fleet.a.client(), fleet.acme)
    on_a, on_b = fleet.a.client(), fleet.b.client()
    assert _page(on_b, cookie) == 200
    fleet.a.tokens.revoke(fleet.acme_id)
    assert _page(on_a, cookie) == 303  # at once on the node that revoked it
    fleet.clock.advance(1.0)  # B's copy of the token's row is re-read within a second
    assert _page(on_b, cookie) == 303


def test_a_sign_out_cannot_be_undone_by_a_stale_copy(fleet: Fleet) -> None:
    """The cookie of an ended session stays refused on every node, later too."""
    on_a = fleet.a.client()
    cookie, csrf = _sign_in(on_a, fleet.acme)
    on_a.post("/admin/signout", data={"csrf": csrf}, follow_redirects=False)
    fleet.clock.advance(3600)
    assert _page(fleet.b.client(), cookie) == 303
    assert _page(on_a, cookie) == 303


def test_the_caps_count_the_sessions_of_every_node(fleet: Fleet) -> None:
    """Per org and in all, the sessions of both nodes count together (the database's rows)."""
    on = {
        name: Sessions(
            SessionStore(node.runtime.database), clock=fleet.clock, max_sessions=3, max_per_org=2
        )
        for name, node in (("a", fleet.a), ("b", fleet.b))
    }
    first = on["a"].start(token_id="0" * 16, org="acme", actor="token:x")
    second = on["b"].start(token_id="0" * 16, org="acme", actor="token:x")
    third = on["a"].start(token_id="0" * 16, org="acme", actor="token:x")  # ends acme's oldest
    assert on["b"].get(first.session_id) is None
    assert [on["b"].get(s.session_id) for s in (second, third)] == [second, third]
    assert on["a"].count("acme") == 2
    globex = on["b"].start(token_id="1" * 16, org="globex", actor="token:y")
    with pytest.raises(SessionsFull):  # three live sessions on the two nodes: no room
        on["a"].start(token_id="2" * 16, org="initech", actor="token:z")
    assert on["a"].get(globex.session_id) == globex
    fleet.clock.advance(SESSION_SECONDS)  # all expired: room again, on either node
    assert on["b"].start(token_id="2" * 16, org="initech", actor="token:z").org == "initech"
    assert on["a"].count() == 1
