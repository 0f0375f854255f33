"""Provider settings belong to each org's key (issue 28, item 1).

The attack: the operator registers slowco's key with ``--set endpoint_url=...``; before, that
rewrote the one ``aws_kms`` row acme's key used too, so every node that built the provider
afterwards sent acme's calls where slowco's settings pointed. Two nodes (two runtimes, each its
own ``OWNKEY_HOME``, one database) and the CLI share moto's KMS through three fault proxies: a
proxy that refuses every connection shows which settings a node's calls follow. PostgreSQL's
change feed and PKCS#11 (the PIN, a secret, kept out of every row, answer and record) too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ownkey.cli import app
from ownkey.keys import KeyRef
from ownkey.providers import AwsKmsProvider
from ownkey.service import Runtime
from ownkey.storage import Database, SqlOrgDirectory
from ownkey.testing.fakes import FakeClock
from ownkey.testing.faultproxy import Fault, FaultProxy
from tests.providers._servers import MotoServer, SoftHsm

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: The root key every node of the test's fleet is given (issue 28, item 2).
FLEET_ROOT_KEY = "5e" * 32
ACME, SLOWCO = KeyRef.customer("acme"), KeyRef.customer("slowco")


@pytest.fixture
def proxies(moto_server: MotoServer) -> Iterator[tuple[FaultProxy, FaultProxy, FaultProxy]]:
    upstream = ("127.0.0.1", moto_server.port)
    with FaultProxy(upstream) as a, FaultProxy(upstream) as b, FaultProxy(upstream) as c:
        yield a, b, c


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto reads its credentials from the process environment, the CLI's and the nodes'."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def _endpoint(proxy: FaultProxy) -> str:
    return f"http://127.0.0.1:{proxy.port}"


def _kms_key(moto_server: MotoServer, label: str) -> str:
    kms = AwsKmsProvider(
        region="us-east-1", endpoint_url=moto_server.endpoint, credentials=CREDENTIALS
    )
    return kms.create_key(label=label)


def _register(tmp_path: Path, url: str, org: str, key_id: str, proxy: FaultProxy) -> None:
    env = {
        "OWNKEY_HOME": str(tmp_path / "cli-home"),
        "OWNKEY_ROOT_KEY": FLEET_ROOT_KEY,
        "OWNKEY_DATABASE_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    args = ["key", "register", org, "--provider", "aws_kms", "--key-id", key_id]
    args += [
        "--set",
        "region=us-east-1",
        "--set",
        f"endpoint_url={_endpoint(proxy)}",
        "--set",
        "timeout=1.5",
    ]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.stderr


def _node(tmp_path: Path, name: str, url: str, clock: FakeClock) -> Runtime:
    return Runtime.open(
        home=tmp_path / name,
        url=url,
        clock=clock,
        sleep=clock.sleep,
        env={"OWNKEY_ROOT_KEY": FLEET_ROOT_KEY},  # every node of a fleet is given it (issue 28)
        recheck_interval=1.0,
    )


def _settings(url: str, ref: KeyRef) -> dict[str, str]:
    database = Database.open(url)
    try:
        row = SqlOrgDirectory(database).provider(f"aws_kms/{ref}")
        assert row is not None
        return dict(row.settings)
    finally:
        database.close()


@pytest.mark.usefixtures("aws_env")
def test_one_orgs_registration_never_re_points_another_orgs_key(
    tmp_path: Path,
    moto_server: MotoServer,
    proxies: tuple[FaultProxy, FaultProxy, FaultProxy],
) -> None:
    via_a, via_b, via_c = proxies
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    clock = FakeClock()
    acme_key, slowco_key = _kms_key(moto_server, "acme"), _kms_key(moto_server, "slowco")
    _register(tmp_path, url, "acme", acme_key, via_a)
    with _node(tmp_path, "node-1", url, clock) as one, _node(tmp_path, "node-2", url, clock) as two:
        assert one.admin.check_key(ACME).state.value == "enabled"
        _register(tmp_path, url, "slowco", slowco_key, via_b)
        assert two.admin.check_key(SLOWCO).state.value == "enabled"  # node 2 builds it via B
        with via_b.fault(Fault.REFUSE):
            # acme's calls follow acme's settings (A) on every node, old or new
            with _node(tmp_path, "node-3", url, clock) as three:
                for node in (one, two, three):
                    assert node.admin.check_key(ACME).state.value == "enabled"
            # slowco moves its key manager to C; node 2, running, follows within the interval
            _register(tmp_path, url, "slowco", slowco_key, via_c)
            clock.advance(1.0)
            assert two.admin.check_key(SLOWCO).state.value == "enabled"
            assert one.admin.check_key(SLOWCO).state.value == "enabled"
            assert two.admin.check_key(ACME).state.value == "enabled"
    assert _settings(url, ACME)["endpoint_url"] == _endpoint(via_a)
    assert _settings(url, SLOWCO)["endpoint_url"] == _endpoint(via_c)


@pytest.mark.usefixtures("aws_env")
def test_settings_that_fail_the_round_trip_leave_the_key_as_it_was(
    tmp_path: Path,
    moto_server: MotoServer,
    proxies: tuple[FaultProxy, FaultProxy, FaultProxy],
) -> None:
    """Re-pointing a key is checked first: a manager that does not answer changes nothing."""
    via_a, via_b, _ = proxies
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    acme_key = _kms_key(moto_server, "acme")
    _register(tmp_path, url, "acme", acme_key, via_a)
    env = {
        "OWNKEY_HOME": str(tmp_path / "cli-home"),
        "OWNKEY_ROOT_KEY": FLEET_ROOT_KEY,
        "OWNKEY_DATABASE_URL": url,
    }
    args = ["key", "register", "acme", "--provider", "aws_kms", "--key-id", acme_key]
    args += [
        "--set",
        "region=us-east-1",
        "--set",
        f"endpoint_url={_endpoint(via_b)}",
        "--set",
        "timeout=0.3",
    ]
    with via_b.fault(Fault.REFUSE):
        result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1
    assert _settings(url, ACME)["endpoint_url"] == _endpoint(via_a)


@pytest.mark.usefixtures("aws_env")
def test_a_key_id_of_one_manager_stays_bound_to_one_org(
    tmp_path: Path, moto_server: MotoServer, proxies: tuple[FaultProxy, FaultProxy, FaultProxy]
) -> None:
    """KL-14 across provider rows: slowco's own row reaching the same manager cannot bind
    acme's key id; acme's settings stay."""
    via_a, _, _ = proxies
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    acme_key = _kms_key(moto_server, "acme")
    _register(tmp_path, url, "acme", acme_key, via_a)
    env = {
        "OWNKEY_HOME": str(tmp_path / "cli-home"),
        "OWNKEY_ROOT_KEY": FLEET_ROOT_KEY,
        "OWNKEY_DATABASE_URL": url,
    }
    args = ["key", "register", "slowco", "--provider", "aws_kms", "--key-id", acme_key]
    args += [
        "--set",
        "region=us-east-1",
        "--set",
        f"endpoint_url={_endpoint(via_a)}",
        "--set",
        "timeout=1.5",
    ]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code != 0
    assert "bound to another key reference" in result.stderr
    assert _settings(url, ACME)["endpoint_url"] == _endpoint(via_a)
    database = Database.open(url)
    try:
        assert SqlOrgDirectory(database).provider(f"aws_kms/{SLOWCO}") is None
    finally:
        database.close()


@pytest.mark.usefixtures("aws_env")
def test_a_running_node_follows_new_settings_at_the_notification(
    tmp_path: Path,
    moto_server: MotoServer,
    proxies: tuple[FaultProxy, FaultProxy, FaultProxy],
    postgres_url: str,
) -> None:
    """PostgreSQL: with a re-check interval of an hour, only the change feed (``providers``
    notifies ``ownkey_changes``, migration 0010) can move a running node to the new settings."""
    from ownkey.errors import KeyUnavailable
    from ownkey.service import NodeSync

    via_a, via_b, _ = proxies
    clock = FakeClock()
    slowco_key = _kms_key(moto_server, "slowco")
    Database.open(postgres_url).close()  # on PostgreSQL only the library and db upgrade migrate
    _register(tmp_path, postgres_url, "slowco", slowco_key, via_a)
    node = Runtime.open(
        home=tmp_path / "node",
        url=postgres_url,
        clock=clock,
        sleep=clock.sleep,
        env={"OWNKEY_ROOT_KEY": FLEET_ROOT_KEY},
        recheck_interval=3600.0,
    )
    sync = NodeSync(node)
    try:
        sync.start()
        assert sync.wait_listening(10.0)
        assert node.admin.check_key(SLOWCO).state.value == "enabled"  # built via A
        with via_a.fault(Fault.REFUSE):
            _register(tmp_path, postgres_url, "slowco", slowco_key, via_b)
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    node.admin.check_key(SLOWCO)
                    break
                except KeyUnavailable:
                    assert time.monotonic() < deadline, "the node never followed slowco's move"
                    time.sleep(0.05)
    finally:
        sync.stop()
        node.close()


def test_a_pin_is_in_no_row_answer_or_record(
    tmp_path: Path, softhsm: SoftHsm, capsys: pytest.CaptureFixture[str]
) -> None:
    """PKCS#11: two orgs on one HSM library, each its own token settings; the PIN (from the
    environment only) is in no provider row, no audit record and no output."""
    from ownkey.providers import Pkcs11Provider

    hsm = Pkcs11Provider(library=softhsm.library, token_label=softhsm.token_label, pin=softhsm.pin)
    keys = {org: hsm.create_key(label=org) for org in ("acme", "slowco")}
    hsm.close()
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {
        "OWNKEY_HOME": str(tmp_path / "cli-home"),
        "OWNKEY_ROOT_KEY": FLEET_ROOT_KEY,
        "OWNKEY_DATABASE_URL": url,
        "OWNKEY_PKCS11_PIN": softhsm.pin,
    }
    output = ""
    for org, timeout in (("acme", "5"), ("slowco", "3")):
        args = ["key", "register", org, "--provider", "pkcs11", "--key-id", keys[org]]
        args += ["--set", f"library={softhsm.library}", "--set", f"token={softhsm.token_label}"]
        args += ["--set", f"timeout={timeout}"]
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.stderr
        output += result.stdout + result.stderr
    args = ["key", "register", "slowco", "--provider", "pkcs11", "--key-id", keys["slowco"]]
    refused = CliRunner().invoke(app, [*args, "--set", f"pin={softhsm.pin}"], env=env)
    assert refused.exit_code == 2
    output += refused.stdout + refused.stderr + capsys.readouterr().err
    database = Database.open(url)
    try:
        rows = {row.name: dict(row.settings) for row in SqlOrgDirectory(database).providers()}
        with database.engine.connect() as conn:
            bodies = [
                bytes(row[0]) for row in conn.exec_driver_sql("SELECT body FROM audit_records")
            ]
    finally:
        database.close()
    assert rows[f"pkcs11/{ACME}"]["timeout"] == "5"
    assert rows[f"pkcs11/{SLOWCO}"]["timeout"] == "3"
    assert softhsm.pin not in json.dumps(rows) + output
    assert bodies
    assert not [body for body in bodies if softhsm.pin.encode() in body]
