"""Known-answer vectors (vectors/envelope-v1.json): pinned, reproducible, and all behaving."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ownkey.envelope import (
    EncryptionContext,
    ScopeKey,
    combine_shares,
    open_message,
    open_range,
    open_stream,
)
from ownkey.errors import InvalidCiphertext

from . import vectors_v1

PATH = Path(__file__).resolve().parents[2] / "vectors" / "envelope-v1.json"
# Changing the format, or the vectors, must be a deliberate act: update this digest with it.
PINNED_SHA256 = "5bba242396750a316d18f3ad847a98f46f5b2e7a6f1770c85e757a193a695518"
DATA: dict[str, Any] = json.loads(PATH.read_text(encoding="utf-8"))


def test_committed_vectors_are_pinned() -> None:
    """ENV-9.1: the vectors file is exactly the one the spec was written against."""
    assert hashlib.sha256(PATH.read_bytes()).hexdigest() == PINNED_SHA256


def test_generator_reproduces_the_committed_file() -> None:
    """Sealing with the recorded randomness gives the committed bytes: the format is stable."""
    assert vectors_v1.render() == PATH.read_text(encoding="utf-8")


def test_vector_counts() -> None:
    assert (len(DATA["valid"]), len(DATA["invalid"])) == (9, 26)


def _key(case: dict[str, Any]) -> ScopeKey:
    return ScopeKey(bytes.fromhex(case["key_id"]), bytes.fromhex(case["scope_key"]))


def _open(case: dict[str, Any], key: ScopeKey) -> bytes:
    envelope = bytes.fromhex(case["envelope"])
    context = EncryptionContext(case["context"])
    if case["suite"] == "message":
        return open_message(key, envelope, context)
    sink = io.BytesIO()
    open_stream(key, context, io.BytesIO(envelope), sink)
    return sink.getvalue()


@pytest.mark.parametrize("case", DATA["valid"], ids=lambda case: case["name"])
def test_valid_vectors_open(case: dict[str, Any]) -> None:
    key = _key(case)
    plaintext = bytes.fromhex(case["plaintext"])
    assert _open(case, key) == plaintext
    if case["suite"] == "stream":
        envelope = io.BytesIO(bytes.fromhex(case["envelope"]))
        middle = len(plaintext) // 2
        context = EncryptionContext(case["context"])
        assert (
            open_range(key, context, envelope, middle, middle + 5) == plaintext[middle : middle + 5]
        )
    if "shares" in case:  # ENV-6.1: the scope key is the combination of the recorded shares
        combined = combine_shares([bytes.fromhex(share) for share in case["shares"]])
        assert combined.hex() == case["scope_key"]


@pytest.mark.parametrize("case", DATA["invalid"], ids=lambda case: case["name"])
def test_invalid_vectors_are_refused(case: dict[str, Any]) -> None:
    """ENV-7.1: the same opaque error, whatever is wrong."""
    with pytest.raises(InvalidCiphertext) as caught:
        _open(case, _key(case))
    assert str(caught.value) == "invalid ciphertext"
