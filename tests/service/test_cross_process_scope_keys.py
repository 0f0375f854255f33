"""Scope keys changed by another process: shred, retire, backfill (KL-8a), on SQLite and PostgreSQL.

Two runtimes on one database stand for two processes: A seals, so its cache holds the scope key;
B shreds, retires or re-wraps that scope key; then A must stop sealing under it and refuse to
open content under a shredded one. The clock is injected: "within the re-check interval" is one
``clock.advance(1.0)``, never a sleep. Only the PostgreSQL NOTIFY test waits, polling real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied
from ownkey.service import NodeSync, Runtime
from ownkey.testing import postgres
from ownkey.testing.fakes import FakeClock
from tests.service.test_runtime import START, chat, setup_acme


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    url = postgres.acquire()
    try:
        yield url
    finally:
        postgres.release()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ownkey.db'}"
        return
    url = postgres.create_database(request.getfixturevalue("postgres_server"))
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    url = postgres.create_database(postgres_server)
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def _open(
    home: Path,
    url: str,
    clock: FakeClock,
    sleep: Callable[[float], None] | None = None,
) -> Runtime:
    return Runtime.open(home=home, url=url, clock=clock, sleep=sleep or clock.sleep, env={})


@pytest.fixture
def pair(tmp_path: Path, db_url: str, clock: FakeClock) -> Iterator[tuple[Runtime, Runtime]]:
    """Process A (seals and opens) and process B (changes scope keys), one database."""
    home = tmp_path / "home"
    with _open(home, db_url, clock) as a, _open(home, db_url, clock) as b:
        setup_acme(a)
        yield a, b


def test_shred_by_another_process_stops_sealing_and_opening(
    pair: tuple[Runtime, Runtime], clock: FakeClock
) -> None:
    """KL-8a: after a shred made elsewhere, A seals under a fresh key and refuses old content.

    Before the fix A went on sealing under the shredded key, and opening with it, until its
    cache entry's refresh (240 s)."""
    a, b = pair
    old = a.protector.seal(chat(asset_id="m1"), b"before")
    shredded = peek_key_id(old)
    assert b.admin.shred_scope_key(shredded, actor="test")
    clock.advance(1.0)  # the re-check interval
    new = a.protector.seal(chat(asset_id="m2"), b"after")
    assert peek_key_id(new) != shredded
    assert a.protector.open(chat(asset_id="m2"), new) == b"after"
    with pytest.raises(AccessDenied) as denied:
        a.protector.open(chat(asset_id="m1"), old)
    assert denied.value.reason == "destroyed"


def test_retire_by_another_process_stops_sealing(
    pair: tuple[Runtime, Runtime], clock: FakeClock
) -> None:
    """KL-8a, SK-1: a scope key retired elsewhere (a rekey job) seals nothing more here after
    the re-check interval; what it sealed still opens (retired is not shredded)."""
    a, b = pair
    old = a.protector.seal(chat(asset_id="m1"), b"before")
    retired = peek_key_id(old)
    b.admin.retire_scope_key(retired, actor="test")
    clock.advance(1.0)
    assert peek_key_id(a.protector.seal(chat(asset_id="m2"), b"after")) != retired
    assert a.protector.open(chat(asset_id="m1"), old) == b"before"


def test_a_shred_returns_only_once_no_process_can_seal_under_the_key(
    tmp_path: Path, db_url: str, clock: FakeClock
) -> None:
    """KL-8a, the race: A seals while B's shred is under way (between A's last check and B's
    deletion of the shares). The shred retires first and deletes only after the re-check window,
    so once it returns A's very next seal uses a fresh key, with no further clock advance; an
    asset A stored during the shred was refused under the retired key and sealed again, so it
    is not lost."""
    home = tmp_path / "home"
    during: list[bytes] = []
    with _open(home, db_url, clock) as a:
        setup_acme(a)
        old = a.protector.seal(chat(asset_id="m1"), b"before")
        shredded = peek_key_id(old)

        def sleep_while_a_works(seconds: float) -> None:
            record = a.assets.put_asset(chat(asset_id="stored"), b"stored during the shred")
            during.append(record.scope_key_id)
            clock.sleep(seconds)

        with _open(home, db_url, clock, sleep_while_a_works) as b:
            assert b.admin.shred_scope_key(shredded, actor="test")
        assert len(during) == 1
        assert during[0] != shredded
        assert peek_key_id(a.protector.seal(chat(asset_id="m2"), b"after")) != shredded
        assert a.assets.get_asset("stored") == b"stored during the shred"
        with pytest.raises(AccessDenied) as denied:
            a.protector.open(chat(asset_id="m1"), old)
        assert denied.value.reason == "destroyed"


def test_backfill_by_another_process_reaches_the_cached_checks(
    tmp_path: Path, db_url: str, clock: FakeClock
) -> None:
    """KL-8a, RW-5 across processes: B moves a scope key A has cached from the platform key to
    acme's customer key, then disables that key; A's next open after the re-check interval is
    checked against the new keys (before the fix A checked the cached, platform-only keys)."""
    home = tmp_path / "home"
    with _open(home, db_url, clock) as a, _open(home, db_url, clock) as b:
        a.create_org("acme")
        a.create_key("acme", actor="test")
        a.update_org("acme", cmk=True, enable=["0001"], actor="test")
        a.create_org("globex")
        sealed = a.protector.seal(chat(), b"m")
        key_id = peek_key_id(sealed)
        assert a.protector.open(chat(), sealed) == b"m"
        b.update_org("acme", enable=["0008"], actor="test")
        assert b.admin.backfill_scope_key("acme", key_id, enable=True)
        b.admin.disable_key("customer:acme")
        clock.advance(1.0)
        with pytest.raises(AccessDenied) as denied:
            a.protector.open(chat(), sealed)
        assert denied.value.reason == "disabled"


def _poll(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``check()`` holds (real time, polled every 5 ms); fails after ``timeout``."""
    started = time.perf_counter()
    while not check():
        assert time.perf_counter() - started < timeout, "the change never arrived"
        time.sleep(0.005)
    return time.perf_counter() - started


def test_notify_reaches_a_listening_process_at_once(tmp_path: Path, pg_url: str) -> None:
    """KL-8a on PostgreSQL: with NodeSync listening, A refuses the shredded key as soon as the
    NOTIFY arrives. A's clock never moves (its re-check cannot explain it), B has its own."""
    home = tmp_path / "home"
    clock_a, clock_b = FakeClock(START), FakeClock(START)
    with _open(home, pg_url, clock_a) as a, _open(home, pg_url, clock_b) as b:
        setup_acme(a)
        sync = NodeSync(a)
        sync.start()
        try:
            assert sync.wait_listening(5.0)
            old = a.protector.seal(chat(asset_id="m1"), b"before")
            shredded = peek_key_id(old)
            assert b.admin.shred_scope_key(shredded, actor="test")

            reasons: list[str] = []

            def refused() -> bool:
                try:
                    a.protector.open(chat(asset_id="m1"), old)
                except AccessDenied as exc:
                    reasons.append(exc.reason)
                    return True
                return False

            assert _poll(refused) < 1.0
            assert reasons == ["destroyed"]
            assert peek_key_id(a.protector.seal(chat(asset_id="m2"), b"after")) != shredded
        finally:
            sync.stop()
