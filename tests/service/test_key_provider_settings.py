"""A key's provider settings are its own, and a key id of one key manager stays one org's (KL-14).

Service level, no key manager needed: each refusal here comes before any key-manager call.
Acme's key is recorded as registered from its own row; slowco then tries to bind the same key id
through a row of its own that reaches the same manager.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ownkey.errors import ConfigError, Conflict
from ownkey.keys import KeyRef, KeyState, MasterKey
from ownkey.service import Runtime
from ownkey.storage import SqlKeyRegistry, SqlOrgDirectory

ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ACME_ROW = "aws_kms/customer:acme"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    home = tmp_path / "home"
    env = {"OWNKEY_HOME": str(home), "OWNKEY_AWS_KMS_REGION": "eu-west-1"}
    with Runtime.open(home=home, env=env) as rt:
        yield rt


def _acme(runtime: Runtime, key_id: str, settings: dict[str, str]) -> None:
    SqlOrgDirectory(runtime.database).put_provider(ACME_ROW, "aws_kms", settings)
    master = MasterKey(KeyRef.customer("acme"), ACME_ROW, key_id, "v1", KeyState.ENABLED, 1.0, 1.0)
    SqlKeyRegistry(runtime.database).put(master)
    runtime.invalidate()


def _rows(runtime: Runtime) -> dict[str, dict[str, str]]:
    return {row.name: dict(row.settings) for row in SqlOrgDirectory(runtime.database).providers()}


def _slowco(runtime: Runtime, key_id: str, settings: dict[str, str]) -> None:
    runtime.register_key(
        "slowco", provider="aws_kms", kind="aws_kms", settings=settings, key_id=key_id
    )


def test_an_arn_is_one_key_whatever_endpoint_reaches_it(runtime: Runtime) -> None:
    _acme(runtime, ARN, {"endpoint_url": "https://kms.acme.test"})
    with pytest.raises(Conflict, match="bound to another key reference"):
        _slowco(runtime, ARN, {"endpoint_url": "https://vpce.slowco.test"})
    assert _rows(runtime) == {ACME_ROW: {"endpoint_url": "https://kms.acme.test"}}


def test_the_environment_fills_the_address_as_when_the_provider_is_built(
    runtime: Runtime,
) -> None:
    """acme's row leaves the region to the environment (eu-west-1); slowco's names it."""
    _acme(runtime, "1234abcd", {})
    with pytest.raises(Conflict):
        _slowco(runtime, "1234abcd", {"region": "eu-west-1"})
    assert "aws_kms/customer:slowco" not in _rows(runtime)


def test_a_provider_name_with_a_slash_is_no_template(runtime: Runtime) -> None:
    """Only a registration writes a key's own row; the operator's templates are kind names."""
    with pytest.raises(ConfigError):
        runtime.configure_provider(ACME_ROW, "aws_kms", {"endpoint_url": "https://evil.test"})
    assert _rows(runtime) == {}


def test_another_orgs_row_answers_as_an_unknown_provider(runtime: Runtime) -> None:
    _acme(runtime, ARN, {"endpoint_url": "https://kms.acme.test"})
    with pytest.raises(ConfigError, match="no key provider named"):
        runtime.create_key("slowco", provider=ACME_ROW)
    with pytest.raises(ConfigError, match="no key provider named"):
        runtime.register_key("slowco", provider=ACME_ROW, key_id="other")
    assert _rows(runtime) == {ACME_ROW: {"endpoint_url": "https://kms.acme.test"}}
