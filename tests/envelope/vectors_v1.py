"""Builds the known-answer vectors of envelope v1 (``vectors/envelope-v1.json``).

Run ``.venv/bin/python -m tests.envelope.vectors_v1 > vectors/envelope-v1.json`` only when the
format version changes; ``test_vectors.py`` fails if the committed file differs from what this
builds or from its pinned digest. Randomness is a fixed seed through SHA-256 in counter mode, and
each vector records the random bytes its envelope consumed (the nonce or the salt).
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from ownkey.envelope import (
    SECRET_KEY_ACCESS,
    EncryptionContext,
    ScopeKey,
    combine_shares,
    seal_stream,
)
from ownkey.envelope._primitives import Aes256Gcm, hkdf_sha256


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"ownkey-v1-vectors/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


class _Replay:
    """A random source that hands out ``recorded`` and then zeros (for the nonce pool)."""

    def __init__(self, recorded: bytes) -> None:
        self.recorded = recorded

    def __call__(self, size: int) -> bytes:
        out = self.recorded[:size] + bytes(max(0, size - len(self.recorded)))
        self.recorded = self.recorded[size:]
        return out


CONTEXT = {
    "org": "acme",
    "service_id": "0008",
    "scope": "channel:eng-random",
    "epoch": "2026-11-29T13",
    "asset_id": "msg-000001",
    "component": "message",
}


def seal_message_vector(
    key: ScopeKey, context: dict[str, str], plaintext: bytes, nonce: bytes
) -> bytes:
    """A version 1 message (envelope-v1.md, ENV-4), built from the spec: ownkey now writes
    version 2 and only opens version 1, so the generator carries its own v1 sealer."""
    okm = hkdf_sha256(
        key.material(SECRET_KEY_ACCESS), salt=None, info=b"ownkey/v1/message", length=64
    )
    header = bytes((0x01, 0x01, len(key.key_id))) + key.key_id + nonce + okm[32:]
    aad = header + EncryptionContext(context).encoded
    return header + Aes256Gcm(okm[:32]).encrypt(nonce, plaintext, aad)


def seal_stream_vector(
    key: ScopeKey, context: dict[str, str], plaintext: bytes, salt: bytes, segment_size: int
) -> bytes:
    sink = io.BytesIO()
    seal_stream(
        key,
        EncryptionContext(context),
        io.BytesIO(plaintext),
        sink,
        segment_size=segment_size,
        random=_Replay(salt),
    )
    return sink.getvalue()


def _valid() -> list[dict[str, Any]]:
    key = ScopeKey(b"sk:acme:0008:01", _bytes("key-1", 32))
    recording = {**CONTEXT, "service_id": "0001", "scope": "meeting:8812", "component": "video"}
    unicode_ctx = {**CONTEXT, "scope": "channel:équipe-ü-日本", "asset_id": ""}
    shares = [_bytes("share-acme", 32), _bytes("share-globex", 32)]
    shared = ScopeKey(b"sk:acme+globex:0008", combine_shares(shares))
    cases: list[dict[str, Any]] = []

    def message(
        name: str, k: ScopeKey, ctx: dict[str, str], plaintext: bytes, **extra: Any
    ) -> None:
        nonce = _bytes(f"nonce-{name}", 12)
        envelope = seal_message_vector(k, ctx, plaintext, nonce)
        cases.append(
            {
                "name": name,
                "suite": "message",
                "scope_key": k.material(SECRET_KEY_ACCESS).hex(),
                "key_id": k.key_id.hex(),
                "context": ctx,
                "plaintext": plaintext.hex(),
                "random": nonce.hex(),
                "envelope": envelope.hex(),
                **extra,
            }
        )

    def stream(name: str, ctx: dict[str, str], plaintext: bytes, segment_size: int) -> None:
        salt = _bytes(f"salt-{name}", 32)
        envelope = seal_stream_vector(key, ctx, plaintext, salt, segment_size)
        cases.append(
            {
                "name": name,
                "suite": "stream",
                "scope_key": key.material(SECRET_KEY_ACCESS).hex(),
                "key_id": key.key_id.hex(),
                "context": ctx,
                "segment_size": segment_size,
                "plaintext": plaintext.hex(),
                "random": salt.hex(),
                "envelope": envelope.hex(),
            }
        )

    message("message-empty", key, CONTEXT, b"")
    message("message-chat", key, CONTEXT, "Ship it on Friday? 🚀".encode())
    message("message-unicode-context", key, unicode_ctx, _bytes("pt-3", 100))
    message("message-empty-context", key, {}, b"token:abc")
    message(
        "message-two-shares",
        shared,
        {**CONTEXT, "org": "acme+globex"},
        b"hello across orgs",
        shares=[s.hex() for s in shares],
    )
    stream("stream-empty", recording, b"", 16)
    stream("stream-one-short-segment", recording, b"abc", 16)
    stream("stream-exact-multiple", recording, _bytes("pt-s3", 96), 16)
    stream("stream-ragged", recording, _bytes("pt-s4", 100), 7)
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
    add("message-tag-bit", "message-chat", "last tag bit flipped", flip(chat, len(chat) - 1))
    add("message-body-bit", "message-chat", "ciphertext bit flipped", flip(chat, 3 + kid + 44))
    add("message-nonce-bit", "message-chat", "nonce bit flipped", flip(chat, 3 + kid))
    add(
        "message-commitment-bit", "message-chat", "commitment bit flipped", flip(chat, 3 + kid + 12)
    )
    add("message-key-id", "message-chat", "key id changed", flip(chat, 3))
    add("message-version", "message-chat", "version 0x02", b"\x02" + chat[1:])
    add("message-suite", "message-chat", "suite 0x02 on a message", chat[:1] + b"\x02" + chat[2:])
    add("message-truncated", "message-chat", "last byte missing", chat[:-1])
    add("message-extended", "message-chat", "one byte appended", chat + b"\x00")
    add("message-too-short", "message-chat", "header only", chat[: 3 + kid + 44])
    add(
        "message-wrong-context",
        "message-chat",
        "context epoch differs",
        chat,
        context={**CONTEXT, "epoch": "2026-11-29T14"},
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
    add(
        "message-one-share-only",
        "message-two-shares",
        "opened with one share as if it were the scope key",
        bytes.fromhex(by_name["message-two-shares"]["envelope"]),
        scope_key=by_name["message-two-shares"]["shares"][0],
    )

    ragged = bytes.fromhex(by_name["stream-ragged"]["envelope"])
    header = 3 + kid + 4 + 64
    stride = 7 + 16
    segments = [
        ragged[header + i : header + i + stride] for i in range(0, len(ragged) - header, stride)
    ]
    head = ragged[:header]
    add(
        "stream-swapped",
        "stream-ragged",
        "segments 0 and 1 swapped",
        head + segments[1] + segments[0] + b"".join(segments[2:]),
    )
    add("stream-cut", "stream-ragged", "final segment dropped", head + b"".join(segments[:-1]))
    add(
        "stream-first-dropped",
        "stream-ragged",
        "first segment dropped",
        head + b"".join(segments[1:]),
    )
    add(
        "stream-duplicated",
        "stream-ragged",
        "segment 0 repeated",
        head + segments[0] + b"".join(segments),
    )
    add("stream-truncated", "stream-ragged", "last byte missing", ragged[:-1])
    add("stream-extended", "stream-ragged", "16 bytes appended", ragged + bytes(16))
    add(
        "stream-segment-size",
        "stream-ragged",
        "segment size changed to 8",
        ragged[: 3 + kid] + (8).to_bytes(4, "big") + ragged[3 + kid + 4 :],
    )
    add("stream-salt-bit", "stream-ragged", "salt bit flipped", flip(ragged, 3 + kid + 4))
    add(
        "stream-commitment-bit", "stream-ragged", "commitment bit flipped", flip(ragged, header - 1)
    )
    add(
        "stream-body-bit",
        "stream-ragged",
        "segment 3 bit flipped",
        flip(ragged, header + 3 * stride + 2),
    )
    add(
        "stream-wrong-context",
        "stream-ragged",
        "context component differs",
        ragged,
        context={**by_name["stream-ragged"]["context"], "component": "audio"},
    )
    empty = bytes.fromhex(by_name["stream-empty"]["envelope"])
    add("stream-empty-no-segment", "stream-empty", "the empty final segment removed", empty[:-16])
    return out


def build() -> dict[str, Any]:
    valid = _valid()
    return {
        "format": "ownkey envelope v1",
        "spec": "docs/spec/envelope-v1.md",
        "encoding": "hex for bytes; context values are text",
        "valid": valid,
        "invalid": _invalid(valid),
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
