"""The kmip provider against PyKMIP's own server (mutual TLS, certificates made for this run),
reached through the fault-injection proxy."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kmip import enums
from kmip.core.attributes import CryptographicParameters
from kmip.core.messages import messages, payloads
from kmip.core.messages.contents import Operation
from kmip.pie import exceptions as kmip_errors
from kmip.pie import objects as kmip_objects
from kmip.services.kmip_client import KMIPProxy

from ownkey.envelope import ScopeKey, seal_message
from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    LifecycleError,
    NotFound,
)
from ownkey.keys import DestructionOutcome, KeyState, RetryPolicy, call_with_retry
from ownkey.providers import _kmip, build_provider
from ownkey.providers._common import StateMark, context_bytes
from ownkey.providers._kmip import KmipProvider
from ownkey.testing.faultproxy import Fault, FaultProxy
from ownkey.testing.live_contract import LiveProviderContract, ProviderHarness
from ownkey.testing.provider_contract import CONTEXT
from tests.providers._servers import KmipServer, Pki

TIMEOUT = 0.5
#: A refused, hung or slow server is reported within this (one socket timeout plus slack).
DEADLINE = 3 * TIMEOUT


def _provider(
    server: KmipServer, port: int | None = None, *, pki: Pki | None = None, **kwargs: Any
) -> KmipProvider:
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
    uid, iv, tag, data = _aead_parts(wrapped)
    assert uid == kmip.describe(key_id).primary_version
    assert len(iv) == 16  # PyKMIP's server draws a 128-bit IV
    assert len(data) == 32
    # Change a byte of the IV, the tag or the ciphertext: the server's GCM check refuses it.
    header = len(wrapped) - 1 - len(iv) - len(tag) - len(data)
    for index in (1, 1 + 16, 1 + 16 + 16, len(wrapped) - 1 - header):
        changed = bytearray(wrapped)
        changed[header + index] ^= 0x01
        with pytest.raises(InvalidCiphertext):
            kmip.unwrap(key_id, bytes(changed), CONTEXT)


def _version_1_blob(admin: Any, key_id: str, uid: str, share: bytes) -> bytes:
    """A blob as ownkey sealed it before issue 10 (format 0x01): the server AES-CBC-encrypts a
    random DEK, the share is sealed locally under the DEK with the context as associated data.
    Rebuilt here from that description, independently of the provider's own code."""
    dek = os.urandom(32)
    encrypted, iv = admin.encrypt(
        dek,
        uid=uid,
        cryptographic_parameters={
            "block_cipher_mode": enums.BlockCipherMode.CBC,
            "padding_method": enums.PaddingMethod.PKCS5,
            "cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
            "random_iv": True,
        },
    )
    digest = hashlib.sha256(b"ownkey/kmip/v1\x00" + key_id.encode() + b"\x00" + uid.encode())
    kid = b"kmip:" + digest.digest()[:16]
    sealed = seal_message(ScopeKey(kid, dek), share, CONTEXT)
    return bytes((1, len(uid))) + uid.encode() + bytes(iv) + bytes(encrypted) + sealed


def test_blobs_sealed_before_the_aead_format_still_open(kmip: KmipProvider, admin: Any) -> None:
    """Version-1 blobs (context bound on ownkey's side) keep opening, with their context only;
    after a rotation, re-wrap moves them to version 2 under the new version."""
    key_id = kmip.create_key(label="acme")
    uid = kmip.describe(key_id).primary_version
    share = os.urandom(32)
    old = _version_1_blob(admin, key_id, uid, share)
    assert kmip.unwrap(key_id, old, CONTEXT) == share
    with pytest.raises(InvalidCiphertext):
        kmip.unwrap(key_id, old, dict(CONTEXT, org="globex"))
    for index in (2 + len(uid), len(old) - 1):
        changed = bytearray(old)
        changed[index] ^= 0x01
        with pytest.raises(InvalidCiphertext):
            kmip.unwrap(key_id, bytes(changed), CONTEXT)
    kmip.rotate(key_id)
    rewrapped = kmip.wrap(key_id, kmip.unwrap(key_id, old, CONTEXT), CONTEXT)
    assert rewrapped[0] == _kmip._AEAD_FORMAT
    assert kmip.unwrap(key_id, rewrapped, CONTEXT) == share


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
    """Checking the mark on every wrap and unwrap costs no round trip while it is cached, and
    the server-side context check costs none either: one Encrypt per wrap, one Decrypt per
    unwrap (the probe ran once, on the first call)."""
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    kmip.unwrap(key_id, kmip.wrap(key_id, share, CONTEXT), CONTEXT)  # warm the caches
    sent = _sent(monkeypatch)
    for _ in range(5):
        assert kmip.unwrap(key_id, kmip.wrap(key_id, share, CONTEXT), CONTEXT) == share
    assert sorted(op.name for op, _, _ in sent) == ["DECRYPT"] * 5 + ["ENCRYPT"] * 5


def test_the_probe_runs_once_per_provider(
    kmip_server: KmipServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _provider(kmip_server)
    try:
        key_id = provider.create_key(label="acme")
        sent = _sent(monkeypatch)
        share = os.urandom(32)
        for _ in range(3):
            assert provider.unwrap(key_id, provider.wrap(key_id, share, CONTEXT), CONTEXT) == share
        aead = [
            (op.name, p.auth_additional_data)
            for op, p, _ in sent
            if op in (enums.Operation.ENCRYPT, enums.Operation.DECRYPT)
        ]
        good, bad = _kmip._PROBE_AAD
        assert aead[:3] == [("ENCRYPT", good), ("DECRYPT", bad), ("DECRYPT", good)]
        assert [name for name, _ in aead[3:]] == ["ENCRYPT", "DECRYPT"] * 3
    finally:
        provider.close()


def test_a_server_that_drops_the_associated_data_is_refused_not_used(
    kmip_server: KmipServer, kmip: KmipProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent as KMIP 1.2, PyKMIP's encoder leaves the associated data out without a word and the
    server seals without it: exactly a server that ignores the context. The probe sees that a
    different associated data decrypts, and the provider refuses (ConfigError) rather than
    wrap with no server binding; version-2 blobs are not opened there either."""
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    wrapped = kmip.wrap(key_id, share, CONTEXT)
    monkeypatch.setattr(_kmip, "_AEAD_KMIP_VERSION", enums.KMIPVersion.KMIP_1_2)
    blind = _provider(kmip_server)
    try:
        with pytest.raises(ConfigError, match="does not bind"):
            blind.wrap(key_id, share, CONTEXT)
        with pytest.raises(ConfigError, match="does not"):
            blind.unwrap(key_id, wrapped, CONTEXT)
    finally:
        blind.close()


def test_local_binding_is_an_explicit_choice(
    kmip_server: KmipServer, kmip: KmipProvider, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``allow_local_binding`` a server without AES-GCM associated data gets version-1
    blobs (context bound by ownkey's envelope); they open anywhere, and only under their
    context."""
    key_id = kmip.create_key(label="acme")
    monkeypatch.setattr(_kmip, "_AEAD_KMIP_VERSION", enums.KMIPVersion.KMIP_1_2)
    local = _provider(kmip_server, allow_local_binding=True)
    try:
        share = os.urandom(32)
        wrapped = local.wrap(key_id, share, CONTEXT)
        assert wrapped[0] == 0x01
        assert local.unwrap(key_id, wrapped, CONTEXT) == share
        with pytest.raises(InvalidCiphertext):
            local.unwrap(key_id, wrapped, dict(CONTEXT, org="globex"))
        monkeypatch.undo()
        assert kmip.unwrap(key_id, wrapped, CONTEXT) == share
    finally:
        local.close()


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


def test_customer_destroying_the_key_in_kmip_is_not_found(kmip: KmipProvider, admin: Any) -> None:
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


# -- the server binds the context (issue 10, finding 4) ----------------------------------------


def _server_decrypt(admin: Any, uid: str, iv: bytes, data: bytes, tag: bytes, aad: bytes) -> bytes:
    """The customer's own KMIP Decrypt with AES-GCM and associated data, built from PyKMIP's
    payload classes (its client cannot send them), to show what the server itself checks."""
    proxy = admin.proxy
    payload = payloads.DecryptRequestPayload(
        unique_identifier=uid,
        data=data,
        cryptographic_parameters=CryptographicParameters(
            block_cipher_mode=enums.BlockCipherMode.GCM,
            cryptographic_algorithm=enums.CryptographicAlgorithm.AES,
            tag_length=len(tag),
        ),
        iv_counter_nonce=iv,
        auth_additional_data=aad,
        auth_tag=tag,
    )
    item = messages.RequestBatchItem(
        operation=Operation(enums.Operation.DECRYPT), request_payload=payload
    )
    previous, proxy.kmip_version = proxy.kmip_version, enums.KMIPVersion.KMIP_1_4
    try:
        reply = proxy._send_and_receive_message(proxy._build_request_message(None, [item]))
    finally:
        proxy.kmip_version = previous
    answer = reply.batch_items[0]
    if answer.result_status.value != enums.ResultStatus.SUCCESS:
        raise kmip_errors.KmipOperationFailure(
            answer.result_status.value, answer.result_reason.value, answer.result_message.value
        )
    return bytes(answer.response_payload.data)


def _aead_parts(wrapped: bytes) -> tuple[str, bytes, bytes, bytes]:
    """(uid, iv, tag, ciphertext) of a version-2 blob (layout in the provider's docstring)."""
    assert wrapped[0] == _kmip._AEAD_FORMAT
    uid = wrapped[2 : 2 + wrapped[1]].decode("ascii")
    body = wrapped[2 + wrapped[1] :]
    iv = body[1 : 1 + body[0]]
    rest = body[1 + body[0] :]
    return uid, iv, rest[:16], rest[16:]


def _refusals_logged(server: KmipServer) -> int:
    """How many failed GCM tag checks PyKMIP's server has logged (a WARNING and the
    ``InvalidTag`` traceback each; it logs no request field at its default INFO level)."""
    log = server.log.parent / "kmip.log"
    return log.read_text(errors="replace").count("cryptography.exceptions.InvalidTag")


def test_the_server_itself_refuses_a_blob_under_another_context(
    kmip_server: KmipServer, kmip: KmipProvider, admin: Any
) -> None:
    """The attack of finding 4: with the context bound only on ownkey's side, anyone holding the
    KMIP client certificate decrypts a blob's key material whatever context they claim. Now the
    server's AES-GCM check covers the context: it decrypts the share for the blob's own
    context only."""
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    wrapped = kmip.wrap(key_id, share, CONTEXT)
    uid, iv, tag, data = _aead_parts(wrapped)
    assert _server_decrypt(admin, uid, iv, data, tag, context_bytes(CONTEXT)) == share
    before = _refusals_logged(kmip_server)
    for changed in (dict(CONTEXT, org="globex"), dict(CONTEXT, scope="chat:2"), {}):
        with pytest.raises(kmip_errors.KmipOperationFailure):
            _server_decrypt(admin, uid, iv, data, tag, context_bytes(changed))
    with pytest.raises(InvalidCiphertext):
        kmip.unwrap(key_id, wrapped, dict(CONTEXT, org="globex"))
    deadline = time.monotonic() + 2.0  # the server's log handler may flush a moment later
    while _refusals_logged(kmip_server) < before + 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _refusals_logged(kmip_server) == before + 4


def _sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any, Any]]:
    """Record (operation, request payload, result status) of every KMIP request sent."""
    seen: list[tuple[Any, Any, Any]] = []
    original = KMIPProxy._send_and_receive_message

    def spy(self: Any, request: Any) -> Any:
        reply = original(self, request)
        for asked, answered in zip(request.batch_items, reply.batch_items, strict=True):
            seen.append(
                (asked.operation.value, asked.request_payload, answered.result_status.value)
            )
        return reply

    monkeypatch.setattr(KMIPProxy, "_send_and_receive_message", spy)
    return seen


def test_every_wrap_and_unwrap_sends_the_context_to_the_server(
    kmip: KmipProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = kmip.create_key(label="acme")
    share = os.urandom(32)
    kmip.unwrap(key_id, kmip.wrap(key_id, share, CONTEXT), CONTEXT)  # probe, warm the caches
    sent = _sent(monkeypatch)
    wrapped = kmip.wrap(key_id, share, CONTEXT)
    assert kmip.unwrap(key_id, wrapped, CONTEXT) == share
    expected = context_bytes(CONTEXT)
    assert [(op, p.auth_additional_data, status) for op, p, status in sent] == [
        (enums.Operation.ENCRYPT, expected, enums.ResultStatus.SUCCESS),
        (enums.Operation.DECRYPT, expected, enums.ResultStatus.SUCCESS),
    ]
    sent.clear()
    other = dict(CONTEXT, org="globex")
    with pytest.raises(InvalidCiphertext):
        kmip.unwrap(key_id, wrapped, other)
    # The refusal is the server's: it was asked with the claimed context and said no.
    assert [(op, p.auth_additional_data, status) for op, p, status in sent] == [
        (enums.Operation.DECRYPT, context_bytes(other), enums.ResultStatus.OPERATION_FAILED),
    ]


def test_disable_in_server_revokes_every_version_for_every_client(
    kmip_server: KmipServer, admin: Any
) -> None:
    """With ``disable_in_server`` the server itself stops using the key: every version is
    revoked (Deactivated), so even a holder of ownkey's client certificate gets no share out of
    it. KMIP has no way back, so enable is refused; destruction still works."""
    provider = _provider(kmip_server, disable_in_server=True)
    try:
        assert provider.reversible_disable is False
        key_id = provider.create_key(label="acme")
        provider.rotate(key_id)
        versions = provider.describe(key_id).versions
        share = os.urandom(32)
        wrapped = provider.wrap(key_id, share, CONTEXT)
        uid, iv, tag, data = _aead_parts(wrapped)
        assert _server_decrypt(admin, uid, iv, data, tag, context_bytes(CONTEXT)) == share
        provider.disable(key_id)
        assert [_kmip_state(admin, version) for version in versions] == [
            enums.State.DEACTIVATED
        ] * len(versions)
        with pytest.raises(kmip_errors.KmipOperationFailure) as refused:
            _server_decrypt(admin, uid, iv, data, tag, context_bytes(CONTEXT))
        assert refused.value.reason == enums.ResultReason.PERMISSION_DENIED
        with pytest.raises(AccessDenied) as denied:
            provider.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "disabled"
        assert provider.describe(key_id).state is KeyState.DISABLED
        with pytest.raises(LifecycleError, match="cannot re-activate"):
            provider.enable(key_id)
        provider.schedule_destruction(key_id, destroy_at=time.time() + 3600)
        provider.destroy(key_id)
        assert provider.describe(key_id).state is KeyState.DESTROYED
    finally:
        provider.close()


def test_the_factory_passes_the_binding_and_disable_flags(kmip_server: KmipServer) -> None:
    pki = kmip_server.pki
    settings = {
        "host": kmip_server.host,
        "port": str(kmip_server.port),
        "cert": str(pki.client_cert),
        "key": str(pki.client_key),
        "ca": str(pki.ca),
    }
    default = build_provider("kmip", settings, env={})
    assert isinstance(default, KmipProvider)
    assert default.reversible_disable is True
    assert default._allow_local_binding is False
    chosen = build_provider(
        "kmip", dict(settings, disable_in_server="true", allow_local_binding="true"), env={}
    )
    assert isinstance(chosen, KmipProvider)
    assert chosen.reversible_disable is False
    assert chosen._allow_local_binding is True
    with pytest.raises(ConfigError, match="true or false"):
        build_provider("kmip", dict(settings, disable_in_server="maybe"), env={})
