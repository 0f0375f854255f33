"""aws_kms error classification and lifecycle, with botocore's Stubber and AWS's real error codes.

moto (see test_aws_kms_moto.py) ignores key states, so the state semantics are proven here: each
scenario scripts the exact KMS calls and answers (codes and messages as AWS documents and sends
them) and checks what the provider makes of them. Transport failures are raised by a botocore
event hook, the same exception objects botocore raises on a real timeout.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.stub import ANY, Stubber

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    LifecycleError,
    NotFound,
)
from ownkey.keys import DestructionOutcome, KeyState
from ownkey.providers._aws_kms import AwsKmsProvider
from ownkey.testing.provider_contract import CONTEXT

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:us-east-1:111122223333:key/{KEY}"
NOW = 1_700_000_000.0


def _client() -> Any:
    return boto3.client(
        "kms",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        endpoint_url="http://127.0.0.1:9",  # never reached: the stubber or a hook answers
    )


@pytest.fixture
def provider() -> AwsKmsProvider:
    return AwsKmsProvider(client=_client(), clock=lambda: NOW, owns_destruction=True)


@pytest.fixture
def stub(provider: AwsKmsProvider) -> Iterator[Stubber]:
    with Stubber(provider.client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _metadata(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "KeyMetadata": {
            "KeyId": KEY,
            "Arn": ARN,
            "KeyState": state,
            "Description": "acme",
            "KeyUsage": "ENCRYPT_DECRYPT",
            **extra,
        }
    }


# -- the data plane: every documented error code -----------------------------------------------

DATA_PLANE_ERRORS = [
    ("DisabledException", 400, f"{ARN} is disabled.", AccessDenied, "disabled"),
    (
        "KMSInvalidStateException",
        400,
        f"{ARN} is pending deletion.",
        AccessDenied,
        "pending_destruction",
    ),
    ("KMSInvalidStateException", 400, f"{ARN} is pending import.", AccessDenied, "provider_denied"),
    (
        "AccessDeniedException",
        400,
        "User: arn:aws:iam::1:role/x is not authorized",
        AccessDenied,
        "provider_denied",
    ),
    ("NotFoundException", 400, f"Key '{ARN}' does not exist", NotFound, None),
    ("ThrottlingException", 400, "Rate exceeded", KeyUnavailable, None),
    ("LimitExceededException", 400, "request quota", KeyUnavailable, None),
    ("KMSInternalException", 500, "internal", KeyUnavailable, None),
    ("DependencyTimeoutException", 503, "timeout", KeyUnavailable, None),
    ("KeyUnavailableException", 500, "custom key store", KeyUnavailable, None),
    ("SomethingNewException", 502, "bad gateway", KeyUnavailable, None),
    ("InvalidKeyUsageException", 400, "not ENCRYPT_DECRYPT", ConfigError, None),
    ("ValidationException", 400, "1 validation error", ConfigError, None),
    ("UnrecognizedClientException", 400, "The security token is invalid", ConfigError, None),
    ("ExpiredTokenException", 400, "The security token has expired", ConfigError, None),
]


@pytest.mark.parametrize(("code", "status", "message", "expected", "reason"), DATA_PLANE_ERRORS)
def test_wrap_errors_are_classified(
    provider: AwsKmsProvider,
    stub: Stubber,
    code: str,
    status: int,
    message: str,
    expected: type[Exception],
    reason: str | None,
) -> None:
    stub.add_client_error(
        "encrypt",
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        expected_params={"KeyId": KEY, "Plaintext": ANY, "EncryptionContext": CONTEXT},
    )
    with pytest.raises(expected) as raised:
        provider.wrap(KEY, os.urandom(32), CONTEXT)
    if reason is not None:
        assert isinstance(raised.value, AccessDenied)
        assert raised.value.reason == reason
    assert isinstance(raised.value.__cause__, botocore.exceptions.ClientError)


@pytest.mark.parametrize(("code", "status", "message", "expected", "reason"), DATA_PLANE_ERRORS)
def test_unwrap_errors_are_classified(
    provider: AwsKmsProvider,
    stub: Stubber,
    code: str,
    status: int,
    message: str,
    expected: type[Exception],
    reason: str | None,
) -> None:
    stub.add_client_error(
        "decrypt", service_error_code=code, service_message=message, http_status_code=status
    )
    with pytest.raises(expected) as raised:
        provider.unwrap(KEY, b"\x01" + os.urandom(100), CONTEXT)
    if reason is not None:
        assert isinstance(raised.value, AccessDenied)
        assert raised.value.reason == reason


@pytest.mark.parametrize("code", ["InvalidCiphertextException", "IncorrectKeyException"])
def test_wrong_context_or_key_is_invalid_ciphertext(
    provider: AwsKmsProvider, stub: Stubber, code: str
) -> None:
    """KMS answers a different context with InvalidCiphertextException, another key's blob
    (KeyId given) with IncorrectKeyException: both are refusals, never retried."""
    stub.add_client_error("decrypt", service_error_code=code, http_status_code=400)
    with pytest.raises(InvalidCiphertext):
        provider.unwrap(KEY, b"\x01" + os.urandom(100), dict(CONTEXT, org="globex"))


def test_round_trip_sends_context_and_key(provider: AwsKmsProvider, stub: Stubber) -> None:
    share, blob = os.urandom(32), os.urandom(150)
    stub.add_response(
        "encrypt",
        {"CiphertextBlob": blob, "KeyId": ARN},
        {"KeyId": KEY, "Plaintext": share, "EncryptionContext": CONTEXT},
    )
    stub.add_response(
        "decrypt",
        {"Plaintext": share, "KeyId": ARN},
        {"KeyId": KEY, "CiphertextBlob": blob, "EncryptionContext": CONTEXT},
    )
    wrapped = provider.wrap(KEY, share, CONTEXT)
    assert wrapped == b"\x01" + blob
    assert provider.unwrap(KEY, wrapped, CONTEXT) == share


def test_generate_data_key(provider: AwsKmsProvider, stub: Stubber) -> None:
    share, blob = os.urandom(32), os.urandom(150)
    stub.add_response(
        "generate_data_key",
        {"Plaintext": share, "CiphertextBlob": blob, "KeyId": ARN},
        {"KeyId": KEY, "NumberOfBytes": 32, "EncryptionContext": CONTEXT},
    )
    assert provider.generate(KEY, CONTEXT) == (share, b"\x01" + blob)


def test_blob_without_the_format_byte_never_reaches_kms(provider: AwsKmsProvider) -> None:
    with pytest.raises(InvalidCiphertext):
        provider.unwrap(KEY, b"\x02" + os.urandom(100), CONTEXT)
    with pytest.raises(InvalidCiphertext):
        provider.unwrap(KEY, b"", CONTEXT)


# -- transport failures -------------------------------------------------------------------------


def _raise(error: Exception) -> Any:
    def hook(**kwargs: Any) -> None:
        raise error

    return hook


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (botocore.exceptions.ReadTimeoutError(endpoint_url="https://kms"), KeyUnavailable),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="https://kms"), KeyUnavailable),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://kms"), KeyUnavailable),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="https://kms"), KeyUnavailable),
        (botocore.exceptions.NoCredentialsError(), ConfigError),
    ],
)
def test_transport_failures_are_classified(
    provider: AwsKmsProvider, error: Exception, expected: type[Exception]
) -> None:
    provider.client.meta.events.register("before-send.kms.*", _raise(error))
    with pytest.raises(expected):
        provider.wrap(KEY, os.urandom(32), CONTEXT)
    with pytest.raises(expected):
        provider.unwrap(KEY, b"\x01" + os.urandom(100), CONTEXT)


def test_client_has_short_timeouts_and_no_sdk_retries() -> None:
    provider = AwsKmsProvider(
        region="eu-west-1",
        timeout=0.75,
        credentials={"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "x"},
    )
    config = provider.client.meta.config
    assert config.connect_timeout == 0.75
    assert config.read_timeout == 0.75
    assert config.retries["total_max_attempts"] == 1
    assert "secret" not in repr(provider)


def test_no_region_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigError, match="KMS client"):
        AwsKmsProvider()


# -- the lifecycle, scripted --------------------------------------------------------------------


def test_disable_denies_until_enabled(provider: AwsKmsProvider, stub: Stubber) -> None:
    share, blob = os.urandom(32), os.urandom(150)
    stub.add_response("describe_key", _metadata("Enabled"), {"KeyId": KEY})
    stub.add_response("disable_key", {}, {"KeyId": KEY})
    stub.add_client_error(
        "decrypt", "DisabledException", f"{ARN} is disabled.", http_status_code=400
    )
    stub.add_client_error(
        "encrypt", "DisabledException", f"{ARN} is disabled.", http_status_code=400
    )
    stub.add_response("describe_key", _metadata("Disabled"), {"KeyId": KEY})
    stub.add_response("enable_key", {}, {"KeyId": KEY})
    stub.add_response("decrypt", {"Plaintext": share, "KeyId": ARN})

    provider.disable(KEY)
    for call in (
        lambda: provider.unwrap(KEY, b"\x01" + blob, CONTEXT),
        lambda: provider.wrap(KEY, share, CONTEXT),
    ):
        with pytest.raises(AccessDenied) as denied:
            call()
        assert denied.value.reason == "disabled"
    provider.enable(KEY)
    assert provider.unwrap(KEY, b"\x01" + blob, CONTEXT) == share


@pytest.mark.parametrize(("days_ahead", "window"), [(1, 7), (7, 7), (7.5, 8), (30, 30), (365, 30)])
def test_schedule_destruction_rounds_to_kms_window(
    provider: AwsKmsProvider, stub: Stubber, days_ahead: float, window: int
) -> None:
    deletion = datetime.datetime.fromtimestamp(NOW + window * 86400, datetime.UTC)
    stub.add_response("describe_key", _metadata("Disabled"), {"KeyId": KEY})
    stub.add_response(
        "schedule_key_deletion",
        {"KeyId": ARN, "DeletionDate": deletion, "KeyState": "PendingDeletion"},
        {"KeyId": KEY, "PendingWindowInDays": window},
    )
    provider.schedule_destruction(KEY, destroy_at=NOW + days_ahead * 86400)


def test_pending_deletion_is_described_denied_and_cancellable(
    provider: AwsKmsProvider, stub: Stubber
) -> None:
    deletion = datetime.datetime.fromtimestamp(NOW + 30 * 86400, datetime.UTC)
    stub.add_response(
        "describe_key", _metadata("PendingDeletion", DeletionDate=deletion), {"KeyId": KEY}
    )
    stub.add_response("list_key_rotations", {"Rotations": []}, {"KeyId": KEY})
    stub.add_client_error(
        "decrypt",
        "KMSInvalidStateException",
        f"{ARN} is pending deletion.",
        http_status_code=400,
    )
    stub.add_response(
        "describe_key", _metadata("PendingDeletion", DeletionDate=deletion), {"KeyId": KEY}
    )
    stub.add_response("cancel_key_deletion", {"KeyId": ARN}, {"KeyId": KEY})

    described = provider.describe(KEY)
    assert described.state is KeyState.PENDING_DESTRUCTION
    assert described.destroy_at == NOW + 30 * 86400
    with pytest.raises(AccessDenied) as denied:
        provider.unwrap(KEY, b"\x01" + os.urandom(100), CONTEXT)
    assert denied.value.reason == "pending_destruction"
    provider.cancel_destruction(KEY)


def test_illegal_moves_never_reach_kms(provider: AwsKmsProvider, stub: Stubber) -> None:
    """KMS would schedule the deletion of an enabled key; the lifecycle table refuses first."""
    stub.add_response("describe_key", _metadata("Enabled"), {"KeyId": KEY})
    with pytest.raises(LifecycleError):
        provider.schedule_destruction(KEY, destroy_at=NOW + 30 * 86400)


def test_state_errors_in_lifecycle_calls_are_lifecycle_errors(
    provider: AwsKmsProvider, stub: Stubber
) -> None:
    """Another admin changed the key between our describe and our call."""
    stub.add_response("describe_key", _metadata("Disabled"), {"KeyId": KEY})
    stub.add_client_error(
        "enable_key",
        "KMSInvalidStateException",
        f"{ARN} is pending deletion.",
        http_status_code=400,
    )
    with pytest.raises(LifecycleError):
        provider.enable(KEY)


def test_destroy_reports_what_kms_answered(provider: AwsKmsProvider, stub: Stubber) -> None:
    """KL-9: configured to own the step, destroy makes sure KMS deletes the key and returns
    KMS's own key state and deletion date for the evidence."""
    deletion = datetime.datetime.fromtimestamp(NOW + 7 * 86400, datetime.UTC)
    stub.add_response(
        "describe_key", _metadata("PendingDeletion", DeletionDate=deletion), {"KeyId": KEY}
    )
    receipt = provider.destroy(KEY)  # already scheduled: KMS deletes at its DeletionDate
    assert receipt.outcome is DestructionOutcome.DELETION_SCHEDULED
    assert receipt.answer == {
        "aws_key_state": "PendingDeletion",
        "aws_deletion_date": deletion.isoformat(),
    }
    stub.add_response("describe_key", _metadata("Disabled"), {"KeyId": KEY})
    stub.add_response(
        "schedule_key_deletion",
        {"KeyId": ARN, "DeletionDate": deletion, "KeyState": "PendingDeletion"},
        {"KeyId": KEY, "PendingWindowInDays": 7},
    )
    receipt = provider.destroy(KEY)  # only disabled (cancelled in KMS): scheduled now
    assert receipt.answer["aws_deletion_date"] == deletion.isoformat()
    stub.add_client_error("describe_key", "NotFoundException", http_status_code=400)
    assert provider.destroy(KEY).outcome is DestructionOutcome.DESTROYED  # gone: idempotent
    stub.add_response("describe_key", _metadata("Enabled"), {"KeyId": KEY})
    with pytest.raises(LifecycleError):
        provider.destroy(KEY)


def test_by_default_ownkey_never_asks_kms_to_delete() -> None:
    """Not configured to own the step (the default): no ScheduleKeyDeletion and no
    CancelKeyDeletion ever reach KMS (the Stubber fails on any call not queued), and the
    receipt says the key remains in the customer's KMS, with the state KMS reports."""
    provider = AwsKmsProvider(client=_client(), clock=lambda: NOW)
    assert provider.owns_destruction is False
    with Stubber(provider.client) as stub:
        stub.add_response("describe_key", _metadata("Disabled"), {"KeyId": KEY})
        provider.schedule_destruction(KEY, destroy_at=NOW + 30 * 86400)
        stub.add_response("describe_key", _metadata("Disabled"), {"KeyId": KEY})
        provider.cancel_destruction(KEY)
        stub.add_response("describe_key", _metadata("Disabled"), {"KeyId": KEY})
        receipt = provider.destroy(KEY)
        stub.assert_no_pending_responses()
    assert receipt.outcome is DestructionOutcome.RETAINED
    assert receipt.answer == {"aws_key_state": "Disabled"}
    assert "remains in the customer's key manager" in receipt.statement


def test_versions_come_from_rotations(provider: AwsKmsProvider, stub: Stubber) -> None:
    rotations = [
        {"KeyId": ARN, "RotationDate": datetime.datetime(2025, 1, 1), "RotationType": "ON_DEMAND"},
        {"KeyId": ARN, "RotationDate": datetime.datetime(2025, 6, 1), "RotationType": "AUTOMATIC"},
    ]
    stub.add_response("describe_key", _metadata("Enabled"), {"KeyId": KEY})
    stub.add_response("list_key_rotations", {"Rotations": rotations}, {"KeyId": KEY})
    described = provider.describe(KEY)
    assert described.versions == ("material-1", "material-2", "material-3")
    assert described.primary_version == "material-3"
    assert described.label == "acme"


def test_versions_without_list_permission(provider: AwsKmsProvider, stub: Stubber) -> None:
    stub.add_response("describe_key", _metadata("Enabled"), {"KeyId": KEY})
    stub.add_client_error("list_key_rotations", "AccessDeniedException", http_status_code=400)
    assert provider.describe(KEY).versions == ("material-1",)


def test_owns_destruction_is_an_explicit_setting() -> None:
    """Off unless set to exactly true; a typo is refused rather than read as either value."""
    from ownkey.errors import ConfigError
    from ownkey.providers import build_provider

    base = {"region": "us-east-1"}
    assert build_provider("aws_kms", base, env={}).owns_destruction is False  # type: ignore[attr-defined]
    owned = build_provider("aws_kms", {**base, "owns_destruction": "true"}, env={})
    assert owned.owns_destruction is True  # type: ignore[attr-defined]
    env = {"OWNKEY_AWS_KMS_OWNS_DESTRUCTION": "True"}
    assert build_provider("aws_kms", base, env=env).owns_destruction is True  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="true or false"):
        build_provider("aws_kms", {**base, "owns_destruction": "yes"}, env={})
