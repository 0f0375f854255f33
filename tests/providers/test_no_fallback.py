"""The whole path under a failing KMIP server: bounded retries, a deadline, no weaker key.

A Protector seals acme's chat under acme's customer key in PyKMIP's server (reached through the
fault proxy) and the platform key. While the KMIP server is cut off, sealing a new scope and
opening with a cold cache fail with KeyUnavailable after at most ``retry_attempts`` calls, within
the retry deadline, and nothing is ever sealed or opened under the platform key alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from ownkey.envelope import peek_key_id
from ownkey.errors import KeyUnavailable
from ownkey.keys import KeyRef, MemoryKeyRegistry, MemoryRuleStore, MemoryScopeKeyStore
from ownkey.providers import KmipProvider, LocalKeyProvider
from ownkey.service import Protector, ProtectorSettings, build_protector
from ownkey.testing.faultproxy import Fault, FaultProxy
from tests.providers._servers import KmipServer
from tests.service._helpers import chat

ACME = KeyRef.customer("acme")
SETTINGS = ProtectorSettings(
    retry_attempts=3, retry_base_delay=0.01, retry_max_delay=0.05, retry_deadline=3.0
)
# The socket timeout of each KMIP call. Not a deadline under test (retry_deadline is): 0.3 s timed
# out the fixture's own registration on a CPU-loaded machine, so it is 1 s.
TIMEOUT = 1.0


@pytest.fixture
def proxy(kmip_server: KmipServer) -> Iterator[FaultProxy]:
    with FaultProxy((kmip_server.host, kmip_server.port)) as started:
        yield started


@pytest.fixture
def kmip(kmip_server: KmipServer, proxy: FaultProxy) -> Iterator[KmipProvider]:
    provider = KmipProvider(
        host=kmip_server.host,
        port=proxy.port,
        certfile=str(kmip_server.pki.client_cert),
        keyfile=str(kmip_server.pki.client_key),
        ca_file=str(kmip_server.pki.ca),
        timeout=TIMEOUT,
    )
    yield provider
    provider.close()


class Rig:
    def __init__(self, kmip: KmipProvider) -> None:
        self.kmip = kmip
        self.local = LocalKeyProvider()
        self.store = MemoryScopeKeyStore()
        self.registry = MemoryKeyRegistry()
        self.rules = MemoryRuleStore()

    def node(self) -> Protector:
        """A Protector (a node) with its own, cold cache over the shared stores."""
        return build_protector(
            SETTINGS,
            providers={"local": self.local, "kmip": self.kmip},
            scope_keys=self.store,
            registry=self.registry,
            rules=self.rules,
        )


@pytest.fixture
def rig(kmip: KmipProvider) -> Rig:
    made = Rig(kmip)
    key_id = kmip.create_key(label="acme")
    made.node().admin.register_key(
        ACME, provider="kmip", key_id=key_id, actor="test", operator=True
    )
    return made


def _cmk_request(scope: str) -> dict[str, object]:
    return chat(scope=scope, globex=())  # acme licensed: CK; globex unlicensed: the PK


def test_sealing_needs_the_customer_key(rig: Rig) -> None:
    node = rig.node()
    sealed = node.seal(_cmk_request("chat-up"), b"hello")
    record = rig.store.get(peek_key_id(sealed))
    assert record is not None
    assert ACME in record.keys
    assert {wrap.provider for wrap in record.wraps} == {"kmip", "local"}


@pytest.mark.parametrize("fault", [Fault.BLACKHOLE, Fault.REFUSE, Fault.RESET])
def test_cut_off_kmip_fails_closed_within_the_deadline(
    rig: Rig, proxy: FaultProxy, fault: Fault
) -> None:
    node = rig.node()
    sealed = node.seal(_cmk_request("chat-1"), b"before the outage")
    records_before = len(rig.store)
    with proxy.fault(fault):
        before = proxy.connections
        started = time.monotonic()
        with pytest.raises(KeyUnavailable):
            node.seal(_cmk_request(f"chat-new-{os.urandom(4).hex()}"), b"during the outage")
        elapsed = time.monotonic() - started
        assert elapsed <= SETTINGS.retry_deadline + TIMEOUT + 0.5, elapsed
        # Bounded: one connection per attempt at most (a pooled one may serve the first).
        assert proxy.connections - before <= SETTINGS.retry_attempts
        # No scope key was made under the platform key alone.
        assert len(rig.store) == records_before

        # A node with a cold cache cannot open acme's content without acme's key.
        with pytest.raises(KeyUnavailable):
            rig.node().open(_cmk_request("chat-1"), sealed)
    # Back: the same nodes work again, and the content was never re-keyed.
    assert rig.node().open(_cmk_request("chat-1"), sealed) == b"before the outage"
    after = node.seal(_cmk_request("chat-after"), b"x")
    assert rig.node().open(_cmk_request("chat-after"), after) == b"x"
