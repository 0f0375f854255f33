"""Each error class keeps one meaning (docs: the tree in ``ownkey.errors``).

``ConfigError`` is misconfiguration only: a request that clashes with what exists is a
``Conflict`` (HTTP 409), a bad request value an ``InvalidRequest`` (HTTP 422); storage never lets
an ``OSError`` of its blob store out. Regression tests for the calls that bent the tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ownkey import build_protector
from ownkey.errors import (
    ConfigError,
    Conflict,
    InvalidRequest,
    KeyUnavailable,
    PlanChanged,
    RetiredScopeKey,
)
from ownkey.keys import KeyRef
from ownkey.service import Runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime.open(home=tmp_path / "home", env={}) as rt:
        yield rt


def test_cmk_without_a_customer_key_is_a_conflict_not_a_config_error(runtime: Runtime) -> None:
    with pytest.raises(Conflict, match="has no customer key") as caught:
        runtime.create_org("acme", cmk=True)
    assert not isinstance(caught.value, ConfigError)
    runtime.create_org("acme")
    with pytest.raises(Conflict, match="has no customer key"):
        runtime.update_org("acme", cmk=True)


def test_an_org_that_exists_already_is_a_conflict(runtime: Runtime) -> None:
    runtime.create_org("acme")
    with pytest.raises(Conflict, match="already exists") as caught:
        runtime.create_org("acme")
    assert not isinstance(caught.value, InvalidRequest)


def test_a_client_side_key_is_an_invalid_request_not_a_config_error() -> None:
    protector = build_protector()
    with pytest.raises(InvalidRequest, match="client-side key") as caught:
        protector.admin.create_key(KeyRef.hybrid("acme"))
    assert not isinstance(caught.value, ConfigError)
    assert caught.value.field == "key"


def test_moved_errors_keep_their_meaning() -> None:
    assert issubclass(PlanChanged, Conflict)
    assert not issubclass(PlanChanged, ConfigError)
    assert issubclass(RetiredScopeKey, KeyUnavailable)
    assert RetiredScopeKey(b"\x01\x02").scope_key_id == b"\x01\x02"


def test_registering_a_disabled_key_is_a_conflict_not_a_config_error() -> None:
    """The key exists and ownkey is set up right: it is the key's state that clashes."""
    from ownkey.providers import LocalKeyProvider

    local = LocalKeyProvider()
    protector = build_protector(providers={"local": local})
    key_id = local.create_key(label="acme")
    local.disable(key_id)
    with pytest.raises(Conflict, match="is disabled") as caught:
        protector.admin.register_key(KeyRef.customer("acme"), provider="local", key_id=key_id)
    assert not isinstance(caught.value, ConfigError)
