"""CMK Hybrid ciphertext (1001, and 0008 with advanced chat encryption) in the asset store.

The platform stores a client-sealed message like any asset: one row of ``assets`` (inline up to
the store's inline limit, else a blob), listed by ``GET /v1/objects?service_id=1001`` and
removed with its conversation. What makes it different is recorded in its content context
(``client_side``): the bytes are the client's ``"OKH2" | wrapped DEK | message id | author |
envelope`` (docs/hybrid.md), opaque to the platform but for the id and author, which it checks
against the slot and the writer (a client bug or a member re-posting another's message is
refused at once; the key service's binding is what protects a reader from the platform). The
scope key id is read from the inner envelope's header (``h1:...``, no platform scope key has it)
and nothing here ever calls the Protector. :func:`is_client_side` is what the
asset service checks to refuse to open such an asset with the platform's keys.

The writer of each message id is recorded in the stored request; the store's write guard runs
in the write's transaction, so a member can replace only its own message (docs/hybrid.md).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any, Final

from ownkey.envelope import peek_key_id
from ownkey.errors import Conflict, InvalidRequest, NotFound
from ownkey.policy import canonical_email
from ownkey.service._directory import OrgDirectory
from ownkey.storage import AssetRecord, AssetStore

__all__ = ["CLIENT_SIDE", "AssetCiphertexts", "DirectoryOrgUsers", "is_client_side"]

#: The content-context entry that marks client-sealed ciphertext.
CLIENT_SIDE: Final = "client_side"
_MAGIC: Final = b"OKH2"
_NOT_SEALED: Final = "must be a sealed 1001 message (OKH2)"
_PAGE = 1000


def is_client_side(record: AssetRecord) -> bool:
    """True for ciphertext that only the customer's key service can open (CMK Hybrid)."""
    return record.context.get(CLIENT_SIDE) == "true"


def _short(sealed: bytes, at: int) -> tuple[str, int]:
    """One ``u8 len | ASCII`` field of the header at ``at``, and where the next one starts."""
    if at >= len(sealed) or sealed[at] == 0 or at + 1 + sealed[at] > len(sealed):
        raise InvalidRequest("body", _NOT_SEALED)
    raw = sealed[at + 1 : at + 1 + sealed[at]]
    if not raw.isascii():
        raise InvalidRequest("body", _NOT_SEALED)
    return raw.decode("ascii"), at + 1 + sealed[at]


def _inner_key_id(sealed: bytes, message: str, writer: str) -> bytes:
    """The key id of the envelope inside a sealed 1001 message; InvalidRequest if it is not one
    (the platform refuses to store what a client could not open either), or if it claims
    another message id than its slot or another author than its writer."""
    if len(sealed) < 6 or sealed[:4] != _MAGIC:
        raise InvalidRequest("body", _NOT_SEALED)
    (size,) = struct.unpack_from(">H", sealed, 4)
    if size == 0 or len(sealed) <= 6 + size:
        raise InvalidRequest("body", _NOT_SEALED)
    claimed, at = _short(sealed, 6 + size)
    author, at = _short(sealed, at)
    if claimed != message:
        raise InvalidRequest("body", f"is sealed as message {claimed!r}, not {message!r}")
    if author != writer:
        raise InvalidRequest("body", "is sealed by another author than its writer")
    try:
        return peek_key_id(sealed[at:])
    except Exception as exc:  # InvalidCiphertext and friends: one typed answer
        raise InvalidRequest("body", _NOT_SEALED) from exc


class AssetCiphertexts:
    """The platform's :class:`~ownkey.hybrid.platform.CiphertextStore` over its asset store."""

    def __init__(self, store: AssetStore) -> None:
        self.store = store

    @staticmethod
    def asset_id(org: str, conversation: str, message: str) -> str:
        """``hybrid.<sha256(org, conversation)[:24]>.<message>``: unique per org and
        conversation, a prefix per conversation for listing and deletion (ids may contain
        dots, so the pair is hashed), and short enough for any org and message id."""
        return f"{_prefix(org, conversation)}{message}"

    def put(
        self, org: str, service: str, conversation: str, message: str, writer: str, sealed: bytes
    ) -> AssetRecord:
        """Store (or, by its own writer only, replace) one message's ciphertext."""
        writer = canonical_email("writer", writer)
        key_id = _inner_key_id(sealed, message, writer)
        asset_id = self.asset_id(org, conversation, message)

        def guard(stored: Mapping[str, Any] | None) -> None:
            if stored is not None and stored.get("writer") != writer:
                raise Conflict(f"message {message} was written by another member")

        return self.store.put(
            context={
                "asset_id": asset_id,
                "org": org,
                "service_id": service,
                "scope": conversation,
                "conversation": conversation,
                "message": message,
                CLIENT_SIDE: "true",
            },
            sealed=sealed,
            size=len(sealed),  # the platform never learns the plaintext length
            request={"client_side": True, "writer": writer, "conversation": conversation},
            scope_key_id=key_id,
            guard=guard,
        )

    def get(self, org: str, conversation: str, message: str) -> bytes:
        """The stored ciphertext; NotFound if there is none."""
        record, sealed = self.store.read(self.asset_id(org, conversation, message))
        if record.org != org or not is_client_side(record):
            raise NotFound(f"no message {message}")
        return sealed

    def records(self, org: str, conversation: str) -> list[AssetRecord]:
        """Every stored message of a conversation, in message-id order."""
        prefix = _prefix(org, conversation)
        out: list[AssetRecord] = []
        after: str | None = None
        while True:
            page = self.store.page(org=org, prefix=prefix, after=after, limit=_PAGE)
            out.extend(r for r in page if is_client_side(r))
            if len(page) < _PAGE:
                return out
            after = page[-1].asset_id

    def list(self, org: str, conversation: str) -> list[str]:
        """The message ids of a conversation."""
        return [r.context["message"] for r in self.records(org, conversation)]

    def delete_conversation(self, org: str, conversation: str) -> int:
        """Remove every stored message of a conversation (rows and blobs); the count removed."""
        deleted = 0
        for record in self.records(org, conversation):
            try:
                self.store.delete(record.asset_id, org=org)
            except NotFound:
                continue  # removed meanwhile
            deleted += 1
        return deleted


def _prefix(org: str, conversation: str) -> str:
    digest = hashlib.sha256(f"{org}\0{conversation}".encode()).hexdigest()[:24]
    return f"hybrid.{digest}."


class DirectoryOrgUsers:
    """The platform's org directory as CMK Hybrid membership asks it (the ``OrgUsers`` port of
    ``ownkey.hybrid.platform``): the org of a user, and the advanced chat encryption flag."""

    def __init__(self, directory: OrgDirectory) -> None:
        self._directory = directory

    def org_of_user(self, email: str) -> str | None:
        """The one org listing ``email``; None if none does, or more than one (fail closed: a
        grant names one org, and an ambiguous user is no member of either)."""
        try:
            email = canonical_email("email", email)
        except InvalidRequest:
            return None  # no valid address is no one's
        orgs = self._directory.store.orgs_of_user(email)
        return orgs[0] if len(orgs) == 1 else None

    def advanced_chat_encryption(self, org: str) -> bool:
        settings = self._directory.settings(org)
        return settings is not None and settings.advanced_chat_encryption
