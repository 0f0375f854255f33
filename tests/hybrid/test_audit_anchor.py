"""AUD-14: the key service's chain anchored outside its own database (issue 23 section 3).

Whoever can write ``hybrid.db`` (the key service's operator) can cut its chain together with its
checkpoints: nothing in the file shows it. So every 16th record's head goes into the encryption
context of one wrap under the service's own key, and the key manager's log holds it
(``keys/local-keys.log`` for the embedded store, CloudTrail for AWS KMS); ``ownkey hybrid audit
verify --witness-log`` checks every head there."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from ownkey.cli._hybrid import hybrid_app

runner = CliRunner()


def _home(tmp_path: Path, records: int) -> Path:
    home = tmp_path / "kacls"
    init = [
        "init",
        "--home",
        str(home),
        "--org",
        "acme",
        "--idp",
        "https://idp.acme.example",
        "--platform",
        "https://platform.example/hybrid",
    ]
    assert runner.invoke(hybrid_app, init).exit_code == 0
    for i in range(records):
        args = ["revoke", "conversation", f"c-{i}", "--home", str(home)]
        assert runner.invoke(hybrid_app, args).exit_code == 0
    return home


def _cut(home: Path, keep: int) -> None:
    """The operator's consistent cut: records and checkpoints after ``keep``."""
    db = sqlite3.connect(home / "hybrid.db")
    db.execute("DELETE FROM audit WHERE seq > ?", (keep,))
    db.execute("DELETE FROM checkpoints WHERE seq > ?", (keep,))
    db.commit()
    db.close()


def _verify(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(hybrid_app, ["audit", "verify", "--home", str(home), *args])
    return result.exit_code, result.output


def test_every_16th_head_lands_in_the_key_managers_log(tmp_path: Path) -> None:
    home = _home(tmp_path, 100)
    lines = (home / "keys" / "local-keys.log").read_text().splitlines()
    contexts = [json.loads(line)["requestParameters"]["encryptionContext"] for line in lines]
    assert [int(c["ownkey.audit-head"].split(":")[0]) for c in contexts] == [16, 32, 48, 64, 80, 96]
    assert {c["org"] for c in contexts} == {"acme"}
    code, output = _verify(home, "--witness-log", str(home / "keys" / "local-keys.log"))
    assert code == 0, output
    assert "6 witnessed heads, newest 96:" in output
    assert "4 records after it rest on the chain alone" in output
    assert " s old); " in output  # how old the anchor is


def test_a_consistent_cut_shows_only_against_the_witness_log(tmp_path: Path) -> None:
    """Without an anchor a cut of 80 of 100 records with their checkpoints verifies (the
    previous docs said at most 15 could go); against the key manager's log it is truncated."""
    home = _home(tmp_path, 100)
    _cut(home, 20)
    code, output = _verify(home)
    assert code == 0, output
    assert "anchor: none" in output
    code, output = _verify(home, "--witness-log", str(home / "keys" / "local-keys.log"))
    assert code == 1, output
    assert "seq 32: truncated" in output


def test_with_the_witness_log_at_most_15_records_can_go_unseen(tmp_path: Path) -> None:
    """The bound: records after the newest witnessed head (at most 15) rest on the chain alone;
    a cut into a witnessed head shows."""
    home = _home(tmp_path, 111)  # witnessed at 96; 97..111 are 15 records
    log = str(home / "keys" / "local-keys.log")
    _cut(home, 96)
    assert _verify(home, "--witness-log", log)[0] == 0
    _cut(home, 95)
    code, output = _verify(home, "--witness-log", log)
    assert code == 1, output
    assert "seq 96: truncated" in output


def test_a_missing_witness_call_is_a_gap(tmp_path: Path) -> None:
    """A witness call that failed, or went to another key, leaves a multiple of 16 unwitnessed:
    "the witness stopped at ..."."""
    home = _home(tmp_path, 100)
    path = home / "keys" / "local-keys.log"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3] + lines[4:]))
    code, output = _verify(home, "--witness-log", str(path))
    assert code == 1, output
    assert "seq 64: witness_gap (the witness stopped at seq 48" in output


def test_the_server_witnesses_too(tmp_path: Path) -> None:
    from ownkey.hybrid._app import build_service
    from ownkey.hybrid._config import load_config

    home = _home(tmp_path, 0)
    service = build_service(load_config(home))
    for i in range(32):
        service._store.append({"at_ms": i, "op": "test"})
    lines = (home / "keys" / "local-keys.log").read_text().splitlines()
    assert len(lines) == 2
    assert _verify(home, "--witness-log", str(home / "keys" / "local-keys.log"))[0] == 0


def test_a_failed_witness_call_does_not_fail_the_key_call_and_shows_as_a_gap(
    tmp_path: Path,
) -> None:
    """AUD-14: the record stands (the key call goes on) when the key manager refuses the
    witness; verification against the log then reports the missing head."""
    from ownkey.audit._witness_log import WitnessEntry, check_sequence
    from ownkey.errors import KeyUnavailable
    from ownkey.hybrid._store import HybridStore

    witnessed: list[tuple[int, bytes]] = []

    def flaky(seq: int, chain_hash: bytes) -> None:
        if seq == 32:
            raise KeyUnavailable("key manager down")
        witnessed.append((seq, chain_hash))

    store = HybridStore(tmp_path / "hybrid.db", "acme", witness=flaky)
    for i in range(50):
        assert store.append({"at_ms": i, "op": "test"}).seq == i + 1
    assert [seq for seq, _ in witnessed] == [16, 48]
    entries = [WitnessEntry(seq, seq, digest, "k", "local") for seq, digest in witnessed]
    assert store.verify(witnessed_heads=witnessed).ok
    [gap] = check_sequence("acme", entries, every=store.every, last_seq=50)
    assert (gap.kind, gap.seq) == ("witness_gap", 32)
    store.close()
