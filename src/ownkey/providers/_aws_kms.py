"""The ``aws_kms`` provider: customer keys in AWS KMS, reached with boto3.

Wrapping is KMS ``Encrypt`` with the encryption context as KMS ``EncryptionContext``; unwrapping
is ``Decrypt`` with the same context *and* the expected ``KeyId``, so KMS itself refuses a blob of
another key (``IncorrectKeyException``) or a different context (``InvalidCiphertextException``).
The context lands in the customer's CloudTrail, and key policies can condition on it
(``kms:EncryptionContext:service_id``, ...). The blob is ``0x01 || CiphertextBlob``. Rotation is
KMS's own (``RotateKeyOnDemand``): the key id stays, KMS keeps every backing key, and versions are
named ``material-1``, ``material-2``, ... from ``ListKeyRotations``.

Lifecycle: disable/enable are ``DisableKey``/``EnableKey``. Deleting the customer's KMS key is
ownkey's step only where the customer configured it so (``owns_destruction=True``, setting
``owns_destruction=true``); then scheduled destruction is ``ScheduleKeyDeletion`` with the waiting
period rounded up to whole days and clamped to KMS's 7-30, cancelling is ``CancelKeyDeletion``
(KMS leaves the key disabled, as KL-5 wants), and :meth:`AwsKmsProvider.destroy` makes sure the
deletion is scheduled (``ScheduleKeyDeletion``, 7 days, if the key is only disabled) and returns
KMS's key state and ``DeletionDate``: KMS deletes the key itself at that date, there is no way to
hurry it. By default (not configured) ownkey never asks KMS to delete the key: scheduling and
cancelling only check that it is disabled in KMS, and ``destroy`` returns a receipt saying the key
remains in the customer's KMS, with its state there. A deleted key is unknown to KMS afterwards:
:class:`NotFound`.

Errors (the codes AWS documents for these operations):

============================================  ==============================================
``DisabledException``                         AccessDenied, reason ``disabled``
``KMSInvalidStateException``                  AccessDenied, ``pending_destruction`` when the key
                                              is pending deletion (LifecycleError in a
                                              lifecycle call)
``AccessDeniedException``                     AccessDenied, reason ``provider_denied``
``InvalidCiphertextException``,               InvalidCiphertext
``IncorrectKeyException``
``NotFoundException``                         NotFound
throttling, ``KMSInternalException``,         KeyUnavailable (ownkey's retry policy retries;
``DependencyTimeoutException``,               botocore's own retries are off so that the
``KeyUnavailableException``, 5xx, timeouts,   deadline holds)
connection errors
bad credentials, no region, wrong key usage,  ConfigError
validation errors
============================================  ==============================================
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import boto3
import botocore.config
import botocore.exceptions

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    LifecycleError,
    NotFound,
    OwnkeyError,
)
from ownkey.keys import (
    DestructionOutcome,
    DestructionReceipt,
    KeyAction,
    KeyDescription,
    KeyState,
    next_state,
)
from ownkey.providers._common import BLOB_FORMAT, check_plaintext, context_bytes

__all__ = ["AwsKmsProvider", "translate_aws_error"]

_MIN_WINDOW_DAYS: Final = 7
_MAX_WINDOW_DAYS: Final = 30
_DAY: Final = 86400.0

_STATES: Final = {
    "Enabled": KeyState.ENABLED,
    "Disabled": KeyState.DISABLED,
    "PendingDeletion": KeyState.PENDING_DESTRUCTION,
    "PendingReplicaDeletion": KeyState.PENDING_DESTRUCTION,
}
_UNAVAILABLE_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "KMSInternalException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_CONFIG_CODES: Final = frozenset(
    {
        "InvalidKeyUsageException",
        "ValidationException",
        "InvalidArnException",
        "InvalidGrantTokenException",
        "InvalidAliasNameException",
        "UnsupportedOperationException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "ExpiredTokenException",
        "ExpiredToken",
        "SignatureDoesNotMatch",
    }
)
_TRANSPORT_ERRORS: Final = (
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ConnectionError,
)
_SETUP_ERRORS: Final = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.NoRegionError,
    botocore.exceptions.ParamValidationError,
    botocore.exceptions.ProfileNotFound,
)


def translate_aws_error(what: str, exc: Exception, *, lifecycle: bool = False) -> OwnkeyError:
    """The ownkey error for a botocore failure (the table in this module's docstring)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "DisabledException":
            if lifecycle:
                return LifecycleError(f"{what}: the AWS KMS key is disabled")
            return AccessDenied(f"{what}: the AWS KMS key is disabled", reason="disabled")
        if code == "KMSInvalidStateException":
            pending = "pending deletion" in message.lower() or "pendingdeletion" in message.lower()
            if lifecycle:
                return LifecycleError(f"{what}: AWS KMS refused in the key's current state")
            if pending:
                return AccessDenied(
                    f"{what}: the AWS KMS key is pending deletion", reason="pending_destruction"
                )
            return AccessDenied(f"{what}: the AWS KMS key is not in a usable state")
        if code == "AccessDeniedException":
            return AccessDenied(f"{what}: AWS KMS denied access (key policy, grant or IAM)")
        if code in ("InvalidCiphertextException", "IncorrectKeyException"):
            return InvalidCiphertext()
        if code == "NotFoundException":
            return NotFound(f"{what}: AWS KMS does not know this key")
        if code in _UNAVAILABLE_CODES or status >= 500:
            return KeyUnavailable(f"{what}: AWS KMS is unavailable ({code or status})")
        if code in _CONFIG_CODES:
            return ConfigError(f"{what}: AWS KMS refused the request ({code})")
        return ConfigError(f"{what}: unexpected AWS KMS error ({code or status})")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return KeyUnavailable(f"{what}: cannot reach AWS KMS ({type(exc).__name__})")
    if isinstance(exc, _SETUP_ERRORS):
        return ConfigError(f"{what}: AWS is not configured ({type(exc).__name__})")
    return KeyUnavailable(f"{what}: unexpected AWS failure ({type(exc).__name__})")


class AwsKmsProvider:
    """Customer keys in AWS KMS (symmetric ``ENCRYPT_DECRYPT`` keys).

    Pass a ready boto3 KMS ``client``, or let the provider build one from ``region``,
    ``endpoint_url`` (a VPC endpoint, or a test server) and ``profile``, with ``timeout``
    seconds to connect and to read, and botocore's retries off (ownkey's retry policy decides).
    ``owns_destruction`` lets ownkey schedule the key's deletion in KMS (``ScheduleKeyDeletion``);
    off (the default), the key stays in the customer's KMS and the receipt of a destruction says
    so.
    """

    def __init__(
        self,
        *,
        client: Any | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        name: str = "aws_kms",
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        credentials: Mapping[str, str] | None = None,
        owns_destruction: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ConfigError("the aws_kms timeout must be positive")
        self.owns_destruction = owns_destruction
        self._name = name
        self._clock = clock
        self._timeout = timeout
        if client is None:
            config = botocore.config.Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
            try:
                session = boto3.session.Session(profile_name=profile, **dict(credentials or {}))
                client = session.client(
                    "kms", region_name=region, endpoint_url=endpoint_url, config=config
                )
            except Exception as exc:  # botocore raises many set-up errors; all are config
                raise ConfigError(
                    f"aws_kms: cannot build a KMS client ({type(exc).__name__})"
                ) from exc
        self._client = client

    def __repr__(self) -> str:
        return f"<AwsKmsProvider name={self._name}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> Any:
        """The boto3 KMS client (tests attach a Stubber to it)."""
        return self._client

    def _call(self, what: str, operation: str, *, lifecycle: bool = False, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except Exception as exc:
            raise translate_aws_error(what, exc, lifecycle=lifecycle) from exc

    # -- KeyProvider ----------------------------------------------------------------------

    def create_key(self, *, label: str) -> str:
        response = self._call(
            "create key",
            "create_key",
            Description=label,
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
        )
        return str(response["KeyMetadata"]["KeyId"])

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        check_plaintext(plaintext)
        context_bytes(context)
        response = self._call(
            f"wrap under {key_id}",
            "encrypt",
            KeyId=key_id,
            Plaintext=plaintext,
            EncryptionContext=dict(context),
        )
        return bytes((BLOB_FORMAT,)) + bytes(response["CiphertextBlob"])

    def generate(
        self, key_id: str, context: Mapping[str, str], *, size: int = 32
    ) -> tuple[bytes, bytes]:
        """A fresh random share and its wrapped form in one KMS call (``GenerateDataKey``).

        The wrapped form unwraps with :meth:`unwrap` like any other.
        """
        context_bytes(context)
        response = self._call(
            f"generate under {key_id}",
            "generate_data_key",
            KeyId=key_id,
            NumberOfBytes=size,
            EncryptionContext=dict(context),
        )
        return bytes(response["Plaintext"]), bytes((BLOB_FORMAT,)) + bytes(
            response["CiphertextBlob"]
        )

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        context_bytes(context)
        if len(wrapped) < 2 or wrapped[0] != BLOB_FORMAT:
            raise InvalidCiphertext()
        response = self._call(
            f"unwrap under {key_id}",
            "decrypt",
            KeyId=key_id,
            CiphertextBlob=wrapped[1:],
            EncryptionContext=dict(context),
        )
        return bytes(response["Plaintext"])

    def _metadata(self, key_id: str) -> Mapping[str, Any]:
        response = self._call(f"describe {key_id}", "describe_key", KeyId=key_id)
        return dict(response["KeyMetadata"])

    def _state(self, key_id: str) -> tuple[KeyState, Mapping[str, Any]]:
        metadata = self._metadata(key_id)
        return _STATES.get(str(metadata.get("KeyState")), KeyState.DISABLED), metadata

    def _versions(self, key_id: str) -> tuple[str, ...]:
        try:
            response = self._client.list_key_rotations(KeyId=key_id)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("AccessDeniedException",):
                return ("material-1",)  # no kms:ListKeyRotations permission: one version seen
            raise translate_aws_error(f"describe {key_id}", exc) from exc
        except Exception as exc:
            raise translate_aws_error(f"describe {key_id}", exc) from exc
        count = 1 + len(response.get("Rotations", []))
        return tuple(f"material-{n}" for n in range(1, count + 1))

    def describe(self, key_id: str) -> KeyDescription:
        state, metadata = self._state(key_id)
        versions = self._versions(key_id)
        deletion = metadata.get("DeletionDate")
        return KeyDescription(
            key_id=key_id,
            state=state,
            primary_version=versions[-1],
            versions=versions,
            destroy_at=deletion.timestamp() if isinstance(deletion, datetime) else None,
            label=str(metadata.get("Description") or ""),
        )

    def _move(self, key_id: str, action: KeyAction) -> KeyState:
        state = self._state(key_id)[0]
        return next_state(state, action)

    def rotate(self, key_id: str) -> str:
        self._move(key_id, KeyAction.ROTATE)
        before = len(self._versions(key_id))
        self._call(f"rotate {key_id}", "rotate_key_on_demand", lifecycle=True, KeyId=key_id)
        return f"material-{before + 1}"

    def disable(self, key_id: str) -> None:
        self._move(key_id, KeyAction.DISABLE)
        self._call(f"disable {key_id}", "disable_key", lifecycle=True, KeyId=key_id)

    def enable(self, key_id: str) -> None:
        self._move(key_id, KeyAction.ENABLE)
        self._call(f"enable {key_id}", "enable_key", lifecycle=True, KeyId=key_id)

    def schedule_destruction(self, key_id: str, *, destroy_at: float) -> None:
        self._move(key_id, KeyAction.SCHEDULE_DESTRUCTION)
        if not self.owns_destruction:
            return  # the key stays disabled in the customer's KMS; ownkey records the schedule
        days = math.ceil(max(0.0, destroy_at - self._clock()) / _DAY)
        self._schedule_deletion(key_id, days)

    def _schedule_deletion(self, key_id: str, days: int) -> Mapping[str, Any]:
        days = min(_MAX_WINDOW_DAYS, max(_MIN_WINDOW_DAYS, days))
        response = self._call(
            f"schedule destruction of {key_id}",
            "schedule_key_deletion",
            lifecycle=True,
            KeyId=key_id,
            PendingWindowInDays=days,
        )
        return dict(response)

    def cancel_destruction(self, key_id: str) -> None:
        if not self.owns_destruction:
            state = self._state(key_id)[0]
            if state is not KeyState.DISABLED:
                raise LifecycleError(f"aws_kms key {key_id} is {state.value} in KMS, not disabled")
            return
        self._move(key_id, KeyAction.CANCEL_DESTRUCTION)
        self._call(
            f"cancel destruction of {key_id}", "cancel_key_deletion", lifecycle=True, KeyId=key_id
        )

    def destroy(self, key_id: str) -> DestructionReceipt:
        """Have KMS delete the key (when ownkey owns that step), and return what KMS says.

        KMS deletes only at the end of a waiting period of 7-30 days: the receipt carries its
        ``KeyState`` and ``DeletionDate``; a key KMS no longer knows is reported destroyed.
        """
        try:
            state, metadata = self._state(key_id)
        except NotFound:
            return DestructionReceipt(
                DestructionOutcome.DESTROYED, {"aws_key_state": "unknown to KMS (deleted)"}
            )
        raw_state = str(metadata.get("KeyState"))
        if not self.owns_destruction:
            answer = {"aws_key_state": raw_state}
            answer.update(_deletion_date(metadata.get("DeletionDate")))
            return DestructionReceipt(DestructionOutcome.RETAINED, answer)
        if state is KeyState.DISABLED:
            metadata = self._schedule_deletion(key_id, _MIN_WINDOW_DAYS)
            raw_state = str(metadata.get("KeyState") or "PendingDeletion")
        elif state is not KeyState.PENDING_DESTRUCTION:
            raise LifecycleError(
                f"aws_kms key {key_id} is {state.value}; schedule its destruction first"
            )
        answer = {"aws_key_state": raw_state}
        answer.update(_deletion_date(metadata.get("DeletionDate")))
        return DestructionReceipt(DestructionOutcome.DELETION_SCHEDULED, answer)


def _deletion_date(value: Any) -> dict[str, str]:
    """KMS's DeletionDate as ISO 8601 UTC, if it gave one."""
    if isinstance(value, datetime):
        return {"aws_deletion_date": value.astimezone(UTC).isoformat()}
    return {}
