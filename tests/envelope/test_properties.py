"""Round-trip properties over sizes, segment sizes, contexts and ranges (hypothesis)."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ownkey.envelope import (
    MAX_SEGMENT_SIZE,
    EncryptionContext,
    MessageCipher,
    ScopeKey,
    combine_shares,
    open_range,
)
from ownkey.errors import InvalidCiphertext

from ._helpers import open_bytes, seal_bytes

MAX_SIZE = 4 * 1024 * 1024
names = st.from_regex(r"[a-z0-9_.-]{1,12}", fullmatch=True)
contexts = st.dictionaries(names, st.text(max_size=24), max_size=6).map(EncryptionContext)
keys = st.builds(ScopeKey, st.binary(min_size=1, max_size=32), st.binary(min_size=32, max_size=32))


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, bytes]:
    """Any segment size; a plaintext of up to 4 MiB but at most ~2,048 segments long."""
    segment = draw(st.one_of(st.integers(1, 64), st.integers(1, MAX_SEGMENT_SIZE)))
    size = draw(st.integers(0, min(MAX_SIZE, segment * 2048)))
    seed = draw(st.integers(0, 2**32))
    return segment, random.Random(seed).randbytes(size)


@settings(max_examples=150)
@given(keys, contexts, streams(), st.data())
def test_stream_round_trip_and_ranges(
    key: ScopeKey, ctx: EncryptionContext, stream: tuple[int, bytes], data: st.DataObject
) -> None:
    segment, plaintext = stream
    sealed = seal_bytes(key, ctx, plaintext, segment)
    assert open_bytes(key, ctx, sealed) == plaintext
    for _ in range(3):
        start = data.draw(st.integers(0, len(plaintext) + 2))
        end = data.draw(st.integers(start, len(plaintext) + 5))
        assert open_range(key, ctx, io.BytesIO(sealed), start, end) == plaintext[start:end]


@settings(max_examples=300)
@given(keys, contexts, st.binary(max_size=4096))
def test_message_round_trip(key: ScopeKey, ctx: EncryptionContext, plaintext: bytes) -> None:
    cipher = MessageCipher(key)
    assert cipher.open(cipher.seal(plaintext, ctx), ctx) == plaintext


@settings(max_examples=200)
@given(keys, contexts, contexts, st.binary(max_size=64))
def test_message_opens_only_under_its_own_context(
    key: ScopeKey, ctx: EncryptionContext, other: EncryptionContext, plaintext: bytes
) -> None:
    cipher = MessageCipher(key)
    envelope = cipher.seal(plaintext, ctx)
    if other == ctx:
        assert cipher.open(envelope, other) == plaintext
    else:
        with pytest.raises(InvalidCiphertext):
            cipher.open(envelope, other)


@given(
    st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=16, unique=True), st.data()
)
def test_every_share_is_needed(shares: list[bytes], data: st.DataObject) -> None:
    """ENV-6.2: changing, dropping or reordering any share changes the scope key."""
    combined = combine_shares(shares)
    index = data.draw(st.integers(0, len(shares) - 1))
    changed = list(shares)
    changed[index] = bytes(b ^ 1 for b in shares[index])
    assert combine_shares(changed) != combined
    if len(shares) > 1:
        assert combine_shares(shares[:index] + shares[index + 1 :]) != combined
        assert combine_shares(list(reversed(shares))) != combined


def test_share_bounds() -> None:
    """ENV-6.1."""
    for bad in ([], [bytes(32)] * 17, [bytes(31)]):
        with pytest.raises(ValueError, match="share"):
            combine_shares(bad)


@pytest.mark.parametrize("segment", [1 << 10, 64 << 10, 256 << 10, 4 << 20, MAX_SEGMENT_SIZE])
def test_four_mib_round_trip_at_the_top_of_the_range(segment: int) -> None:
    """The property's upper bound, always exercised: 4 MiB whole and by ranges."""
    key = ScopeKey(b"k", bytes(range(32)))
    ctx = EncryptionContext(org="acme", service_id="0001")
    plaintext = random.Random(segment).randbytes(MAX_SIZE)
    sealed = seal_bytes(key, ctx, plaintext, segment)
    assert open_bytes(key, ctx, sealed) == plaintext
    for start, end in (
        (0, 1),
        (MAX_SIZE - 1, MAX_SIZE),
        (segment - 1, segment + 1),
        (12345, 3 << 20),
    ):
        assert open_range(key, ctx, io.BytesIO(sealed), start, end) == plaintext[start:end]
