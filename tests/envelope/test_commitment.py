"""Section 8: key commitment.

Plain AES-GCM is not key-committing. This test *builds* an AES-GCM ciphertext that pyca's AESGCM
accepts under two different keys (solving GHASH for one free ciphertext block, the "invisible
salamanders" construction), frames it as an ownkey message envelope, and checks that ownkey
accepts it under at most one scope key. The GF(2^128) arithmetic here is test code attacking the
format, not a primitive ownkey uses.
"""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ownkey.envelope import SECRET_KEY_ACCESS, EncryptionContext, MessageCipher, ScopeKey
from ownkey.envelope._primitives import hkdf_sha256
from ownkey.errors import InvalidCiphertext

_R = 0xE1 << 120


def _gf_mul(x: int, y: int) -> int:
    """Multiplication in GCM's GF(2^128) (NIST SP 800-38D, algorithm 1)."""
    z, v = 0, x
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def _gf_pow(x: int, n: int) -> int:
    result = 1 << 127  # the field's one in GCM's bit order
    while n:
        if n & 1:
            result = _gf_mul(result, x)
        x = _gf_mul(x, x)
        n >>= 1
    return result


def _gf_inv(x: int) -> int:
    return _gf_pow(x, 2**128 - 2)


def _block(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _aes_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _blocks(data: bytes) -> list[int]:
    padded = data + bytes(-len(data) % 16)
    return [_block(padded[i : i + 16]) for i in range(0, len(padded), 16)]


def _ghash(h: int, aad: bytes, ciphertext: bytes) -> int:
    lengths = struct.pack(">QQ", len(aad) * 8, len(ciphertext) * 8)
    acc = 0
    for block in [*_blocks(aad), *_blocks(ciphertext), _block(lengths)]:
        acc = _gf_mul(acc ^ block, h)
    return acc


def _tag(key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> int:
    h = _block(_aes_block(key, bytes(16)))
    return _ghash(h, aad, ciphertext) ^ _block(_aes_block(key, nonce + b"\x00\x00\x00\x01"))


def colliding_ciphertext(key1: bytes, key2: bytes, nonce: bytes, aad: bytes) -> bytes:
    """A 2-block ciphertext plus tag that AES-GCM accepts under both keys."""
    first = bytes(16)
    h1, h2 = (_block(_aes_block(k, bytes(16))) for k in (key1, key2))
    # With the second block zero, the tags differ by `gap`; the second block enters GHASH
    # multiplied by H^2 (it is followed by the length block), so solve for it.
    gap = _tag(key1, nonce, aad, first + bytes(16)) ^ _tag(key2, nonce, aad, first + bytes(16))
    coefficient = _gf_pow(h1, 2) ^ _gf_pow(h2, 2)
    second = _gf_mul(gap, _gf_inv(coefficient)).to_bytes(16, "big")
    ciphertext = first + second
    tag = _tag(key1, nonce, aad, ciphertext)
    assert tag == _tag(key2, nonce, aad, ciphertext)
    return ciphertext + tag.to_bytes(16, "big")


def test_gf_arithmetic_agrees_with_pyca() -> None:
    """The attack's own GHASH reproduces pyca's tags, so the attack below is real."""
    key, nonce, aad, ct = bytes(range(32)), bytes(12), b"aad", bytes(range(40))
    sealed = AESGCM(key).encrypt(nonce, ct, aad)
    assert _tag(key, nonce, aad, sealed[:-16]) == _block(sealed[-16:])


def test_ownkey_accepts_a_two_key_ciphertext_under_at_most_one_key() -> None:
    """Section 8, ENV-4.2, ENV-4.5: commitment makes the envelope open under one key only."""
    scope1 = ScopeKey(b"sk", bytes(range(32)))
    scope2 = ScopeKey(b"sk", bytes(range(100, 132)))
    ctx = EncryptionContext(org="acme", service_id="0008")
    k1, k2 = (
        hkdf_sha256(k.material(SECRET_KEY_ACCESS), salt=None, info=b"ownkey/v1/message", length=64)
        for k in (scope1, scope2)
    )
    nonce = bytes(range(12))
    commitment1 = k1[32:]
    header = b"\x01\x01\x02sk" + nonce + commitment1
    aad = header + ctx.encoded
    forged = colliding_ciphertext(k1[:32], k2[:32], nonce, aad)

    # Plain AES-GCM accepts it under both derived keys, to two different plaintexts.
    p1 = AESGCM(k1[:32]).decrypt(nonce, forged, aad)
    p2 = AESGCM(k2[:32]).decrypt(nonce, forged, aad)
    assert p1 != p2

    envelope = header + forged
    assert MessageCipher(scope1).open(envelope, ctx) == p1
    with pytest.raises(InvalidCiphertext):
        MessageCipher(scope2).open(envelope, ctx)
    # The attacker's best move, the other commitment, loses the first key instead.
    swapped = envelope.replace(commitment1, k2[32:])
    with pytest.raises(InvalidCiphertext):
        MessageCipher(scope1).open(swapped, ctx)
