"""Builds the known-answer vectors of envelope v2 (``vectors/envelope-v2.json``).

Version 2 changed the message suite (a per-instance salt, a commitment to key, header and
context) and added the bound share combination of format-2 scope-key records; the stream suite
is unchanged and pinned by ``envelope-v1.json``. Run
``.venv/bin/python -m tests.envelope.vectors_v2 > vectors/envelope-v2.json`` only when the format
changes; ``test_vectors_v2.py`` fails if the committed file differs from what this builds or from
its pinned digest. Each vector records the random bytes its seal consumed: the 16-byte salt,
then the 12-byte nonce.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ownkey.envelope import (
    SECRET_KEY_ACCESS,
    EncryptionContext,
    MessageCipher,
    ScopeKey,
    combine_shares,
    encode_fields,
)

from .vectors_v1 import _Replay


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"ownkey-v2-vectors/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


CONTEXT = {
    "org": "acme",
    "service_id": "0008",
    "scope": "channel:eng-random",
    "asset_id": "msg-000001",
    "component": "message",
}
SHARED_KEY_ID = b"sk:acme+globex:0008"
# The binding of the record that names this scope key (a format-3 record, keys/_records.py
# ``record_binding``): the same key id and scope as the envelope it seals (issue 23).
BINDING = encode_fields(
    b"ownkey/scope-key",
    "3",
    SHARED_KEY_ID,
    encode_fields("acme", "globex"),
    "0008",
    CONTEXT["scope"],
    "1764590400",
    "3600",
)


def _valid() -> list[dict[str, Any]]:
    key = ScopeKey(b"sk:acme:0008:02", _bytes("key-1", 32))
    unicode_ctx = {**CONTEXT, "scope": "channel:équipe-ü-日本", "asset_id": ""}
    shares = [_bytes("share-acme", 32), _bytes("share-globex", 32)]
    shared = ScopeKey(SHARED_KEY_ID, combine_shares(shares, BINDING))
    cases: list[dict[str, Any]] = []

    def message(
        name: str, k: ScopeKey, ctx: dict[str, str], plaintext: bytes, **extra: Any
    ) -> None:
        random = _bytes(f"salt-{name}", 16) + _bytes(f"nonce-{name}", 12)
        cipher = MessageCipher(k, random=_Replay(random))
        envelope = cipher.seal(plaintext, EncryptionContext(ctx))
        cases.append(
            {
                "name": name,
                "suite": "message",
                "scope_key": k.material(SECRET_KEY_ACCESS).hex(),
                "key_id": k.key_id.hex(),
                "context": ctx,
                "plaintext": plaintext.hex(),
                "random": random.hex(),
                "envelope": envelope.hex(),
                **extra,
            }
        )

    message("message-empty", key, CONTEXT, b"")
    message("message-chat", key, CONTEXT, "Ship it on Friday? 🚀".encode())
    message("message-unicode-context", key, unicode_ctx, _bytes("pt-3", 100))
    message("message-empty-context", key, {}, b"token:abc")
    message(
        "message-two-shares-bound",
        shared,
        {**CONTEXT, "org": "acme"},
        b"hello across orgs",
        shares=[s.hex() for s in shares],
        binding=BINDING.hex(),
    )
    return cases


def _invalid(valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {case["name"]: case for case in valid}
    out: list[dict[str, Any]] = []

    def add(name: str, source: str, why: str, envelope: bytes, **override: Any) -> None:
        base = by_name[source]
        out.append(
            {
                "name": name,
                "why": why,
                "suite": base["suite"],
                "scope_key": override.get("scope_key", base["scope_key"]),
                "key_id": base["key_id"],
                "context": override.get("context", base["context"]),
                "envelope": envelope.hex(),
            }
        )

    def flip(data: bytes, index: int) -> bytes:
        return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]

    chat = bytes.fromhex(by_name["message-chat"]["envelope"])
    kid = len(bytes.fromhex(by_name["message-chat"]["key_id"]))
    salt, nonce, commitment = 3 + kid, 3 + kid + 16, 3 + kid + 28
    body = commitment + 32
    add("message-tag-bit", "message-chat", "last tag bit flipped", flip(chat, len(chat) - 1))
    add("message-body-bit", "message-chat", "ciphertext bit flipped", flip(chat, body))
    add("message-salt-bit", "message-chat", "salt bit flipped", flip(chat, salt))
    add("message-nonce-bit", "message-chat", "nonce bit flipped", flip(chat, nonce))
    add("message-commitment-bit", "message-chat", "commitment bit flipped", flip(chat, commitment))
    add("message-key-id", "message-chat", "key id changed", flip(chat, 3))
    add("message-version-1", "message-chat", "version 0x01 on a v2 layout", b"\x01" + chat[1:])
    add("message-version-3", "message-chat", "version 0x03", b"\x03" + chat[1:])
    add("message-suite", "message-chat", "suite 0x02 on a message", chat[:1] + b"\x02" + chat[2:])
    add("message-truncated", "message-chat", "last byte missing", chat[:-1])
    add("message-extended", "message-chat", "one byte appended", chat + b"\x00")
    add("message-too-short", "message-chat", "header only", chat[:body])
    add(
        "message-wrong-context",
        "message-chat",
        "context asset_id differs",
        chat,
        context={**CONTEXT, "asset_id": "msg-000002"},
    )
    add(
        "message-extra-context",
        "message-chat",
        "context has one more entry",
        chat,
        context={**CONTEXT, "extra": ""},
    )
    add(
        "message-wrong-key",
        "message-chat",
        "another scope key under the same id",
        chat,
        scope_key=_bytes("key-2", 32).hex(),
    )
    two = by_name["message-two-shares-bound"]
    add(
        "message-unbound-combination",
        "message-two-shares-bound",
        "the shares combined without the record binding (format 1)",
        bytes.fromhex(two["envelope"]),
        scope_key=combine_shares([bytes.fromhex(s) for s in two["shares"]]).hex(),
    )
    return out


def build() -> dict[str, Any]:
    valid = _valid()
    return {
        "format": "ownkey envelope v2 (message suite 0x01 as version 2; bound combination)",
        "spec": "docs/spec/envelope-v2.md",
        "encoding": "hex for bytes; context values are text; random = salt (16) || nonce (12)",
        "valid": valid,
        "invalid": _invalid(valid),
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
