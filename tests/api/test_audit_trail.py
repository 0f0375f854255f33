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
