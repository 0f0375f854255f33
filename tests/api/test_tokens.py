"""API tokens: shown once, stored as a SHA-256 digest, compared in constant time, revocable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ownkey.envelope import sha256
from ownkey.errors import NotFound
from ownkey.storage import Database, TokenStore
from ownkey.storage._schema import api_tokens
from tests.api.conftest import Api, bearer


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}"))


def test_a_token_authenticates_and_only_its_digest_is_stored(store: TokenStore) -> None:
    record, text = store.issue("org", org="acme", note="ci")
    assert text.startswith(f"okt_{record.token_id}.")
    found = store.authenticate(text)
    assert found is not None
    assert (found.kind, found.org, found.note) == ("org", "acme", "ci")
    secret = text.split(".", 1)[1]
    with store._db.engine.connect() as conn:
        row = conn.execute(select(api_tokens)).one()
    assert secret.encode() not in repr(tuple(row)).encode()
    assert len(bytes(row.digest)) == 32
    assert bytes(row.digest) != sha256(text.encode())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "okt_" + "0" * 16 + t[20:],  # unknown id
        lambda t: t + "x",  # malformed
        lambda t: "",
        lambda t: t.replace("okt_", "tok_"),
    ],
)
def test_a_wrong_token_does_not_authenticate(store: TokenStore, mangle: object) -> None:
    _, text = store.issue("platform")
    assert callable(mangle)
    assert store.authenticate(mangle(text)) is None


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("nibble", range(16))
def test_only_the_issued_spelling_authenticates(tmp_path: Path, nibble: int) -> None:
    """32 bytes in base64url end in a character with 2 unused bits: the issued token's last
    character and its 3 siblings decoded alike, so 4 strings authenticated (the 'wrong secret'
    case above passed or failed by the token's last character, 3 times in 64)."""
    secret = bytes(31) + bytes([nibble])  # its low 4 bits are the last character's high 4
    store = TokenStore(
        Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}"),
        random=lambda n: secret if n == len(secret) else bytes(n),
    )
    _, text = store.issue("platform")
    issued = text[-1]
    assert store.authenticate(text) is not None
    base = _B64URL.index(issued) & ~3
    for sibling in _B64URL[base : base + 4]:
        if sibling != issued:
            assert store.authenticate(text[:-1] + sibling) is None, (issued, sibling)


def test_a_revoked_token_stops_at_once(store: TokenStore) -> None:
    record, text = store.issue("platform")
    assert store.revoke(record.token_id).revoked_at_ms is not None
    assert store.authenticate(text) is None
    with pytest.raises(NotFound):
        store.revoke("0" * 16)


def test_kinds_are_checked(store: TokenStore) -> None:
    with pytest.raises(ValueError, match="org token"):
        store.issue("org")
    with pytest.raises(ValueError, match="org token"):
        store.issue("platform", org="acme")
    with pytest.raises(ValueError, match="unknown token kind"):
        store.issue("root")


def test_listing_by_org(store: TokenStore) -> None:
    store.issue("org", org="acme")
    store.issue("org", org="globex")
    store.issue("platform")
    assert [t.org for t in store.all(org="acme")] == ["acme"]
    assert len(store.all()) == 3


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    clock = _Clock()
    store = TokenStore(Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}"), clock=clock)
    record, text = store.issue("platform", expires_in=3600)
    assert record.expires_at_ms == 1_800_003_600_000
    clock.now += 3599
    assert store.authenticate(text) is not None
    clock.now += 1
    assert store.authenticate(text) is None
    [listed] = store.all()
    assert listed.state(round(clock.now * 1000)) == "expired"
    with pytest.raises(ValueError, match="positive"):
        store.issue("platform", expires_in=0)


def test_last_use_is_recorded_to_the_minute(tmp_path: Path) -> None:
    clock = _Clock()
    store = TokenStore(Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}"), clock=clock)
    _, text = store.issue("platform")
    assert store.all()[0].last_used_at_ms is None
    assert store.authenticate(text) is not None
    first = store.all()[0].last_used_at_ms
    assert first == 1_800_000_000_000
    clock.now += 30  # within the granularity: no write
    store.authenticate(text)
    assert store.all()[0].last_used_at_ms == first
    clock.now += 30
    store.authenticate(text)
    assert store.all()[0].last_used_at_ms == 1_800_000_060_000
    store.authenticate("okt_" + "0" * 16 + "." + "A" * 43)  # a failed attempt records nothing
    assert store.all()[0].last_used_at_ms == 1_800_000_060_000


def test_the_api_refuses_an_expired_token(api: Api) -> None:
    tokens = TokenStore(api.runtime.database)
    _, text = tokens.issue("org", org="acme", expires_in=1e-3)
    time.sleep(0.01)
    answer = api.client.get("/v1/orgs/acme/coverage", headers=bearer(text))
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert api.client.get("/v1/orgs/acme/coverage", headers=api.acme).status_code == 200


def _reads(database: Database) -> list[str]:
    """Count the statements that read api_tokens (what a request used to cost)."""
    from sqlalchemy import event

    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "api_tokens" in statement:
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", before)
    return seen


def test_tokens_are_checked_from_memory_and_a_revocation_reaches_every_node_within_a_second(
    tmp_path: Path,
) -> None:
    """Issue 25: a node reads a token's row at most once a second; a token revoked on node A
    is refused at once on A and within ``recheck_after`` (1 s) on node B."""
    url = f"sqlite:///{tmp_path / 'ownkey.db'}"
    clock = _Clock()
    a = TokenStore(Database.open(url), clock=clock)
    b_db = Database.open(url)
    b = TokenStore(b_db, clock=clock)
    record, text = a.issue("platform")
    reads = _reads(b_db)
    for _ in range(100):
        assert b.authenticate(text) is not None
    assert len(reads) == 1  # not one read per request
    assert a.authenticate(text) is not None
    a.revoke(record.token_id)
    assert a.authenticate(text) is None  # at once where it was revoked
    clock.now += 0.5
    assert b.authenticate(text) is not None  # B's copy is half a second old: still trusted
    clock.now += 0.5
    assert b.authenticate(text) is None  # one second: B read the row again
    assert len(reads) == 2


def test_an_expired_token_is_refused_from_the_copy_too(tmp_path: Path) -> None:
    clock = _Clock()
    store = TokenStore(Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}"), clock=clock)
    _, text = store.issue("platform", expires_in=10)
    assert store.authenticate(text) is not None
    clock.now += 10
    assert store.authenticate(text) is None


def test_a_short_database_outage_is_ridden_out_by_warm_tokens_only(tmp_path: Path) -> None:
    """Issue 28 item 7: warm traffic rides out an outage for ``outage_grace``; a token never
    seen here, or a copy older than the grace, fails (the database error, not a 401)."""
    from sqlalchemy.exc import OperationalError

    clock = _Clock()
    database = Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}")
    store = TokenStore(database, clock=clock, outage_grace=30)
    _, warm = store.issue("platform")
    _, cold = store.issue("platform")
    assert store.authenticate(warm) is not None

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    from sqlalchemy import event

    event.listen(database.engine, "before_cursor_execute", down)
    clock.now += 20
    assert store.authenticate(warm) is not None  # 20 s into the outage: within the grace
    with pytest.raises(OperationalError):
        store.authenticate(cold)
    clock.now += 15
    with pytest.raises(OperationalError):
        store.authenticate(warm)  # 35 s: past recheck_after + grace
