"""aws_kms against moto's KMS server on loopback, through the fault-injection proxy: a smoke test.

moto speaks the real KMS wire protocol, so round trips, context binding, rotation, describe and the
transport failures are real here. It does not enforce key states (a disabled key still encrypts)
and it joins context names and values without a separator, so the harness declares both; the
state semantics and the error codes are proven with botocore's Stubber in
test_aws_kms_stubbed.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ownkey.errors import AccessDenied, InvalidCiphertext
from ownkey.keys import DestructionOutcome, KeyState
from ownkey.providers._aws_kms import AwsKmsProvider
from ownkey.testing.faultproxy import Fault, FaultProxy
from ownkey.testing.live_contract import LiveProviderContract, ProviderHarness
from ownkey.testing.provider_contract import CONTEXT
from tests.providers._servers import MotoServer

# Loopback to moto, but a loaded 2-core CI machine once took > 0.5 s to answer a CreateKey.
TIMEOUT = 1.5
DEADLINE = 3 * TIMEOUT
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", moto_server.port)) as started:
        yield started


@pytest.fixture
def kms(proxy: FaultProxy) -> AwsKmsProvider:
    return AwsKmsProvider(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        credentials=CREDENTIALS,
        timeout=TIMEOUT,
        owns_destruction=True,  # the contract proves the deletion; the default is tested apart
    )


class TestAwsKmsOnMoto(LiveProviderContract):
    @pytest.fixture
    def harness(self, kms: AwsKmsProvider, proxy: FaultProxy) -> ProviderHarness:
        return ProviderHarness(
            kms,
            deadline=DEADLINE,
            outage=lambda: proxy.fault(Fault.REFUSE),
            hang=lambda: proxy.fault(Fault.BLACKHOLE),
            slow=lambda: proxy.fault(Fault.DELAY, delay=3 * TIMEOUT),
            enforces_states=False,
            exact_context=False,
            immediate_destruction=False,
        )

    def test_key_is_bound(self, provider: AwsKmsProvider) -> None:
        """Real KMS answers another key's blob (KeyId given) with IncorrectKeyException, which
        the provider makes InvalidCiphertext (test_aws_kms_stubbed.py); moto answers
        AccessDeniedException. Either way the share stays shut."""
        first, second = provider.create_key(label="a"), provider.create_key(label="b")
        wrapped = provider.wrap(first, os.urandom(32), CONTEXT)
        with pytest.raises((InvalidCiphertext, AccessDenied)):
            provider.unwrap(second, wrapped, CONTEXT)


def test_moto_joins_context_without_separators(kms: AwsKmsProvider) -> None:
    """Why exact_context is False for moto: real KMS refuses this, moto opens it."""
    key_id = kms.create_key(label="acme")
    share = os.urandom(32)
    wrapped = kms.wrap(key_id, share, {"org": "acme"})
    assert kms.unwrap(key_id, wrapped, {"orga": "cme"}) == share  # a moto artefact
    with pytest.raises(InvalidCiphertext):
        kms.unwrap(key_id, wrapped, {"org": "globex"})


def test_lifecycle_calls_reach_kms(kms: AwsKmsProvider) -> None:
    key_id = kms.create_key(label="acme")
    assert kms.describe(key_id).label == "acme"
    kms.disable(key_id)
    assert kms.describe(key_id).state is KeyState.DISABLED
    kms.schedule_destruction(key_id, destroy_at=0.0)  # clamped up to KMS's 7 days
    described = kms.describe(key_id)
    assert described.state is KeyState.PENDING_DESTRUCTION
    assert described.destroy_at is not None
    kms.cancel_destruction(key_id)
    assert kms.describe(key_id).state is KeyState.DISABLED
    kms.enable(key_id)
    assert kms.describe(key_id).state is KeyState.ENABLED


def test_generate_data_key_unwraps(kms: AwsKmsProvider) -> None:
    key_id = kms.create_key(label="acme")
    share, wrapped = kms.generate(key_id, CONTEXT)
    assert len(share) == 32
    assert kms.unwrap(key_id, wrapped, CONTEXT) == share


def test_destroy_schedules_the_deletion_and_reports_kms_date(kms: AwsKmsProvider) -> None:
    """KL-9: configured to own the step, the receipt is KMS's DescribeKey answer: the key is
    PendingDeletion with its DeletionDate (KMS deletes it then, 7-30 days on)."""
    key_id = kms.create_key(label="acme")
    kms.disable(key_id)
    kms.schedule_destruction(key_id, destroy_at=0.0)
    receipt = kms.destroy(key_id)
    assert receipt.outcome is DestructionOutcome.DELETION_SCHEDULED
    assert receipt.answer["aws_key_state"] == "PendingDeletion"
    assert receipt.answer["aws_deletion_date"].endswith("+00:00")


def test_by_default_the_key_stays_in_the_customers_kms(proxy: FaultProxy) -> None:
    """Not configured to own the step (the default): KMS is never asked to delete the key."""
    kms = AwsKmsProvider(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        credentials=CREDENTIALS,
        timeout=TIMEOUT,
    )
    key_id = kms.create_key(label="acme")
    kms.disable(key_id)
    kms.schedule_destruction(key_id, destroy_at=0.0)
    receipt = kms.destroy(key_id)
    assert receipt.outcome is DestructionOutcome.RETAINED
    assert receipt.answer == {"aws_key_state": "Disabled"}
    described = kms.describe(key_id)
    assert described.state is KeyState.DISABLED
    assert described.destroy_at is None
