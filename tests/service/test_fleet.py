"""Nothing a fleet needs lives only on one node's disk (issue 28, item 2).

Two nodes (two runtimes) with separate ``OWNKEY_HOME`` on one database, PostgreSQL and one
SQLite file alike. Before, each node kept the embedded store's keys, its root key and its audit
signing key in its own home: the second node answered ``provider_denied`` for content under the
platform key or a ``--create-key`` key, and its checkpoints made the first node's ``audit verify``
say TAMPERED. Now both live in the database under the one root key every node is given, and a
node without that root key refuses to start, naming ``OWNKEY_ROOT_KEY``.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

from ownkey.audit import AuditAction, AuditEvent, Outcome
from ownkey.envelope import ScopeKey, seal_message
from ownkey.errors import ConfigError
from ownkey.providers import LocalKeyStoreProvider
from ownkey.service import Runtime
from ownkey.storage import (
    AuditLog,
    AuditQuery,
    AuditSigningKey,
    Database,
    FleetStore,
    SqlAuditSink,
)
from ownkey.storage._schema import fleet_secrets

ANN = "ann@acme.test"
AL = "al@acme.test"
BO = "bo@globex.test"
FIXTURES = Path(__file__).parent.parent / "fixtures"


def recording(org: str, owner: str, asset_id: str) -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": org,
            "owner": owner,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": f"meeting-{asset_id}",
        "asset_id": asset_id,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database both nodes open: a SQLite file outside either home, or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


def home(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir(mode=0o700)
    return folder


def node(folder: Path, url: str, **env: str) -> Runtime:
    return Runtime.open(home=folder, url=url, env={"OWNKEY_HOME": str(folder), **env})


def root_key_of(folder: Path) -> str:
    return (folder / "root.key").read_text().strip()


@pytest.fixture
def node_a(tmp_path: Path, shared_url: str) -> Iterator[Runtime]:
    """The first node: a fresh home, so it creates the fleet's root key (``make demo``'s way)."""
    with node(home(tmp_path, "a"), shared_url) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")  # ownkey org create acme --create-key
        rt.update_org("acme", cmk=True, enable=["0001"], actor="test")
        rt.add_users("acme", [ANN], licensed=True)
        rt.add_users("acme", [AL])  # unlicensed: the platform key protects AL's content
        rt.create_org("globex")  # no CMK: the platform key
        rt.add_users("globex", [BO])
        yield rt


def test_content_under_the_platform_key_and_a_create_key_key_opens_on_another_node(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    requests = [
        recording("acme", ANN, "cmk"),  # acme's --create-key key and the platform key
        recording("acme", AL, "unlicensed"),  # the platform key alone
        recording("globex", BO, "no-cmk"),  # the platform key alone
    ]
    sealed = [node_a.protector.seal(r, f"from a {i}".encode()) for i, r in enumerate(requests)]
    fleet_root = root_key_of(tmp_path / "a")
    with node(home(tmp_path, "b"), shared_url, OWNKEY_ROOT_KEY=fleet_root) as node_b:
        for i, (request, message) in enumerate(zip(requests, sealed, strict=True)):
            assert node_b.protector.open(request, message) == f"from a {i}".encode()
        back = [node_b.protector.seal(r, b"from b") for r in requests]
        # acme's log records uses of its key, never a denial of it
        denials = [
            e.body
            for e in node_b.audit_log.query("acme", AuditQuery(export=True))
            if e.body["outcome"] != "ok"
        ]
        assert denials == []
    for request, message in zip(requests, back, strict=True):
        assert node_a.protector.open(request, message) == b"from b"
    assert not (tmp_path / "b" / "root.key").exists()  # b made no root key of its own


def test_a_node_without_the_fleets_root_key_refuses_to_start_naming_it(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    with pytest.raises(ConfigError) as none_given:
        node(home(tmp_path, "b"), shared_url)
    assert str(none_given.value).startswith("OWNKEY_ROOT_KEY: ")
    assert "not given" in str(none_given.value)
    assert not (tmp_path / "b" / "root.key").exists()  # it did not make a root key of its own
    with pytest.raises(ConfigError) as another:
        node(home(tmp_path, "c"), shared_url, OWNKEY_ROOT_KEY="11" * 32)
    assert str(another.value).startswith("OWNKEY_ROOT_KEY: ")
    assert "another root key" in str(another.value)
    assert "11" * 32 not in str(another.value)
    key_file = tmp_path / "fleet.key"
    key_file.write_text(root_key_of(tmp_path / "a") + "\n")
    key_file.chmod(0o600)
    with node(home(tmp_path, "d"), shared_url, OWNKEY_ROOT_KEY_FILE=str(key_file)) as node_d:
        assert (
            node_d.protector.open(
                recording("globex", BO, "x"),
                node_a.protector.seal(recording("globex", BO, "x"), b"hi"),
            )
            == b"hi"
        )


def test_audit_verify_answers_the_same_on_every_node(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    fleet_root = root_key_of(tmp_path / "a")
    given_key = "22" * 32  # node c is given a signing key of its own
    with (
        node(home(tmp_path, "b"), shared_url, OWNKEY_ROOT_KEY=fleet_root) as node_b,
        node(
            home(tmp_path, "c"),
            shared_url,
            OWNKEY_ROOT_KEY=fleet_root,
            OWNKEY_AUDIT_SIGNING_KEY=given_key,
        ) as node_c,
    ):
        assert node_b.signing_key.key_id == node_a.signing_key.key_id  # one fleet key
        assert node_c.signing_key.key_id != node_a.signing_key.key_id
        for rt in (node_a, node_b, node_c, node_a):
            rt.protector.seal(recording("acme", ANN, "m"), b"x")
            assert rt.audit_sink.checkpoint("acme") is not None
        signers = {c.key_id for c in node_a.audit_log.checkpoints("acme")}
        assert len(signers) == 2
        for rt in (node_a, node_b, node_c):
            report = rt.audit_log.verify("acme", rt.audit_public_keys())
            assert report.ok, report.problems


def test_a_signing_key_planted_in_the_database_is_not_trusted(
    node_a: Runtime, shared_url: str
) -> None:
    """A database writer without the root key registers its own key and signs with it."""
    insider = AuditSigningKey.from_seed(b"\x33" * 32)
    name = "audit-public:" + insider.key_id
    forged = seal_message(
        ScopeKey(b"ownkey/local-store/root", b"\x44" * 32),
        insider.public_key,
        {"purpose": "ownkey.fleet", "name": name},
    )
    database = Database.open(shared_url)
    try:
        with database.engine.begin() as conn:
            conn.execute(insert(fleet_secrets).values(name=name, sealed=forged, created_at_ms=0))
        sink = SqlAuditSink(database, insider)
        sink.record(AuditEvent(1.0, AuditAction.KEY_CREATE, Outcome.OK, org="acme"))
        sink.checkpoint("acme")
    finally:
        database.close()
    assert insider.key_id not in node_a.audit_public_keys()
    report = node_a.audit_log.verify("acme", node_a.audit_public_keys())
    assert not report.ok
    assert report.problems[0].kind == "bad_checkpoint"


def _old_home(tmp_path: Path) -> Path:
    """A home written before issue 28 (the format-2 fixture): its keys in its own files."""
    fixture = FIXTURES / "format2-home"
    folder = home(tmp_path, "old")
    for name in ("local-keys.json", "root.key", "audit-signing.key"):
        shutil.copyfile(fixture / name, folder / name)
        (folder / name).chmod(0o600)
    with sqlite3.connect(folder / "ownkey.db") as conn:
        conn.executescript((fixture / "ownkey.sql").read_text())
    conn.close()
    (folder / "ownkey.db").chmod(0o600)
    return folder


def test_an_existing_single_node_home_moves_into_the_database_on_its_first_start(
    tmp_path: Path,
) -> None:
    folder = _old_home(tmp_path)
    url = f"sqlite:///{folder / 'ownkey.db'}"
    old_key = AuditSigningKey.from_file(folder / "audit-signing.key")
    old_keys = {k["key_id"] for k in json.loads((folder / "local-keys.json").read_text())["keys"]}
    # the old node signed a checkpoint of acme's chain with its own key, before the upgrade
    database = Database(create_engine(url))  # as it is: no migration, no check
    try:
        assert SqlAuditSink(database, old_key).checkpoint("acme") is not None
    finally:
        database.close()
    fleet_root = root_key_of(folder)
    with Runtime.open(home=folder, env={"OWNKEY_HOME": str(folder)}) as upgraded:
        assert upgraded.signing_key.key_id == old_key.key_id  # the home's key is the fleet's
    assert not (folder / "local-keys.json").exists()
    assert not (folder / "audit-signing.key").exists()
    assert (folder / "root.key").exists()  # the root key stays the node's to be given
    manifest = json.loads((FIXTURES / "format2-home" / "manifest.json").read_text())
    with node(home(tmp_path, "b"), url, OWNKEY_ROOT_KEY=fleet_root) as node_b:
        assert {key_id for key_id, _ in FleetStore(node_b.database).all_keys()} == old_keys
        for message in manifest["messages"]:
            sealed = base64.b64decode(message["sealed"])
            assert node_b.protector.open(message["request"], sealed) == (
                message["plaintext"].encode()
            )
        node_b.protector.seal(manifest["messages"][0]["request"], b"after")
        assert node_b.audit_sink.checkpoint("acme") is not None
        report = node_b.audit_log.verify("acme", node_b.audit_public_keys())
        assert report.ok, report.problems


def _cli(folder: Path, url: str, *args: str, **env: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from ownkey.cli import app

    given = {"OWNKEY_HOME": str(folder), "OWNKEY_DATABASE_URL": url, **env}
    result = CliRunner().invoke(app, list(args), env=given)
    return result.exit_code, result.stdout, result.stderr


def test_ownkey_audit_verify_says_ok_on_every_node_and_a_node_without_the_root_key_says_why(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    fleet_root = root_key_of(tmp_path / "a")
    own = {"OWNKEY_ROOT_KEY": fleet_root, "OWNKEY_AUDIT_SIGNING_KEY": "77" * 32}
    with node(home(tmp_path, "c"), shared_url, **own) as node_c:
        for rt in (node_a, node_c):
            rt.protector.seal(recording("acme", ANN, "m"), b"x")
            assert rt.audit_sink.checkpoint("acme") is not None
    homes = {"a": {}, "b": {"OWNKEY_ROOT_KEY": fleet_root}, "c": own}
    home(tmp_path, "b")
    for name, env in homes.items():
        code, out, err = _cli(tmp_path / name, shared_url, "audit", "verify", "acme", **env)
        assert code == 0, (name, out, err)
    code, _, err = _cli(home(tmp_path, "d"), shared_url, "org", "list")
    assert code != 0
    assert "OWNKEY_ROOT_KEY: this database's key store is sealed" in err


def test_ownkey_serve_without_the_fleets_root_key_exits_naming_it_and_never_says_healthy(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    """Before, the second node served, said ``/healthz: ok`` and denied the platform's keys."""
    import os

    from tests.api.test_nodes import _serve

    folder = home(tmp_path, "b")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    env.update(OWNKEY_HOME=str(folder), OWNKEY_DATABASE_URL=shared_url)
    log = tmp_path / "b.log"
    process, _ = _serve(env, 1.0, log)
    try:
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code != 0
    assert "OWNKEY_ROOT_KEY: this database's key store is sealed" in log.read_text()


def test_two_old_homes_with_their_own_signing_keys_verify_alike_after_their_first_start(
    tmp_path: Path, shared_url: str
) -> None:
    """Two nodes of one fleet from before: one root key given to both, but each home made its
    own audit signing key and kept its own ``--create-key`` keys. The checkpoints each signed
    were a false alarm on the other node, and stayed in the chain."""
    fleet_root = "6a" * 32
    old: dict[str, tuple[Path, AuditSigningKey, str]] = {}
    database = Database.open(shared_url)
    try:
        for name in ("a", "b"):
            folder = home(tmp_path, name)
            env = {"OWNKEY_HOME": str(folder), "OWNKEY_ROOT_KEY": fleet_root}
            signing = AuditSigningKey.load(env)  # $OWNKEY_HOME/audit-signing.key, as before
            own_key = LocalKeyStoreProvider(env=env).create_key(label=f"customer:{name}")
            sink = SqlAuditSink(database, signing)
            sink.record(AuditEvent(1.0, AuditAction.KEY_CREATE, Outcome.OK, org="acme"))
            assert sink.checkpoint("acme") is not None
            old[name] = (folder, signing, own_key)
        log = AuditLog(database)
        a_key = old["a"][1]
        before = log.verify("acme", {a_key.key_id: a_key.public_key})
        assert not before.ok  # node a called node b's checkpoint tampered
    finally:
        database.close()
    for folder, signing, own_key in old.values():
        with node(folder, shared_url, OWNKEY_ROOT_KEY=fleet_root) as rt:
            assert not (folder / "local-keys.json").exists()
            assert not (folder / "audit-signing.key").exists()
            assert rt.local_keys.describe(own_key).state.value == "enabled"
            assert signing.key_id in rt.audit_public_keys()
    for folder, _, _ in old.values():
        with node(folder, shared_url, OWNKEY_ROOT_KEY=fleet_root) as rt:
            for _, _, own_key in old.values():  # each home's keys, on every node
                assert rt.local_keys.describe(own_key).state.value == "enabled"
            assert rt.audit_sink.checkpoint("acme") is not None
            report = rt.audit_log.verify("acme", rt.audit_public_keys())
            assert report.ok, report.problems


def test_the_witness_logs_of_every_node_verify_together(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    """Each node's embedded store writes the witness calls it serves to its own home's
    ``local-keys.log``; ``audit verify --witness-log`` takes them concatenated."""
    from ownkey.service import witness

    fleet_root = root_key_of(tmp_path / "a")
    with node(home(tmp_path, "b"), shared_url, OWNKEY_ROOT_KEY=fleet_root) as node_b:
        for rt in (node_a, node_b):
            rt.protector.seal(recording("acme", ANN, "w"), b"x")
            witness(rt, "acme")
    logs = [(tmp_path / name / "local-keys.log").read_bytes() for name in ("a", "b")]
    assert all(logs)  # each node witnessed into its own log
    joined = tmp_path / "witness.log"
    joined.write_bytes(b"".join(logs))
    for name, env in {"a": {}, "b": {"OWNKEY_ROOT_KEY": fleet_root}}.items():
        code, out, err = _cli(
            tmp_path / name,
            shared_url,
            "audit",
            "verify",
            "acme",
            "--witness-log",
            str(joined),
            "--json",
            **env,
        )
        assert code == 0, (name, out, err)
        assert json.loads(out)["anchors"][0]["heads"] == 2


def test_an_old_home_sealed_under_another_root_key_is_refused_and_left_as_it_was(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    folder = home(tmp_path, "old")
    own = {"OWNKEY_HOME": str(folder), "OWNKEY_ROOT_KEY": "7b" * 32}
    LocalKeyStoreProvider(env=own).create_key(label="customer:acme")  # its own root key
    before = (folder / "local-keys.json").read_bytes()
    fleet_root = root_key_of(tmp_path / "a")
    with pytest.raises(ConfigError) as refused:
        node(folder, shared_url, OWNKEY_ROOT_KEY=fleet_root)
    assert str(refused.value).startswith("OWNKEY_ROOT_KEY: ")
    assert "local-keys.json" in str(refused.value)
    assert (folder / "local-keys.json").read_bytes() == before


@pytest.mark.parametrize("shared_url", ["postgresql"], indirect=True)
def test_two_serve_nodes_on_separate_homes_open_each_others_content(
    node_a: Runtime, tmp_path: Path, shared_url: str
) -> None:
    """The issue's frame: two ``ownkey serve`` processes, separate homes, one database."""
    import os

    import httpx

    from ownkey.storage import TokenStore
    from tests.api.conftest import bearer
    from tests.api.test_nodes import _serve, _wait_healthy

    platform = bearer(TokenStore(node_a.database).issue("platform")[1])
    fleet_root = root_key_of(tmp_path / "a")
    base = {k: v for k, v in os.environ.items() if not k.startswith("OWNKEY_")}
    base.update(OWNKEY_DATABASE_URL=shared_url, OWNKEY_ROOT_KEY=fleet_root)
    nodes = []
    try:
        for name in ("a", "b"):
            env = {**base, "OWNKEY_HOME": str(tmp_path / name)}
            if name == "b":
                home(tmp_path, name)
            log = tmp_path / f"{name}.log"
            process, address = _serve(env, 1.0, log)
            nodes.append((process, address))
            _wait_healthy(address, process, log)
        (_, at_a), (_, at_b) = nodes
        requests = [recording("acme", ANN, "cmk"), recording("globex", BO, "no-cmk")]
        with httpx.Client(timeout=10) as client:
            for request in requests:
                sealed = client.post(
                    f"{at_a}/v1/seal",
                    json={"request": request, "data": base64.b64encode(b"hi").decode()},
                    headers=platform,
                )
                assert sealed.status_code == 200, sealed.text
                opened = client.post(
                    f"{at_b}/v1/open",
                    json={"request": request, "sealed": sealed.json()["sealed"]},
                    headers=platform,
                )
                assert opened.status_code == 200, opened.text
                assert base64.b64decode(opened.json()["data"]) == b"hi"
    finally:
        for process, _ in nodes:
            process.terminate()
            process.wait(timeout=30)
