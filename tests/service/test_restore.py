"""Issue 28, item 5: restores cannot un-revoke quietly.

Before: restoring a dump brought back content revoked after the dump, and ``audit verify`` on the
restored database said OK. Now every node remembers, in its own home, the newest audit head it
saw of each org; a database behind that memory shuts opens (503, retry: not a tombstone) until an
operator reconciles, which every org's chain records (service/_restore.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ownkey.audit import AuditAction
from ownkey.cli import app
from ownkey.errors import AccessDenied, KeyUnavailable
from ownkey.keys import RevocationRule
from ownkey.service import Runtime
from ownkey.storage import AuditQuery

ANN = "ann@acme.test"


def recording() -> dict[str, Any]:
    return {
        "asset": {
            "service_id": "0001",
            "org": "acme",
            "owner": ANN,
            "owner_kind": "user",
            "container": {"kind": "meeting", "members": []},
            "component": "video",
        },
        "scope": "meeting-1",
        "asset_id": "rec-1",
    }


def node(home: Path, db: Path) -> Runtime:
    return Runtime.open(home=home, url=f"sqlite:///{db}", env={})


def test_a_restore_that_would_un_revoke_shuts_opens_until_an_operator_reconciles(
    tmp_path: Path,
) -> None:
    db, dump = tmp_path / "ownkey.db", tmp_path / "dump.db"
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    with node(home_a, db) as a:
        a.create_org("acme")
        a.create_key("acme", actor="test")
        a.update_org("acme", cmk=True, enable=["0001"], actor="test")
        a.add_users("acme", [ANN], licensed=True)
        sealed = a.protector.seal(recording(), b"board minutes")
    # node B: another machine given the same keys (its own home, its own memory of heads)
    shutil.copytree(home_a, home_b)
    (home_b / "audit-heads.json").unlink()
    shutil.copyfile(db, dump)  # the nightly backup
    with node(home_a, db) as a, node(home_b, db) as b:
        a.admin.revoke(RevocationRule(org="acme", service_id="0001"), actor="test")
        for runtime in (a, b):
            with pytest.raises(AccessDenied):
                runtime.protector.open(recording(), sealed)
        b.restore_watch.check()  # node B saw the rule's events too
    shutil.copyfile(dump, db)  # the restore: the rule is gone from the database

    for home in (home_a, home_b):
        with node(home, db) as restored:
            with pytest.raises(KeyUnavailable, match="reconcile-restore"):
                restored.protector.open(recording(), sealed)  # before: b"board minutes"
            handle = restored.protector.prepare(recording())
            with pytest.raises(KeyUnavailable):
                handle.open("rec-1", sealed)
            assert [item.org for item in restored.restore_watch.behind] == ["acme"]

    # the operator applies again what the restore lost, then reconciles (the CLI, on node A)
    with node(home_a, db) as a:
        a.admin.revoke(RevocationRule(org="acme", service_id="0001"), actor="operator")
    result = CliRunner().invoke(
        app,
        ["--home", str(home_a), "--database-url", f"sqlite:///{db}", "audit", "reconcile-restore"],
    )
    assert result.exit_code != 0
    assert "add --yes" in result.output
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(home_a),
            "--database-url",
            f"sqlite:///{db}",
            "audit",
            "reconcile-restore",
            "--yes",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["behind"] == ["acme"]
    for home in (home_a, home_b):  # node B follows the chain's record, no command of its own
        with node(home, db) as reconciled:
            with pytest.raises(AccessDenied):  # the re-applied rule holds
                reconciled.protector.open(recording(), sealed)
            assert reconciled.restore_watch.behind == []
            told = [
                event.body
                for event in reconciled.audit_log.query("acme", AuditQuery())
                if event.body["action"] == AuditAction.RESTORE_RECONCILED.value
            ]
            assert len(told) == 1
            assert told[0]["detail"]["database_seq"] is not None


def test_a_node_that_saw_nothing_newer_stays_open(tmp_path: Path) -> None:
    db = tmp_path / "ownkey.db"
    with node(tmp_path / "a", db) as a:
        a.create_org("acme")
    with node(tmp_path / "a", db) as again:
        assert again.restore_watch.check() == []
        assert not again.protector.open_gate.shut
    memory = json.loads((tmp_path / "a" / "audit-heads.json").read_text())
    [(_, orgs)] = memory.items()  # one database's heads
    assert "acme" in orgs


def test_another_database_seen_from_the_same_home_is_no_alarm(tmp_path: Path) -> None:
    """The memory is kept per database: a home pointed at a new database (a test's, a new
    deployment's) remembers nothing of it, rather than calling it a restore."""
    with node(tmp_path / "a", tmp_path / "one.db") as first:
        first.create_org("acme")
        first.create_key("acme", actor="test")
    with node(tmp_path / "a", tmp_path / "two.db") as second:
        second.create_org("acme")
        assert second.restore_watch.check() == []
        assert not second.protector.open_gate.shut
    assert oct((tmp_path / "a" / "audit-heads.json").stat().st_mode & 0o777) == "0o600"


def test_a_cut_of_the_newest_records_is_noticed_like_a_restore(tmp_path: Path) -> None:
    """The same memory catches a database writer who cuts the tail (the chain re-linked to an
    earlier head), on the node's next check."""
    import sqlite3

    db = tmp_path / "ownkey.db"
    with node(tmp_path / "a", db) as a:
        a.create_org("acme")
        a.create_key("acme", actor="test")
        a.update_org("acme", cmk=True, actor="test")
        a.restore_watch.check()  # what a serving node does every 10 s
        head = a.audit_log.head("acme")
        assert head is not None
        keep = head[0] - 2
        with sqlite3.connect(db) as conn:
            (digest,) = conn.execute(
                "SELECT hash FROM audit_records WHERE org = 'acme' AND seq = ?", (keep,)
            ).fetchone()
            conn.execute("DELETE FROM audit_records WHERE org = 'acme' AND seq > ?", (keep,))
            conn.execute(
                "UPDATE audit_heads SET seq = ?, hash = ? WHERE org = 'acme'", (keep, digest)
            )
        assert [item.org for item in a.restore_watch.check()] == ["acme"]
        assert a.protector.open_gate.shut


def test_a_new_empty_database_at_the_same_place_is_no_alarm(tmp_path: Path) -> None:
    """Starting over (the database file removed) leaves nothing to un-revoke: no alarm."""
    db = tmp_path / "ownkey.db"
    with node(tmp_path / "a", db) as first:
        first.create_org("acme")
    db.unlink()
    with node(tmp_path / "a", db) as again:
        assert again.restore_watch.check() == []
        again.create_org("globex")
        assert again.restore_watch.check() == []
