"""Key and context commitment of what ownkey writes today: message v2 (ENV2-4.4, ENV2-4.5) and
the stream suite (ENV-5.3, ENV-5.6).

``test_commitment.py`` attacks only the version 1 message. Here the same "invisible
salamanders" construction (one AES-GCM ciphertext and tag that decrypt under two keys, to two
plaintexts) is framed as a version 2 message and as a stream, under two (scope key, context)
pairs, and each envelope must open under at most one of them; the commitment each opener
recomputes is what refuses the other. The attack derives the keys from the spec's text with
pyca directly, so it does not trust ownkey's derivation.
"""

from __future__ import annotations

import io
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ownkey.envelope import (
    SECRET_KEY_ACCESS,
    EncryptionContext,
    MessageCipher,
    ScopeKey,
    StreamOpener,
    open_stream,
)
from ownkey.envelope._primitives import hkdf_sha256, sha256
from ownkey.errors import InvalidCiphertext
from tests.envelope.test_commitment import _aes_block, _block, _gf_inv, _gf_mul, _gf_pow, _tag

SK1 = ScopeKey(b"sk", bytes(range(32)))
SK2 = ScopeKey(b"sk", bytes(range(100, 132)))
CTX1 = EncryptionContext(org="acme", service_id="0008", scope="chat-1")
CTX2 = EncryptionContext(org="acme", service_id="0008", scope="chat-2")


def colliding(key1: bytes, key2: bytes, nonce: bytes, aad1: bytes, aad2: bytes) -> bytes:
    """Two ciphertext blocks plus a tag that AES-GCM accepts under (key1, aad1) and (key2, aad2):
    the second block enters GHASH times H^2, so it is solved for."""
    first = bytes(16)
    h1, h2 = (_block(_aes_block(k, bytes(16))) for k in (key1, key2))
    probe = first + bytes(16)
    gap = _tag(key1, nonce, aad1, probe) ^ _tag(key2, nonce, aad2, probe)
    second = _gf_mul(gap, _gf_inv(_gf_pow(h1, 2) ^ _gf_pow(h2, 2))).to_bytes(16, "big")
    ciphertext = first + second
    tag = _tag(key1, nonce, aad1, ciphertext)
    assert tag == _tag(key2, nonce, aad2, ciphertext)
    return ciphertext + tag.to_bytes(16, "big")


# -- message suite, version 2 --------------------------------------------------------------------

SALT = bytes(range(16))
NONCE = bytes(range(50, 62))
PREFIX_N = b"\x02\x01\x02sk" + SALT + NONCE  # ENV2-4.1: version, suite, kid, salt, nonce


def _message_keys(key: ScopeKey) -> tuple[bytes, bytes]:
    """(K_msg, K_com) of ENV2-4.2 for the test's kid and salt."""
    okm = hkdf_sha256(
        key.material(SECRET_KEY_ACCESS),
        salt=SALT,
        info=b"ownkey/v2/message" + b"\x02sk",
        length=64,
    )
    return okm[:32], okm[32:]


def _commitment(k_com: bytes, ctx: EncryptionContext) -> bytes:
    return sha256(k_com + PREFIX_N + ctx.encoded)


def _opens(envelope: bytes, key: ScopeKey, ctx: EncryptionContext) -> bytes | None:
    try:
        return MessageCipher(key).open(envelope, ctx)
    except InvalidCiphertext:
        return None


@pytest.mark.parametrize(
    ("ctx1", "ctx2"), [(CTX1, CTX1), (CTX1, CTX2)], ids=["two-keys", "two-keys-two-contexts"]
)
def test_a_v2_message_that_aes_gcm_opens_under_two_keys_opens_under_one(
    ctx1: EncryptionContext, ctx2: EncryptionContext
) -> None:
    """ENV2-4.4, ENV2-4.5: whichever commitment the forger writes, one (SK, context) opens it."""
    (m1, c1), (m2, c2) = _message_keys(SK1), _message_keys(SK2)
    forged = colliding(m1, m2, NONCE, PREFIX_N + ctx1.encoded, PREFIX_N + ctx2.encoded)
    p1 = AESGCM(m1).decrypt(NONCE, forged, PREFIX_N + ctx1.encoded)
    p2 = AESGCM(m2).decrypt(NONCE, forged, PREFIX_N + ctx2.encoded)
    assert p1 != p2  # plain AES-GCM: one ciphertext, two keys, two plaintexts

    first = PREFIX_N + _commitment(c1, ctx1) + forged
    assert _opens(first, SK1, ctx1) == p1  # the framing is right: ownkey opens it once
    assert _opens(first, SK2, ctx2) is None
    second = PREFIX_N + _commitment(c2, ctx2) + forged
    assert _opens(second, SK2, ctx2) == p2
    assert _opens(second, SK1, ctx1) is None


def test_a_key_holder_cannot_move_a_v2_message_to_another_context() -> None:
    """ENV2-4.4: who knows K_msg can re-tag the ciphertext for a second context (AES-GCM alone
    allows it); the commitment still names the first context, so the envelope opens under
    neither (version 1, whose commitment omitted the context, opened it under the second)."""
    k_msg, k_com = _message_keys(SK1)
    sealed = AESGCM(k_msg).encrypt(NONCE, b"pay alice", PREFIX_N + CTX1.encoded)
    genuine = PREFIX_N + _commitment(k_com, CTX1) + sealed
    assert _opens(genuine, SK1, CTX1) == b"pay alice"
    assert _opens(genuine, SK1, CTX2) is None
    retagged = AESGCM(k_msg).encrypt(NONCE, b"pay alice", PREFIX_N + CTX2.encoded)
    moved = PREFIX_N + _commitment(k_com, CTX1) + retagged
    assert _opens(moved, SK1, CTX2) is None
    assert _opens(moved, SK1, CTX1) is None


# -- stream suite ---------------------------------------------------------------------------------

STREAM_SALT = bytes(range(32))
SEGMENT = 64  # the forged 32-byte plaintext is one final segment
STREAM_PREFIX = b"\x01\x02\x02sk" + struct.pack(">I", SEGMENT) + STREAM_SALT
LAST_NONCE = bytes(3) + struct.pack(">Q", 0) + b"\x01"  # ENV-5: segment 0, the last


def _stream_keys(key: ScopeKey, ctx: EncryptionContext) -> tuple[bytes, bytes]:
    """(K_asset, commitment) of ENV-5.3."""
    okm = hkdf_sha256(
        key.material(SECRET_KEY_ACCESS),
        salt=STREAM_SALT,
        info=b"ownkey/v1/stream" + STREAM_PREFIX + ctx.encoded,
        length=64,
    )
    return okm[:32], okm[32:]


def _stream_opens(stream: bytes, key: ScopeKey, ctx: EncryptionContext) -> set[bytes] | None:
    """What the whole-stream opener and the ranged opener return (None when both refuse; a
    split verdict fails the test)."""
    results: list[bytes | None] = []
    try:
        sink = io.BytesIO()
        open_stream(key, ctx, io.BytesIO(stream), sink)
        results.append(sink.getvalue())
    except InvalidCiphertext:
        results.append(None)
    try:
        results.append(StreamOpener(key, ctx, io.BytesIO(stream)).read(0))
    except InvalidCiphertext:
        results.append(None)
    assert results[0] == results[1]
    return None if results[0] is None else {results[0]}


@pytest.mark.parametrize(
    ("key2", "ctx2"),
    [(SK2, CTX1), (SK1, CTX2), (SK2, CTX2)],
    ids=["two-keys", "one-key-two-contexts", "two-keys-two-contexts"],
)
def test_a_stream_that_aes_gcm_opens_under_two_asset_keys_opens_under_one(
    key2: ScopeKey, ctx2: EncryptionContext
) -> None:
    """ENV-5.3, ENV-5.6: the asset key depends on the scope key and the context, so one scope
    key under two contexts is two AES keys too; the commitment refuses all but one pair."""
    (a1, com1), (a2, com2) = _stream_keys(SK1, CTX1), _stream_keys(key2, ctx2)
    forged = colliding(a1, a2, LAST_NONCE, b"", b"")
    p1 = AESGCM(a1).decrypt(LAST_NONCE, forged, b"")
    p2 = AESGCM(a2).decrypt(LAST_NONCE, forged, b"")
    assert p1 != p2

    first = STREAM_PREFIX + com1 + forged
    assert _stream_opens(first, SK1, CTX1) == {p1}
    assert _stream_opens(first, key2, ctx2) is None
    second = STREAM_PREFIX + com2 + forged
    assert _stream_opens(second, key2, ctx2) == {p2}
    assert _stream_opens(second, SK1, CTX1) is None
