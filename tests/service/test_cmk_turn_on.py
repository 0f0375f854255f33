"""Issue 23, section 1: turning CMK on never seals new content under a key the platform knew.

A scope key whose only share sat wrapped under the platform key was readable by whoever held the
platform key and read that row (a backup, a replica, a node's cache). Moving the share to the
customer key (the backfill) protects what was sealed *before*, but the scope key itself stays
known to those copies: it must never seal again (docs/spec/key-lifecycle.md SK-7, SK-8).

Three ways in, each pinned here against a SQLite deployment edited with plain SQL as an insider
with database and disk access (and the platform key, but not acme's key) would:

1. the honest order: seal under the platform key, turn CMK on, backfill, seal again;
2. the insider order: after the backfill, point ``current_for`` at the moved record again;
3. a planted platform-only record for acme's CMK scope, with content sealed under it, opened as
   acme's CMK asset.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ownkey.audit import AuditAction
from ownkey.envelope import ScopeKey, combine_shares, peek_key_id, seal_message
from ownkey.errors import AccessDenied, InvalidCiphertext
from ownkey.keys import KeyRef, ScopeKeyRecord, Wrap, record_binding, share_context
from ownkey.service import Runtime
from ownkey.testing.fakes import FakeClock

ANN = "ann@acme.test"
START = 1_700_006_400.0
ACME = KeyRef.customer("acme")
PLATFORM = KeyRef.platform()


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


Place = tuple[Path, str, FakeClock]


@pytest.fixture
def place(tmp_path: Path) -> Place:
    clock = FakeClock(START)
    return tmp_path / "home", f"sqlite:///{tmp_path / 'ownkey.db'}", clock


def node(place: Place) -> Runtime:
    home, url, clock = place
    return Runtime.open(home=home, url=url, clock=clock, sleep=clock.sleep, env={})


def sql(place: Place, statement: str, *args: Any) -> list[Any]:
    with sqlite3.connect(place[1].removeprefix("sqlite:///")) as conn:
        return conn.execute(statement, args).fetchall()


def events(rt: Runtime) -> list[dict[str, Any]]:
    log = rt.audit_log
    return [json.loads(record.body) for org in log.orgs() for record in log.records(org)]


def denials(rt: Runtime) -> list[dict[str, str]]:
    return [
        dict(event.get("detail", {}))
        for event in events(rt)
        if event.get("action") == AuditAction.ACCESS_DENIED.value
    ]


def platform_sealed_then_backfilled(place: Place) -> tuple[bytes, bytes]:
    """acme has a key but recordings are not under it yet; one recording is sealed (platform
    key), then CMK is turned on for recordings and the backfill moves the share. Returns the
    sealed recording and the id of its (moved) scope key."""
    with node(place) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.update_org("acme", cmk=True, actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        sealed = rt.protector.seal(recording(), b"before CMK")
        key_id = peek_key_id(sealed)
        assert rt.admin.scope_key(key_id).keys == (PLATFORM,)  # type: ignore[union-attr]
        rt.update_org("acme", enable=["0001"], actor="test")
        report = rt.admin.backfill("acme", "0001", enable=True)
        assert (report.rewrapped, report.failed) == (1, {})
        assert rt.admin.scope_key(key_id).keys == (ACME,)  # type: ignore[union-attr]
    return sealed, key_id


def test_the_backfill_retires_the_moved_scope_key_and_the_next_seal_draws_a_fresh_one(
    place: Place,
) -> None:
    """Before: the next CMK recording was sealed under the backfilled scope key, whose share
    the platform key had opened until a moment ago."""
    sealed, key_id = platform_sealed_then_backfilled(place)
    assert sql(place, "SELECT sealable, current_for FROM scope_keys WHERE key_id = ?", key_id) == [
        (0, None)
    ]
    with node(place) as rt:
        fresh = rt.protector.seal(recording("rec-2"), b"after CMK")
        assert peek_key_id(fresh) != key_id
        fresh_record = rt.admin.scope_key(peek_key_id(fresh))
        assert fresh_record is not None
        assert fresh_record.keys == (ACME,)
        assert fresh_record.origin == (ACME,)
        assert rt.protector.open(recording(), sealed) == b"before CMK"  # now under acme's key
        retired = [
            event["detail"]
            for event in events(rt)
            if event.get("action") == AuditAction.SCOPE_KEY_RETIRE.value
        ]
        assert {"scope_key_id": key_id.hex(), "reason": "keys_changed"}.items() <= (
            retired[0].items()
        )


def test_the_backfill_retires_in_the_same_node_that_has_the_key_cached(place: Place) -> None:
    """The node that sealed under the platform key, and still caches that scope key bound for
    sealing, turns to a fresh one on its very next seal after the backfill."""
    with node(place) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.update_org("acme", cmk=True, actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        before = rt.protector.seal(recording(), b"before")
        rt.update_org("acme", enable=["0001"], actor="test")
        rt.admin.backfill("acme", "0001", enable=True)
        after = rt.protector.seal(recording("rec-2"), b"after")
        assert peek_key_id(after) != peek_key_id(before)
        assert rt.protector.open(recording(), before) == b"before"


def test_a_backfilled_record_made_current_again_is_refused_at_seal(place: Place) -> None:
    """The insider order: with database write alone, the moved record is made the current one
    for acme's CMK identity again. Its key set differs from the one it was created with, which
    acme's key manager checks, so the honest node refuses (integrity, audited)."""
    _, key_id = platform_sealed_then_backfilled(place)
    with node(place) as rt:
        probe = rt.protector.seal(recording("probe"), b"x")  # the digest of acme's identity
        digest = sql(
            place, "SELECT current_for FROM scope_keys WHERE key_id = ?", peek_key_id(probe)
        )[0][0]
    sql(place, "UPDATE scope_keys SET current_for = NULL WHERE key_id = ?", peek_key_id(probe))
    sql(
        place,
        "UPDATE scope_keys SET sealable = 1, current_for = ? WHERE key_id = ?",
        digest,
        key_id,
    )
    with node(place) as rt:
        with pytest.raises(AccessDenied) as denied:
            rt.protector.seal(recording("rec-2"), b"next minutes")
        assert denied.value.reason == "integrity"
        assert any(
            d.get("reason") == "integrity" and d.get("scope_key_id") == key_id.hex()
            for d in denials(rt)
        )


def test_a_backfilled_record_whose_origin_column_is_edited_too_never_seals(place: Place) -> None:
    """The origin is in every share's context: an edited column no longer unwraps."""
    _, key_id = platform_sealed_then_backfilled(place)
    with node(place) as rt:
        probe = rt.protector.seal(recording("probe"), b"x")
        digest = sql(
            place, "SELECT current_for FROM scope_keys WHERE key_id = ?", peek_key_id(probe)
        )[0][0]
    sql(place, "UPDATE scope_keys SET current_for = NULL WHERE key_id = ?", peek_key_id(probe))
    sql(
        place,
        "UPDATE scope_keys SET sealable = 1, current_for = ?, origin = '|customer:acme|'"
        " WHERE key_id = ?",
        digest,
        key_id,
    )
    with node(place) as rt, pytest.raises((AccessDenied, InvalidCiphertext)):
        rt.protector.seal(recording("rec-2"), b"next minutes")


def plant_platform_record(place: Place) -> tuple[bytes, bytes]:
    """What the insider makes: a platform-only scope key for acme's CMK scope of this epoch,
    wrapped by the platform key under the context an honest node would send, and a recording
    sealed under it. Returns the envelope and the scope key id."""
    with node(place) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.update_org("acme", cmk=True, enable=["0001"], actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        honest = rt.protector.seal(recording("honest"), b"x")
        identity = rt.admin.scope_key(peek_key_id(honest)).identity  # type: ignore[union-attr]
        platform = rt.admin.key("platform")
        key_id = os.urandom(16)
        share = os.urandom(32)
        record = ScopeKeyRecord(
            key_id=key_id,
            orgs=identity.orgs,
            service_id=identity.service_id,
            scope=identity.scope,
            epoch_start=identity.epoch_start,
            epoch_seconds=identity.epoch_seconds,
            wraps=(),
            created_at=START,
            sealable=False,
            format=3,
            origin=(PLATFORM,),
        )
        context = share_context(record.identity, key_id, (PLATFORM,), 0, origin=(PLATFORM,))
        blob = rt._providers[platform.provider].wrap(platform.key_id, share, context)
        wrap = Wrap(PLATFORM, platform.provider, platform.key_id, platform.version, blob)
        planted = ScopeKeyRecord(
            key_id=key_id,
            orgs=record.orgs,
            service_id=record.service_id,
            scope=record.scope,
            epoch_start=record.epoch_start,
            epoch_seconds=record.epoch_seconds,
            wraps=(wrap,),
            created_at=START,
            sealable=False,
            format=3,
            origin=(PLATFORM,),
        )
        rt._deps.store.create_many([planted])
        material = combine_shares([share], record_binding(planted))
        from ownkey.service._request import address_of

        context_pairs = address_of(recording("forged")).context
        forged = seal_message(ScopeKey(key_id, material), b"forged minutes", context_pairs)
    return forged, key_id


def test_content_under_a_planted_platform_only_record_does_not_open_as_acmes_cmk_asset(
    place: Place,
) -> None:
    """Also at open: the record's keys must include every customer key the plan names."""
    forged, key_id = plant_platform_record(place)
    with node(place) as rt:
        with pytest.raises(AccessDenied) as denied:
            rt.protector.open(recording("forged"), forged)
        assert denied.value.reason == "integrity"
        handle = rt.protector.prepare(recording())
        with pytest.raises(AccessDenied):
            handle.open("forged", forged)
        assert any(
            d.get("reason") == "integrity" and d.get("scope_key_id") == key_id.hex()
            for d in denials(rt)
        )


def test_turning_cmk_on_says_plainly_what_the_platform_could_read() -> None:
    """The notice every face shows: pre-CMK content was readable, a rekey puts it beyond copies."""
    from ownkey.service import backfill_notice

    assert backfill_notice(()) is None
    notice = backfill_notice(("0008", "0001"))
    assert notice is not None
    assert "0001, 0008" in notice
    assert "platform could read it" in notice
    assert "rekey" in notice
