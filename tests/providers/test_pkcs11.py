"""The pkcs11 provider against a real SoftHSM2 token, initialised by the tests in a temp dir."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    NotFound,
)
from ownkey.keys import DestructionOutcome, KeyState
from ownkey.providers._pkcs11 import Pkcs11Provider
from ownkey.testing.live_contract import LiveProviderContract, ProviderHarness
from ownkey.testing.provider_contract import CONTEXT
from tests.providers._servers import SoftHsm


@pytest.fixture
def hsm_provider(softhsm: SoftHsm) -> Iterator[Pkcs11Provider]:
    made = Pkcs11Provider(
        library=softhsm.library,
        token_label=softhsm.token_label,
        pin=softhsm.pin,
        timeout=0.5,
        owns_destruction=True,  # the contract proves the destruction; the default is below
    )
    yield made
    made.close()


@contextlib.contextmanager
def _library_hung(provider: Pkcs11Provider) -> Iterator[None]:
    """Another caller stuck inside the library (a hung network HSM) holds the library lock."""
    assert provider._lock.acquire(timeout=5)
    try:
        yield
    finally:
        provider._lock.release()


@pytest.fixture
def provider(hsm_provider: Pkcs11Provider) -> Pkcs11Provider:
    return hsm_provider


class TestPkcs11Contract(LiveProviderContract):
    @pytest.fixture
    def harness(self, hsm_provider: Pkcs11Provider) -> ProviderHarness:
        return ProviderHarness(hsm_provider, deadline=1.0, hang=lambda: _library_hung(hsm_provider))


@pytest.fixture
def session(softhsm: SoftHsm, provider: Pkcs11Provider) -> Iterator[Any]:
    """The customer's own view of the token (an HSM admin console)."""
    token = pkcs11.lib(softhsm.library).get_token(token_label=softhsm.token_label)
    with token.open(rw=True) as opened:
        yield opened


def _keys(session: Any, key_id: str) -> list[Any]:
    return list(
        session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_id})
    )


def test_created_keys_are_sensitive_and_encrypt_only(
    provider: Pkcs11Provider, session: Any
) -> None:
    key_id = provider.create_key(label="Acme Corp")
    assert key_id.startswith("Acme-Corp-")
    (key,) = _keys(session, key_id)
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.WRAP] is False
    assert key[Attribute.UNWRAP] is False
    assert key[Attribute.VALUE_LEN] == 32
    assert key[Attribute.ID] == b"v1"
    assert provider.attributes(key_id)["bits"] == 256


def test_customer_disabling_the_key_in_the_hsm_denies(
    provider: Pkcs11Provider, session: Any
) -> None:
    """A revocation made in the HSM itself, not through ownkey, is enforced and classified."""
    key_id = provider.create_key(label="acme")
    share = os.urandom(32)
    wrapped = provider.wrap(key_id, share, CONTEXT)
    for key in _keys(session, key_id):
        key[Attribute.DECRYPT] = False
        key[Attribute.ENCRYPT] = False
    with pytest.raises(AccessDenied) as denied:
        provider.unwrap(key_id, wrapped, CONTEXT)
    assert denied.value.reason == "disabled"
    for key in _keys(session, key_id):
        key[Attribute.DECRYPT] = True
        key[Attribute.ENCRYPT] = True
    assert provider.unwrap(key_id, wrapped, CONTEXT) == share


def test_key_function_not_permitted_from_the_token_is_denied(
    provider: Pkcs11Provider, session: Any
) -> None:
    """Only DECRYPT cleared: the state still reads enabled, the token's refusal is classified."""
    key_id = provider.create_key(label="acme")
    wrapped = provider.wrap(key_id, os.urandom(32), CONTEXT)
    for key in _keys(session, key_id):
        key[Attribute.DECRYPT] = False
    with pytest.raises(AccessDenied):
        provider.unwrap(key_id, wrapped, CONTEXT)


def test_wrong_aad_general_error_is_invalid_ciphertext_not_an_outage(
    provider: Pkcs11Provider,
) -> None:
    """SoftHSM2 answers a failed GCM tag with CKR_GENERAL_ERROR: a refusal, never retried."""
    key_id = provider.create_key(label="acme")
    secret = os.urandom(32)
    wrapped = provider.wrap(key_id, secret, CONTEXT)
    with pytest.raises(InvalidCiphertext) as raised:
        provider.unwrap(key_id, wrapped, dict(CONTEXT, org="globex"))
    # Opaque: the token's error is neither chained nor kept as context for a caller to read.
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    # A refusal, not an outage: the provider's session still serves the right context.
    assert provider.unwrap(key_id, wrapped, CONTEXT) == secret


def test_key_deleted_in_the_hsm_is_not_found(provider: Pkcs11Provider, session: Any) -> None:
    key_id = provider.create_key(label="acme")
    wrapped = provider.wrap(key_id, os.urandom(32), CONTEXT)
    for key in _keys(session, key_id):
        key.destroy()
    with pytest.raises(NotFound):
        provider.unwrap(key_id, wrapped, CONTEXT)


def test_state_survives_in_the_token(softhsm: SoftHsm, provider: Pkcs11Provider) -> None:
    """Pending destruction lives in the HSM: another provider object (node) sees it."""
    key_id = provider.create_key(label="acme")
    provider.disable(key_id)
    provider.schedule_destruction(key_id, destroy_at=time.time() + 3600)
    other = Pkcs11Provider(
        library=softhsm.library, token_label=softhsm.token_label, pin=softhsm.pin
    )
    assert other.describe(key_id).state is KeyState.PENDING_DESTRUCTION


def test_due_destruction_happens_on_next_use(softhsm: SoftHsm, session: Any) -> None:
    """Where ownkey owns the destruction; by default see the test of the retained key."""
    now = [1000.0]
    provider = Pkcs11Provider(
        library=softhsm.library,
        token_label=softhsm.token_label,
        pin=softhsm.pin,
        clock=lambda: now[0],
        owns_destruction=True,
    )
    key_id = provider.create_key(label="acme")
    provider.disable(key_id)
    provider.schedule_destruction(key_id, destroy_at=2000.0)
    now[0] = 2000.0
    assert provider.describe(key_id).state is KeyState.DESTROYED
    assert _keys(session, key_id) == []  # the key objects are gone from the token


def test_wrong_pin_is_a_config_error_without_the_pin(softhsm: SoftHsm) -> None:
    """In a fresh process: PKCS#11 login is per application, so this process is logged in."""
    script = textwrap.dedent(
        f"""
        from ownkey.errors import ConfigError
        from ownkey.providers._pkcs11 import Pkcs11Provider
        provider = Pkcs11Provider(library={softhsm.library!r},
                                  token_label={softhsm.token_label!r}, pin="000000")
        try:
            provider.describe("anything")
        except ConfigError as exc:
            print("ConfigError:", exc, repr(provider))
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm.conf)},
    )
    assert done.stdout.startswith("ConfigError:"), done.stdout + done.stderr
    assert "PinIncorrect" in done.stdout
    assert "000000" not in done.stdout


def test_unknown_token_is_a_config_error(softhsm: SoftHsm) -> None:
    provider = Pkcs11Provider(library=softhsm.library, token_label="no-such-token", pin="1")
    with pytest.raises(ConfigError, match="no-such-token"):
        provider.describe("k")


def test_missing_library_is_a_config_error() -> None:
    provider = Pkcs11Provider(library="/nonexistent/libpkcs11.so", token_label="t", pin="1")
    with pytest.raises(ConfigError, match="cannot load"):
        provider.describe("k")


def test_bad_key_id_is_not_found(provider: Pkcs11Provider) -> None:
    with pytest.raises(NotFound):
        provider.describe("spaces are not allowed")


# -- error classification with the token's own exception types ---------------------------------


class _Failing:
    """A session whose every call raises one PKCS#11 error."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def get_objects(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (p11.DeviceRemoved(), KeyUnavailable),
        (p11.DeviceError(), KeyUnavailable),
        (p11.TokenNotPresent(), KeyUnavailable),
        (p11.SessionHandleInvalid(), KeyUnavailable),
        (p11.SessionClosed(), KeyUnavailable),
        (p11.UserNotLoggedIn(), KeyUnavailable),
        (p11.PKCS11Error("Unmapped error code 0x30"), KeyUnavailable),
        (p11.PinIncorrect(), ConfigError),
        (p11.PinLocked(), ConfigError),
        (p11.MechanismInvalid(), ConfigError),
        (p11.TokenNotRecognised(), ConfigError),
    ],
)
def test_sdk_errors_are_classified(
    softhsm: SoftHsm, error: Exception, expected: type[Exception]
) -> None:
    provider = Pkcs11Provider(library=softhsm.library, token_label=softhsm.token_label, pin="x")
    failing = _Failing(error)
    provider._session = failing  # type: ignore[assignment]
    with pytest.raises(expected):
        provider.wrap("acme-1", os.urandom(32), CONTEXT)
    if expected is KeyUnavailable:
        assert failing.closed  # the session is dropped and reopened on the next call
        assert provider._session is None


def test_destroy_reports_what_the_token_holds_after_it(
    provider: Pkcs11Provider, session: Any
) -> None:
    """KL-9: configured to own the step, every version is C_DestroyObject'ed and the receipt
    carries the token's count of what is left (0)."""
    key_id = provider.create_key(label="acme")
    provider.rotate(key_id)
    provider.disable(key_id)
    provider.schedule_destruction(key_id, destroy_at=time.time() + 3600)
    receipt = provider.destroy(key_id)
    assert receipt.outcome is DestructionOutcome.DESTROYED
    assert receipt.answer == {
        "pkcs11_token": provider._token_label,
        "pkcs11_objects_left": "0",
        "pkcs11_objects_destroyed": "2",
    }
    assert _keys(session, key_id) == []
    assert provider.destroy(key_id).outcome is DestructionOutcome.DESTROYED  # idempotent


def test_by_default_a_destruction_leaves_the_key_in_the_customers_hsm(
    softhsm: SoftHsm, session: Any
) -> None:
    """KL-9: not configured to own the step (the default), no object is destroyed, not even
    once the date is due, and the receipt says the key remains in the customer's HSM."""
    provider = Pkcs11Provider(
        library=softhsm.library, token_label=softhsm.token_label, pin=softhsm.pin, timeout=0.5
    )
    try:
        key_id = provider.create_key(label="acme")
        wrapped = provider.wrap(key_id, os.urandom(32), CONTEXT)
        provider.disable(key_id)
        provider.schedule_destruction(key_id, destroy_at=time.time() - 1)  # already due
        assert provider.describe(key_id).state is KeyState.PENDING_DESTRUCTION
        receipt = provider.destroy(key_id)
        assert receipt.outcome is DestructionOutcome.RETAINED
        assert receipt.answer["pkcs11_objects_left"] == "1"
        assert "remains in the customer's key manager" in receipt.statement
        assert len(_keys(session, key_id)) == 1
        with pytest.raises(AccessDenied) as denied:
            provider.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "pending_destruction"
    finally:
        provider.close()
