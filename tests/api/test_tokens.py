"""API tokens: shown once, stored as a SHA-256 digest, compared in constant time, revocable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from ownkey.envelope import sha256
from ownkey.errors import NotFound
from ownkey.storage import Database, TokenStore
from ownkey.storage._schema import api_tokens


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
