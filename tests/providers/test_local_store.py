"""The embedded local key store: the contract, the root key, and the JSON file on disk."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import pytest

from ownkey.envelope import SECRET_KEY_ACCESS, ScopeKey
from ownkey.errors import AccessDenied, ConfigError, InvalidCiphertext, LimitExceeded
from ownkey.keys import KeyState
from ownkey.providers._local_store import KEY_FILE, JsonKeyFile, LocalKeyStoreProvider
from ownkey.providers._rootkey import ROOT_KEY_ENV, ROOT_KEY_FILE, load_root_key
from ownkey.testing.fakes import FakeClock
from ownkey.testing.live_contract import LiveProviderContract, ProviderHarness
from ownkey.testing.provider_contract import CONTEXT


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"OWNKEY_HOME": str(home), **extra}


class TestLocalStoreContract(LiveProviderContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> ProviderHarness:
        clock = FakeClock()
        return ProviderHarness(LocalKeyStoreProvider(env=_env(tmp_path), clock=clock), clock=clock)


class TestLocalStoreWithInjectedRecordsContract(LiveProviderContract):
    """The same provider over an explicit records port and root key (the SQL store's seam)."""

    @pytest.fixture
    def harness(self, tmp_path: Path) -> ProviderHarness:
        records = JsonKeyFile(tmp_path / "keys.json")
        root = ScopeKey(b"root", os.urandom(32))
        return ProviderHarness(LocalKeyStoreProvider(records=records, root_key=root))


# -- root key -----------------------------------------------------------------------------------


def test_root_key_file_is_created_0600_on_first_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_root_key(_env(home))
    path = home / ROOT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert load_root_key(_env(home)) == first  # read back, not recreated
    assert "redacted" in repr(first)


def test_root_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_root_key(_env(tmp_path))
    (tmp_path / ROOT_KEY_FILE).chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_root_key(_env(tmp_path))


@pytest.mark.parametrize("form", ["hex", "base64", "base64url-unpadded"])
def test_root_key_from_environment(tmp_path: Path, form: str) -> None:
    material = bytes(range(32))
    text = {
        "hex": material.hex(),
        "base64": base64.b64encode(material).decode(),
        "base64url-unpadded": base64.urlsafe_b64encode(material).decode().rstrip("="),
    }[form]
    key = load_root_key(_env(tmp_path, **{ROOT_KEY_ENV: text}))
    assert key == ScopeKey(key.key_id, material)
    assert not (tmp_path / ROOT_KEY_FILE).exists()  # the environment wins, no file is made


@pytest.mark.parametrize("bad", ["short", "00" * 31, "zz" * 32, "QUJD"])
def test_bad_root_key_in_environment_is_a_config_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=ROOT_KEY_ENV) as raised:
        load_root_key(_env(tmp_path, **{ROOT_KEY_ENV: bad}))
    assert bad not in str(raised.value)


def test_root_key_file_with_garbage_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / ROOT_KEY_FILE
    path.write_text("not a key\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="32-byte"):
        load_root_key(_env(tmp_path))


# -- persistence --------------------------------------------------------------------------------


def test_keys_survive_a_restart_and_rest_sealed(tmp_path: Path) -> None:
    provider = LocalKeyStoreProvider(env=_env(tmp_path))
    key_id = provider.create_key(label="acme")
    provider.rotate(key_id)
    share = os.urandom(32)
    wrapped = provider.wrap(key_id, share, CONTEXT)

    restarted = LocalKeyStoreProvider(env=_env(tmp_path))
    assert restarted.unwrap(key_id, wrapped, CONTEXT) == share
    described = restarted.describe(key_id)
    assert described.versions == ("v1", "v2")
    assert described.label == "acme"

    body = (tmp_path / KEY_FILE).read_bytes()
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    root = load_root_key(_env(tmp_path))
    assert root.material(SECRET_KEY_ACCESS).hex() not in body.decode()
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_another_root_key_cannot_open_the_store(tmp_path: Path) -> None:
    provider = LocalKeyStoreProvider(env=_env(tmp_path))
    key_id = provider.create_key(label="acme")
    wrapped = provider.wrap(key_id, os.urandom(32), CONTEXT)
    (tmp_path / ROOT_KEY_FILE).unlink()
    with pytest.raises(ConfigError, match="root key"):
        LocalKeyStoreProvider(env=_env(tmp_path)).unwrap(key_id, wrapped, CONTEXT)


def test_a_changed_key_file_is_caught(tmp_path: Path) -> None:
    provider = LocalKeyStoreProvider(env=_env(tmp_path))
    key_id = provider.create_key(label="acme")
    path = tmp_path / KEY_FILE
    raw = json.loads(path.read_text())
    raw["keys"][0]["versions"][0]["sealed"] = base64.b64encode(os.urandom(80)).decode("ascii")
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="altered"):
        LocalKeyStoreProvider(env=_env(tmp_path)).wrap(key_id, os.urandom(32), CONTEXT)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        LocalKeyStoreProvider(env=_env(tmp_path)).describe(key_id)


def test_two_instances_see_each_others_changes(tmp_path: Path) -> None:
    """Two processes sharing OWNKEY_HOME: a disable by one is enforced by the other."""
    one = LocalKeyStoreProvider(env=_env(tmp_path))
    two = LocalKeyStoreProvider(env=_env(tmp_path))
    key_id = one.create_key(label="acme")
    wrapped = two.wrap(key_id, os.urandom(32), CONTEXT)
    time.sleep(0.01)  # a distinct mtime even on coarse file systems
    one.disable(key_id)
    with pytest.raises(AccessDenied) as denied:
        two.unwrap(key_id, wrapped, CONTEXT)
    assert denied.value.reason == "disabled"
    two.enable(key_id)
    assert len(one.unwrap(key_id, wrapped, CONTEXT)) == 32


def test_a_due_destruction_happens_on_next_use(tmp_path: Path) -> None:
    now = [1000.0]
    provider = LocalKeyStoreProvider(env=_env(tmp_path), clock=lambda: now[0])
    key_id = provider.create_key(label="acme")
    provider.disable(key_id)
    provider.schedule_destruction(key_id, destroy_at=2000.0)
    assert provider.describe(key_id).state is KeyState.PENDING_DESTRUCTION
    now[0] = 2000.0
    described = provider.describe(key_id)
    assert described.state is KeyState.DESTROYED
    assert described.versions == ()
    raw = json.loads((tmp_path / KEY_FILE).read_text())
    assert raw["keys"][0]["versions"] == []  # crypto-shredded on disk, tombstone kept


def test_blob_versions_are_bound(tmp_path: Path) -> None:
    provider = LocalKeyStoreProvider(env=_env(tmp_path))
    key_id = provider.create_key(label="acme")
    provider.rotate(key_id)
    wrapped = provider.wrap(key_id, os.urandom(32), CONTEXT)
    assert wrapped[2:4] == b"v2"
    relabelled = wrapped[:3] + b"1" + wrapped[4:]
    with pytest.raises(InvalidCiphertext):
        provider.unwrap(key_id, relabelled, CONTEXT)


def test_share_size_limits(tmp_path: Path) -> None:
    provider = LocalKeyStoreProvider(env=_env(tmp_path))
    key_id = provider.create_key(label="acme")
    with pytest.raises(LimitExceeded):
        provider.wrap(key_id, b"", CONTEXT)
    with pytest.raises(LimitExceeded):
        provider.wrap(key_id, bytes(4097), CONTEXT)


def test_repr_shows_no_key(tmp_path: Path) -> None:
    provider = LocalKeyStoreProvider(env=_env(tmp_path))
    assert "redacted" in repr(provider)
