"""The AWS XKS proxy API v1 of the key service (issue 27), called as AWS KMS calls it: every
request signed with botocore's SigV4Auth (service ``kms-xks-proxy``), through the ASGI app.

Errors are checked by name *and* by the spec's HTTP status."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.testclient import TestClient

from ownkey.hybrid import HybridStore, KeyService
from ownkey.hybrid._app import build_app
from ownkey.hybrid._sigv4 import SignedRequest, verify
from ownkey.hybrid._xks import (
    ERRORS,
    XKS_CREDENTIALS_FILE,
    XksService,
    XksSettings,
    create_xks_key,
)
from ownkey.providers import LocalKeyProvider

ORG, REGION, PREFIX = "acme", "us-east-1", "/acme-xks"
AKID, SECRET = "AKIAXKSTESTKEY000001", "s3cr3t/" + "A" * 40
AKID2, SECRET2 = "AKIAXKSTESTKEY000002", "n3w-s3cr3t/" + "B" * 36
HOST = "testserver"
META = {
    "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
    "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "kmsOperation": "Encrypt",
    "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
    "kmsViaService": "ebs",
}


def _write_credentials(home: Path, *pairs: tuple[str, str]) -> None:
    path = home / XKS_CREDENTIALS_FILE
    text = json.dumps([{"access_key_id": a, "secret_access_key": s} for a, s in pairs])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


class Kms:
    """Signs and sends XKS requests as AWS KMS does."""

    def __init__(self, client: TestClient, store: HybridStore, xks: XksService) -> None:
        self.client = client
        self.store = store
        self.xks = xks

    def call(
        self,
        path: str,
        body: dict[str, Any],
        *,
        akid: str = AKID,
        secret: str = SECRET,
        region: str = REGION,
        service: str = "kms-xks-proxy",
        tamper: bool = False,
        at: float | None = None,
    ) -> httpx.Response:
        url = f"http://{HOST}{path}"
        data = json.dumps(body).encode()
        request = AWSRequest(
            method="POST", url=url, data=data, headers={"Content-Type": "application/json"}
        )
        signer = SigV4Auth(Credentials(akid, secret), service, region)
        if at is not None:
            moment = datetime.datetime.fromtimestamp(at, datetime.UTC).replace(tzinfo=None)
            with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
                signer.add_auth(request)
        else:
            signer.add_auth(request)
        headers = dict(request.headers.items())
        if tamper:
            data = data.replace(b"Alice", b"Mallory")
        return self.client.post(path, content=data, headers=headers)

    def key(self, name: str, op: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.call(f"{PREFIX}/kms/xks/v1/keys/{name}/{op}", body, **kw)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.store.records()]


@pytest.fixture
def kms(tmp_path: Path) -> Iterator[Kms]:
    provider = LocalKeyProvider()
    key_id = provider.create_key(label="hybrid")
    store = HybridStore(tmp_path / "h.db", ORG)
    create_xks_key(tmp_path, provider, key_id, ORG, "key-1")
    _write_credentials(tmp_path, (AKID, SECRET))
    xks = XksService(
        XksSettings(home=tmp_path, region=REGION, uri_prefix=PREFIX),
        org=ORG,
        provider=provider,
        provider_key=key_id,
        store=store,
    )
    service = KeyService.__new__(KeyService)  # the KACLS routes are not under test here
    with TestClient(build_app(service, xks)) as client:
        yield Kms(client, store, xks)
    store.close()


def _encrypt(kms: Kms, plaintext: bytes, aad: bytes | None = None, **kw: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "requestMetadata": META,
        "plaintext": base64.b64encode(plaintext).decode(),
        "encryptionAlgorithm": "AES_GCM",
        "ciphertextDataIntegrityValueAlgorithm": "SHA_256",
    }
    if aad is not None:
        body["additionalAuthenticatedData"] = base64.b64encode(aad).decode()
    return kms.key("key-1", "encrypt", body, **kw)


def _decrypt(kms: Kms, sealed: dict[str, str], aad: bytes | None = None) -> httpx.Response:
    body: dict[str, Any] = {
        "requestMetadata": {**META, "kmsOperation": "Decrypt"},
        "encryptionAlgorithm": "AES_GCM",
        **{k: sealed[k] for k in ("ciphertext", "initializationVector", "authenticationTag")},
    }
    if aad is not None:
        body["additionalAuthenticatedData"] = base64.b64encode(aad).decode()
    return kms.key("key-1", "decrypt", body)


def _is(response: httpx.Response, name: str, status: int) -> None:
    assert ERRORS[name] == status  # the table itself is the spec's
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorName"] == name
    assert body["errorMessage"].isascii()
    assert len(body["errorMessage"]) < 512


def test_health_answers_the_spec_fields(kms: Kms) -> None:
    meta = {"kmsRequestId": "r-1", "kmsOperation": "CreateCustomKeyStore"}
    response = kms.call(f"{PREFIX}/kms/xks/v1/health", {"requestMetadata": meta})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["xksProxyFleetSize"] >= 1
    assert body["ekmFleetDetails"][0]["healthStatus"] == "ACTIVE"
    assert {"xksProxyVendor", "xksProxyModel", "ekmVendor"} <= body.keys()


def test_metadata_is_an_enabled_aes_256_key(kms: Kms) -> None:
    meta = {**META, "kmsOperation": "CreateKey"}
    response = kms.key("key-1", "metadata", {"requestMetadata": meta})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "keySpec": "AES_256",
        "keyUsage": ["ENCRYPT", "DECRYPT"],
        "keyStatus": "ENABLED",
    }


def test_encrypt_decrypt_round_trip_with_aad_and_cdiv(kms: Kms) -> None:
    from ownkey.envelope import sha256

    aad = b"project=nile,department=marketing"
    sealed = _encrypt(kms, b"Hello World!", aad)
    assert sealed.status_code == 200, sealed.text
    fields = sealed.json()
    raw = {k: base64.b64decode(v) for k, v in fields.items()}
    assert len(raw["ciphertext"]) == 12
    assert len(raw["initializationVector"]) == 12
    assert len(raw["authenticationTag"]) == 16
    expected = sha256(
        aad + raw["initializationVector"] + raw["ciphertext"] + raw["authenticationTag"]
    )
    assert raw["ciphertextDataIntegrityValue"] == expected
    opened = _decrypt(kms, fields, aad)
    assert opened.status_code == 200, opened.text
    assert base64.b64decode(opened.json()["plaintext"]) == b"Hello World!"


def test_wrong_or_missing_aad_and_a_flipped_tag_are_invalid_ciphertext_400(kms: Kms) -> None:
    fields = _encrypt(kms, b"data key", b"context-a").json()
    _is(_decrypt(kms, fields, b"context-b"), "InvalidCiphertextException", 400)
    _is(_decrypt(kms, fields), "InvalidCiphertextException", 400)
    tag = bytearray(base64.b64decode(fields["authenticationTag"]))
    tag[0] ^= 1
    flipped = {**fields, "authenticationTag": base64.b64encode(bytes(tag)).decode()}
    _is(_decrypt(kms, flipped, b"context-a"), "InvalidCiphertextException", 400)
    # ciphertextMetadata (never issued here) is bound after the AAD's length: passing it, or
    # moving AAD bytes into it, does not open
    moved = {**fields, "ciphertextMetadata": base64.b64encode(b"context-a").decode()}
    body = {"requestMetadata": META, "encryptionAlgorithm": "AES_GCM", **moved}
    _is(kms.key("key-1", "decrypt", body), "InvalidCiphertextException", 400)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"tamper": True}, "signature does not match"),
        ({"akid": "AKIAUNKNOWN000000000"}, "unknown access key id"),
        ({"akid": "A" * 129}, "over 128 characters"),
        ({"secret": "wrong-" + "C" * 40}, "signature does not match"),
        ({"region": "eu-west-1"}, "another region or service"),
        ({"service": "kms"}, "another region or service"),
        ({"at_offset": -600.0}, "too far from now"),
        ({"at_offset": 600.0}, "too far from now"),
    ],
)
def test_a_bad_signature_is_authentication_failed_401(
    kms: Kms, change: dict[str, Any], why: str
) -> None:
    change = dict(change)
    if "at_offset" in change:  # taken from the clock when the test runs, not when collected
        change["at"] = time.time() + change.pop("at_offset")
    response = _encrypt(kms, b"secret data", **change)
    _is(response, "AuthenticationFailedException", 401)
    record = kms.records()[-1]
    assert record["op"] == "xks.authenticate"
    assert record["outcome"] == "denied"
    assert why in record["why"]


def test_an_unsigned_request_is_authentication_failed_401(kms: Kms) -> None:
    response = kms.client.post(f"{PREFIX}/kms/xks/v1/health", json={"requestMetadata": {}})
    _is(response, "AuthenticationFailedException", 401)


def test_an_unknown_key_is_key_not_found_404(kms: Kms) -> None:
    meta = {**META, "kmsOperation": "CreateKey"}
    _is(kms.key("no-such-key", "metadata", {"requestMetadata": meta}), "KeyNotFoundException", 404)


def test_a_wrong_path_is_invalid_uri_path_404_and_get_is_405(kms: Kms) -> None:
    meta = {"kmsRequestId": "r", "kmsOperation": "KmsHealthCheck"}
    _is(
        kms.call("/other/kms/xks/v1/health", {"requestMetadata": meta}),
        "InvalidUriPathException",
        404,
    )
    _is(kms.key("key-1", "sign", {"requestMetadata": META}), "InvalidUriPathException", 404)
    assert kms.client.get(f"{PREFIX}/kms/xks/v1/keys/key-1/encrypt").status_code == 405


def test_a_malformed_request_is_validation_400(kms: Kms) -> None:
    _is(kms.key("key-1", "encrypt", {"plaintext": "AA=="}), "ValidationException", 400)
    body = {"requestMetadata": META, "plaintext": "AA==", "encryptionAlgorithm": "AES_CBC"}
    _is(kms.key("key-1", "encrypt", body), "ValidationException", 400)
    body = {"requestMetadata": META, "plaintext": "not base64!", "encryptionAlgorithm": "AES_GCM"}
    _is(kms.key("key-1", "encrypt", body), "ValidationException", 400)


def test_an_org_revocation_fails_encrypt_and_decrypt_closed(kms: Kms) -> None:
    fields = _encrypt(kms, b"k", b"a").json()
    kms.store.revoke("org", ORG, 0)
    _is(_encrypt(kms, b"k", b"a"), "InvalidStateException", 400)
    _is(_decrypt(kms, fields, b"a"), "InvalidStateException", 400)
    meta = kms.key("key-1", "metadata", {"requestMetadata": META}).json()
    assert meta["keyStatus"] == "DISABLED"
    kms.store.restore("org", ORG)
    assert _decrypt(kms, fields, b"a").status_code == 200


def test_every_call_is_in_the_audit_chain_with_its_request_metadata(kms: Kms) -> None:
    aad = b"ctx"
    fields = _encrypt(kms, b"pt", aad).json()
    _decrypt(kms, fields, aad)
    _decrypt(kms, fields, b"other")
    records = kms.records()[-3:]
    assert [r["op"] for r in records] == ["xks.encrypt", "xks.decrypt", "xks.decrypt"]
    assert [r["outcome"] for r in records] == ["ok", "ok", "denied"]
    assert records[2]["why"] == "InvalidCiphertextException"
    from ownkey.envelope import sha256

    for record in records:
        assert record["awsPrincipalArn"] == META["awsPrincipalArn"]
        assert record["kmsKeyArn"] == META["kmsKeyArn"]
        assert record["kmsRequestId"] == META["kmsRequestId"]
        assert record["kmsViaService"] == "ebs"
        assert record["access_key_id"] == AKID
        assert record["resource"] == "key-1"
    assert records[0]["kmsOperation"] == "Encrypt"
    assert records[1]["kmsOperation"] == "Decrypt"
    assert records[0]["aad_sha256"] == sha256(aad).hex()
    assert kms.store.verify().ok  # the chain recomputes


def test_two_secrets_at_once_then_the_old_one_removed(kms: Kms, tmp_path: Path) -> None:
    _write_credentials(tmp_path, (AKID, SECRET), (AKID2, SECRET2))
    assert _encrypt(kms, b"a").status_code == 200
    assert _encrypt(kms, b"a", akid=AKID2, secret=SECRET2).status_code == 200
    _write_credentials(tmp_path, (AKID2, SECRET2))
    _is(_encrypt(kms, b"a"), "AuthenticationFailedException", 401)
    assert _encrypt(kms, b"a", akid=AKID2, secret=SECRET2).status_code == 200


def test_no_secret_or_plaintext_in_any_answer_log_or_audit_record(
    kms: Kms, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plaintext = b"TOP-SECRET-PLAINTEXT"
    answers = [_encrypt(kms, plaintext).text, _encrypt(kms, plaintext, secret="x" * 43).text]
    fields = _encrypt(kms, plaintext).json()
    answers.append(_decrypt(kms, fields).text)
    chain = b"".join(r.body for r in kms.store.records()).decode()
    logged = caplog.text
    for text in (*answers[:2], chain, logged):
        assert SECRET not in text
        assert "x" * 43 not in text
        assert base64.b64encode(plaintext).decode() not in text
        assert plaintext.decode() not in text
    assert SECRET not in repr(kms)


def test_the_verifier_is_pure_and_takes_its_clock() -> None:
    request = AWSRequest(method="POST", url="https://xks.example/kms/xks/v1/health", data=b"{}")
    SigV4Auth(Credentials(AKID, SECRET), "kms-xks-proxy", REGION).add_auth(request)
    signed = SignedRequest(
        method="POST",
        path="/kms/xks/v1/health",
        query="",
        headers=[*request.headers.items(), ("host", "xks.example")],
        body=b"{}",
    )
    secrets = {AKID: SECRET}
    now = time.time()
    assert verify(signed, secrets=secrets, region=REGION, now=now).ok
    late = verify(signed, secrets=secrets, region=REGION, now=now + 301)
    assert not late.ok
    assert late.access_key_id == AKID
    assert SECRET not in repr(late)


def test_health_without_request_metadata_is_validation_400(kms: Kms) -> None:
    """AWS's test client wants it, although the spec's table excludes health from it."""
    _is(kms.call(f"{PREFIX}/kms/xks/v1/health", {}), "ValidationException", 400)
    health = {"requestMetadata": {}}
    _is(kms.call(f"{PREFIX}/kms/xks/v1/health", health), "ValidationException", 400)


def test_key_usage_is_invalid_key_usage_400(kms: Kms, tmp_path: Path) -> None:
    provider, key_id = kms.xks._provider, kms.xks._provider_key
    create_xks_key(tmp_path, provider, key_id, ORG, "enc-only", ("ENCRYPT",))
    create_xks_key(tmp_path, provider, key_id, ORG, "neither", ())
    meta = kms.key("enc-only", "metadata", {"requestMetadata": META}).json()
    assert meta["keyUsage"] == ["ENCRYPT"]
    body = {"requestMetadata": META, "plaintext": "AA==", "encryptionAlgorithm": "AES_GCM"}
    sealed = kms.key("enc-only", "encrypt", body)
    assert sealed.status_code == 200
    cdiv = {**body, "ciphertextDataIntegrityValueAlgorithm": "SHA_256"}
    _is(kms.key("enc-only", "encrypt", cdiv), "InvalidKeyUsageException", 400)
    decrypt = {"requestMetadata": META, "encryptionAlgorithm": "AES_GCM", **sealed.json()}
    _is(kms.key("enc-only", "decrypt", decrypt), "InvalidKeyUsageException", 400)
    _is(kms.key("neither", "encrypt", body), "InvalidKeyUsageException", 400)


def test_over_the_size_this_proxy_supports_is_unsupported_operation_501(kms: Kms) -> None:
    _is(_encrypt(kms, b"x" * 8193), "UnsupportedOperationException", 501)
    _is(_encrypt(kms, b"x" * 20000), "UnsupportedOperationException", 501)
    assert _encrypt(kms, b"x" * 4300, b"a" * 8192).status_code == 200  # the spec's floors
    fields = _encrypt(kms, b"x").json()
    long_iv = {**fields, "initializationVector": base64.b64encode(b"i" * 16).decode()}
    _is(_decrypt(kms, long_iv), "InvalidCiphertextException", 400)


def test_a_credentials_file_others_can_read_fails_closed_500(kms: Kms, tmp_path: Path) -> None:
    (tmp_path / XKS_CREDENTIALS_FILE).chmod(0o644)
    os.utime(tmp_path / XKS_CREDENTIALS_FILE, ns=(time.time_ns(), time.time_ns() + 1000))
    _is(_encrypt(kms, b"k"), "InternalException", 500)
    assert kms.records()[-1]["why"] == "InternalException: ConfigError"


def test_serve_mounts_xks_from_the_homes_xks_section(tmp_path: Path) -> None:
    from ownkey.hybrid import Issuer, init_home
    from ownkey.hybrid._app import build_service, build_xks
    from ownkey.hybrid._config import load_config

    home = tmp_path / "kacls"
    config = init_home(
        home,
        org=ORG,
        authentication=Issuer("https://idp.acme.example", "ownkey-hybrid"),
        authorization=Issuer("https://platform.example/hybrid", "ownkey-hybrid"),
    )
    assert build_xks(config, build_service(config)) is None  # no xks section: not served
    raw = json.loads((home / "hybrid.json").read_text())
    raw["xks"] = {"region": REGION, "uri_prefix": PREFIX}
    (home / "hybrid.json").write_text(json.dumps(raw))
    _write_credentials(home, (AKID, SECRET))
    config = load_config(home)
    service = build_service(config)
    xks = build_xks(config, service)
    assert xks is not None
    create_xks_key(home, service.provider, service.key_id, ORG, "key-1")
    with TestClient(build_app(service, xks)) as client:
        kms = Kms(client, service.store, xks)
        assert _encrypt(kms, b"through serve").status_code == 200
        assert client.get("/status").status_code == 200  # the KACLS routes stay
