"""The per-organisation audit hash chain and its signed checkpoints (docs/spec/audit-chain.md).

Pure: the caller supplies event bodies, the time and the signing key; nothing here does I/O.
Each record's hash covers the previous hash, its sequence number and its canonical body, so any
edited, deleted, inserted or reordered record breaks every hash after it. Checkpoints sign
(org, seq, hash, time, previous checkpoint) with Ed25519, so a verifier holding only the public
key can tell that the chain up to a checkpoint is the one the service wrote, that no checkpoint
before it was removed, and a truncation that removes a checkpointed record is visible. One is
expected every 256 records, so deleting checkpoints and re-hashing is visible too; a head
remembered outside the database (``expected_head``/``remembered_head``, e.g. witnessed in the
customer's key-manager log) catches a cut or a rewrite after the last checkpoint, and erasure.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ownkey.envelope import Ed25519Signer, ed25519_verify, sha256

__all__ = [
    "CHECKPOINT_INTERVAL",
    "GENESIS_HASH",
    "ChainHead",
    "ChainProblem",
    "ChainRecord",
    "ChainReport",
    "Checkpoint",
    "canonical_body",
    "checkpoint_link",
    "checkpoint_message",
    "format_head",
    "link",
    "parse_head",
    "sign_checkpoint",
    "verify_chain",
]

GENESIS_HASH = bytes(32)
#: AUD-10: a checkpoint is expected at every multiple of this sequence number.
CHECKPOINT_INTERVAL = 256
_RECORD_DOMAIN = b"ownkey/audit/v1/record"
_CHECKPOINT_DOMAIN = b"ownkey/audit/v1/checkpoint"
_CHECKPOINT_V2_DOMAIN = b"ownkey/audit/v2/checkpoint"
_LINK_DOMAIN = b"ownkey/audit/v2/checkpoint-link"
_U64 = struct.Struct(">Q")


def canonical_body(event: Mapping[str, Any]) -> bytes:
    """AUD-2: UTF-8 JSON with sorted keys, no spaces, no floats (they have no single form)."""

    def refuse_floats(value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError("audit events carry no floats; use integers (e.g. milliseconds)")
        if isinstance(value, Mapping):
            return {k: refuse_floats(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [refuse_floats(v) for v in value]
        return value

    return json.dumps(
        refuse_floats(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def _length_prefixed(data: bytes) -> bytes:
    return _U64.pack(len(data)) + data


def link(org: str, previous_hash: bytes, seq: int, body: bytes) -> bytes:
    """AUD-3: the hash of record ``seq`` of ``org`` chained to ``previous_hash``."""
    return sha256(
        _RECORD_DOMAIN
        + _length_prefixed(org.encode("utf-8"))
        + previous_hash
        + _U64.pack(seq)
        + _length_prefixed(body)
    )


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """One stored audit record: its place in the org's chain, its body and its hash."""

    org: str
    seq: int
    body: bytes
    hash: bytes


@dataclass(slots=True)
class ChainHead:
    """The end of one org's chain; :meth:`append` links the next body to it."""

    org: str
    seq: int = 0
    hash: bytes = GENESIS_HASH

    def append(self, body: bytes) -> ChainRecord:
        """Link ``body`` as the next record and advance the head."""
        seq = self.seq + 1
        record = ChainRecord(self.org, seq, body, link(self.org, self.hash, seq, body))
        self.seq, self.hash = seq, record.hash
        return record


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that ``org``'s chain had hash ``hash`` at ``seq`` at ``signed_at``.

    ``previous`` (version 2) is the link of the checkpoint before it (:func:`checkpoint_link`,
    32 zero bytes for the first), so checkpoints form a chain of their own; None marks a
    version 1 checkpoint (written before migration 0008), which links to nothing.
    """

    org: str
    seq: int
    hash: bytes
    signed_at: int
    key_id: str
    signature: bytes
    previous: bytes | None = None


def checkpoint_message(
    org: str, seq: int, chain_hash: bytes, signed_at: int, previous: bytes | None = None
) -> bytes:
    """AUD-5: the exact bytes a checkpoint signature covers (version 2 with ``previous``)."""
    return (
        (_CHECKPOINT_DOMAIN if previous is None else _CHECKPOINT_V2_DOMAIN)
        + _length_prefixed(org.encode("utf-8"))
        + _U64.pack(seq)
        + chain_hash
        + _U64.pack(signed_at)
        + (b"" if previous is None else previous)
    )


def checkpoint_link(checkpoint: Checkpoint) -> bytes:
    """AUD-5: what the next checkpoint's ``previous`` holds: SHA-256 over this one's signed
    message and signature, so removing or altering a checkpoint breaks the next one."""
    message = checkpoint_message(
        checkpoint.org, checkpoint.seq, checkpoint.hash, checkpoint.signed_at, checkpoint.previous
    )
    return sha256(_LINK_DOMAIN + message + checkpoint.signature)


def sign_checkpoint(
    head: ChainHead,
    signer: Ed25519Signer,
    key_id: str,
    signed_at: int,
    previous: bytes = GENESIS_HASH,
) -> Checkpoint:
    """Sign the current head of a chain, linked to the checkpoint before it (version 2)."""
    message = checkpoint_message(head.org, head.seq, head.hash, signed_at, previous)
    return Checkpoint(
        head.org, head.seq, head.hash, signed_at, key_id, signer.sign(message), previous
    )


def format_head(seq: int, chain_hash: bytes) -> str:
    """A chain head as text, ``SEQ:HASH`` (hex): what ``verify`` prints and a witness carries."""
    return f"{seq}:{chain_hash.hex()}"


def parse_head(text: str) -> tuple[int, bytes]:
    """Read ``SEQ:HASH``; ValueError if it is not one."""
    seq_text, sep, hash_text = text.strip().partition(":")
    try:
        if not sep or not (seq_text.isascii() and seq_text.isdigit()) or len(hash_text) != 64:
            raise ValueError
        return int(seq_text), bytes.fromhex(hash_text)
    except ValueError:
        raise ValueError("a chain head is SEQ:HASH (a number, ':', 64 hex digits)") from None


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first thing found wrong, with the sequence number where it shows."""

    seq: int
    # edited | missing | inserted | out_of_order | truncated | erased | bad_checkpoint
    # | missing_checkpoint
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :func:`verify_chain` found: OK or the first problem, and what it covered."""

    org: str
    records: int
    checkpoints: int
    last_seq: int
    unsigned_tail: int
    problems: tuple[ChainProblem, ...] = field(default=())
    head: tuple[int, bytes] = (0, GENESIS_HASH)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    org: str,
    records: Iterable[ChainRecord],
    checkpoints: Sequence[Checkpoint],
    public_keys: Mapping[str, bytes],
    *,
    expected_head: tuple[int, bytes] | None = None,
    remembered_head: tuple[int, bytes] | None = None,
    witnessed_heads: Iterable[tuple[int, bytes]] = (),
    checkpoint_every: int | None = CHECKPOINT_INTERVAL,
) -> ChainReport:
    """Recompute ``org``'s chain from its records (in stored order) and check every checkpoint.

    AUD-6..AUD-12: a record whose hash does not recompute is *edited*; a gap in the sequence is
    *missing*; a repeated or extra sequence number is *inserted*; a decreasing one is
    *out_of_order*; a checkpoint (or a head: ``expected_head``, the stored one, and
    ``remembered_head``, one a verifier saw before, and each of ``witnessed_heads``, every head
    the customer's key-manager log holds) beyond the last record is *truncated* (*erased* if
    no record is left); a head whose hash differs is *edited*; a
    checkpoint that does not verify or does not match the chain is *bad_checkpoint*; a
    checkpoint absent at a multiple of ``checkpoint_every``, or one whose ``previous`` does not
    link to the checkpoint before it, is *missing_checkpoint*. Records after the last
    checkpoint are reported as ``unsigned_tail``.
    """
    problems: list[ChainProblem] = []
    hashes: dict[int, bytes] = {}
    previous = GENESIS_HASH
    expected_seq = 1
    count = 0
    for record in records:
        count += 1
        if record.org != org:
            problems.append(ChainProblem(record.seq, "inserted", "record of another org"))
            break
        if record.seq != expected_seq:
            kind = (
                "missing"
                if record.seq > expected_seq
                else (
                    "inserted"
                    if record.seq in hashes or record.seq == expected_seq - 1
                    else "out_of_order"
                )
            )
            problems.append(
                ChainProblem(record.seq, kind, f"expected seq {expected_seq}, found {record.seq}")
            )
            break
        recomputed = link(org, previous, record.seq, record.body)
        if recomputed != record.hash:
            problems.append(ChainProblem(record.seq, "edited", "hash does not recompute"))
            break
        hashes[record.seq] = recomputed
        previous = recomputed
        expected_seq += 1
    last_seq = expected_seq - 1

    last_signed = 0
    signed: set[int] = set()
    prior_link = GENESIS_HASH
    for checkpoint in sorted(checkpoints, key=lambda c: c.seq):
        message = checkpoint_message(
            org, checkpoint.seq, checkpoint.hash, checkpoint.signed_at, checkpoint.previous
        )
        public = public_keys.get(checkpoint.key_id)
        if (
            checkpoint.org != org
            or public is None
            or not ed25519_verify(public, checkpoint.signature, message)
        ):
            problems.append(
                ChainProblem(checkpoint.seq, "bad_checkpoint", "signature does not verify")
            )
            continue
        if checkpoint.previous is not None and checkpoint.previous != prior_link:
            problems.append(
                ChainProblem(
                    checkpoint.seq,
                    "missing_checkpoint",
                    "does not link to the checkpoint before it (one was removed)",
                )
            )
        prior_link = checkpoint_link(checkpoint)
        if checkpoint.seq > last_seq and not problems:
            problems.append(
                ChainProblem(
                    checkpoint.seq,
                    "truncated",
                    f"checkpoint at {checkpoint.seq}, chain ends at {last_seq}",
                )
            )
        elif checkpoint.seq in hashes and hashes[checkpoint.seq] != checkpoint.hash:
            problems.append(ChainProblem(checkpoint.seq, "bad_checkpoint", "chain was rewritten"))
        elif checkpoint.seq in hashes:
            last_signed = max(last_signed, checkpoint.seq)
            signed.add(checkpoint.seq)

    if checkpoint_every and not problems:
        for seq in range(checkpoint_every, last_seq + 1, checkpoint_every):
            if seq not in signed:
                problems.append(
                    ChainProblem(seq, "missing_checkpoint", f"no checkpoint at seq {seq}")
                )
                break

    heads = [("stored head", expected_head), ("remembered head", remembered_head)]
    heads += [("witnessed head", head) for head in witnessed_heads]
    for name, head in heads:
        if head is None or problems:
            continue
        head_seq, head_hash = head
        if head_seq > last_seq:
            kind = "erased" if count == 0 else "truncated"
            problems.append(
                ChainProblem(head_seq, kind, f"{name} is {head_seq}, chain ends at {last_seq}")
            )
        elif head_seq > 0 and hashes.get(head_seq) != head_hash:
            problems.append(ChainProblem(head_seq, "edited", f"{name} hash does not match"))

    return ChainReport(
        org=org,
        records=count,
        checkpoints=len(checkpoints),
        last_seq=last_seq,
        unsigned_tail=last_seq - last_signed,
        problems=tuple(problems),
        head=(last_seq, hashes.get(last_seq, GENESIS_HASH)),
    )
