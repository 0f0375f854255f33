"""``ownkey key register``: a real round trip against each key manager, one clear line otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ownkey.cli import app
from ownkey.keys import KeyRef, KeyState
from ownkey.service import Runtime
from ownkey.storage import Database, SqlKeyRegistry
from ownkey.testing.faultproxy import Fault, FaultProxy
from tests.providers._servers import KmipServer, MotoServer, SoftHsm


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ownkey-home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {"OWNKEY_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"}


def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["key", "register", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _registered(home: Path, org: str) -> object:
    database = Database.open(f"sqlite:///{home / 'ownkey.db'}")
    try:
        return SqlKeyRegistry(database).get(KeyRef.customer(org))
    finally:
        database.close()


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ownkey: ")
    return lines[0]


# -- the local store ----------------------------------------------------------------------------


def _local_store(home: Path) -> Runtime:
    """The deployment whose database holds the embedded store's keys (issue 28, item 2)."""
    return Runtime.open(home=home, env={"OWNKEY_HOME": str(home)})


@pytest.fixture
def local_key(home: Path) -> str:
    with _local_store(home) as runtime:
        return runtime.local_keys.create_key(label="acme")


def test_register_a_local_key(env: dict[str, str], home: Path, local_key: str) -> None:
    code, out, err = _run(env, "acme", "--provider", "local", "--key-id", local_key)
    assert code == 0, err
    assert out.startswith(f"registered customer:acme -> local key {local_key} (version v1)")
    assert "another context refused" in out
    master = _registered(home, "acme")
    assert master is not None
    assert master.provider == "local"  # type: ignore[attr-defined]
    assert master.key_id == local_key  # type: ignore[attr-defined]
    assert master.state is KeyState.ENABLED  # type: ignore[attr-defined]


def test_check_only_records_nothing(env: dict[str, str], home: Path, local_key: str) -> None:
    code, out, err = _run(
        env, "acme", "--provider", "local", "--key-id", local_key, "--check-only", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["registered"] is False
    assert report["state"] == "enabled"
    with _local_store(home) as runtime:
        described = runtime.local_keys.describe(local_key)
    assert report["version"] == described.primary_version  # asked the key manager itself
    assert all(isinstance(report[f], float) for f in ("wrap_ms", "unwrap_ms"))  # timed both
    assert _registered(home, "acme") is None


def test_unknown_key_says_not_found(env: dict[str, str]) -> None:
    code, _, err = _run(env, "acme", "--provider", "local", "--key-id", "lk-nope")
    assert code == 2  # an unknown id is bad input (issue 12; it was 1)
    line = _one_line(err)
    assert "not found" in line
    assert "check --key-id" in line


def test_disabled_key_is_refused(env: dict[str, str], home: Path, local_key: str) -> None:
    with _local_store(home) as runtime:
        runtime.local_keys.disable(local_key)
    code, _, err = _run(env, "acme", "--provider", "local", "--key-id", local_key)
    assert code == 1
    assert "is disabled; only an enabled key can be registered" in _one_line(err)
    assert _registered(home, "acme") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme", "--provider", "vault", "--key-id", "k"], "unknown provider 'vault'"),
        (["acme", "--provider", "kmip", "--key-id", "k", "--set", "hostname"], "name=value"),
        (
            ["acme", "--provider", "kmip", "--key-id", "k", "--set", "colour=red"],
            "kmip has no setting 'colour'",
        ),
        (["acme", "--provider", "kmip", "--key-id", "k"], "kmip needs the host setting"),
        (
            ["acme", "--provider", "pkcs11", "--key-id", "k", "--set", "pin=1234"],
            "never on the command line",
        ),
        (
            ["acme", "--provider", "kmip", "--key-id", "k", "--set", "host=h", "--set", "port=x"],
            "TCP port",
        ),
        (["ac me", "--provider", "local", "--key-id", "k"], "ORG must be"),
        (["acme", "--provider", "local", "--key-id", " "], "--key-id must not be empty"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    env: dict[str, str], args: list[str], message: str
) -> None:
    code, _, err = _run(env, *args)
    assert code == 2
    line = _one_line(err)
    assert message in line
    assert "1234" not in line


def test_console_script_prints_one_line_and_no_traceback(env: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ownkey",
            "key",
            "register",
            "acme",
            "--provider",
            "vault",
            "--key-id",
            "k",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert _one_line(done.stderr).startswith("ownkey: unknown provider")


# -- the real key managers ----------------------------------------------------------------------


def _kmip_settings(server: KmipServer, port: int) -> list[str]:
    return [
        "--set",
        f"host={server.host}",
        "--set",
        f"port={port}",
        "--set",
        f"cert={server.pki.client_cert}",
        "--set",
        f"key={server.pki.client_key}",
        "--set",
        f"ca={server.pki.ca}",
        "--set",
        "timeout=0.5",
    ]


@pytest.fixture
def kmip_key(kmip_server: KmipServer) -> Iterator[str]:
    from ownkey.providers import KmipProvider

    provider = KmipProvider(
        host=kmip_server.host,
        port=kmip_server.port,
        certfile=str(kmip_server.pki.client_cert),
        keyfile=str(kmip_server.pki.client_key),
        ca_file=str(kmip_server.pki.ca),
    )
    yield provider.create_key(label="acme")
    provider.close()


def test_register_a_kmip_key(
    env: dict[str, str], home: Path, kmip_server: KmipServer, kmip_key: str
) -> None:
    code, out, err = _run(
        env,
        "acme",
        "--provider",
        "kmip",
        "--key-id",
        kmip_key,
        *_kmip_settings(kmip_server, kmip_server.port),
    )
    assert code == 0, err
    assert f"kmip key {kmip_key}" in out
    assert _registered(home, "acme") is not None


def test_unreachable_kmip_server_says_so(
    env: dict[str, str], kmip_server: KmipServer, kmip_key: str
) -> None:
    with FaultProxy((kmip_server.host, kmip_server.port)) as proxy, proxy.fault(Fault.BLACKHOLE):
        code, _, err = _run(
            env,
            "acme",
            "--provider",
            "kmip",
            "--key-id",
            kmip_key,
            *_kmip_settings(kmip_server, proxy.port),
        )
    assert code == 1
    assert "did not answer" in _one_line(err)


def test_kmip_settings_from_the_environment(
    env: dict[str, str], kmip_server: KmipServer, kmip_key: str
) -> None:
    env = {
        **env,
        "OWNKEY_KMIP_HOST": kmip_server.host,
        "OWNKEY_KMIP_PORT": str(kmip_server.port),
        "OWNKEY_KMIP_CERT": str(kmip_server.pki.client_cert),
        "OWNKEY_KMIP_KEY": str(kmip_server.pki.client_key),
        "OWNKEY_KMIP_CA": str(kmip_server.pki.ca),
    }
    code, _, err = _run(env, "acme", "--provider", "kmip", "--key-id", kmip_key, "--check-only")
    assert code == 0, err


def test_register_a_pkcs11_key_with_the_pin_from_the_environment(
    env: dict[str, str], softhsm: SoftHsm
) -> None:
    from ownkey.providers import Pkcs11Provider

    key_id = Pkcs11Provider(
        library=softhsm.library, token_label=softhsm.token_label, pin=softhsm.pin
    ).create_key(label="acme")
    env = {**env, "OWNKEY_PKCS11_PIN": softhsm.pin}
    code, out, err = _run(
        env,
        "acme",
        "--provider",
        "pkcs11",
        "--key-id",
        key_id,
        "--set",
        f"library={softhsm.library}",
        "--set",
        f"token={softhsm.token_label}",
    )
    assert code == 0, err
    assert softhsm.pin not in out + err


def test_register_an_aws_kms_key_on_moto(env: dict[str, str], moto_server: MotoServer) -> None:
    from ownkey.providers import AwsKmsProvider

    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    key_id = AwsKmsProvider(
        region="us-east-1", endpoint_url=moto_server.endpoint, credentials=credentials
    ).create_key(label="acme")
    env = {
        **env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "OWNKEY_AWS_KMS_REGION": "us-east-1",
        "OWNKEY_AWS_KMS_ENDPOINT_URL": moto_server.endpoint,
    }
    code, out, err = _run(env, "acme", "--provider", "aws_kms", "--key-id", key_id)
    assert code == 0, err
    assert "material-1" in out


def test_register_refuses_a_key_bound_to_another_org(env: dict[str, str], home: Path) -> None:
    """Issue 11, finding 1: the command line cannot bind acme's key (nor the platform's) to
    globex either; the key stays acme's and enabled."""
    from ownkey.service import Runtime

    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as runtime:
        acme = runtime.create_key("acme", actor="test")
        [platform] = [k for k in runtime.list_keys() if k.ref == KeyRef.platform()]
    for taken in (acme.key_id, platform.key_id):
        code, _, err = _run(env, "globex", "--provider", "local", "--key-id", taken)
        assert code != 0
        assert "bound to another key reference" in _one_line(err)
    assert _registered(home, "globex") is None
    master = _registered(home, "acme")
    assert master is not None
    assert master.state is KeyState.ENABLED  # type: ignore[attr-defined]


def test_an_unreachable_kmip_host_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    """PyKMIP logged two lines of its own on stderr before ownkey's (issue 12)."""
    from tests.providers._servers import free_port, make_pki

    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    settings = [
        "--set", "host=127.0.0.1", "--set", f"port={free_port()}",
        "--set", f"cert={pki.client_cert}", "--set", f"key={pki.client_key}",
        "--set", f"ca={pki.ca}", "--set", "timeout=0.3",
    ]  # fmt: skip
    # a real process: in pytest, its logging handlers would hide the library's stderr lines
    args = ["key", "register", "acme", "--provider", "kmip", "--key-id", "k", *settings]
    done = subprocess.run(
        [sys.executable, "-m", "ownkey", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot reach the KMIP server" in _one_line(done.stderr)
