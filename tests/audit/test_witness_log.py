"""The witness log (AUD-13, issue 23 section 3): every head the customer's key manager logged is
read back from its own export (CloudTrail, the local store's log, a KMIP log) and checked: each a
prefix of the chain, heads only growing, no gap longer than the interval."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping

import pytest

from ownkey.audit._chain import ChainHead, ChainRecord, format_head, verify_chain
from ownkey.audit._witness_log import (
    HEAD_FIELD,
    WITNESS_PURPOSE,
    WitnessEntry,
    check_recorded,
    check_sequence,
    check_timeline,
    decode_context,
    read_witness_log,
    recorded_witnesses,
)
from ownkey.envelope import encode_context

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z, ms
HOUR = 3_600_000
ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def chain(n: int, org: str = "acme") -> list[ChainRecord]:
    head = ChainHead(org)
    return [head.append(f'{{"i":{i}}}'.encode()) for i in range(1, n + 1)]


def extend(records: list[ChainRecord], to: int) -> list[ChainRecord]:
    """``records`` continued with other events up to ``to`` (what the node writes after a cut)."""
    last = records[-1]
    head = ChainHead(last.org, last.seq, last.hash)
    return records + [head.append(f'{{"after":{i}}}'.encode()) for i in range(last.seq, to)]


def context(org: str, record: ChainRecord) -> dict[str, str]:
    return {
        "purpose": WITNESS_PURPOSE,
        "org": org,
        HEAD_FIELD: format_head(record.seq, record.hash),
    }


def cloudtrail(at_ms: int, ctx: Mapping[str, str], **extra: object) -> dict[str, object]:
    """One CloudTrail record of a KMS Encrypt, as AWS delivers it."""
    seconds = at_ms // 1000
    import datetime as dt

    when = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "eventVersion": "1.08",
        "eventTime": when,
        "eventSource": "kms.amazonaws.com",
        "eventName": "Encrypt",
        "awsRegion": "eu-west-1",
        "requestParameters": {
            "keyId": "alias/acme",
            "encryptionContext": dict(ctx),
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
        },
        "responseElements": None,
        "resources": [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": ARN}],
        **extra,
    }


def entry(at_ms: int, record: ChainRecord, key: str = ARN) -> WitnessEntry:
    return WitnessEntry(at_ms, record.seq, record.hash, key, "cloudtrail")


def test_cloudtrail_files_lookup_events_and_gzip_list_every_witnessed_head() -> None:
    records = chain(1000)
    witnessed = [records[i - 1] for i in (256, 512, 768, 1000)]
    trail = [cloudtrail(T0 + k * HOUR, context("acme", r)) for k, r in enumerate(witnessed)]
    noise = [
        cloudtrail(T0, {"purpose": WITNESS_PURPOSE, "org": "globex", HEAD_FIELD: "1:" + "0" * 64}),
        cloudtrail(T0, {"org": "acme", "key": "customer:acme"}),  # a share's wrap, not a witness
        cloudtrail(T0, context("acme", records[5]), errorCode="AccessDeniedException"),
        {"eventName": "Decrypt", "eventTime": "2024-05-01T00:00:00Z"},
    ]
    delivered = json.dumps({"Records": trail + noise}).encode()
    lookup = json.dumps(
        {"Events": [{"EventId": "x", "CloudTrailEvent": json.dumps(r)} for r in trail]}
    ).encode()
    lines = "\n".join(json.dumps(r) for r in trail).encode()
    expected = [(T0 + k * HOUR, r.seq, r.hash, ARN) for k, r in enumerate(witnessed)]
    for data in (delivered, gzip.compress(delivered), lookup, lines):
        found = read_witness_log("acme", data)
        assert [(e.at_ms, e.seq, e.hash, e.key) for e in found] == expected
    assert read_witness_log("globex", delivered)[0].seq == 1


def test_a_kmip_log_carries_the_head_in_the_associated_data() -> None:
    """KMIP: the server logs the associated data ownkey sent, the canonical context (ENV-3)."""
    records = chain(300)
    ctx = context("acme", records[255])
    aad = encode_context(ctx)
    assert decode_context(aad) == ctx
    line = {
        "time": "2024-05-01T00:00:00Z",
        "operation": "Encrypt",
        "unique_identifier": "42",
        "aad": aad.hex(),
    }
    other = dict(line, aad="00ff")  # someone else's associated data: not ownkey's, skipped
    [found] = read_witness_log("acme", (json.dumps(line) + "\n" + json.dumps(other)).encode())
    assert (found.seq, found.hash, found.key, found.source) == (
        256,
        records[255].hash,
        "42",
        "kmip",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x1f\x8b broken",
        b"\xff\xfe",
        b"not json\n",
        json.dumps([[[]] * 3]).encode()[:5],
        b"[" * 5000,  # nested thousands deep: one ValueError, not a RecursionError
        b'{"Records": [{"eventName": "Encrypt", "requestParameters": []}]}\n{',
    ],
)
def test_what_is_not_a_key_manager_log_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"gzip|UTF-8|JSON|log"):
        read_witness_log("acme", data)


def test_a_witness_call_with_an_unreadable_head_is_refused() -> None:
    bad = cloudtrail(T0, {"purpose": WITNESS_PURPOSE, "org": "acme", HEAD_FIELD: "12:zz"})
    with pytest.raises(ValueError, match="SEQ:HASH"):
        read_witness_log("acme", json.dumps({"Records": [bad]}).encode())


def test_every_witnessed_head_must_be_a_prefix_of_the_chain() -> None:
    """The review's attack: with database write alone, cut 1,000 events to 300 (records,
    checkpoints, head row) and let the honest witness record the cut chain's new head. Checked
    at its newest head only, the witness agrees; checked at every head, the cut shows."""
    records = chain(1000)
    before = [records[i - 1] for i in (256, 512, 768, 1000)]
    cut = extend(records[:300], 400)  # the chain the node went on writing after the cut
    assert cut[299] == records[299]
    after = cut[-1]
    heads = [(r.seq, r.hash) for r in [*before, after]]
    assert verify_chain(
        "acme", cut, [], {}, checkpoint_every=None, remembered_head=heads[-1]
    ).ok  # newest only
    report = verify_chain("acme", cut, [], {}, checkpoint_every=None, witnessed_heads=heads)
    assert [(p.seq, p.kind) for p in report.problems] == [(512, "truncated")]
    longer = extend(cut, 1100)  # grown past the old heads: each is still checked
    report = verify_chain("acme", longer, [], {}, checkpoint_every=None, witnessed_heads=heads)
    assert [(p.seq, p.kind) for p in report.problems] == [(512, "edited")]
    assert verify_chain(
        "acme", records, [], {}, checkpoint_every=None, witnessed_heads=heads[:-1]
    ).ok


def test_the_timeline_heads_only_grow_and_a_gap_longer_than_the_interval_shows() -> None:
    records = chain(1000)
    regular = [entry(T0 + k * HOUR, records[s - 1]) for k, s in enumerate((100, 300, 600, 900))]
    args = {"interval_ms": HOUR, "grace_ms": 900_000}
    assert check_timeline("acme", regular, until_ms=T0 + 3 * HOUR + 60_000, **args) == []
    # heads going back: the chain was cut between two witness calls
    back = [*regular[:2], entry(T0 + 2 * HOUR, records[199])]
    assert [p.kind for p in check_timeline("acme", back, until_ms=T0 + 2 * HOUR, **args)] == [
        "truncated"
    ]
    # the witness stopped (its calls sent to another key by a registry edit, or it failed)
    stopped = check_timeline("acme", regular[:2], until_ms=T0 + 4 * HOUR, **args)
    assert [p.kind for p in stopped] == ["witness_gap"]
    assert "the witness stopped at 2024-05-01T01:00:00Z (head 300)" in stopped[0].detail
    holey = [regular[0], regular[3]]
    [gap] = check_timeline("acme", holey, until_ms=T0 + 3 * HOUR, **args)
    assert (gap.kind, gap.seq) == ("witness_gap", 100)
    assert check_timeline("acme", [], until_ms=T0, **args)[0].kind == "witness_gap"
    assert check_timeline("acme", holey, until_ms=T0 + 9 * HOUR, interval_ms=0, grace_ms=0) == []


def test_a_witness_moved_to_another_key_shows() -> None:
    """A registry edit sends the witness calls to the insider's key: in a log that holds both
    keys (the local store's), the key changes; naming the customer's key leaves a gap."""
    records = chain(1000)
    log = [
        entry(T0, records[99]),
        entry(T0 + HOUR, records[299]),
        entry(T0 + 2 * HOUR, records[599], key="lk-insider"),
        entry(T0 + 3 * HOUR, records[899], key="lk-insider"),
    ]
    args = {"interval_ms": HOUR, "grace_ms": 900_000, "until_ms": T0 + 3 * HOUR}
    assert [p.kind for p in check_timeline("acme", log, **args)] == ["witness_key_changed"]
    named = check_timeline("acme", log, keys=["1234abcd-12ab-34cd-56ef-1234567890ab"], **args)
    assert [p.kind for p in named] == ["witness_gap"]


def test_a_witness_every_n_records_must_not_skip_one() -> None:
    """The key service witnesses every 16th record: a missing one is a gap, by seq."""
    records = chain(100)
    every = [entry(T0 + s, records[s - 1]) for s in (16, 32, 48, 64, 80, 96)]
    assert check_sequence("acme", every, every=16, last_seq=100) == []
    [gap] = check_sequence("acme", every[:3] + every[4:], every=16, last_seq=100)
    assert (gap.kind, gap.seq) == ("witness_gap", 64)
    assert "the witness stopped at seq 48" in gap.detail
    [tail] = check_sequence("acme", every[:2], every=16, last_seq=100)
    assert (tail.kind, tail.seq) == ("witness_gap", 48)


@pytest.mark.parametrize("data", [b"[1, 2]", b'{"Records": 5}', b"{}", b'{"Events": [1]}'])
def test_a_log_of_another_shape_holds_no_witnessed_head(data: bytes) -> None:
    """Not a failure to read, but nothing witnessed: verification then reports the gap."""
    assert read_witness_log("acme", data) == []


def test_a_witness_the_chain_records_but_the_log_lacks_shows_once_delivered() -> None:
    """A registry edit sends the witness to the insider's key: the chain still records each
    call (a ``key_manager.wrap`` with the head and the key id), the customer's log does not
    hold it. Once older than CloudTrail's delivery grace, that is a problem at once, without
    waiting for a gap."""
    records = chain(1000)
    log = [entry(T0, records[99]), entry(T0 + HOUR, records[299])]

    def wrap(at_ms: int, record: ChainRecord, key_id: str) -> dict[str, object]:
        detail = dict(context("acme", record), key_id=key_id, version="1")
        return {"action": "key_manager.wrap", "outcome": "ok", "at_ms": at_ms, "detail": detail}

    bodies = [
        wrap(T0, records[99], "customer-key"),
        wrap(T0 + HOUR, records[299], "customer-key"),
        wrap(T0 + 2 * HOUR, records[599], "lk-insider"),
        {"action": "key_manager.unwrap", "outcome": "ok", "at_ms": T0, "detail": {}},
    ]
    recorded = recorded_witnesses(bodies)
    assert len(recorded) == 3
    grace = 900_000
    fresh = check_recorded(log, recorded, grace_ms=grace, until_ms=T0 + 2 * HOUR + 60_000)
    assert fresh == []  # CloudTrail may not have delivered it yet
    [late] = check_recorded(log, recorded, grace_ms=grace, until_ms=T0 + 2 * HOUR + grace)
    assert (late.kind, late.seq) == ("witness_not_in_log", 600)
    assert "under key lk-insider" in late.detail
    assert check_recorded(log, recorded[:2], grace_ms=grace, until_ms=T0 + 9 * HOUR) == []
