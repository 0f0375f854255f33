"""ENV-7.1 at scale: at least 1,000,000 tampered envelopes per run, none accepted.

Mutations, over many envelopes with random keys, contexts and sizes: every single-bit flip,
every byte substituted by random values, every truncation, every single-byte deletion and
insertion, random multi-byte splices, appended bytes, and substitutions of key and context.
Stream envelopes (small segments) get the same byte-level treatment plus segment-level moves in
test_stream.py. The campaign is deterministic (seeded) so a failure reproduces.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator

import pytest

from ownkey.envelope import EncryptionContext, MessageCipher, ScopeKey, open_range
from ownkey.errors import InvalidCiphertext

from ._helpers import open_bytes, seal_bytes

MESSAGE_TARGET = 1_000_000
STREAM_TARGET = 60_000


def _mutations(envelope: bytes, rng: random.Random, substitutions: int) -> Iterator[bytes]:
    """Every single-byte-class edit of ``envelope`` plus random ones; never the original."""
    size = len(envelope)
    for position in range(size):
        for bit in range(8):
            yield (
                envelope[:position]
                + bytes((envelope[position] ^ (1 << bit),))
                + envelope[position + 1 :]
            )
        yield envelope[:position] + envelope[position + 1 :]
        yield envelope[:position] + bytes((rng.randrange(256),)) + envelope[position:]
    for length in range(size):
        yield envelope[:length]
    for _ in range(substitutions):
        position = rng.randrange(size)
        value = rng.randrange(1, 256)
        yield envelope[:position] + bytes((envelope[position] ^ value,)) + envelope[position + 1 :]
    for _ in range(substitutions // 8):
        start = rng.randrange(size)
        end = rng.randrange(start, min(size, start + 8) + 1)
        splice = rng.randbytes(rng.randrange(0, 9))
        candidate = envelope[:start] + splice + envelope[end:]
        if candidate != envelope:
            yield candidate
    yield envelope + b"\x00"
    yield envelope + rng.randbytes(16)


def _random_context(rng: random.Random) -> EncryptionContext:
    return EncryptionContext(
        org=rng.choice(["acme", "globex", "initech"]),
        service_id=rng.choice(["0001", "0008", "9999"]),
        scope=f"c{rng.randrange(10**6)}",
        epoch=str(rng.randrange(10**6)),
    )


def _campaign(
    target: int,
    rng: random.Random,
    make: Callable[[ScopeKey, EncryptionContext, bytes], bytes],
    opener: Callable[[ScopeKey, EncryptionContext, bytes], object],
    max_plaintext: int,
    substitutions: int,
) -> tuple[int, int]:
    tried = accepted = 0
    while tried < target:
        key = ScopeKey(rng.randbytes(rng.randrange(1, 17)), rng.randbytes(32))
        ctx = _random_context(rng)
        envelope = make(key, ctx, rng.randbytes(rng.randrange(0, max_plaintext + 1)))
        for mutated in _mutations(envelope, rng, substitutions):
            if mutated == envelope:
                continue
            tried += 1
            try:
                opener(key, ctx, mutated)
            except InvalidCiphertext:
                continue
            accepted += 1
        # Substituted key (same id) and substituted context: the untouched envelope fails too.
        for other_key, other_ctx in (
            (ScopeKey(key.key_id, rng.randbytes(32)), ctx),
            (key, EncryptionContext({**ctx, "epoch": ctx["epoch"] + "0"})),
        ):
            tried += 1
            try:
                opener(other_key, other_ctx, envelope)
            except InvalidCiphertext:
                continue
            accepted += 1
    return tried, accepted


@pytest.mark.slow
def test_one_million_tampered_messages_are_all_refused() -> None:
    """ENV-4.5, ENV-7.1."""
    ciphers: dict[ScopeKey, MessageCipher] = {}

    def cipher(key: ScopeKey) -> MessageCipher:
        if key not in ciphers:
            ciphers.clear()
            ciphers[key] = MessageCipher(key)
        return ciphers[key]

    tried, accepted = _campaign(
        MESSAGE_TARGET,
        random.Random(20261129),
        lambda key, ctx, pt: cipher(key).seal(pt, ctx),
        lambda key, ctx, env: cipher(key).open(env, ctx),
        max_plaintext=48,
        substitutions=2000,
    )
    assert tried >= MESSAGE_TARGET
    assert accepted == 0


@pytest.mark.slow
def test_tampered_streams_are_all_refused() -> None:
    """ENV-5.6, ENV-7.1: whole-stream opens refuse every tampered stream."""
    rng = random.Random(112926)
    tried, accepted = _campaign(
        STREAM_TARGET,
        rng,
        lambda key, ctx, pt: seal_bytes(key, ctx, pt, segment_size=rng.randrange(1, 24)),
        open_bytes,
        max_plaintext=40,
        substitutions=300,
    )
    assert tried >= STREAM_TARGET
    assert accepted == 0


@pytest.mark.slow
def test_ranged_reads_of_tampered_streams_never_return_forged_bytes() -> None:
    """ENV-5.8: a ranged read either refuses or returns the authentic bytes.

    A ranged read does not look at segments outside its range (that is its point), so a flipped
    byte there goes unseen; what it returns must still be exactly the sealed plaintext.
    """
    rng = random.Random(7)
    refused = unaffected = 0
    for _ in range(40):
        key = ScopeKey(rng.randbytes(4), rng.randbytes(32))
        ctx = _random_context(rng)
        plaintext = rng.randbytes(rng.randrange(0, 60))
        envelope = seal_bytes(key, ctx, plaintext, segment_size=rng.randrange(1, 16))
        for mutated in _mutations(envelope, rng, 200):
            if mutated == envelope:
                continue
            start = rng.randrange(len(plaintext) + 1)
            end = rng.randrange(start, len(plaintext) + 2)
            try:
                got = open_range(key, ctx, io.BytesIO(mutated), start, end)
            except InvalidCiphertext:
                refused += 1
                continue
            assert got == plaintext[start:end]
            unaffected += 1
    assert refused + unaffected >= 20_000
    assert refused > unaffected > 0  # both outcomes really happen
