"""The audit witness (issue 11, finding 3): the chain head goes into the org's own key
manager's log, and a head read back from there catches a cut, a rewrite or an erasure."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from ownkey.audit._chain import parse_head
from ownkey.cli import app
from ownkey.errors import ConfigError, NotFound
from ownkey.keys import KeyRef
from ownkey.service import AuditWitness, Runtime, witness
from ownkey.service._witness import HEAD_FIELD, interval_from
from ownkey.storage._schema import audit_checkpoints, audit_heads, audit_records


class Recording:
    """Wraps a provider and keeps every context it was called with: the key manager's log."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.log: list[dict[str, str]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        self.log.append(dict(context))
        return self.inner.wrap(key_id, plaintext, context)  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    home = tmp_path / "home"
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        rt.create_org("acme")
        rt.create_key("acme", actor="test")
        rt.create_org("globex")  # no customer key: nothing to witness with
        yield rt


def _manager_log(runtime: Runtime) -> Recording:
    providers = runtime.protector._deps.providers
    recording = Recording(providers["local"])
    providers._built["local"] = recording  # type: ignore[attr-defined]
    return recording


def test_the_head_lands_in_the_key_managers_context_and_catches_a_cut(runtime: Runtime) -> None:
    manager = _manager_log(runtime)
    done = witness(runtime, "acme")
    [context] = [c for c in manager.log if HEAD_FIELD in c]
    assert context[HEAD_FIELD] == done.head
    assert context["org"] == "acme"
    assert context["purpose"] == "ownkey.audit-witness"
    log = runtime.audit_log
    head = parse_head(context[HEAD_FIELD])  # what the customer reads from its KMS log
    assert log.verify("acme", _keys(runtime), since_head=head).ok
    # the witness call is itself a wrap in the chain, with its context
    [event] = [e for e in log.query("acme", _all()) if HEAD_FIELD in e.body["detail"]]
    assert event.body["action"] == "key_manager.wrap"
    with runtime.database.engine.begin() as conn:  # a consistent cut to before the witness
        keep = head[0] - 1
        conn.execute(delete(audit_records).where(audit_records.c.seq > keep))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > keep))
        row = conn.execute(
            select(audit_records.c.hash).where(
                audit_records.c.org == "acme", audit_records.c.seq == keep
            )
        ).one()
        conn.execute(
            update(audit_heads).where(audit_heads.c.org == "acme").values(seq=keep, hash=row.hash)
        )
    assert log.verify("acme", _keys(runtime)).ok
    assert [p.kind for p in log.verify("acme", _keys(runtime), since_head=head).problems] == [
        "truncated"
    ]


def test_an_org_without_a_customer_key_cannot_be_witnessed(runtime: Runtime) -> None:
    with pytest.raises(NotFound):
        witness(runtime, "globex")
    with pytest.raises(NotFound):
        witness(runtime, "nosuch")


def test_the_periodic_witness_covers_every_org_with_a_usable_key(runtime: Runtime) -> None:
    manager = _manager_log(runtime)
    rounds = AuditWitness(runtime, 3600)
    assert [w.org for w in rounds.run_once()] == ["acme"]
    runtime.admin.disable_key(KeyRef.customer("acme"))
    assert rounds.run_once() == []
    assert len([c for c in manager.log if HEAD_FIELD in c]) == 1
    assert interval_from({}) == 3600.0
    assert interval_from({"OWNKEY_AUDIT_WITNESS_INTERVAL": "0"}) == 0.0
    with pytest.raises(ConfigError):
        interval_from({"OWNKEY_AUDIT_WITNESS_INTERVAL": "-1"})


def test_the_cli_witnesses_on_demand(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWNKEY_HOME", str(runtime.home))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["audit", "witness", "acme", "--json"])
    assert result.exit_code == 0, result.output
    head = json.loads(result.output)["head"]
    verified = CliRunner().invoke(app, ["audit", "verify", "acme", "--since-head", head])
    assert verified.exit_code == 0, verified.output
    assert CliRunner().invoke(app, ["audit", "witness", "globex"]).exit_code == 2


def _keys(runtime: Runtime) -> dict[str, bytes]:
    return {runtime.signing_key.key_id: runtime.signing_key.public_key}


def _all() -> object:
    from ownkey.storage import AuditQuery

    return AuditQuery()


def test_the_periodic_witness_runs_on_its_interval_and_stops(runtime: Runtime) -> None:
    import time

    manager = _manager_log(runtime)
    periodic = AuditWitness(runtime, 0.05)
    periodic.start()
    deadline = time.monotonic() + 5
    while periodic.rounds < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    periodic.stop()
    assert periodic.rounds >= 2
    witnessed = len([c for c in manager.log if HEAD_FIELD in c])
    assert witnessed >= 2
    time.sleep(0.15)
    assert len([c for c in manager.log if HEAD_FIELD in c]) == witnessed  # stopped
    off = AuditWitness(runtime, 0)
    off.start()  # interval 0: never starts a thread
    assert off.rounds == 0


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600.0), ("15m", 900.0), ("24h", 86400.0), ("60", 60.0)]
)
def test_the_interval_is_a_duration(text: str, seconds: float) -> None:
    assert interval_from({"OWNKEY_AUDIT_WITNESS_INTERVAL": text}) == seconds


@pytest.mark.parametrize("text", ["inf", "1e400", "nan", "0.0001", "59", "abc", "99999d"])
def test_an_interval_out_of_range_is_one_config_error(text: str) -> None:
    """``inf`` killed the witness thread with a traceback (the node served on, witnessing
    nothing); ``0.0001`` would have asked each key manager for a wrap 10,000 times a second;
    ``nan`` was called negative."""
    with pytest.raises(ConfigError, match="OWNKEY_AUDIT_WITNESS_INTERVAL") as raised:
        interval_from({"OWNKEY_AUDIT_WITNESS_INTERVAL": text})
    assert "\n" not in str(raised.value)
