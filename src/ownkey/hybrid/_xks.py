"""The AWS External Key Store proxy API v1 of the key service (``{prefix}/kms/xks/v1/...``).

AWS KMS calls it for every encrypt and decrypt under a KMS key of an external key store:
``POST health``, ``keys/{id}/metadata``, ``keys/{id}/encrypt``, ``keys/{id}/decrypt``
(github.com/aws/aws-kms-xksproxy-api-spec). Every call is decided in one order:

1. the URI prefix (``hybrid.json``'s ``xks.uri_prefix``), then SigV4 (:mod:`._sigv4`: the
   access key ids and secrets of ``xks-credentials.json``, 0600, re-read when it changes, so a
   secret rotates without a restart); a failure is AuthenticationFailedException 401;
2. the route (InvalidUriPathException 404, GET 405) and the body (ValidationException 400);
3. the key (KeyNotFoundException 404), its state and the key service's org revocation
   (InvalidStateException 400: ``ownkey hybrid revoke org ORG`` blocks every encrypt and
   decrypt on the next call);
4. AES-256-GCM under the XKS key, whose 256-bit material is kept wrapped by the key service's
   provider key (``xks-keys.json``; the provider binds org and key id as the wrap's context):
   12-byte IV, 16-byte tag, AAD = ``u16 len(aad) | aad | u8 len(metadata) | metadata`` as the
   spec says (no ciphertextMetadata is issued, so its length is 0); a tag that does not verify
   is InvalidCiphertextException 400;
5. one record in the key service's hash chain with the request metadata (principal, KMS
   operation and request id, key ARN, via-service, VPC, the access key id, SHA-256 of the AAD);
   if it cannot be written the call fails (InternalException 500) and nothing is returned.

Errors are ``{"errorName", "errorMessage"}`` with the spec's HTTP status (:data:`ERRORS`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ownkey.envelope import GCM_NONCE_BYTES, GCM_TAG_BYTES, Aes256Gcm, sha256
from ownkey.errors import AuditUnavailable, ConfigError, InvalidCiphertext, OwnkeyError
from ownkey.hybrid._config import CONFIG_FILE
from ownkey.hybrid._sigv4 import SignedRequest, verify
from ownkey.hybrid._store import HybridStore
from ownkey.keys import KeyProvider

__all__ = [
    "ERRORS",
    "USAGES",
    "XKS_CREDENTIALS_FILE",
    "XKS_KEYS_FILE",
    "XksError",
    "XksService",
    "XksSettings",
    "create_xks_key",
    "load_xks_settings",
]

XKS_KEYS_FILE: Final = "xks-keys.json"
XKS_CREDENTIALS_FILE: Final = "xks-credentials.json"
#: The spec's error names and their HTTP statuses ("Error codes").
ERRORS: Final[Mapping[str, int]] = {
    "ValidationException": 400,
    "InvalidStateException": 400,
    "InvalidCiphertextException": 400,
    "InvalidKeyUsageException": 400,
    "AuthenticationFailedException": 401,
    "AccessDeniedException": 403,
    "KeyNotFoundException": 404,
    "InvalidUriPathException": 404,
    "ThrottlingException": 429,
    "InternalException": 500,
    "UnsupportedOperationException": 501,
    "DependencyTimeoutException": 503,
}
_PREFIX: Final = re.compile(r"(/[A-Za-z0-9_-]+)*\Z")
#: The spec names [A-Za-z0-9-]; AWS's test client uses "_" too (encrypt_only_key).
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
USAGES: Final = ("ENCRYPT", "DECRYPT")
_MAX_PLAINTEXT: Final = 8192  # the spec's floor is 4300
_MAX_AAD: Final = 8192
_METADATA: Final = (
    "awsPrincipalArn",
    "awsSourceVpc",
    "awsSourceVpce",
    "kmsKeyArn",
    "kmsOperation",
    "kmsRequestId",
    "kmsViaService",
)
_MAX_ARN: Final = 2048


class XksError(Exception):
    """One of the spec's errors; ``message`` is printable ASCII under 512 characters."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.status = ERRORS[name]
        self.message = message

    def body(self) -> dict[str, str]:
        return {"errorName": self.name, "errorMessage": self.message}


@dataclass(frozen=True)
class XksSettings:
    """``hybrid.json``'s ``xks`` section: ``{"uri_prefix": "/acme", "region": "us-east-1"}``."""

    home: Path
    region: str
    uri_prefix: str = ""

    @property
    def base(self) -> str:
        return f"{self.uri_prefix}/kms/xks/v1"


def load_xks_settings(home: Path) -> XksSettings | None:
    """The XKS settings of a home, or None when ``hybrid.json`` has no ``xks`` section."""
    path = home / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8")).get("xks")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path} is malformed") from exc
    if raw is None:
        return None
    region, prefix = raw.get("region"), raw.get("uri_prefix", "")
    if not isinstance(region, str) or not re.fullmatch(r"[a-z0-9-]{1,32}", region):
        raise ConfigError(f"{path}: xks.region must be an AWS region name")
    if not isinstance(prefix, str) or not _PREFIX.match(prefix) or len(prefix) > 100:
        raise ConfigError(f"{path}: xks.uri_prefix must be empty or /segments of [A-Za-z0-9_-]")
    return XksSettings(home=home, region=region, uri_prefix=prefix)


class _Credentials:
    """``xks-credentials.json`` (0600): ``[{"access_key_id", "secret_access_key"}, ...]``,
    re-read when it changes, so adding the new secret and later removing the old one (the spec's
    rotation) needs no restart."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._secrets: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<XKS credentials {self._path.name}: <redacted>>"

    def current(self) -> Mapping[str, str]:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            if stat.st_mode & 0o077:
                raise ConfigError(f"{self._path} is readable by others; chmod 600 it")
            secrets: dict[str, str] = {}
            try:
                entries = json.loads(self._path.read_text(encoding="utf-8"))
                for entry in entries:
                    key_id, secret = entry["access_key_id"], entry["secret_access_key"]
                    if not (isinstance(key_id, str) and isinstance(secret, str) and secret):
                        raise ValueError("credential entry")
                    if key_id in secrets:
                        raise ValueError("duplicate access key id")
                    secrets[key_id] = secret
            except (ValueError, TypeError, KeyError):
                raise ConfigError(f"{self._path} is malformed") from None
            self._secrets, self._stamp = secrets, stamp
        return self._secrets


def _key_context(org: str, name: str) -> dict[str, str]:
    return {"org": org, "purpose": "xks", "xks_key": name}


def create_xks_key(
    home: Path,
    provider: KeyProvider,
    provider_key: str,
    org: str,
    name: str,
    usage: tuple[str, ...] = USAGES,
) -> None:
    """Add an XKS key ``name`` (the external key id given to KMS): fresh 256-bit material,
    kept wrapped by the provider key of the home, allowed ``usage`` (ENCRYPT, DECRYPT, both or
    neither); refuses an existing name."""
    if not _KEY_ID.match(name):
        raise ConfigError("an XKS key id is 1-128 of [A-Za-z0-9_-]")
    if not set(usage) <= set(USAGES):
        raise ConfigError("an XKS key's usage is ENCRYPT and/or DECRYPT")
    path = home / XKS_KEYS_FILE
    keys = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if name in keys:
        raise ConfigError(f"XKS key {name} exists")
    wrapped = provider.wrap(provider_key, os.urandom(32), _key_context(org, name))
    keys[name] = {
        "wrapped": base64.b64encode(wrapped).decode("ascii"),
        "status": "ENABLED",
        "usage": [u for u in USAGES if u in usage],
    }
    path.write_text(json.dumps(keys, indent=2) + "\n", encoding="utf-8")


def _b64(field: str, value: object, limit: int, *, required: bool = True) -> bytes:
    if value is None and not required:
        return b""
    if not isinstance(value, str):
        raise XksError("ValidationException", f"{field} must be base64 text")
    if len(value) > 2 * limit:
        raise XksError("UnsupportedOperationException", f"{field} is over {limit} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise XksError("ValidationException", f"{field} must be base64 text") from None
    if len(raw) > limit:
        raise XksError("UnsupportedOperationException", f"{field} is over {limit} bytes")
    return raw


def _gcm_aad(aad: bytes, metadata: bytes) -> bytes:
    return len(aad).to_bytes(2, "big") + aad + bytes((len(metadata),)) + metadata


class XksService:
    """The XKS decisions, without HTTP: :meth:`handle` takes the request, answers (status, body)."""

    def __init__(
        self,
        settings: XksSettings,
        *,
        org: str,
        provider: KeyProvider,
        provider_key: str,
        store: HybridStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._org = org
        self._provider = provider
        self._provider_key = provider_key
        self._store = store
        self._clock = clock
        self._credentials = _Credentials(settings.home / XKS_CREDENTIALS_FILE)

    # -- the request ----------------------------------------------------------------------------

    def handle(self, request: SignedRequest) -> tuple[int, dict[str, Any]]:
        record: dict[str, Any] = {"op": "xks", "resource": "", "outcome": "ok", "why": ""}
        try:
            try:
                answer = self._decide(request, record)
            except OwnkeyError as failure:  # a malformed credentials file, the store: fail closed
                record["why"] = type(failure).__name__
                raise XksError("InternalException", "the key service could not decide") from None
        except XksError as exc:
            record["outcome"] = "denied" if exc.status < 500 else "error"
            record["why"] = f"{exc.name}: {record['why']}" if record["why"] else exc.name
            try:
                self._record(record)
            except AuditUnavailable:
                exc = XksError("InternalException", "the audit log could not be written")
            return exc.status, exc.body()
        try:
            self._record(record)
        except AuditUnavailable:
            failed = XksError("InternalException", "the audit log could not be written")
            return failed.status, failed.body()
        return 200, answer

    def _record(self, record: dict[str, Any]) -> None:
        self._store.append({"at_ms": int(self._clock() * 1000), "org": self._org, **record})

    def _decide(self, request: SignedRequest, record: dict[str, Any]) -> dict[str, Any]:
        base = self.settings.base
        if not request.path.startswith(base + "/"):
            raise XksError("InvalidUriPathException", "the URI path is not this proxy's")
        verdict = verify(
            request,
            secrets=self._credentials.current(),
            region=self.settings.region,
            now=self._clock(),
        )
        record["access_key_id"] = verdict.access_key_id
        if not verdict.ok:
            record["op"] = "xks.authenticate"
            record["why"] = verdict.why
            raise XksError("AuthenticationFailedException", "SigV4 verification failed")
        parts = request.path[len(base) + 1 :].split("/")
        if parts == ["health"]:
            operation, key_name = "health", ""
        elif (
            len(parts) == 3
            and parts[0] == "keys"
            and parts[2] in ("metadata", "encrypt", "decrypt")
        ):
            operation, key_name = parts[2], parts[1]
        else:
            raise XksError("InvalidUriPathException", "no such XKS operation")
        record["op"] = f"xks.{operation}"
        if request.method.upper() != "POST":
            raise XksError("ValidationException", "XKS operations are POST")
        body = self._body(request.body, record, operation)
        if operation == "health":
            return self._health()
        record["resource"] = key_name
        gcm, status, usage = self._key(key_name)
        if operation == "metadata":
            revoked = self._store.revoked(user=None, conversation=None) is not None
            return {
                "keySpec": "AES_256",
                "keyUsage": usage,
                "keyStatus": "DISABLED" if revoked else status,
            }
        if self._store.revoked(user=None, conversation=None) is not None:
            raise XksError("InvalidStateException", "the key store is revoked by the customer")
        if status != "ENABLED":
            raise XksError("InvalidStateException", "the external key is disabled")
        if operation.upper() not in usage:
            raise XksError("InvalidKeyUsageException", f"the key does not allow {operation}")
        if "ciphertextDataIntegrityValueAlgorithm" in body and "DECRYPT" not in usage:
            # the CDIV is vouched for by a check decrypt (Appendix C), which this key may not do
            raise XksError("InvalidKeyUsageException", "a CDIV needs a key that may decrypt")
        if body.get("encryptionAlgorithm") != "AES_GCM":
            raise XksError("ValidationException", "encryptionAlgorithm must be AES_GCM")
        aad = _b64(
            "additionalAuthenticatedData",
            body.get("additionalAuthenticatedData"),
            _MAX_AAD,
            required=False,
        )
        record["aad_sha256"] = sha256(aad).hex() if "additionalAuthenticatedData" in body else ""
        if operation == "encrypt":
            return self._encrypt(gcm, body, aad)
        return self._decrypt(gcm, body, aad)

    def _body(self, raw: bytes, record: dict[str, Any], operation: str) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            body = None
        metadata = body.get("requestMetadata") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(metadata, dict):
            raise XksError("ValidationException", "the body must be JSON with requestMetadata")
        for name in _METADATA:
            value = metadata.get(name)
            if isinstance(value, str) and len(value) <= _MAX_ARN and value.isprintable():
                record[name] = value
        required = ["kmsOperation", "kmsRequestId"]
        if operation != "health":
            required.append("awsPrincipalArn")
        if operation in ("encrypt", "decrypt"):
            required.append("kmsKeyArn")
        missing = [name for name in required if name not in record]
        if missing:  # health too: AWS's test client wants it (the spec's table says otherwise)
            raise XksError("ValidationException", f"requestMetadata lacks {missing[0]}")
        return body

    def _health(self) -> dict[str, Any]:
        try:
            state = str(self._provider.describe(self._provider_key).state)
            healthy = state.lower() in ("enabled", "keystate.enabled")
        except OwnkeyError:
            healthy = False
        return {
            "xksProxyFleetSize": 1,
            "xksProxyVendor": "ownkey",
            "xksProxyModel": "ownkey hybrid key service (XKS proxy API v1)",
            "ekmVendor": "ownkey",
            "ekmFleetDetails": [
                {
                    "id": f"{self._org}-hybrid",
                    "model": "ownkey key provider",
                    "healthStatus": "ACTIVE" if healthy else "UNAVAILABLE",
                }
            ],
        }

    def _key(self, name: str) -> tuple[Aes256Gcm, str, list[str]]:
        if not _KEY_ID.match(name):
            raise XksError("KeyNotFoundException", "no such external key")
        path = self.settings.home / XKS_KEYS_FILE
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))[name]
            wrapped = base64.b64decode(entry["wrapped"], validate=True)
            status = str(entry.get("status", "ENABLED"))
            usage = [str(u) for u in entry.get("usage", USAGES)]
        except (FileNotFoundError, KeyError):
            raise XksError("KeyNotFoundException", "no such external key") from None
        except (ValueError, TypeError, binascii.Error):
            raise XksError("InternalException", "the key file is malformed") from None
        try:
            material = self._provider.unwrap(
                self._provider_key, wrapped, _key_context(self._org, name)
            )
        except OwnkeyError:
            raise XksError("InternalException", "the key provider could not open the key") from None
        return Aes256Gcm(material), status, usage

    @staticmethod
    def _encrypt(gcm: Aes256Gcm, body: Mapping[str, Any], aad: bytes) -> dict[str, Any]:
        plaintext = _b64("plaintext", body.get("plaintext"), _MAX_PLAINTEXT)
        algorithm = body.get("ciphertextDataIntegrityValueAlgorithm")
        if algorithm not in (None, "SHA_256"):
            raise XksError(
                "ValidationException", "ciphertextDataIntegrityValueAlgorithm must be SHA_256"
            )
        iv = os.urandom(GCM_NONCE_BYTES)
        sealed = gcm.encrypt(iv, plaintext, _gcm_aad(aad, b""))
        ciphertext, tag = sealed[:-GCM_TAG_BYTES], sealed[-GCM_TAG_BYTES:]
        answer = {
            "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
            "initializationVector": base64.b64encode(iv).decode("ascii"),
            "authenticationTag": base64.b64encode(tag).decode("ascii"),
        }
        if algorithm is not None:
            cdiv = sha256(aad + iv + ciphertext + tag)  # computed before the check decrypt
            gcm.decrypt(iv, sealed, _gcm_aad(aad, b""))
            answer["ciphertextDataIntegrityValue"] = base64.b64encode(cdiv).decode("ascii")
        return answer

    @staticmethod
    def _decrypt(gcm: Aes256Gcm, body: Mapping[str, Any], aad: bytes) -> dict[str, Any]:
        ciphertext = _b64("ciphertext", body.get("ciphertext"), _MAX_PLAINTEXT)
        iv = _b64("initializationVector", body.get("initializationVector"), 64)
        tag = _b64("authenticationTag", body.get("authenticationTag"), 64)
        metadata = _b64("ciphertextMetadata", body.get("ciphertextMetadata"), 20, required=False)
        if len(iv) != GCM_NONCE_BYTES or len(tag) != GCM_TAG_BYTES:
            raise XksError("InvalidCiphertextException", "the IV or the tag is not one of ours")
        try:
            plaintext = gcm.decrypt(iv, ciphertext + tag, _gcm_aad(aad, metadata))
        except InvalidCiphertext:
            raise XksError(
                "InvalidCiphertextException",
                "the ciphertext, IV, tag or additional authenticated data is invalid",
            ) from None
        return {"plaintext": base64.b64encode(plaintext).decode("ascii")}
