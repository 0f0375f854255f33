"""The kmip provider against PyKMIP's own server (mutual TLS, certificates made for this run),
reached through the fault-injection proxy."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    NotFound,
)
from ownkey.keys import KeyState, RetryPolicy, call_with_retry
from ownkey.providers._common import unframe
from ownkey.providers._kmip import KmipProvider, enums
from ownkey.testing.faultproxy import Fault, FaultProxy
from ownkey.testing.live_contract import LiveProviderContract, ProviderHarness
from ownkey.testing.provider_contract import CONTEXT
from tests.providers._servers import KmipServer, Pki

TIMEOUT = 0.5
#: A refused, hung or slow server is reported within this (one socket timeout plus slack).
DEADLINE = 3 * TIMEOUT


def _provider(server: KmipServer, port: int | None = None, *, pki: Pki | None = None,
              **kwargs: Any) -> KmipProvider:
    pki = pki or server.pki
    settings: dict[str, Any] = {
        "host": server.host,
        "port": port or server.port,
        "certfile": str(pki.client_cert),
        "keyfile": str(pki.client_key),
        "ca_file": str(server.pki.ca),
        "timeout": TIMEOUT,
    }
    settings.update(kwargs)
    return KmipProvider(**settings)


@pytest.fixture
def proxy(kmip_server: KmipServer) -> Iterator[FaultProxy]:
    with FaultProxy((kmip_server.host, kmip_server.port)) as started:
        yield started


@pytest.fixture
def kmip(kmip_server: KmipServer, proxy: FaultProxy) -> Iterator[KmipProvider]:
    provider = _provider(kmip_server, proxy.port)
    yield provider
    provider.close()


class TestKmipContract(LiveProviderContract):
    @pytest.fixture
    def harness(self, kmip: KmipProvider, proxy: FaultProxy) -> ProviderHarness:
        return ProviderHarness(
            kmip,
            deadline=DEADLINE,
            outage=lambda: proxy.fault(Fault.REFUSE),
            hang=lambda: proxy.fault(Fault.BLACKHOLE),
            slow=lambda: proxy.fault(Fault.DELAY, delay=3 * TIMEOUT),
            reversible_disable=False,
        )


@pytest.fixture
def admin(kmip_server: KmipServer) -> Iterator[Any]:
    """The customer's own KMIP client (their console), straight to the server."""
    provider = _provider(kmip_server)
    client = provider._connect()
    yield client
    client.close()


def test_blob_layout_binds_the_version(kmip: KmipProvider) -> None:
    key_id = kmip.create_key(label="acme")
    wrapped = kmip.wrap(key_id, os.urandom(32), CONTEXT)
    uid, body = unframe(wrapped)
    assert uid == kmip.describe(key_id).primary_version
    assert len(body) > 16 + 48
    # Change only the CBC-encrypted DEK: the server decrypts it (or fails its padding), and
    # either way the envelope refuses to open.
    for index in (0, 16, 16 + 47):
        changed = bytearray(wrapped)
        changed[len(wrapped) - len(body) + index] ^= 0x01
        with pytest.raises(InvalidCiphertext):
            kmip.unwrap(key_id, bytes(changed), CONTEXT)


def test_customer_revoking_the_key_in_kmip_denies(kmip: KmipProvider, admin: Any) -> None:
    """A revocation made in the customer's KMIP server, not through ownkey."""
    key_id = kmip.create_key(label="acme")
    wrapped = kmip.wrap(key_id, os.urandom(32), CONTEXT)
    uid = kmip.describe(key_id).primary_version
    admin.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, uid)
    with pytest.raises(AccessDenied) as denied:
        kmip.unwrap(key_id, wrapped, CONTEXT)
    assert denied.value.reason == "disabled"
    with pytest.raises(AccessDenied):
        kmip.wrap(key_id, os.urandom(32), CONTEXT)


def test_customer_destroying_the_key_in_kmip_is_not_found(
    kmip: KmipProvider, admin: Any
) -> None:
    key_id = kmip.create_key(label="acme")
    wrapped = kmip.wrap(key_id, os.urandom(32), CONTEXT)
    uid = kmip.describe(key_id).primary_version
    admin.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
    admin.destroy(uid)
    with pytest.raises(NotFound):
        kmip.unwrap(key_id, wrapped, CONTEXT)


def test_state_lives_in_the_kmip_server(kmip_server: KmipServer, kmip: KmipProvider) -> None:
    key_id = kmip.create_key(label="acme")
    kmip.disable(key_id)
    kmip.schedule_destruction(key_id, destroy_at=time.time() + 3600)
    other = _provider(kmip_server)
    assert other.describe(key_id).state is KeyState.PENDING_DESTRUCTION
    other.close()


def test_a_blob_naming_another_keys_version_is_refused(kmip: KmipProvider) -> None:
    first, second = kmip.create_key(label="a"), kmip.create_key(label="b")
    wrapped = kmip.wrap(first, os.urandom(32), CONTEXT)
    with pytest.raises(InvalidCiphertext):
        kmip.unwrap(second, wrapped, CONTEXT)


def test_server_certificate_from_another_ca_is_a_config_error(kmip_server: KmipServer) -> None:
    provider = _provider(kmip_server, ca_file=str(kmip_server.foreign.ca))
    with pytest.raises(ConfigError, match="does not verify"):
        provider.describe("k")


def test_wrong_server_name_is_a_config_error(kmip_server: KmipServer) -> None:
    provider = _provider(kmip_server, server_hostname="kmip.example.com")
    with pytest.raises(ConfigError, match="does not verify"):
        provider.describe("k")


def test_client_certificate_the_server_does_not_trust_is_denied(
    kmip_server: KmipServer,
) -> None:
    """The customer cutting ownkey's certificate off is a refusal, not an outage."""
    provider = _provider(kmip_server, pki=kmip_server.foreign)
    with pytest.raises(AccessDenied, match="client certificate"):
        provider.describe("k")


def test_unreadable_certificates_are_a_config_error(kmip_server: KmipServer) -> None:
    with pytest.raises(ConfigError, match="client certificate"):
        _provider(kmip_server, certfile="/nonexistent.pem")


def test_nothing_listening_is_unavailable(kmip_server: KmipServer) -> None:
    with FaultProxy((kmip_server.host, kmip_server.port)) as proxy:
        provider = _provider(kmip_server, proxy.port)
        proxy.set_fault(Fault.REFUSE)
        with pytest.raises(KeyUnavailable):
            provider.describe("k")


def test_retries_are_bounded_and_never_fall_back(kmip: KmipProvider, proxy: FaultProxy) -> None:
    """ownkey's retry policy over a resetting server: exactly `attempts` calls, each on at most
    one connection, then the outage is reported; nothing else is tried."""
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    wrapped = kmip.wrap(key_id, share, CONTEXT)
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, deadline=5.0)
    calls = []

    def unwrap() -> bytes:
        calls.append(time.monotonic())
        return kmip.unwrap(key_id, wrapped, CONTEXT)

    with proxy.fault(Fault.RESET):
        before = proxy.connections
        started = time.monotonic()
        with pytest.raises(KeyUnavailable):
            call_with_retry(
                unwrap, policy=policy, clock=time.monotonic, sleep=time.sleep, random=os.urandom
            )
        assert len(calls) == 3
        assert 2 <= proxy.connections - before <= 3  # the first may use the pooled connection
        assert time.monotonic() - started < policy.deadline
    assert kmip.unwrap(key_id, wrapped, CONTEXT) == share


def test_a_pooled_connection_cut_while_idle_is_replaced(
    kmip: KmipProvider, proxy: FaultProxy
) -> None:
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    wrapped = kmip.wrap(key_id, share, CONTEXT)
    proxy.set_fault(Fault.RESET)  # resets every open connection, the idle pooled one too
    proxy.set_fault(Fault.PASS)
    time.sleep(0.05)
    assert kmip.unwrap(key_id, wrapped, CONTEXT) == share


def test_latency_is_a_few_milliseconds(kmip: KmipProvider) -> None:
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    kmip.unwrap(key_id, kmip.wrap(key_id, share, CONTEXT), CONTEXT)  # warm the pool
    started = time.perf_counter()
    for _ in range(10):
        kmip.unwrap(key_id, kmip.wrap(key_id, share, CONTEXT), CONTEXT)
    assert (time.perf_counter() - started) / 20 < 0.1  # one KMIP round trip per call
