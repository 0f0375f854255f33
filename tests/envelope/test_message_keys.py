"""ENV2-4.2, ENV2-4.6: every MessageCipher seals under its own derived keys, each used at most
2^20 times, so the nonce-collision bound holds per AES key whatever the number of instances.

Issue 10, finding 1: in version 1 every cipher instance of one scope key (threads, processes,
nodes, cache reloads) sealed under the same AES key, each counting alone. These tests rebuild
the AES key of each envelope from the spec, independently of ownkey's code, and count its uses.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ownkey.envelope import SECRET_KEY_ACCESS, EncryptionContext, MessageCipher, ScopeKey, _message
from ownkey.errors import InvalidCiphertext

KEY = ScopeKey(b"sk-budget", bytes(range(32)))
CTX = EncryptionContext(org="acme", service_id="0008", scope="chan-1", asset_id="m1")
KID_END = 3 + len(KEY.key_id)


def _aes_key(envelope: bytes) -> bytes:
    """The message key of ``envelope`` per ENV2-4.2, derived with pyca directly."""
    salt = envelope[KID_END : KID_END + 16]
    okm = HKDF(hashes.SHA256(), 64, salt, b"ownkey/v2/message" + envelope[2:KID_END]).derive(
        KEY.material(SECRET_KEY_ACCESS)
    )
    return okm[:32]


def _decrypts_with(envelope: bytes, aes_key: bytes) -> bool:
    nonce = envelope[KID_END + 16 : KID_END + 28]
    aad = envelope[: KID_END + 28] + CTX.encoded
    try:
        AESGCM(aes_key).decrypt(nonce, envelope[KID_END + 60 :], aad)
    except Exception:
        return False
    return True


def test_two_instances_of_one_scope_key_never_share_an_aes_key() -> None:
    """Two processes, nodes or cache reloads: two ciphers, two keys (finding 1)."""
    first = MessageCipher(KEY).seal(b"hello", CTX)
    second = MessageCipher(KEY).seal(b"hello", CTX)
    assert _decrypts_with(first, _aes_key(first))
    assert _decrypts_with(second, _aes_key(second))
    assert _aes_key(first) != _aes_key(second)
    assert not _decrypts_with(first, _aes_key(second))


def test_a_derived_key_seals_at_most_its_budget_then_the_cipher_moves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENV2-4.6: past the budget a fresh salt, never an error and never a retired scope key."""
    monkeypatch.setattr(_message, "SEALS_PER_MESSAGE_KEY", 3)
    cipher = MessageCipher(KEY)
    sealed = [cipher.seal(b"%d" % i, CTX) for i in range(7)]
    uses = Counter(_aes_key(envelope) for envelope in sealed)
    assert sorted(uses.values()) == [1, 3, 3]
    assert cipher.uses == 7
    opener = MessageCipher(KEY)
    assert [opener.open(envelope, CTX) for envelope in sealed] == [b"%d" % i for i in range(7)]


def test_concurrent_sealers_never_push_a_key_past_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The budget is counted atomically per derived key: 8 threads, 4,000 seals, budget 50."""
    monkeypatch.setattr(_message, "SEALS_PER_MESSAGE_KEY", 50)
    cipher = MessageCipher(KEY)
    out: list[bytes] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [cipher.seal(b"x", CTX) for _ in range(500)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uses = Counter(envelope[KID_END : KID_END + 16] for envelope in out)
    assert len(out) == 4000
    assert max(uses.values()) <= 50
    assert sum(uses.values()) == 4000


def test_a_forked_child_seals_under_its_own_key() -> None:
    """ENV2-4.3: a child never spends its parent's key budget (nor its buffered nonces)."""
    cipher = MessageCipher(KEY)
    parent_before = cipher.seal(b"", CTX)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write_end, cipher.seal(b"", CTX))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read_end, 4096)
    parent_after = cipher.seal(b"", CTX)
    assert _aes_key(parent_before) == _aes_key(parent_after)
    assert _aes_key(child) != _aes_key(parent_before)
    assert cipher.open(child, CTX) == b""


def test_the_commitment_binds_the_context_for_a_key_holder() -> None:
    """ENV2-4.4, finding 8: one who knows the message key cannot make an envelope that also
    passes under another context; the commitment is checked before the tag."""
    envelope = MessageCipher(KEY).seal(b"pay bob", CTX)
    other = EncryptionContext({**CTX, "asset_id": "m2"})
    nonce = envelope[KID_END + 16 : KID_END + 28]
    # A key holder re-encrypts under the same derived key for the other context, keeping the
    # header (and so the commitment) of the original: the commitment no longer matches.
    forged = envelope[: KID_END + 60] + AESGCM(_aes_key(envelope)).encrypt(
        nonce, b"pay eve", envelope[: KID_END + 28] + other.encoded
    )
    with pytest.raises(InvalidCiphertext):
        MessageCipher(KEY).open(forged, other)
    with pytest.raises(InvalidCiphertext):
        MessageCipher(KEY).open(envelope, other)


def test_an_opener_keeps_a_bounded_number_of_derived_keys() -> None:
    """A flood of envelopes with random salts costs one HKDF each and bounded memory."""
    sender = [MessageCipher(KEY).seal(b"x", CTX) for _ in range(_message._OPEN_KEYS + 10)]
    opener = MessageCipher(KEY)
    for envelope in sender:
        assert opener.open(envelope, CTX) == b"x"
    assert len(opener._opening) == _message._OPEN_KEYS
