"""The audit trail through the API (issue 11, findings 3 and 4): verify against a remembered
head, checkpoints in the export, describe calls in the log."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update

from ownkey.storage._schema import audit_checkpoints, audit_heads, audit_records
from tests.api.conftest import Api


def test_verify_since_head_fails_once_the_chain_is_cut(api: Api) -> None:
    ok = api.client.get("/v1/orgs/acme/audit/verify", headers=api.acme).json()
    assert ok["ok"] is True
    head = ok["head"]
    seq = int(head.split(":")[0])
    again = api.client.get(f"/v1/orgs/acme/audit/verify?since_head={head}", headers=api.acme)
    assert again.json()["ok"] is True
    with api.runtime.database.engine.begin() as conn:  # cut the last record, fix the head row
        conn.execute(
            delete(audit_records).where(audit_records.c.org == "acme", audit_records.c.seq == seq)
        )
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq >= seq))
        row = conn.execute(
            select(audit_records.c.hash).where(
                audit_records.c.org == "acme", audit_records.c.seq == seq - 1
            )
        ).one()
        conn.execute(
            update(audit_heads)
            .where(audit_heads.c.org == "acme")
            .values(seq=seq - 1, hash=row.hash)
        )
    assert api.client.get("/v1/orgs/acme/audit/verify", headers=api.acme).json()["ok"] is True
    cut = api.client.get(f"/v1/orgs/acme/audit/verify?since_head={head}", headers=api.acme)
    assert cut.json()["ok"] is False
    assert cut.json()["problems"][0]["kind"] == "truncated"
    bad = api.client.get("/v1/orgs/acme/audit/verify?since_head=12", headers=api.acme)
    assert bad.status_code == 422
    assert bad.json()["field"] == "since_head"


def test_the_export_carries_signed_checkpoints(api: Api) -> None:
    api.runtime.audit_sink.checkpoint("acme")
    lines = [
        json.loads(line)
        for line in api.client.get("/v1/orgs/acme/audit/export", headers=api.acme).text.splitlines()
    ]
    [mark] = [line["checkpoint"] for line in lines if "checkpoint" in line]
    assert mark["org"] == "acme"
    assert len(mark["signature"]) == 128
    assert mark["seq"] == max(line["seq"] for line in lines if "seq" in line)


def test_key_manager_describe_calls_are_audited(api: Api) -> None:
    """AUD-1 (issue 11, finding 4): the describe of a key check is in the org's log."""
    assert api.client.post("/v1/orgs/acme/key/check", headers=api.acme).status_code == 200
    events = api.client.get(
        "/v1/orgs/acme/audit/events?operation=key_manager.describe", headers=api.acme
    ).json()["events"]
    assert events
    assert events[-1]["outcome"] == "ok"


def test_verify_against_the_key_managers_log_checks_every_witnessed_head(api: Api) -> None:
    """AUD-13 through the API: ``POST /audit/verify`` with the customer's log export; a cut
    that the newest witnessed head alone would not show fails, and the answer names the
    anchor and its age."""
    from ownkey.service import witness

    runtime = api.runtime
    first = witness(runtime, "acme").head
    runtime.audit_sink.checkpoint("acme")  # one more event
    witness(runtime, "acme")
    log = (runtime.home / "local-keys.log").read_text()
    url, body = "/v1/orgs/acme/audit/verify", {"witness_log": log, "witness_interval": "0"}
    ok = api.client.post(url, headers=api.acme, json=body).json()
    assert ok["ok"] is True, ok
    [anchor] = ok["anchors"]
    assert (anchor["kind"], anchor["heads"]) == ("witness_log", 2)
    assert anchor["age_seconds"] is not None
    assert api.client.get(url, headers=api.acme).json()["anchors"] == []  # the database alone
    keep = int(first.split(":")[0]) - 1
    with runtime.database.engine.begin() as conn:  # a consistent cut before the first head
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
    witness(runtime, "acme")  # the honest witness of the cut chain
    log = (runtime.home / "local-keys.log").read_text()
    cut = api.client.post(url, headers=api.acme, json=dict(body, witness_log=log)).json()
    assert cut["ok"] is False
    assert cut["problems"][0]["kind"] in ("truncated", "edited")
    gap = api.client.post(url, headers=api.acme, json={"witness_log": '{"Records": []}'}).json()
    assert [p["kind"] for p in gap["problems"]] == ["witness_gap"]
    bad = api.client.post(url, headers=api.acme, json={"witness_log": "not json"})
    assert (bad.status_code, bad.json()["field"]) == (422, "witness_log")
    short = api.client.post(url, headers=api.acme, json=dict(body, witness_interval="5"))
    assert (short.status_code, short.json()["field"]) == (422, "witness_interval")
