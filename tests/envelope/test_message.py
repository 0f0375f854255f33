"""ENV-4: the message suite."""

from __future__ import annotations

import os

import pytest

from ownkey.envelope import (
    MESSAGE_FIXED_OVERHEAD,
    EncryptionContext,
    MessageCipher,
    ScopeKey,
    open_message,
    peek_key_id,
    seal_message,
)
from ownkey.errors import InvalidCiphertext, LimitExceeded

KEY = ScopeKey(b"sk-test", bytes(range(32)))
OTHER = ScopeKey(b"sk-test", bytes(range(1, 33)))
CTX = EncryptionContext(org="acme", service_id="0008", scope="chan-1", epoch="2026112913")


def test_round_trip_and_overhead() -> None:
    """ENV2-4.7: 79 bytes beyond the key id."""
    for size in (0, 1, 1024, 70_000):
        plaintext = os.urandom(size)
        envelope = seal_message(KEY, plaintext, CTX)
        assert len(envelope) - size - len(KEY.key_id) == MESSAGE_FIXED_OVERHEAD == 79
        assert open_message(KEY, envelope, CTX) == plaintext


def test_key_id_is_readable_without_the_key() -> None:
    """ENV-4.1: the header names the scope key to fetch."""
    assert peek_key_id(seal_message(KEY, b"hi", CTX)) == b"sk-test"


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x01", b"\x03\x01\x01x", b"\x02\x02\x01x", b"\x01\x03\x01x", b"\x01\x01\x00x"],
)
def test_peek_refuses_malformed_headers(garbage: bytes) -> None:
    """ENV-9.1."""
    with pytest.raises(InvalidCiphertext):
        peek_key_id(garbage)


def test_wrong_key_same_id_is_refused_by_the_commitment() -> None:
    """ENV-4.5, ENV-7.1."""
    envelope = seal_message(KEY, b"hello", CTX)
    with pytest.raises(InvalidCiphertext):
        open_message(OTHER, envelope, CTX)


def test_every_context_change_is_refused() -> None:
    """ENV-4.4: the full context is bound."""
    envelope = seal_message(KEY, b"hello", CTX)
    for change in ({"org": "globex"}, {"extra": ""}, {"epoch": "2026112914"}):
        with pytest.raises(InvalidCiphertext):
            open_message(KEY, envelope, {**CTX, **change})
    with pytest.raises(InvalidCiphertext):
        open_message(KEY, envelope, {k: v for k, v in CTX.items() if k != "scope"})


def test_nonces_are_fresh() -> None:
    """ENV-4.3: 10,000 seals, 10,000 distinct nonces."""
    cipher = MessageCipher(KEY)
    start = 3 + len(KEY.key_id) + 16
    nonces = {cipher.seal(b"", CTX)[start : start + 12] for _ in range(10_000)}
    assert len(nonces) == 10_000


def test_forked_child_does_not_reuse_buffered_nonces() -> None:
    """ENV-4.3: the nonce pool empties itself in a forked child."""
    cipher = MessageCipher(KEY)
    start = 3 + len(KEY.key_id) + 16
    cipher.seal(b"", CTX)  # fills the pool
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write_end, cipher.seal(b"", CTX)[start : start + 12])
        os._exit(0)
    os.waitpid(pid, 0)
    child_nonce = os.read(read_end, 12)
    parent_nonce = cipher.seal(b"", CTX)[start : start + 12]
    assert child_nonce != parent_nonce


def test_oversize_message_is_refused() -> None:
    """ENV-4.8."""
    with pytest.raises(LimitExceeded, match="stream suite"):
        MessageCipher(KEY).seal(bytes(64 * 1024 * 1024 + 1), CTX)


def test_key_objects_do_not_print_material() -> None:
    """ENV-7.2."""
    material = bytes(range(32))
    for text in (repr(KEY), str(KEY), repr(MessageCipher(KEY))):
        assert "redacted" in text
        assert material.hex() not in text


def test_material_needs_the_token() -> None:
    """ENV-7.2."""
    with pytest.raises(PermissionError):
        KEY.material(object())  # type: ignore[arg-type]
