"""vectors/audit-chain-v2.json: pinned, reproducible, and verified as a chain (AUD-3, AUD-5)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ownkey.audit._chain import ChainRecord, Checkpoint, link, verify_chain
from ownkey.envelope import ed25519_verify
from tests.audit.vectors_chain import build

FILE = Path(__file__).resolve().parents[2] / "vectors" / "audit-chain-v2.json"
PINNED = "ed5b52dd1137ade3f3315efdc65f07cc1a75a531236cc510f26d9ab11c26706f"


def test_the_file_is_pinned_and_reproducible() -> None:
    raw = FILE.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == PINNED
    assert json.loads(raw) == build()


def test_the_vectors_verify_as_a_chain() -> None:
    data = json.loads(FILE.read_text(encoding="utf-8"))
    org, public = data["org"], bytes.fromhex(data["public_key"])
    previous = bytes(32)
    records = []
    for row in data["records"]:
        body = row["body"].encode("utf-8")
        assert link(org, previous, row["seq"], body).hex() == row["hash"]
        previous = bytes.fromhex(row["hash"])
        records.append(ChainRecord(org, row["seq"], body, previous))
    checkpoints = []
    for row in data["checkpoints"]:
        assert ed25519_verify(
            public, bytes.fromhex(row["signature"]), bytes.fromhex(row["message"])
        )
        checkpoints.append(
            Checkpoint(
                org,
                row["seq"],
                bytes.fromhex(row["hash"]),
                row["signed_at"],
                "audit-vectors",
                bytes.fromhex(row["signature"]),
                bytes.fromhex(row["previous"]),
            )
        )
    assert data["checkpoints"][1]["previous"] == data["checkpoints"][0]["link"]
    report = verify_chain(org, records, checkpoints, {"audit-vectors": public})
    assert report.ok, report.problems
