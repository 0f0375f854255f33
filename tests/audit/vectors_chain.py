"""Build vectors/audit-chain-v2.json: records and version 2 checkpoints from fixed inputs.

Every input is fixed: the signing seed is ``SHA-256("ownkey-audit-v2-vectors/seed")``, the
bodies and times are written below. Ed25519 is deterministic, so anyone can rebuild the file:
``.venv/bin/python -m tests.audit.vectors_chain > vectors/audit-chain-v2.json``, only when the
chain format changes (tests/audit/test_vectors.py pins it).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ownkey.audit._chain import (
    GENESIS_HASH,
    ChainHead,
    canonical_body,
    checkpoint_link,
    checkpoint_message,
    sign_checkpoint,
)
from ownkey.envelope import Ed25519Signer

SEED = hashlib.sha256(b"ownkey-audit-v2-vectors/seed").digest()
ORG = "acme"
EVENTS: list[dict[str, Any]] = [
    {"action": "key_manager.wrap", "at_ms": 1_714_521_600_000, "detail": {"org": "acme"}},
    {"action": "key_manager.unwrap", "at_ms": 1_714_521_600_500, "detail": {"scope": "é"}},
    {"action": "key.disable", "at_ms": 1_714_521_601_000, "detail": {}},
]
CHECKPOINT_AFTER = {2: 1_714_521_600_600, 3: 1_714_521_601_100}


def build() -> dict[str, Any]:
    signer = Ed25519Signer(SEED)
    head = ChainHead(ORG)
    records, checkpoints = [], []
    previous = GENESIS_HASH
    for event in EVENTS:
        record = head.append(canonical_body(event))
        records.append(
            {"seq": record.seq, "body": record.body.decode("utf-8"), "hash": record.hash.hex()}
        )
        signed_at = CHECKPOINT_AFTER.get(record.seq)
        if signed_at is not None:
            checkpoint = sign_checkpoint(head, signer, "audit-vectors", signed_at, previous)
            message = checkpoint_message(ORG, head.seq, head.hash, signed_at, previous)
            link = checkpoint_link(checkpoint)
            checkpoints.append(
                {
                    "seq": checkpoint.seq,
                    "hash": checkpoint.hash.hex(),
                    "signed_at": signed_at,
                    "previous": previous.hex(),
                    "message": message.hex(),
                    "signature": checkpoint.signature.hex(),
                    "link": link.hex(),
                }
            )
            previous = link
    return {
        "format": "ownkey audit chain: records v1, checkpoints v2 (docs/spec/audit-chain.md)",
        "org": ORG,
        "public_key": signer.public_key().hex(),
        "records": records,
        "checkpoints": checkpoints,
    }


if __name__ == "__main__":
    print(json.dumps(build(), indent=2, ensure_ascii=False))
