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
    assert [line["seq"] for line in lines] == list(range(1, 601))
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
