"""Known-answer vectors of envelope v2 (vectors/envelope-v2.json): pinned, reproducible, and
rebuilt once more from the spec with pyca directly, independently of ownkey's message code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ownkey.envelope import EncryptionContext, ScopeKey, combine_shares, open_message
from ownkey.errors import InvalidCiphertext
from ownkey.keys import KeyRef, ScopeKeyRecord, record_binding

from . import vectors_v2

PATH = Path(__file__).resolve().parents[2] / "vectors" / "envelope-v2.json"
# Changing the format, or the vectors, must be a deliberate act: update this digest with it.
PINNED_SHA256 = "0c34b078a42e693e4f0b9c81114cc346d7fbb41c92859fae4a830e47d629033e"
DATA: dict[str, Any] = json.loads(PATH.read_text(encoding="utf-8"))


def test_committed_vectors_are_pinned() -> None:
    """ENV2-9.1: the vectors file is exactly the one the spec was written against."""
    assert hashlib.sha256(PATH.read_bytes()).hexdigest() == PINNED_SHA256


def test_generator_reproduces_the_committed_file() -> None:
    assert vectors_v2.render() == PATH.read_text(encoding="utf-8")


def test_vector_counts() -> None:
    assert (len(DATA["valid"]), len(DATA["invalid"])) == (5, 16)


def _key(case: dict[str, Any]) -> ScopeKey:
    return ScopeKey(bytes.fromhex(case["key_id"]), bytes.fromhex(case["scope_key"]))


@pytest.mark.parametrize("case", DATA["valid"], ids=lambda case: case["name"])
def test_valid_vectors_open(case: dict[str, Any]) -> None:
    envelope = bytes.fromhex(case["envelope"])
    plaintext = open_message(_key(case), envelope, EncryptionContext(case["context"]))
    assert plaintext == bytes.fromhex(case["plaintext"])


@pytest.mark.parametrize("case", DATA["valid"], ids=lambda case: case["name"])
def test_valid_vectors_follow_the_spec_byte_for_byte(case: dict[str, Any]) -> None:
    """ENV2-4.2 to 4.4, recomputed with pyca from the recorded key, salt and nonce."""
    material, kid = bytes.fromhex(case["scope_key"]), bytes.fromhex(case["key_id"])
    random = bytes.fromhex(case["random"])
    salt, nonce = random[:16], random[16:28]
    okm = HKDF(hashes.SHA256(), 64, salt, b"ownkey/v2/message" + bytes((len(kid),)) + kid).derive(
        material
    )
    prefix = bytes((0x02, 0x01, len(kid))) + kid + salt + nonce
    aad = prefix + EncryptionContext(case["context"]).encoded
    commitment = hashlib.sha256(okm[32:] + aad).digest()
    body = AESGCM(okm[:32]).encrypt(nonce, bytes.fromhex(case["plaintext"]), aad)
    assert prefix + commitment + body == bytes.fromhex(case["envelope"])


def test_the_bound_combination_of_the_two_share_vector() -> None:
    """ENV2-6.1: the scope key is the shares combined with the record binding."""
    case = next(c for c in DATA["valid"] if c["name"] == "message-two-shares-bound")
    shares = [bytes.fromhex(s) for s in case["shares"]]
    binding = bytes.fromhex(case["binding"])
    assert combine_shares(shares, binding).hex() == case["scope_key"]
    assert combine_shares(shares).hex() != case["scope_key"]
    info = b"ownkey/v2/combine-shares" + bytes((2,)) + binding
    assert HKDF(hashes.SHA256(), 32, None, info).derive(b"".join(shares)).hex() == case["scope_key"]


def test_the_two_share_vector_binds_the_record_its_envelope_names() -> None:
    """Issue 23: the binding is the one of the record with the envelope's own scope-key id and
    scope (it once named another id and scope, so it pinned a record no envelope could use)."""
    case = next(c for c in DATA["valid"] if c["name"] == "message-two-shares-bound")
    record = ScopeKeyRecord(
        key_id=bytes.fromhex(case["key_id"]),
        orgs=("acme", "globex"),
        service_id=case["context"]["service_id"],
        scope=case["context"]["scope"],
        epoch_start=1_764_590_400,
        epoch_seconds=3600,
        wraps=(),
        created_at=0.0,
        format=3,
        origin=(KeyRef.customer("acme"), KeyRef.customer("globex")),
    )
    assert record_binding(record) == bytes.fromhex(case["binding"])
    assert bytes.fromhex(case["envelope"])[3:][: len(record.key_id)] == record.key_id


@pytest.mark.parametrize("case", DATA["invalid"], ids=lambda case: case["name"])
def test_invalid_vectors_are_refused_alike(case: dict[str, Any]) -> None:
    context = EncryptionContext(case["context"])
    with pytest.raises(InvalidCiphertext) as refused:
        open_message(_key(case), bytes.fromhex(case["envelope"]), context)
    assert str(refused.value) == "invalid ciphertext"
    assert refused.value.__cause__ is None
