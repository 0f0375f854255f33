"""AUD: the audit hash chain detects every kind of tampering, and only tampering."""

from __future__ import annotations

import dataclasses
import random

import pytest

from ownkey.audit._chain import (
    ChainHead,
    ChainRecord,
    Checkpoint,
    canonical_body,
    checkpoint_link,
    link,
    sign_checkpoint,
    verify_chain,
)
from ownkey.envelope import Ed25519Signer

SIGNER = Ed25519Signer(bytes(range(32)))
KEYS = {"audit-1": SIGNER.public_key()}
ORG = "acme"
EVERY = 1000


def build(count: int, every: int = EVERY) -> tuple[list[ChainRecord], list[Checkpoint]]:
    head = ChainHead(ORG)
    records: list[ChainRecord] = []
    checkpoints: list[Checkpoint] = []
    for i in range(count):
        event = {
            "op": "unwrap",
            "service_id": "0008",
            "scope": f"chan-{i % 100}",
            "outcome": "ok",
            "at": 1_764_000_000_000 + i,
            "context": {"org": ORG, "epoch": str(i // 3600)},
        }
        records.append(head.append(canonical_body(event)))
        if (i + 1) % every == 0:
            previous = checkpoint_link(checkpoints[-1]) if checkpoints else bytes(32)
            checkpoints.append(
                sign_checkpoint(head, SIGNER, "audit-1", 1_764_000_000 + i, previous)
            )
    return records, checkpoints


RECORDS, CHECKPOINTS = build(100_000)


def test_untouched_chain_of_100k_events_verifies() -> None:
    """AUD-6: zero false positives on 100,000 untouched events."""
    report = verify_chain(
        ORG,
        RECORDS,
        CHECKPOINTS,
        KEYS,
        expected_head=(100_000, RECORDS[-1].hash),
        checkpoint_every=EVERY,
    )
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.last_seq, report.unsigned_tail) == (
        100_000,
        100,
        100_000,
        0,
    )


def test_canonical_body_is_order_free_and_refuses_floats() -> None:
    """AUD-2."""
    assert canonical_body({"b": 1, "a": "é"}) == canonical_body({"a": "é", "b": 1})
    assert canonical_body({"a": "é"}) == '{"a":"é"}'.encode()
    with pytest.raises(ValueError, match="floats"):
        canonical_body({"latency": 1.5})


SMALL, SMALL_CPS = build(5_000, every=100)
rng = random.Random(5)
POSITIONS = sorted(rng.sample(range(5_000), 25))


def _verify(records: list[ChainRecord], checkpoints: list[Checkpoint] = SMALL_CPS) -> str:
    report = verify_chain(ORG, records, checkpoints, KEYS, checkpoint_every=100)
    assert not report.ok
    return report.problems[0].kind


@pytest.mark.parametrize("position", POSITIONS)
def test_edited_body_is_detected(position: int) -> None:
    """AUD-7: one changed byte in one event."""
    records = list(SMALL)
    body = bytearray(records[position].body)
    body[len(body) // 2] ^= 1
    records[position] = dataclasses.replace(records[position], body=bytes(body))
    assert _verify(records) == "edited"


@pytest.mark.parametrize("position", POSITIONS)
def test_edit_with_recomputed_hashes_is_caught_by_checkpoints(position: int) -> None:
    """AUD-8: an attacker who rewrites every later hash still cannot re-sign the checkpoints."""
    records = list(SMALL[:position])
    previous = records[-1].hash if records else bytes(32)
    for old in SMALL[position:]:
        body = old.body.replace(b'"ok"', b'"no"') if old.seq == position + 1 else old.body
        new = ChainRecord(ORG, old.seq, body, link(ORG, previous, old.seq, body))
        records.append(new)
        previous = new.hash
    assert _verify(records) == "bad_checkpoint"


@pytest.mark.parametrize("position", POSITIONS)
def test_deleted_event_is_detected(position: int) -> None:
    """AUD-7."""
    records = SMALL[:position] + SMALL[position + 1 :]
    assert _verify(records) in {"missing", "truncated"}


@pytest.mark.parametrize("position", POSITIONS)
def test_inserted_event_is_detected(position: int) -> None:
    """AUD-7: a forged event slipped in with a plausible seq and hash."""
    forged = dataclasses.replace(SMALL[position], body=b'{"op":"nothing to see"}')
    records = [*SMALL[: position + 1], forged, *SMALL[position + 1 :]]
    assert _verify(records) in {"inserted", "edited"}


@pytest.mark.parametrize("position", POSITIONS[:-1])
def test_reordered_events_are_detected(position: int) -> None:
    """AUD-7: two neighbours swapped, as rows or as contents."""
    rows = list(SMALL)
    rows[position], rows[position + 1] = rows[position + 1], rows[position]
    assert _verify(rows) in {"missing", "out_of_order"}
    contents = list(SMALL)
    a, b = contents[position], contents[position + 1]
    contents[position] = dataclasses.replace(a, body=b.body, hash=b.hash)
    contents[position + 1] = dataclasses.replace(b, body=a.body, hash=a.hash)
    assert _verify(contents) == "edited"


@pytest.mark.parametrize("keep", [0, 1, 99, 4_950, 4_999])
def test_truncation_is_detected_by_checkpoint_or_head(keep: int) -> None:
    """AUD-9: a cut before the last checkpoint shows; after it, the expected head shows it."""
    records = SMALL[:keep]
    report = verify_chain(
        ORG, records, SMALL_CPS, KEYS, expected_head=(5_000, SMALL[-1].hash), checkpoint_every=100
    )
    assert not report.ok
    assert report.problems[0].kind == "truncated"


def test_unsigned_tail_is_reported() -> None:
    """AUD-9: events after the last checkpoint are covered by the hash chain only."""
    records, checkpoints = build(1_050, every=100)
    report = verify_chain(ORG, records, checkpoints, KEYS, checkpoint_every=100)
    assert report.ok
    assert report.unsigned_tail == 50


def test_forged_or_foreign_checkpoints_are_refused() -> None:
    """AUD-5: a checkpoint signed by another key, or for another org, does not count."""
    intruder = Ed25519Signer(bytes(32))
    head = ChainHead(ORG, SMALL[99].seq, SMALL[99].hash)
    forged = sign_checkpoint(head, intruder, "audit-1", 1)
    assert _verify(SMALL, [forged]) == "bad_checkpoint"
    foreign = dataclasses.replace(SMALL_CPS[0], org="globex")
    assert _verify(SMALL, [foreign]) == "bad_checkpoint"
    unknown = dataclasses.replace(SMALL_CPS[0], key_id="audit-9")
    assert _verify(SMALL, [unknown]) == "bad_checkpoint"


def test_record_of_another_org_is_detected() -> None:
    records = list(SMALL)
    records[10] = dataclasses.replace(records[10], org="globex")
    assert _verify(records) == "inserted"


def test_a_checkpoint_is_expected_every_interval() -> None:
    """AUD-10 (issue 11, finding 4): deleting checkpoints and re-hashing is no longer silent."""
    records, checkpoints = build(1_050, every=100)
    dropped = [c for c in checkpoints if c.seq != 500]
    report = verify_chain(ORG, records, dropped, KEYS, checkpoint_every=100)
    assert [(p.kind, p.seq) for p in report.problems][:1] in (
        [("missing_checkpoint", 600)],
        [("missing_checkpoint", 500)],
    )
    report = verify_chain(ORG, records, [], KEYS, checkpoint_every=100)
    assert [(p.kind, p.seq) for p in report.problems] == [("missing_checkpoint", 100)]
    assert verify_chain(ORG, records[:99], [], KEYS, checkpoint_every=100).ok


def test_checkpoints_link_to_each_other() -> None:
    """AUD-5 v2: a checkpoint removed from the middle breaks the link of the next one, even
    where the interval rule cannot see it (an on-demand checkpoint)."""
    records, checkpoints = build(1_000, every=100)
    without = checkpoints[:3] + checkpoints[4:]
    report = verify_chain(ORG, records, without, KEYS, checkpoint_every=None)
    assert report.problems[0].kind == "missing_checkpoint"
    assert report.problems[0].seq == 500
    assert verify_chain(ORG, records, checkpoints, KEYS, checkpoint_every=None).ok


@pytest.mark.parametrize("cut", [0, 1, 950, 1_049])
def test_a_remembered_head_detects_truncation_rewrite_and_erasure(cut: int) -> None:
    """AUD-11: with a head seen before (or witnessed), a cut, a rewrite (even re-hashed, after
    the last checkpoint) and an erasure each fail."""
    records, checkpoints = build(1_050, every=100)  # 1001..1050 signed by nothing
    remembered = (1_050, records[-1].hash)
    ok = verify_chain(
        ORG, records, checkpoints, KEYS, remembered_head=remembered, checkpoint_every=100
    )
    assert ok.ok
    assert ok.head == remembered
    signed = [c for c in checkpoints if c.seq <= cut]
    report = verify_chain(
        ORG, records[:cut], signed, KEYS, remembered_head=remembered, checkpoint_every=100
    )
    assert report.problems[0].kind == ("erased" if cut == 0 else "truncated")
    rewritten = list(records[:1_010])
    previous = rewritten[-1].hash
    for old in records[1_010:]:
        body = old.body.replace(b'"ok"', b'"no"')
        new = ChainRecord(ORG, old.seq, body, link(ORG, previous, old.seq, body))
        rewritten.append(new)
        previous = new.hash
    report = verify_chain(
        ORG, rewritten, checkpoints, KEYS, remembered_head=remembered, checkpoint_every=100
    )
    assert report.problems[0].kind == "edited"


def test_heads_read_and_print_as_seq_colon_hash() -> None:
    from ownkey.audit._chain import format_head, parse_head

    text = format_head(7, bytes(range(32)))
    assert parse_head(text) == (7, bytes(range(32)))
    for bad in ("7", "x:" + "00" * 32, "7:" + "00" * 31, "7:" + "zz" * 32):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_head(bad)
