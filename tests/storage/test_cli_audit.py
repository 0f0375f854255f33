"""``ownkey audit verify|export`` against the SQLite file under OWNKEY_HOME."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from ownkey.cli import app
from ownkey.storage import AuditSigningKey, Database, SqlAuditSink
from ownkey.storage._schema import audit_records
from tests.storage.test_audit import event


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OWNKEY_HOME", str(tmp_path))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    monkeypatch.delenv("OWNKEY_AUDIT_SIGNING_KEY", raising=False)
    database = Database.open()
    SqlAuditSink(database, AuditSigningKey.load()).record_many([event(i) for i in range(600)])
    database.close()
    return tmp_path


def test_verify_ok_then_tampered(home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "verify", "acme"])
    assert result.exit_code == 0, result.output
    assert "acme: OK, 600 events, 2 signed checkpoints" in result.output
    database = Database.open()
    with database.engine.begin() as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 7).values(body=b"{}"))
    database.close()
    result = runner.invoke(app, ["audit", "verify", "acme", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert report["problems"][0] == {
        "seq": 7,
        "kind": "edited",
        "detail": "hash does not recompute",
    }


def test_export_jsonl_csv_and_filters(home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "export", "acme", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["seq"] for line in lines if "seq" in line] == list(range(1, 601))
    # the signed checkpoints travel with the events, each after the event it signs (AUD-5)
    marks = [n for n, line in enumerate(lines) if "checkpoint" in line]
    assert [lines[n]["checkpoint"]["seq"] for n in marks] == [256, 512]
    assert [lines[n - 1]["seq"] for n in marks] == [256, 512]
    assert lines[marks[1]]["checkpoint"]["previous"] != "00" * 32
    result = runner.invoke(
        app,
        [
            "audit",
            "export",
            "acme",
            "--format",
            "csv",
            "--asset-id",
            "a5",
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-02T00:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["seq"], r["at"]) for r in rows] == [("6", "2024-05-01T00:00:02.500Z")]
    result = runner.invoke(app, ["audit", "export", "acme", "--json", "--outcome", "denied"])
    assert len(json.loads(result.output)) == 86


@pytest.mark.parametrize(
    "args",
    [
        # an export has no 31-day cap (it pages through, issue 12); an empty window is bad input
        ["--since", "2024-03-01", "--until", "2024-01-01"],
        ["--since", "yesterday"],
        ["--service-id", "8"],
        ["--outcome", "maybe"],
    ],
)
def test_export_bad_input_exits_2(home: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["audit", "export", "acme", *args])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith("ownkey: ")


def test_verify_with_a_public_key_trusts_only_that_key(home: Path) -> None:
    """Issue 11, finding 4: ``--public-key`` must not also trust the key in OWNKEY_HOME."""
    runner = CliRunner()
    own = AuditSigningKey.load()
    other = AuditSigningKey.from_seed(bytes(32))
    result = runner.invoke(app, ["audit", "verify", "acme", "--public-key", other.public_key.hex()])
    assert result.exit_code == 1, result.output
    assert "bad_checkpoint" in result.output
    result = runner.invoke(app, ["audit", "verify", "acme", "--public-key", own.public_key.hex()])
    assert result.exit_code == 0, result.output


def _head(output: str) -> str:
    return output.strip().rsplit("head ", 1)[1]


def test_verify_since_head_detects_a_consistent_cut_and_an_erasure(home: Path) -> None:
    """Issue 11, finding 3: ``--since-head`` fails when the remembered head is gone."""
    from sqlalchemy import delete, select

    from ownkey.storage._schema import audit_checkpoints, audit_heads

    runner = CliRunner()
    result = runner.invoke(app, ["audit", "verify", "acme"])
    assert result.exit_code == 0, result.output
    head = _head(result.output)
    assert head.startswith("600:")
    assert runner.invoke(app, ["audit", "verify", "acme", "--since-head", head]).exit_code == 0
    database = Database.open()
    with database.engine.begin() as conn:  # cut 513..600 and fix the head row: consistent
        conn.execute(delete(audit_records).where(audit_records.c.seq > 512))
        row = conn.execute(select(audit_records.c.hash).where(audit_records.c.seq == 512)).one()
        conn.execute(update(audit_heads).values(seq=512, hash=row.hash))
    database.close()
    assert runner.invoke(app, ["audit", "verify", "acme"]).exit_code == 0
    cut = runner.invoke(app, ["audit", "verify", "acme", "--since-head", head])
    assert cut.exit_code == 1
    assert "truncated" in cut.output
    database = Database.open()
    with database.engine.begin() as conn:
        for table in (audit_records, audit_checkpoints, audit_heads):
            conn.execute(delete(table))
    database.close()
    erased = runner.invoke(app, ["audit", "verify", "acme", "--since-head", head])
    assert erased.exit_code == 1
    assert "erased" in erased.output
    bad = runner.invoke(app, ["audit", "verify", "acme", "--since-head", "600:abc"])
    assert bad.exit_code == 2


def test_an_export_verifies_offline_with_the_public_key_only(home: Path, tmp_path: Path) -> None:
    """Exports carry the chained checkpoints, so a customer verifies one without the database."""
    runner = CliRunner()
    public = AuditSigningKey.load().public_key.hex()
    exported = runner.invoke(app, ["audit", "export", "acme", "--format", "jsonl"])
    assert exported.exit_code == 0
    full = tmp_path / "acme.jsonl"
    full.write_text(exported.output)
    ok = runner.invoke(app, ["audit", "verify-export", "acme", str(full), "--public-key", public])
    assert ok.exit_code == 0, ok.output
    head = _head(ok.output)
    lines = exported.output.splitlines()
    dropped = tmp_path / "dropped.jsonl"  # the last checkpoint line removed, the tail cut
    kept = [line for line in lines if '"seq": 512' not in line and "checkpoint" not in line]
    dropped.write_text("\n".join(kept[:300]) + "\n")
    for args, kind in (
        ([str(dropped)], "missing_checkpoint"),
        ([str(full), "--since-head", head.replace("600:", "601:")], "truncated"),
    ):
        bad = runner.invoke(app, ["audit", "verify-export", "acme", *args, "--public-key", public])
        assert bad.exit_code == 1, bad.output
        assert kind in bad.output
    edited = tmp_path / "edited.jsonl"
    edited.write_text(exported.output.replace('"outcome": "ok"', '"outcome": "failed"', 1))
    bad = runner.invoke(
        app, ["audit", "verify-export", "acme", str(edited), "--public-key", public]
    )
    assert bad.exit_code == 1
    assert "edited" in bad.output
    other = AuditSigningKey.from_seed(bytes(32)).public_key.hex()
    bad = runner.invoke(app, ["audit", "verify-export", "acme", str(full), "--public-key", other])
    assert bad.exit_code == 1
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    bad = runner.invoke(
        app, ["audit", "verify-export", "acme", str(garbage), "--public-key", public]
    )
    assert bad.exit_code == 2


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"a":' * 100_000 + b"\n", "line 1 is not an export line"),  # RecursionError before
        (b'{"seq": 1e999, "hash": "00", "event": {}}\n', "line 1 is not an export line"),
        (b'{"seq": 1.9, "hash": "00", "event": {}}\n', "line 1 is not an export line"),
        (b'{"seq": true, "hash": "00", "event": {}}\n', "line 1 is not an export line"),
        (b"\xd0\xcf\x11\xe0 binary\n", "not UTF-8 text (an export is JSON lines)"),
    ],
)
def test_a_damaged_export_is_one_line_exit_2(
    home: Path, tmp_path: Path, content: bytes, says: str
) -> None:
    """A deeply nested line and ``1e999`` were tracebacks; ``1.9`` was read as seq 1."""
    public = AuditSigningKey.load().public_key.hex()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(content)
    result = CliRunner().invoke(
        app, ["audit", "verify-export", "acme", str(damaged), "--public-key", public]
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"ownkey: {damaged}: {says}"]


def test_an_endless_line_on_stdin_is_refused_in_bounded_memory(home: Path) -> None:
    """``cat /dev/zero | ownkey audit verify-export acme -`` read one endless "line" into
    memory; a line is at most 1 MiB."""
    public = AuditSigningKey.load().public_key.hex()
    result = CliRunner().invoke(
        app,
        ["audit", "verify-export", "acme", "-", "--public-key", public],
        input="x" * (1024 * 1024 + 10),
    )
    assert result.exit_code == 2, result.output
    assert "line 1 is longer than 1048576 characters" in result.output


def test_the_cli_csv_never_starts_a_formula(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's CSV guarded against formula injection, the CLI's did not: an actor (a user
    id the platform passes) of ``=HYPERLINK(...)`` reached the spreadsheet as a formula."""
    import dataclasses

    monkeypatch.setenv("OWNKEY_HOME", str(tmp_path))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    database = Database.open()
    planted = [
        dataclasses.replace(event(1), actor='=HYPERLINK("http://evil.test","x")'),
        dataclasses.replace(event(2), actor="@SUM(1+1)"),
        dataclasses.replace(event(3), actor="+1"),
    ]
    SqlAuditSink(database, AuditSigningKey.load()).record_many(planted)
    database.close()
    exported = CliRunner().invoke(app, ["audit", "export", "acme", "--format", "csv"])
    assert exported.exit_code == 0, exported.output
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    cells = [cell for row in rows[1:] for cell in row]
    assert len(rows) == 4
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")], cells
    assert '\'=HYPERLINK("http://evil.test","x")' in cells
