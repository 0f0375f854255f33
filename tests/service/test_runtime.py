"""The Runtime: a deployment composed from settings, on SQLite and PostgreSQL.

What is checked: the data plane seals and opens with the asset part only (orgs from the
directory), the directory and the key/rule caches stay fresh within this process at once and
across processes within the recheck interval (or at once on ``invalidate``), the per-message
hot path makes no database round trip, coverage counts, jobs, providers kept across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ownkey.errors import (
    AccessDenied,
    Conflict,
    InvalidRequest,
    LifecycleError,
    NotFound,
    PolicyError,
)
from ownkey.keys import KeyRef, RevocationRule
from ownkey.service import Runtime
from ownkey.testing import postgres
from ownkey.testing.fakes import FakeClock

ANN = "ann@acme.test"
AL = "al@acme.test"
BO = "bo@globex.test"
START = 1_700_006_400.0  # midnight UTC


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
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def runtime(home: Path, db_url: str, clock: FakeClock) -> Iterator[Runtime]:
    with Runtime.open(home=home, url=db_url, clock=clock, sleep=clock.sleep, env={}) as rt:
        yield rt


def second(home: Path, db_url: str, clock: FakeClock) -> Runtime:
    """Another process on the same database and home (its own caches)."""
    return Runtime.open(home=home, url=db_url, clock=clock, sleep=clock.sleep, env={})


def setup_acme(rt: Runtime) -> None:
    rt.create_org("acme")
    rt.create_key("acme", actor="test")
    rt.update_org("acme", cmk=True, enable=["0001", "0008"], actor="test")
    rt.add_users("acme", [ANN], licensed=True)
    rt.add_users("acme", [AL])
    rt.create_org("globex")


def chat(scope: str = "chat-1", asset_id: str = "m1", *, members: Any = None) -> dict[str, Any]:
    members = members or [{"user": ANN, "org": "acme"}, {"user": BO, "org": "globex"}]
    return {
        "asset": {
            "service_id": "0008",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "chat", "members": members},
            "component": "message",
        },
        "scope": scope,
        "asset_id": asset_id,
    }


def recording(owner: str = ANN, component: str = "video") -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": owner,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": component,
        },
        "scope": "meeting-1",
        "asset_id": "rec-1",
    }


def keys_of(rt: Runtime, request: dict[str, Any]) -> list[str]:
    return [str(k) for k in rt.explain(request).keys]


# -- composition ---------------------------------------------------------------------------------


def test_open_creates_the_platform_key_once(home: Path, db_url: str, clock: FakeClock) -> None:
    with second(home, db_url, clock) as a, second(home, db_url, clock) as b:
        assert [str(k.ref) for k in a.list_keys()] == ["platform"]
        assert a.list_keys() == b.list_keys()
        assert "redacted" in repr(a)


def test_default_home_and_database_come_from_the_environment(tmp_path: Path) -> None:
    env = {"OWNKEY_HOME": str(tmp_path / "h")}
    with Runtime.open(env=env) as rt:
        assert rt.home == tmp_path / "h"
        assert rt.database.dialect == "sqlite"
    assert (tmp_path / "h" / "ownkey.db").exists()
    # the platform key, in the local store, whose keys are the database's (issue 28, item 2)
    assert not (tmp_path / "h" / "local-keys.json").exists()
    assert (tmp_path / "h" / "root.key").exists()  # a fresh home's node made the fleet's root key


def test_close_is_idempotent(
    home: Path, db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = second(home, db_url, clock)
    closes: list[str] = []
    real_close = rt.database.close
    monkeypatch.setattr(rt.database, "close", lambda: (closes.append("db"), real_close()))
    rt.close()
    rt.close()
    assert closes == ["db"]


def test_reading_admin_keeps_the_data_planes_caches(runtime: Runtime) -> None:
    """``runtime.admin`` is a plain part: reading it must not drop the caches of the hot path."""
    setup_acme(runtime)
    request = chat()
    runtime.protector.open(request, runtime.protector.seal(request, b"warm"))

    def calls() -> None:
        for n in range(3):
            assert runtime.admin is runtime.protector.admin
            runtime.protector.open(request, runtime.protector.seal(request, b"m%d" % n))

    assert statements_during(runtime, calls) == []


def test_admin_decides_on_key_records_as_stored(
    runtime: Runtime, home: Path, db_url: str, clock: FakeClock
) -> None:
    """Another process disables the key: this runtime's admin sees it at once (its decisions
    read the registry as stored), while the data plane may serve its cache for the interval."""
    setup_acme(runtime)
    ref = KeyRef.customer("acme")
    assert runtime.admin.key(ref).state.value == "enabled"
    with second(home, db_url, clock) as other:
        other.admin.disable_key(ref, actor="test")
    assert runtime.admin.key(ref).state.value == "disabled"
    with pytest.raises(LifecycleError):
        runtime.admin.disable_key(ref, actor="test")  # decided on the stored, disabled record


# -- the data plane with the asset part only -----------------------------------------------------


def test_seal_and_open_with_orgs_from_the_directory(runtime: Runtime) -> None:
    setup_acme(runtime)
    request = chat()
    assert keys_of(runtime, request) == ["customer:acme", "platform"]
    sealed = runtime.protector.seal(request, b"hello globex")
    assert runtime.protector.open(request, sealed) == b"hello globex"
    full = runtime.policy_request(request)
    assert full.orgs["acme"].licensed_users == frozenset({ANN})
    assert not full.orgs["globex"].cmk


def test_a_request_carrying_orgs_is_refused_for_sealing(runtime: Runtime) -> None:
    setup_acme(runtime)
    request = {**chat(), "orgs": {"acme": {"cmk": False}, "globex": {"cmk": False}}}
    with pytest.raises(InvalidRequest) as caught:
        runtime.protector.seal(request, b"x")
    assert caught.value.field == "orgs"
    assert not isinstance(caught.value, PolicyError), "the directory's rule, not the engine's"
    # explain takes it as a what-if: cmk off everywhere -> platform only
    assert keys_of(runtime, request) == ["platform"]


def test_the_assets_org_must_be_in_the_directory(runtime: Runtime) -> None:
    request = recording()
    with pytest.raises(InvalidRequest) as caught:
        runtime.protector.seal(request, b"x")
    assert caught.value.field == "asset.org"
    assert not isinstance(caught.value, PolicyError), "the directory's rule, not the engine's"


def test_an_unknown_member_org_has_no_customer_key(runtime: Runtime) -> None:
    setup_acme(runtime)
    members = [{"user": ANN, "org": "acme"}, {"user": "zed@initech.test", "org": "initech"}]
    assert keys_of(runtime, chat(members=members)) == ["customer:acme", "platform"]


def test_licences_and_settings_change_the_plan_at_once(runtime: Runtime) -> None:
    setup_acme(runtime)
    assert keys_of(runtime, recording(AL)) == ["platform"]
    runtime.set_licensed("acme", [AL], True)
    assert keys_of(runtime, recording(AL)) == ["customer:acme"]
    runtime.update_org("acme", disable=["0001"])
    assert keys_of(runtime, recording(AL)) == ["platform"]
    assert keys_of(runtime, recording(component="poll")) == ["platform"]


def test_excluded_components_and_personal_identifiers(runtime: Runtime) -> None:
    setup_acme(runtime)
    identifier = {
        "asset": {
            "service_id": "9999",
            "org": "acme",
            "owner": AL,
            "owner_kind": "user",
            "component": "picture",
        },
        "scope": "user-al",
        "asset_id": "pic-1",
    }
    assert keys_of(runtime, identifier) == ["customer:acme"]  # no enabling, no licence needed
    assert keys_of(runtime, recording(component="poll")) == ["platform"]


# -- admin -------------------------------------------------------------------------------------


def test_org_names_services_and_flags_are_checked(runtime: Runtime) -> None:
    with pytest.raises(InvalidRequest):
        runtime.create_org("no spaces")
    with pytest.raises(InvalidRequest):
        runtime.create_org("acme", services=["0042"])
    with pytest.raises(InvalidRequest):
        runtime.create_org("acme", colour=True)
    with pytest.raises(Conflict, match="no customer key"):
        runtime.create_org("acme", cmk=True)
    runtime.create_org("acme", services=["0008"], large_org=True)
    with pytest.raises(Conflict, match="already exists"):
        runtime.create_org("acme")
    org = runtime.org("acme")
    assert org.services == ("0008",)
    assert org.settings.large_org
    assert not org.cmk
    with pytest.raises(NotFound):
        runtime.org("globex")
    with pytest.raises(InvalidRequest):
        runtime.update_org("acme", enable=["0001"], disable=["0001"])
    with pytest.raises(NotFound):
        runtime.set_licensed("acme", ["nobody@acme.test"], True)
    with pytest.raises(InvalidRequest):
        runtime.add_users("acme", ["has space@acme.test"])


def test_update_reports_which_services_changed_key(runtime: Runtime) -> None:
    runtime.create_org("acme", services=["0001"])
    runtime.create_key("acme")
    update = runtime.update_org("acme", cmk=True)
    assert update.now_customer == ("0001", "9999")
    update = runtime.update_org("acme", enable=["0006"])
    assert update.now_customer == ()  # 0006 needs compliance archival
    update = runtime.update_org("acme", compliance_archival=True)
    assert update.now_customer == ("0006",)
    update = runtime.update_org("acme", cmk=False)
    assert update.now_platform == ("0001", "0006", "9999")
    assert runtime.update_org("acme", cmk=False).org.revision == update.org.revision  # no-op


def test_users_are_listed_and_removed(runtime: Runtime) -> None:
    setup_acme(runtime)
    assert [(u.user, u.licensed) for u in runtime.users("acme")] == [(AL, False), (ANN, True)]
    assert [u.user for u in runtime.users("acme", licensed=True)] == [ANN]
    assert runtime.remove_users("acme", [AL]) == 1
    assert [u.user for u in runtime.users("acme")] == [ANN]


def test_org_and_user_changes_are_audited(runtime: Runtime) -> None:
    setup_acme(runtime)
    actions = [e.body["action"] for e in runtime.audit_log.query("acme", _all())]
    assert actions.count("org.create") == 1
    assert actions.count("org.update") == 1
    assert actions.count("org.users") == 2


def _all() -> Any:
    from ownkey.storage import AuditQuery

    return AuditQuery()


def test_coverage_by_service(runtime: Runtime) -> None:
    setup_acme(runtime)
    runtime.protector.seal(chat(), b"m")
    runtime.protector.seal(recording(AL), b"r")  # unlicensed organiser: platform key
    runtime.protector.seal(recording(ANN), b"r")
    report = runtime.coverage("acme")
    assert report.key is not None
    assert report.key.state.value == "enabled"
    assert (report.users, report.licensed_users) == (2, 1)
    chat_row, rec_row = report.service("0008"), report.service("0001")
    assert chat_row.protection == "customer"
    assert chat_row.customer_scope_keys == 1
    assert (rec_row.customer_scope_keys, rec_row.platform_scope_keys) == (1, 1)
    assert report.service("0010").protection == "platform"
    assert "did not enable 0010" in report.service("0010").why  # the engine's own reason
    assert report.service("9999").enabled
    assert report.to_json()["services"][0]["service_id"] == "0001"


def test_crypto_shredding_shows_in_coverage(runtime: Runtime, clock: FakeClock) -> None:
    setup_acme(runtime)
    sealed = runtime.protector.seal(recording(ANN), b"r")
    admin = runtime.admin
    admin.disable_key("customer:acme")
    admin.schedule_key_destruction("customer:acme", waiting_period=86_400)
    clock.advance(86_400)
    admin.destroy_key("customer:acme")
    assert runtime.coverage("acme").service("0001").shredded_scope_keys == 1
    with pytest.raises(AccessDenied):
        runtime.protector.open(recording(ANN), sealed)


# -- freshness across processes ------------------------------------------------------------------


def test_another_process_sees_changes_within_the_recheck_interval(
    runtime: Runtime, home: Path, db_url: str, clock: FakeClock
) -> None:
    setup_acme(runtime)
    with second(home, db_url, clock) as other:
        request = recording(AL)
        sealed = other.protector.seal(recording(ANN), b"r")
        assert keys_of(other, request) == ["platform"]
        runtime.set_licensed("acme", [AL], True)
        runtime.revoke(RevocationRule(org="acme", service_id="0001"))
        assert keys_of(other, request) == ["platform"]  # cached: at most the interval
        assert other.protector.open(recording(ANN), sealed) == b"r"
        clock.advance(1.0)
        assert keys_of(other, request) == ["customer:acme"]
        with pytest.raises(AccessDenied):
            other.protector.open(recording(ANN), sealed)


def test_invalidate_makes_another_processs_change_visible_at_once(
    runtime: Runtime, home: Path, db_url: str, clock: FakeClock
) -> None:
    setup_acme(runtime)
    with second(home, db_url, clock) as other:
        sealed = other.protector.seal(chat(), b"m")
        rule = runtime.revoke(RevocationRule(org="acme", scope="chat-1"))
        other.invalidate()
        with pytest.raises(AccessDenied):
            other.protector.open(chat(), sealed)
        runtime.admin.lift(rule.rule_id)
        other.invalidate(orgs=["acme"])
        assert other.protector.open(chat(), sealed) == b"m"
        runtime.admin.disable_key("customer:acme")
        other.invalidate(orgs=[], rules=False)
        with pytest.raises(AccessDenied):
            other.protector.open(chat(), sealed)


def test_content_sealed_by_one_process_opens_in_another(
    runtime: Runtime, home: Path, db_url: str, clock: FakeClock
) -> None:
    setup_acme(runtime)
    sealed = runtime.protector.seal(chat(), b"persistent")
    runtime.close()
    with second(home, db_url, clock) as later:
        assert later.protector.open(chat(), sealed) == b"persistent"


def statements_during(runtime: Runtime, calls: Callable[[], None]) -> list[str]:
    """The SQL statements the runtime's database saw while ``calls`` ran."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(runtime.database.engine, "before_cursor_execute", count)
    try:
        calls()
    finally:
        event.remove(runtime.database.engine, "before_cursor_execute", count)
    return statements


def test_the_hot_path_makes_no_database_round_trip(runtime: Runtime) -> None:
    setup_acme(runtime)
    request = chat()
    sealed = runtime.protector.seal(request, b"warm")
    runtime.protector.open(request, sealed)

    def calls() -> None:
        for n in range(200):
            runtime.protector.open(request, runtime.protector.seal(request, b"m%d" % n))

    assert statements_during(runtime, calls) == []


# -- keys, providers, jobs -----------------------------------------------------------------------


def test_a_configured_provider_is_rebuilt_by_another_process(
    runtime: Runtime, home: Path, db_url: str, clock: FakeClock
) -> None:
    runtime.create_org("acme")
    key_id = runtime.local_keys.create_key(label="customer:acme")
    master = runtime.register_key("acme", provider="vault", kind="local", key_id=key_id)
    # the settings are acme's own row, whatever name the caller gave (issue 28)
    assert (master.provider, master.key_id) == ("local/customer:acme", key_id)
    runtime.update_org("acme", cmk=True)
    with second(home, db_url, clock) as other:
        assert "local/customer:acme" in other.protector._deps.providers
        identifier = {
            "asset": {
                "service_id": "9999",
                "org": "acme",
                "owner_kind": "account",
                "component": "identifier",
            },
            "scope": "acct",
            "asset_id": "id-1",
        }
        sealed = other.protector.seal(identifier, b"badge")
        assert runtime.protector.open(identifier, sealed) == b"badge"


def test_backfill_job_moves_existing_scope_keys_to_the_customer_key(runtime: Runtime) -> None:
    runtime.create_org("acme")
    runtime.create_key("acme")
    runtime.update_org("acme", cmk=True)
    runtime.add_users("acme", [ANN], licensed=True)
    before = runtime.protector.seal(recording(ANN), b"old")  # 0001 not enabled yet: platform
    assert runtime.coverage("acme").service("0001").platform_scope_keys == 1
    update = runtime.update_org("acme", enable=["0001"])
    job = runtime.create_job("backfill", org="acme", services=update.now_customer)
    seen: list[int] = []
    done = runtime.run_job(job.job_id, progress=lambda status: seen.append(status.done))
    assert (done.state, done.total, done.done) == ("done", 1, 1)
    assert seen == [1]
    assert runtime.coverage("acme").service("0001").customer_scope_keys == 1
    assert runtime.protector.open(recording(ANN), before) == b"old"
    assert [j.job_id for j in runtime.list_jobs("acme")] == [job.job_id]


def test_one_asset_service_per_runtime_under_the_home(runtime: Runtime, home: Path) -> None:
    assets = runtime.assets
    assert runtime.assets is assets
    assert runtime.job_runner.assets is assets
    assert assets.protector is runtime.protector
    setup_acme(runtime)
    runtime.assets.put_asset(recording(), b"r" * 40_000)  # a blob, not an inline row
    assert any(path.is_file() for path in (home / "objects").rglob("*"))
    assert runtime.assets.get_asset("rec-1") == b"r" * 40_000


def test_backfill_job_follows_the_stored_content(runtime: Runtime) -> None:
    """create_job (the API, ``org set``) is asset-aware: al is unlicensed, so his recording's
    scope key stays on the platform key when 0001 is enabled; ann's moves."""
    setup_acme(runtime)
    runtime.update_org("acme", disable=["0001"])
    ann = dict(recording(ANN), scope="user:ann", asset_id="ann-1")
    al = dict(recording(AL), scope="user:al", asset_id="al-1")
    runtime.assets.put_asset(ann, b"ann")
    runtime.assets.put_asset(al, b"al")
    update = runtime.update_org("acme", enable=["0001"])
    job = runtime.create_job("backfill", org="acme", services=update.now_customer)
    assert (job.total, job.params["skipped_by_policy"]) == (1, 1)
    assert runtime.run_job(job.job_id).state == "done"
    store = runtime.assets.store
    keys = {a: runtime.admin.scope_key(store.get(a).scope_key_id).keys for a in ("ann-1", "al-1")}
    assert keys == {"ann-1": (KeyRef.customer("acme"),), "al-1": (KeyRef.platform(),)}
    assert runtime.assets.get_asset("ann-1") == b"ann"


def test_rekey_job_through_the_runtime(runtime: Runtime, clock: FakeClock) -> None:
    setup_acme(runtime)
    data = {f"r{n}": bytes([n]) * (3000 + 20_000 * n) for n in range(3)}
    for asset_id, payload in data.items():
        runtime.assets.put_asset(dict(recording(), asset_id=asset_id), payload)
    old = {runtime.assets.record(a).scope_key_id for a in data}
    job = runtime.create_job("rekey", org="acme", services=["0001"])
    assert (job.kind, job.total) == ("rekey", len(data) + len(old))
    status = runtime.run_job(job.job_id)
    assert (status.state, status.done) == ("done", job.total)
    for asset_id, payload in data.items():
        assert runtime.assets.record(asset_id).scope_key_id not in old
        assert runtime.assets.get_asset(asset_id) == payload
    # RW-8: the old keys wait out the destruction waiting period (default seven days).
    assert not any(runtime.admin.scope_key(key_id).shredded for key_id in old)
    assert {p.scope_key_id for p in runtime.pending_shreds("acme")} == old
    clock.advance(7 * 86_400)
    assert runtime.run_job(runtime.create_job("shred", org="acme").job_id).state == "done"
    assert all(runtime.admin.scope_key(key_id).shredded for key_id in old)
    kept = runtime.create_job("rekey", org="acme", scope="meeting-1", shred_old=False)
    assert runtime.run_job(kept.job_id).state == "done"
    assert kept.params["shred_old"] is False
    with pytest.raises(InvalidRequest, match="at most one service"):
        runtime.create_job("rekey", org="acme", services=["0001", "0008"])
    with pytest.raises(InvalidRequest, match="names an org"):
        runtime.create_job("rekey")
    with pytest.raises(NotFound):
        runtime.create_job("rekey", org="initech")


def test_preview_counts_stored_assets_and_bytes(runtime: Runtime) -> None:
    setup_acme(runtime)
    runtime.assets.put_asset(recording(), b"r" * 70_000)
    runtime.assets.put_asset(chat("chat-1", "m1"), b"hi")
    runtime.protector.seal(chat("chat-2", "m2"), b"kept by the platform")
    preview = runtime.preview(RevocationRule(org="acme"))
    assert preview.scope_keys_by_service == {"0001": 1, "0008": 2}
    assert (preview.assets_by_service, preview.bytes_by_service) == (
        {"0001": 1, "0008": 1},
        {"0001": 70_000, "0008": 2},
    )
    assert (preview.scope_keys, preview.assets, preview.bytes) == (3, 2, 70_002)
    assert preview.services == ["0001", "0008"]
    assert runtime.preview(RevocationRule(org="acme", scope="chat-2")).assets == 0
    with pytest.raises(NotFound):
        runtime.preview(RevocationRule(org="initech"))


def test_rewrap_job_after_rotation(runtime: Runtime) -> None:
    setup_acme(runtime)
    sealed = runtime.protector.seal(chat(), b"m")
    rotated = runtime.admin.rotate_key("customer:acme", rewrap=False)
    job = runtime.create_job("rewrap", key="customer:acme")
    status = runtime.run_job(job.job_id)
    assert (status.state, status.done) == ("done", 1)
    record = runtime.admin.scope_keys()[0]
    versions = {w.version for w in record.wraps if w.key == KeyRef.customer("acme")}
    assert versions == {rotated.key.version}
    assert runtime.protector.open(chat(), sealed) == b"m"


def test_bad_jobs_are_refused(runtime: Runtime) -> None:
    with pytest.raises(InvalidRequest):
        runtime.create_job("compress")
    with pytest.raises(InvalidRequest):
        runtime.create_job("rewrap")
    with pytest.raises(NotFound):
        runtime.create_job("rewrap", key="customer:nobody")
    with pytest.raises(NotFound):
        runtime.job("nope")


def test_shred_job_destroys_a_key_whose_destruction_is_due(
    runtime: Runtime, clock: FakeClock
) -> None:
    setup_acme(runtime)
    sealed = runtime.protector.seal(chat(), b"m")
    admin = runtime.admin
    admin.disable_key("customer:acme")
    admin.schedule_key_destruction("customer:acme", waiting_period=86_400)
    with pytest.raises(LifecycleError):
        runtime.create_job("shred", key="customer:acme")  # not due yet
    clock.advance(86_400)
    job = runtime.create_job("shred", key=KeyRef.customer("acme"))
    status = runtime.run_job(job.job_id)
    assert (status.state, status.done, status.total) == ("done", 2, 2)  # one scope key + destroy
    assert runtime.admin.key("customer:acme").state.value == "destroyed"
    assert runtime.coverage("acme").service("0008").shredded_scope_keys == 1
    with pytest.raises(AccessDenied) as caught:
        runtime.protector.open(chat(), sealed)
    assert caught.value.reason == "destroyed"
