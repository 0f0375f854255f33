"""Issue 10, finding 2: an insider with write access to ownkey's database, and the platform key,
but not acme's key, edits scope-key rows. Honest nodes must fail closed (AccessDenied with reason
``integrity`` and an audit event), never seal acme's CMK content under a key the insider holds,
and never report a use of acme's key that acme's key manager did not see.

The rows are edited with plain SQL on the SQLite file, as an operator would; the honest node is a
fresh Runtime (a new process: nothing cached). The insider's wraps are made with the platform
key, under exactly the context an honest node will send, as a real insider could.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ownkey.audit import AuditAction
from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied
from ownkey.keys import KeyRef, share_context
from ownkey.service import Runtime
from ownkey.testing.fakes import FakeClock

ANN = "ann@acme.test"
START = 1_700_006_400.0
ACME = KeyRef.customer("acme")
PLATFORM = KeyRef.platform()


def recording(asset_id: str = "rec-1") -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "meeting-1",
        "asset_id": asset_id,
    }


@pytest.fixture
def place(tmp_path: Path) -> Iterator[tuple[Path, str, FakeClock]]:
    home, db = tmp_path / "home", tmp_path / "ownkey.db"
    clock = FakeClock(START)
    return home, f"sqlite:///{db}", clock


def node(place: tuple[Path, str, FakeClock]) -> Runtime:
    home, url, clock = place
    return Runtime.open(home=home, url=url, clock=clock, sleep=clock.sleep, env={})


def sql(place: tuple[Path, str, FakeClock], statement: str, *args: Any) -> list[Any]:
    with sqlite3.connect(place[1].removeprefix("sqlite:///")) as conn:
        rows = conn.execute(statement, args).fetchall()
    return rows


def sealed_recording(place: tuple[Path, str, FakeClock]) -> bytes:
    """acme has CMK for recordings; one recording sealed under acme's key."""
    with node(place) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.update_org("acme", cmk=True, enable=["0001"], actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        return rt.protector.seal(recording(), b"board minutes")


def forge_platform_wrap(
    place: tuple[Path, str, FakeClock], key_id: bytes, claimed: KeyRef
) -> tuple[str, str, bytes]:
    """What the insider can make: a share it chose, wrapped by the platform key under the
    context an honest node will send for a row that claims ``claimed``."""
    with node(place) as rt:
        platform = next(key for key in rt.list_keys() if key.ref == PLATFORM)
        record = rt._deps.store.get(key_id)
        assert record is not None
        context = share_context(record.identity, key_id, (claimed,), 0)
        blob = rt._providers[platform.provider].wrap(platform.key_id, os.urandom(32), context)
        return platform.key_id, platform.version, blob


def events(rt: Runtime) -> list[dict[str, Any]]:
    """acme's audit chain and the platform's, as stored."""
    log = rt.audit_log
    return [json.loads(record.body) for org in log.orgs() for record in log.records(org)]


def unwrap_count(rt: Runtime) -> int:
    return sum(1 for event in events(rt) if event.get("action") == AuditAction.UNWRAP.value)


def denials(rt: Runtime) -> list[dict[str, str]]:
    return [
        dict(event.get("detail", {}))
        for event in events(rt)
        if event.get("action") == AuditAction.ACCESS_DENIED.value
    ]


def test_a_row_moved_to_the_platform_key_does_not_seal_acmes_cmk_content(
    place: tuple[Path, str, FakeClock],
) -> None:
    """Before: an honest node sealed acme's next recording under the insider's platform-only
    scope key, which kept opening after acme disabled its key."""
    key_id = peek_key_id(sealed_recording(place))
    provider_key_id, version, blob = forge_platform_wrap(place, key_id, PLATFORM)
    sql(
        place,
        "UPDATE scope_key_wraps SET key_ref = 'platform', provider_key_id = ?, version = ?,"
        " blob = ? WHERE key_id = ?",
        provider_key_id,
        version,
        blob,
        key_id,
    )
    sql(place, "UPDATE scope_keys SET keys = '|platform|' WHERE key_id = ?", key_id)
    with node(place) as rt:
        with pytest.raises(AccessDenied) as denied:
            rt.protector.seal(recording("rec-2"), b"next minutes")
        assert denied.value.reason == "integrity"
        assert any(d.get("reason") == "integrity" for d in denials(rt))


def test_a_row_naming_the_platform_key_as_acmes_is_refused_and_not_audited_as_acme(
    place: tuple[Path, str, FakeClock],
) -> None:
    """Before: the row said ``customer:acme`` but named the platform key's id; the honest node
    unwrapped with the platform key and logged a use of acme's key that acme's KMS never saw."""
    sealed = sealed_recording(place)
    key_id = peek_key_id(sealed)
    provider_key_id, version, blob = forge_platform_wrap(place, key_id, ACME)
    sql(
        place,
        "UPDATE scope_key_wraps SET provider_key_id = ?, version = ?, blob = ? WHERE key_id = ?",
        provider_key_id,
        version,
        blob,
        key_id,
    )
    with node(place) as rt:
        before = unwrap_count(rt)
        with pytest.raises(AccessDenied) as denied:
            rt.protector.open(recording(), sealed)
        assert denied.value.reason == "integrity"
        with pytest.raises(AccessDenied):
            rt.protector.seal(recording("rec-2"), b"next minutes")
        assert unwrap_count(rt) == before  # no key-manager call was made in acme's name
        assert any(d.get("reason") == "integrity" for d in denials(rt))


@pytest.mark.parametrize(
    ("column", "value"),
    [("orgs", "|acme|globex|"), ("scope", "meeting-2"), ("epoch_start", 0)],
)
def test_an_edited_record_attribute_fails_closed(
    place: tuple[Path, str, FakeClock], column: str, value: Any
) -> None:
    """The attributes are in every wrap's context and in the share combination."""
    sealed = sealed_recording(place)
    key_id = peek_key_id(sealed)
    sql(place, f"UPDATE scope_keys SET {column} = ? WHERE key_id = ?", value, key_id)
    with node(place) as rt, pytest.raises((AccessDenied, Exception)) as failed:
        rt.protector.open(recording(), sealed)
    assert type(failed.value).__name__ in {"AccessDenied", "InvalidCiphertext"}


def test_records_carry_format_three_and_bind_key_share_key_list_and_origin(
    place: tuple[Path, str, FakeClock],
) -> None:
    """SK-3, SK-7: the context of each share names its key, its place, the full key list and
    the keys the record was created with."""
    key_id = peek_key_id(sealed_recording(place))
    with node(place) as rt:
        record = rt._deps.store.get(key_id)
        assert record is not None
        assert record.format == 3
        context = share_context(record.identity, key_id, record.wrap_keys, 0)
    assert (context["key"], context["share"], context["shares"]) == ("customer:acme", "0", "1")
    assert context["keys"] == '["customer:acme"]'
    assert context["origin"] == '["customer:acme"]'
    assert sql(place, "SELECT format, origin FROM scope_keys WHERE key_id = ?", key_id) == [
        (3, "|customer:acme|")
    ]
