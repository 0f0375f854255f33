"""Real processes on loopback (ownkey.testing.hybrid): the test identity provider, the
platform's hybrid routes and the customer's key service, started once per module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ownkey.client._format import MessageHeader, context, join, key_id
from ownkey.envelope import MessageCipher, ScopeKey
from ownkey.testing.hybrid import KACLS_AUDIENCE as KACLS_AUD
from ownkey.testing.hybrid import PLATFORM_AUDIENCE as PLATFORM_AUD
from ownkey.testing.hybrid import HybridStack
from ownkey.testing.hybrid import free_port as _free_port

__all__ = ["KACLS_AUD", "PLATFORM_AUD", "Flow", "_free_port", "sealed_bytes"]

Flow = HybridStack
ORG = "acme"
ALICE, BOB, CAROL, ADMIN = (
    "alice@acme.example",
    "bob@acme.example",
    "carol@acme.example",
    "admin@acme.example",
)
DAVE = "dave@globex.example"
MEMBERS = {
    ORG: {
        "users": [ALICE, BOB, CAROL, ADMIN],
        "conversations": {"conv-a": [ALICE, BOB], "conv-b": [ALICE, CAROL]},
        "admins": [ADMIN],
        "advanced_chat_encryption": True,
    },
    "globex": {"users": [DAVE], "conversations": {"conv-g": [DAVE]}},
}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HybridStack]:
    with HybridStack(tmp_path_factory.mktemp("hybrid"), ORG, MEMBERS, privileged=(ADMIN,)) as stack:
        yield stack


def sealed_bytes(
    text: bytes,
    conversation: str,
    org: str = ORG,
    *,
    message: str = "m-1",
    author: str = ALICE,
) -> bytes:
    """A well-formed sealed 1001 message under a random DEK and a random "wrapped" key, for
    platform-side tests that need no key service (the platform cannot tell the difference)."""
    wrapped = os.urandom(48)
    bound = context(org, conversation, "1001", message, author)
    envelope = MessageCipher(ScopeKey(key_id(wrapped), os.urandom(32))).seal(text, bound)
    return join(wrapped, MessageHeader(message, author), envelope)
