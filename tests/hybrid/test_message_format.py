"""The ``OKH2`` framing of a sealed 1001 message (docs/hybrid.md "Message format"), pinned.

A change of the layout must change this test on purpose: sealed messages are stored by the
platform and opened by every client version that reads them.
"""

from __future__ import annotations

import pytest

from ownkey.client import MessageHeader, read_header
from ownkey.client._format import MAGIC, context, join, split
from ownkey.errors import InvalidCiphertext

WRAPPED, ENVELOPE = b"\x01\x02W", b"ENVELOPE"
HEADER = MessageHeader("m-1", "ann@acme.test")
#: "OKH2" | u16 3 | wrapped | u8 3 | "m-1" | u8 13 | "ann@acme.test" | envelope
PINNED = b"OKH2\x00\x03\x01\x02W\x03m-1\x0dann@acme.testENVELOPE"


def test_the_layout_is_pinned() -> None:
    assert MAGIC == b"OKH2"
    assert join(WRAPPED, HEADER, ENVELOPE) == PINNED
    assert split(PINNED) == (WRAPPED, HEADER, ENVELOPE)
    assert read_header(PINNED) == HEADER


def test_the_envelope_context_binds_id_and_author() -> None:
    assert context("acme", "conv-a", "1001", "m-1", "ann@acme.test") == {
        "org": "acme",
        "service": "1001",
        "conversation": "conv-a",
        "message": "m-1",
        "author": "ann@acme.test",
    }


@pytest.mark.parametrize(
    "sealed",
    [
        b"OKH1\x00\x03\x01\x02WENVELOPE",  # the format before issue 23: no id, no author
        PINNED[:9],  # no header
        PINNED[:12],  # a truncated message id
        PINNED[:20],  # a truncated author
        PINNED.replace(b"\x03m-1", b"\x00m-1"),  # an empty id
        PINNED.replace(b"ann@", b"\xe4nn@"),  # an author that is not ASCII
        b"OKH2\x00\x00",
    ],
)
def test_what_is_not_an_okh2_message_is_invalid_ciphertext(sealed: bytes) -> None:
    with pytest.raises(InvalidCiphertext):
        split(sealed)
