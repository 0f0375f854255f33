"""The kmip provider against PyKMIP's own server (mutual TLS, certificates made for this run),
reached through the fault-injection proxy."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kmip import enums
from kmip.pie import exceptions as kmip_errors
from kmip.pie import objects as kmip_objects
from kmip.pie.client import ProxyKmipClient

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    LifecycleError,
    NotFound,
)
from ownkey.keys import DestructionOutcome, KeyState, RetryPolicy, call_with_retry
from ownkey.providers import _kmip
from ownkey.providers._common import StateMark, unframe
from ownkey.providers._kmip import KmipProvider
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
        "owns_destruction": True,  # the contract proves the destruction; the default is tested
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
        )

    def test_eight_threads_at_once(self, kmip_server: KmipServer, proxy: FaultProxy) -> None:
        """The shared concurrency check, with a socket timeout that 8 threads against one
        PyKMIP server on a loaded 2-core machine can meet: it tests sharing a provider, not
        deadlines (the outage, hang and slow checks above keep the 0.5 s timeout)."""
        provider = _provider(kmip_server, proxy.port, timeout=10.0)
        try:
            super().test_eight_threads_at_once(provider)
        finally:
            provider.close()


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


def _kmip_state(admin: Any, uid: str) -> Any:
    _, attributes = admin.get_attributes(uid, ["State"])
    return attributes[0].attribute_value.value


def _marks(admin: Any, key_id: str) -> list[StateMark]:
    factory = admin.attribute_factory
    uids = admin.locate(
        attributes=[
            factory.create_attribute(enums.AttributeType.NAME, _kmip._STATE_PREFIX + key_id),
            factory.create_attribute(enums.AttributeType.OBJECT_TYPE, enums.ObjectType.OPAQUE_DATA),
        ]
    )
    return [StateMark.from_bytes(bytes(admin.get(uid).value)) for uid in uids]


def test_disable_is_a_mark_in_the_server_and_leaves_the_kmip_key_active(
    kmip_server: KmipServer, kmip: KmipProvider, admin: Any
) -> None:
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    wrapped = kmip.wrap(key_id, share, CONTEXT)
    uid = kmip.describe(key_id).primary_version
    kmip.disable(key_id)
    assert _kmip_state(admin, uid) == enums.State.ACTIVE  # not revoked: reversible
    assert _marks(admin, key_id) == [StateMark(KeyState.DISABLED)]
    other = _provider(kmip_server)  # another ownkey node, reading the same server
    try:
        assert other.describe(key_id).state is KeyState.DISABLED
        calls: list[Callable[[], object]] = [
            lambda: other.unwrap(key_id, wrapped, CONTEXT),
            lambda: other.wrap(key_id, share, CONTEXT),
        ]
        for call in calls:
            with pytest.raises(AccessDenied) as denied:
                call()
            assert denied.value.reason == "disabled"
        other.enable(key_id)
        assert _marks(admin, key_id) == []
        assert other.unwrap(key_id, wrapped, CONTEXT) == share
        assert kmip.describe(key_id).state is KeyState.ENABLED
    finally:
        other.close()


def test_a_disable_by_another_node_is_seen_within_the_ttl(
    kmip_server: KmipServer, kmip: KmipProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented bound: this node's changes act at once, another node's within the TTL."""
    ttl = 0.3
    monkeypatch.setattr(_kmip, "_VERSIONS_TTL", ttl)
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    wrapped = kmip.wrap(key_id, share, CONTEXT)
    other = _provider(kmip_server)
    try:
        assert other.unwrap(key_id, wrapped, CONTEXT) == share  # caches the (absent) mark
        kmip.disable(key_id)
        with pytest.raises(AccessDenied) as denied:  # this node: at once
            kmip.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "disabled"
        time.sleep(ttl + 0.05)
        with pytest.raises(AccessDenied) as denied:  # the other node: once its cache expired
            other.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "disabled"
        with pytest.raises(AccessDenied):
            other.wrap(key_id, share, CONTEXT)
        kmip.enable(key_id)
        assert kmip.unwrap(key_id, wrapped, CONTEXT) == share  # this node: at once
        time.sleep(ttl + 0.05)
        assert other.unwrap(key_id, wrapped, CONTEXT) == share
    finally:
        other.close()


def test_the_mark_is_read_once_per_ttl_not_per_call(
    kmip: KmipProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking the mark on every wrap and unwrap costs no round trip while it is cached."""
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    kmip.unwrap(key_id, kmip.wrap(key_id, share, CONTEXT), CONTEXT)  # warm the caches
    calls: list[str] = []
    for operation in ("locate", "get", "get_attributes", "encrypt", "decrypt"):
        original = getattr(ProxyKmipClient, operation)

        def counted(self: Any, *args: Any, _op: str = operation, _f: Any = original,
                    **kwargs: Any) -> Any:
            calls.append(_op)
            return _f(self, *args, **kwargs)

        monkeypatch.setattr(ProxyKmipClient, operation, counted)
    for _ in range(5):
        assert kmip.unwrap(key_id, kmip.wrap(key_id, share, CONTEXT), CONTEXT) == share
    assert sorted(calls) == ["decrypt"] * 5 + ["encrypt"] * 5


def test_customer_revoking_the_key_in_kmip_denies(kmip: KmipProvider, admin: Any) -> None:
    """A revocation made in the customer's KMIP server, not through ownkey: the key reads as
    disabled, and ownkey cannot enable it again (KMIP has no way back from a revocation)."""
    key_id = kmip.create_key(label="acme")
    wrapped = kmip.wrap(key_id, os.urandom(32), CONTEXT)
    uid = kmip.describe(key_id).primary_version
    admin.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, uid)
    with pytest.raises(AccessDenied) as denied:
        kmip.unwrap(key_id, wrapped, CONTEXT)
    assert denied.value.reason == "disabled"
    with pytest.raises(AccessDenied) as denied:
        kmip.wrap(key_id, os.urandom(32), CONTEXT)
    assert denied.value.reason == "disabled"
    assert kmip.describe(key_id).state is KeyState.DISABLED
    with pytest.raises(LifecycleError, match="cannot re-activate"):
        kmip.enable(key_id)
    assert kmip.describe(key_id).state is KeyState.DISABLED
    assert _marks(admin, key_id) == []  # the refused enable changed nothing


def test_a_key_disabled_in_ownkey_then_revoked_in_kmip_cannot_be_enabled(
    kmip: KmipProvider, admin: Any
) -> None:
    key_id = kmip.create_key(label="acme")
    uid = kmip.describe(key_id).primary_version
    kmip.disable(key_id)
    admin.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, uid)
    with pytest.raises(LifecycleError, match="cannot re-activate"):
        kmip.enable(key_id)
    assert _marks(admin, key_id) == [StateMark(KeyState.DISABLED)]
    kmip.schedule_destruction(key_id, destroy_at=time.time() + 3600)
    kmip.destroy(key_id)
    assert kmip.describe(key_id).state is KeyState.DESTROYED


def test_destroy_revokes_and_destroys_every_kmip_object(kmip: KmipProvider, admin: Any) -> None:
    """Destruction stays irreversible in the server itself (crypto-shred), unlike disable."""
    key_id = kmip.create_key(label="acme")
    kmip.rotate(key_id)
    versions = kmip.describe(key_id).versions
    assert len(versions) == 2
    kmip.disable(key_id)
    destroy_at = time.time() + 3600
    kmip.schedule_destruction(key_id, destroy_at=destroy_at)
    assert _marks(admin, key_id) == [StateMark(KeyState.PENDING_DESTRUCTION, destroy_at)]
    receipt = kmip.destroy(key_id)
    for uid in versions:
        with pytest.raises(kmip_errors.KmipOperationFailure) as failed:
            admin.get(uid)
        assert failed.value.reason == enums.ResultReason.ITEM_NOT_FOUND
    assert [mark.state for mark in _marks(admin, key_id)] == [KeyState.DESTROYED]
    assert kmip.describe(key_id).state is KeyState.DESTROYED
    # KL-9: the evidence carries the server's answer (a disabled key's versions are still
    # active in KMIP, so both are revoked, then destroyed; none is located afterwards).
    assert receipt.outcome is DestructionOutcome.DESTROYED
    assert receipt.answer == {
        "kmip_revoked": "2",
        "kmip_destroyed": "2",
        "kmip_objects_left": "0",
        "kmip_mark": "destroyed",
    }
    assert kmip.destroy(key_id).answer["kmip_objects_left"] == "0"  # idempotent


def test_by_default_a_destruction_leaves_the_key_in_the_customers_server(
    kmip_server: KmipServer, admin: Any
) -> None:
    """KL-9: not configured to own the step (the default), ownkey revokes and destroys nothing
    in the customer's KMIP server, not even once the date is due, and says so."""
    kmip = _provider(kmip_server, owns_destruction=False)
    try:
        key_id = kmip.create_key(label="acme")
        (uid,) = kmip.describe(key_id).versions
        wrapped = kmip.wrap(key_id, os.urandom(32), CONTEXT)
        kmip.disable(key_id)
        kmip.schedule_destruction(key_id, destroy_at=time.time() - 1)  # already due
        assert kmip.describe(key_id).state is KeyState.PENDING_DESTRUCTION
        receipt = kmip.destroy(key_id)
        assert receipt.outcome is DestructionOutcome.RETAINED
        assert receipt.answer == {
            "kmip_objects_left": "1",
            "kmip_states": "ACTIVE",
            "kmip_mark": "pending_destruction",
        }
        assert "remains in the customer's key manager" in receipt.statement
        assert _kmip_state(admin, uid) == enums.State.ACTIVE  # still there, the customer's
        with pytest.raises(AccessDenied) as denied:
            kmip.unwrap(key_id, wrapped, CONTEXT)  # but ownkey will not use it
        assert denied.value.reason == "pending_destruction"
    finally:
        kmip.close()


def test_cancelling_a_destruction_leaves_a_disabled_mark(kmip: KmipProvider, admin: Any) -> None:
    key_id = kmip.create_key(label="acme")
    kmip.disable(key_id)
    kmip.schedule_destruction(key_id, destroy_at=time.time() + 3600)
    kmip.cancel_destruction(key_id)
    assert _marks(admin, key_id) == [StateMark(KeyState.DISABLED)]
    assert kmip.describe(key_id).state is KeyState.DISABLED
    kmip.enable(key_id)
    assert _marks(admin, key_id) == []


def test_an_interrupted_change_reads_as_the_safer_state(kmip: KmipProvider, admin: Any) -> None:
    """A change registers the new mark before it destroys the old: should it stop in between,
    two marks remain. A disabled one beside a pending one reads as disabled (never shredded on
    a half-made change); the next change removes both."""
    key_id = kmip.create_key(label="acme")
    kmip.disable(key_id)
    pending = StateMark(KeyState.PENDING_DESTRUCTION, time.time() - 1)  # already due
    admin.register(
        kmip_objects.OpaqueObject(
            pending.to_bytes(), enums.OpaqueDataType.NONE, name=_kmip._STATE_PREFIX + key_id
        )
    )
    assert kmip.describe(key_id).state is KeyState.DISABLED
    kmip.enable(key_id)
    assert _marks(admin, key_id) == []
    assert kmip.describe(key_id).state is KeyState.ENABLED


def test_a_tombstone_wins_over_any_other_mark() -> None:
    disabled = StateMark(KeyState.DISABLED)
    pending = StateMark(KeyState.PENDING_DESTRUCTION, 1.0)
    destroyed = StateMark(KeyState.DESTROYED, 1.0)
    assert _kmip._in_force([]) is None
    assert _kmip._in_force([pending, disabled]) == disabled
    assert _kmip._in_force([disabled, pending]) == disabled
    assert _kmip._in_force([pending, destroyed]) == destroyed


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
    other = _provider(kmip_server)
    assert other.describe(key_id).state is KeyState.DISABLED
    kmip.schedule_destruction(key_id, destroy_at=time.time() + 3600)
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
