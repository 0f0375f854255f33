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


# -- issue 23 section 3: every witnessed head, from the customer's own log --------------------


def _events(runtime: Runtime, n: int, witness_every: int = 0) -> None:
    """``n`` events in acme's chain; the witness every ``witness_every`` of them."""
    from ownkey.audit import AuditAction, AuditEvent, Outcome

    for i in range(n):
        runtime.audit_sink.record(
            AuditEvent(
                at=1_714_521_600.0 + i,
                action=AuditAction.UNWRAP,
                outcome=Outcome.OK,
                org="acme",
                key="customer:acme",
                actor="test",
                detail={"asset_id": f"a{i}"},
            )
        )
        if witness_every and (i + 1) % witness_every == 0:
            witness(runtime, "acme")


def _cut(runtime: Runtime, keep: int) -> None:
    """A database writer's consistent cut: records, checkpoints and head row after ``keep``."""
    with runtime.database.engine.begin() as conn:
        where = audit_records.c.org == "acme"
        conn.execute(delete(audit_records).where(where, audit_records.c.seq > keep))
        conn.execute(
            delete(audit_checkpoints).where(
                audit_checkpoints.c.org == "acme", audit_checkpoints.c.seq > keep
            )
        )
        row = conn.execute(select(audit_records.c.hash).where(where, audit_records.c.seq == keep))
        conn.execute(
            update(audit_heads)
            .where(audit_heads.c.org == "acme")
            .values(seq=keep, hash=row.one().hash)
        )


def _verify(runtime: Runtime, *args: str) -> tuple[int, str]:
    env = {"OWNKEY_HOME": str(runtime.home), "OWNKEY_DATABASE_URL": ""}
    result = CliRunner().invoke(app, ["audit", "verify", "acme", *args], env=env)
    return result.exit_code, result.output


def _log(runtime: Runtime) -> str:
    return str(runtime.home / "local-keys.log")


def test_without_an_anchor_a_cut_of_700_of_1000_events_and_their_checkpoints_shows_nowhere(
    runtime: Runtime,
) -> None:
    """The review's attack: database write alone, 700 of 1,000 events cut together with the
    later signed checkpoints and the head row. The database alone cannot show it (by
    construction: nothing in it is out of the writer's reach); verify says it had no anchor.
    Against the local store's log of the witness calls, the cut is *truncated*."""
    _events(runtime, 1000, witness_every=100)
    assert _verify(runtime, "--witness-log", _log(runtime))[0] == 0
    _cut(runtime, 300)
    code, output = _verify(runtime)
    assert code == 0, output
    assert "anchor: none" in output
    code, output = _verify(runtime, "--witness-log", _log(runtime), "--witness-interval", "0")
    assert code == 1, output
    assert "truncated" in output


def test_an_honest_witness_of_the_cut_chain_does_not_hide_the_cut(runtime: Runtime) -> None:
    """After the cut the node goes on and the honest witness records a head of the cut chain:
    that newest head verifies, the older witnessed heads do not."""
    _events(runtime, 1000, witness_every=100)
    _cut(runtime, 300)
    _events(runtime, 50)
    newest = witness(runtime, "acme").head
    assert _verify(runtime, "--since-head", newest)[0] == 0  # the newest head alone agrees
    code, output = _verify(runtime, "--witness-log", _log(runtime), "--json")
    assert code == 1, output
    report = json.loads(output)
    assert report["problems"][0]["kind"] in ("truncated", "edited")
    [anchor] = report["anchors"]
    assert (anchor["kind"], anchor["newest"]) == ("witness_log", newest)
    assert anchor["heads"] == 11


def test_an_insider_with_the_signing_key_rewrites_re_signs_and_witnesses_in_vain(
    runtime: Runtime,
) -> None:
    """With the signing key (the operator's disk) and the node's KMS access, an insider
    rewrites every record, re-signs every checkpoint and witnesses the new head: the chain
    verifies, every older witnessed head in the customer's log does not."""
    from ownkey.audit._chain import ChainHead, sign_checkpoint

    _events(runtime, 600, witness_every=200)
    with runtime.database.engine.begin() as conn:
        rows = list(
            conn.execute(
                select(audit_records)
                .where(audit_records.c.org == "acme")
                .order_by(audit_records.c.seq)
            )
        )
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.org == "acme"))
        head, previous = ChainHead("acme"), bytes(32)
        from ownkey.audit._chain import checkpoint_link

        for row in rows:
            body = bytes(row.body).replace(b'"asset_id":"a7"', b'"asset_id":"a8"')
            record = head.append(body)
            conn.execute(
                update(audit_records)
                .where(audit_records.c.id == row.id)
                .values(body=record.body, hash=record.hash)
            )
            if record.seq % 256 == 0:
                key = runtime.signing_key
                signed = sign_checkpoint(head, key.signer, key.key_id, 0, previous)
                previous = checkpoint_link(signed)
                conn.execute(
                    audit_checkpoints.insert().values(
                        org="acme",
                        seq=signed.seq,
                        hash=signed.hash,
                        signed_at=0,
                        key_id=signed.key_id,
                        signature=signed.signature,
                        previous=signed.previous,
                    )
                )
        conn.execute(
            update(audit_heads)
            .where(audit_heads.c.org == "acme")
            .values(seq=head.seq, hash=head.hash)
        )
    witness(runtime, "acme")
    assert _verify(runtime)[0] == 0
    code, output = _verify(runtime, "--witness-log", _log(runtime))
    assert code == 1, output
    assert "edited" in output


def test_a_registry_edit_that_sends_the_witness_to_the_insiders_key_shows(
    runtime: Runtime,
) -> None:
    """One edit of acme's registry row and the witness wraps under the insider's key: the
    customer's log (here the local store's, which holds both keys) shows the witness moving;
    counting the customer's key only, the witness stopped (a gap, once the interval passes:
    tests/audit/test_witness_log.py::test_a_witness_moved_to_another_key_shows)."""
    from ownkey.storage._schema import master_keys

    _events(runtime, 10)
    witness(runtime, "acme")
    customer = runtime.admin.key(KeyRef.customer("acme")).key_id
    insider = runtime.protector._deps.providers["local"].create_key(label="insider")
    with runtime.database.engine.begin() as conn:
        conn.execute(
            update(master_keys).where(master_keys.c.ref == "customer:acme").values(key_id=insider)
        )
    home = runtime.home
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as other:
        _events(other, 10)
        assert witness(other, "acme").key_id == insider
        code, output = _verify(other, "--witness-log", _log(other))
        assert code == 1, output
        assert "witness_key_changed" in output
        code, output = _verify(other, "--witness-log", _log(other), "--witness-key", customer)
        assert code == 0, output  # within the interval: the gap is not yet longer than it
        assert "1 witnessed heads" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--witness-log", "/nonexistent/log"], "--witness-log"),
        (["--witness-interval", "5"], "at least"),
    ],
)
def test_a_witness_log_that_cannot_be_read_is_bad_input(
    runtime: Runtime, args: list[str], message: str, tmp_path: Path
) -> None:
    if args[0] == "--witness-interval":
        log = tmp_path / "log.json"
        log.write_text('{"Records": []}')
        args = ["--witness-log", str(log), *args]
    code, output = _verify(runtime, *args)
    assert code == 2, output


def test_an_export_verifies_offline_against_the_witness_log(
    runtime: Runtime, tmp_path: Path
) -> None:
    """AUD-13 offline: ``verify-export --public-key HEX --witness-log FILE`` trusts nothing of
    the operator's; an export of the cut chain fails against the customer's log."""
    env = {"OWNKEY_HOME": str(runtime.home), "OWNKEY_DATABASE_URL": ""}
    public = runtime.signing_key.public_key.hex()

    def export_and_verify() -> tuple[int, str]:
        exported = CliRunner().invoke(app, ["audit", "export", "acme"], env=env)
        assert exported.exit_code == 0, exported.output
        path = tmp_path / "export.jsonl"
        path.write_text(exported.output)
        args = ["audit", "verify-export", "acme", str(path), "--public-key", public]
        result = CliRunner().invoke(app, [*args, "--witness-log", _log(runtime)], env={})
        return result.exit_code, result.output

    _events(runtime, 600, witness_every=150)
    code, output = export_and_verify()
    assert code == 0, output
    assert "4 witnessed heads" in output
    _cut(runtime, 200)
    code, output = export_and_verify()
    assert code == 1, output
    assert "truncated" in output


def test_an_erased_chain_shows_against_the_witness_log(runtime: Runtime) -> None:
    """The org's records, checkpoints and head row all deleted: without an anchor there is
    no audit log to verify (exit 2); against the witness log it is *erased*."""
    _events(runtime, 300, witness_every=100)
    with runtime.database.engine.begin() as conn:
        for table in (audit_records, audit_checkpoints, audit_heads):
            conn.execute(delete(table).where(table.c.org == "acme"))
    assert _verify(runtime)[0] == 2
    code, output = _verify(runtime, "--witness-log", _log(runtime), "--witness-interval", "0")
    assert code == 1, output
    assert "erased" in output
