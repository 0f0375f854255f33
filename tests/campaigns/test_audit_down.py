"""Campaign 3, the audit store down (issue 12): key operations fail closed while it is out.

Production runs ownkey on PostgreSQL as a service role. The outage here is the real thing: the
service role loses ``INSERT`` on ``audit_records`` (``REVOKE``), so every audit append fails
while every other table still answers. Traffic runs through the library (``Protector``) and the
REST API (a real app on the same runtime) during the outage.

Asserted:

- every operation that needs the key manager (a seal under a new scope: a wrap; an open whose
  scope key this process has not unwrapped: an unwrap) fails with ``AuditUnavailable`` /
  ``503 audit-unavailable`` with ``Retry-After``, within a bounded time, and no answer holds
  the plaintext;
- an operation that succeeds during the outage used a scope key whose unwrap (or wrap) was
  audited *before* the outage (a key this process already holds: AUD-1 records key-manager
  calls, and the cache serves what such a call returned); so nothing is opened without an
  audit record of the key that opened it;
- once such a cached key is past ``refresh_after`` (the clock moved on), it is used only
  after a new, audited unwrap, so it too fails closed: the refresh must not keep serving it as
  it would through a key-manager outage (CA-3), since the key manager's answer, a revocation
  included, could not be recorded (this was a defect, fixed in ``keys/_access.py``);
- no audit record is written during the outage (no half record: records and heads unchanged);
- after ``GRANT INSERT`` everything works again and every org's chain verifies, with its head
  equal to its record count.

The hybrid key service keeps its own audit log (``hybrid/_store.py``, SQLite): a trigger that
aborts every insert into its ``audit`` table makes each ``/unwrap`` answer 503 with no key.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.envelope import peek_key_id
from ownkey.errors import AuditUnavailable
from ownkey.service import ProtectorSettings, Runtime
from ownkey.storage import TokenStore
from ownkey.storage._audit import AuditSigningKey
from ownkey.testing import postgres
from tests.api.conftest import bearer, recording, setup_orgs
from tests.campaigns.conftest import size

PROBLEM = "urn:ownkey:problem:"


@dataclass
class Service:
    """A database with a service role, as production runs it, and the admin engine."""

    url: str
    service_url: str
    role: str
    admin: sqlalchemy.Engine
    home: Path

    def grant(self, allowed: bool) -> None:
        verb = (
            "GRANT INSERT ON audit_records TO" if allowed else "REVOKE INSERT ON audit_records FROM"
        )
        with self.admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'{verb} "{self.role}"'))  # role built by the fixture

    def audit_rows(self) -> dict[str, tuple[int, int]]:
        """Per org: (records, head seq)."""
        with self.admin.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT h.org, h.seq, (SELECT count(*) FROM audit_records r"
                    " WHERE r.org = h.org) FROM audit_heads h"
                )
            )
            return {org: (int(count), int(seq)) for org, seq, count in rows}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    base = postgres.acquire()
    url = postgres.create_database(base)
    role = "svc_" + url.rsplit("/", 1)[1]
    home = tmp_path / "home"
    admin = sqlalchemy.create_engine(url)
    try:
        with Runtime.open(url=url, home=home, env={"OWNKEY_HOME": str(home)}) as rt:
            setup_orgs(rt)  # the schema, as the migrating admin
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'CREATE ROLE "{role}" LOGIN'))
            for what in ("TABLES", "SEQUENCES"):
                conn.execute(
                    sqlalchemy.text(f'GRANT ALL ON ALL {what} IN SCHEMA public TO "{role}"')
                )
        yield Service(url, url.replace("://postgres@", f"://{role}@", 1), role, admin, home)
    finally:
        admin.dispose()
        postgres.drop_database(url)
        server = sqlalchemy.create_engine(base)
        with server.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP ROLE IF EXISTS "{role}"'))  # roles are global
        server.dispose()
        postgres.release()


def _audited_key_ids(rt: Runtime) -> set[str]:
    """Scope key ids of every successful wrap or unwrap in any org's chain."""
    found: set[str] = set()
    for org in rt.audit_log.orgs():
        for record in rt.audit_log.records(org):
            body = json.loads(record.body)
            if body["action"] in ("key_manager.wrap", "key_manager.unwrap") and (
                body["outcome"] == "ok"
            ):
                key_id = body["detail"].get("scope_key_id")
                if key_id:
                    found.add(key_id)
    return found


def _sealed(envelope: bytes | str) -> str:
    raw = base64.b64decode(envelope) if isinstance(envelope, str) else envelope
    return peek_key_id(raw).hex()


def test_audit_store_down_fails_key_operations_closed(service: Service) -> None:
    count = size(10, 250)
    env = {"OWNKEY_HOME": str(service.home)}
    plain: dict[str, bytes] = {}
    # Before the outage: content under 4 x count scopes (library cold / warm, API cold / warm).
    with Runtime.open(url=service.service_url, home=service.home, env=env) as writer:
        tokens = TokenStore(writer.database)
        platform = bearer(tokens.issue("platform")[1])
        sealed: dict[str, list[tuple[dict[str, Any], bytes]]] = {}
        for group in ("lib-cold", "lib-warm", "api-cold", "api-warm"):
            sealed[group] = []
            for n in range(count):
                request = recording(asset_id=f"{group}-{n}", scope=f"{group}-{n}")
                data = os.urandom(16).hex().encode()
                plain[f"{group}-{n}"] = data
                sealed[group].append((request, writer.protector.seal(request, data)))
        objects = {}
        for n in range(count):
            request = recording(asset_id=f"obj-cold-{n}", scope=f"obj-cold-{n}")
            objects[request["asset_id"]] = os.urandom(100 * 1024)  # a stream, in a blob
            writer.assets.put_asset(request, objects[request["asset_id"]])
    answers: dict[str, int] = {}
    slowest = 0.0
    used_in_outage: set[str] = set()

    def tally(name: str) -> None:
        answers[name] = answers.get(name, 0) + 1

    # The node under test starts cold and opens the warm groups once (audited unwraps).
    later = [0.0]  # moved past refresh_after during the outage

    def clock() -> float:
        return time.time() + later[0]

    with Runtime.open(url=service.service_url, home=service.home, env=env, clock=clock) as rt:
        client = TestClient(create_app(rt, tokens=TokenStore(rt.database)))
        with client:
            for request, envelope in sealed["lib-warm"] + sealed["api-warm"]:
                assert rt.protector.open(request, envelope) == plain[request["asset_id"]]
            audited_before = _audited_key_ids(rt)
            rows_before = service.audit_rows()
            service.grant(False)
            try:
                for request, envelope in sealed["lib-cold"] + sealed["lib-warm"]:
                    started = time.monotonic()
                    try:
                        opened = rt.protector.open(request, envelope)
                    except AuditUnavailable as exc:
                        refusal = str(exc)
                        assert request["asset_id"].startswith("lib-cold")
                        assert plain[request["asset_id"]].decode() not in refusal
                        tally("library open: AuditUnavailable")
                    else:
                        assert opened == plain[request["asset_id"]]
                        used_in_outage.add(_sealed(envelope))
                        tally("library open: ok (key unwrapped before)")
                    slowest = max(slowest, time.monotonic() - started)
                for n in range(count):
                    request = recording(asset_id=f"lib-new-{n}", scope=f"lib-new-{n}")
                    started = time.monotonic()
                    with pytest.raises(AuditUnavailable):
                        rt.protector.seal(request, b"never sealed")
                    slowest = max(slowest, time.monotonic() - started)
                    tally("library seal, new scope: AuditUnavailable")
                for request, envelope in sealed["api-cold"] + sealed["api-warm"]:
                    body = {"request": request, "sealed": base64.b64encode(envelope).decode()}
                    started = time.monotonic()
                    answer = client.post("/v1/open", json=body, headers=platform)
                    slowest = max(slowest, time.monotonic() - started)
                    data = plain[request["asset_id"]]
                    if answer.status_code == 200:
                        assert base64.b64decode(answer.json()["data"]) == data
                        used_in_outage.add(_sealed(envelope))
                        tally("API open: 200 (key unwrapped before)")
                        continue
                    assert request["asset_id"].startswith("api-cold"), answer.text
                    _assert_audit_503(answer, data)
                    tally("API open: 503 audit-unavailable")
                for n in range(count):
                    data = os.urandom(16).hex().encode()
                    request = recording(asset_id=f"api-new-{n}", scope=f"api-new-{n}")
                    body = {"request": request, "data": base64.b64encode(data).decode()}
                    started = time.monotonic()
                    answer = client.post("/v1/seal", json=body, headers=platform)
                    slowest = max(slowest, time.monotonic() - started)
                    _assert_audit_503(answer, data)
                    tally("API seal, new scope: 503 audit-unavailable")
                for asset_id, data in objects.items():
                    started = time.monotonic()
                    answer = client.get(f"/v1/objects/{asset_id}", headers=platform)
                    slowest = max(slowest, time.monotonic() - started)
                    _assert_audit_503(answer, data[:64])
                    assert data[:64] not in answer.content
                    tally("API object GET: 503 audit-unavailable")
                for n in range(count):
                    data = os.urandom(100 * 1024)
                    record = recording(asset_id=f"obj-new-{n}", scope=f"obj-new-{n}")
                    header = {
                        "Ownkey-Request": json.dumps({k: record[k] for k in ("asset", "scope")})
                    }
                    put = client.put(
                        f"/v1/objects/obj-new-{n}", content=data, headers={**platform, **header}
                    )
                    _assert_audit_503(put, data[:64])
                    gone = client.get(f"/v1/objects/obj-new-{n}/meta", headers=platform)
                    assert gone.status_code == 404, gone.text
                    tally("API object PUT, new scope: 503 audit-unavailable, nothing stored")
                blobs = [p for p in (service.home / "objects").rglob("*") if p.is_file()]
                assert len(blobs) == len(objects)  # no blob and no .partial of a refused PUT
                # Past refresh_after, a cached key is used only after an audited unwrap:
                # every warm open now fails closed too (it served the stale key before).
                later[0] = ProtectorSettings().cache_refresh_after + 1
                for request, envelope in sealed["lib-warm"]:
                    started = time.monotonic()
                    with pytest.raises(AuditUnavailable):
                        rt.protector.open(request, envelope)
                    slowest = max(slowest, time.monotonic() - started)
                    tally("library open, key past refresh_after: AuditUnavailable")
                for request, envelope in sealed["api-warm"]:
                    body = {"request": request, "sealed": base64.b64encode(envelope).decode()}
                    started = time.monotonic()
                    answer = client.post("/v1/open", json=body, headers=platform)
                    slowest = max(slowest, time.monotonic() - started)
                    _assert_audit_503(answer, plain[request["asset_id"]])
                    tally("API open, key past refresh_after: 503 audit-unavailable")
                rows_during = service.audit_rows()
            finally:
                service.grant(True)
            # Recovery: every refused operation now works, and the chains hold together.
            for request, envelope in sealed["lib-cold"] + sealed["lib-warm"]:
                assert rt.protector.open(request, envelope) == plain[request["asset_id"]]
            for request, envelope in sealed["api-cold"] + sealed["api-warm"]:
                body = {"request": request, "sealed": base64.b64encode(envelope).decode()}
                answer = client.post("/v1/open", json=body, headers=platform)
                assert answer.status_code == 200, answer.text
                assert base64.b64decode(answer.json()["data"]) == plain[request["asset_id"]]
            for asset_id, data in objects.items():
                answer = client.get(f"/v1/objects/{asset_id}", headers=platform)
                assert answer.status_code == 200, answer.text
                assert answer.content == data
            listed = client.get("/v1/objects", params={"limit": 1000}, headers=platform).json()
            assert {o["asset_id"] for o in listed["objects"]} == set(objects)
            after = rt.protector.seal(recording(asset_id="after", scope="lib-new-0"), b"back")
            assert rt.protector.open(recording(asset_id="after", scope="lib-new-0"), after)
            audited_after = _audited_key_ids(rt)
            keys = {
                signing.key_id: signing.public_key
                for signing in [AuditSigningKey.load({"OWNKEY_HOME": str(service.home)})]
            }
            reports = {org: rt.audit_log.verify(org, keys) for org in rt.audit_log.orgs()}
            rows_after = service.audit_rows()
    print(
        f"faults (audit store down): {dict(sorted(answers.items()))}; slowest "
        f"{slowest * 1000:.0f} ms; audit records {rows_before} during {rows_during} "
        f"after {rows_after}"
    )
    assert rows_during == rows_before  # nothing written, not even half a record
    assert used_in_outage <= audited_before  # nothing opened without its key's audit record
    assert _sealed(after) in audited_after
    assert all(report.ok for report in reports.values()), reports
    assert all(records == seq for records, seq in rows_after.values()), rows_after
    assert answers["library open: AuditUnavailable"] == count
    assert answers["API open: 503 audit-unavailable"] == count
    assert answers["library seal, new scope: AuditUnavailable"] == count
    assert answers["API seal, new scope: 503 audit-unavailable"] == count
    assert answers["API object GET: 503 audit-unavailable"] == count
    assert answers["API object PUT, new scope: 503 audit-unavailable, nothing stored"] == count
    assert answers["library open, key past refresh_after: AuditUnavailable"] == count
    assert answers["API open, key past refresh_after: 503 audit-unavailable"] == count
    assert slowest < 10  # bounded: a refused append, no retry against the key manager


def _assert_audit_503(answer: Any, data: bytes) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"] == PROBLEM + "audit-unavailable"
    assert "Retry-After" in answer.headers
    assert data.decode(errors="replace") not in answer.text
    assert base64.b64encode(data).decode() not in answer.text
    assert '"data"' not in answer.text
    assert '"sealed"' not in answer.text


def test_hybrid_key_service_audit_down_returns_no_key(tmp_path: Path) -> None:
    """The key service's ``audit`` table refuses every insert (a trigger on its SQLite file,
    while the revocations table still answers): ``/unwrap`` and ``/wrap`` answer 503 and no
    key; afterwards they work and the chain verifies with no record of the refused calls."""
    from ownkey.hybrid import build_app
    from tests.hybrid.test_service_unit import _body, _service

    service, keys, _, http = _service(tmp_path)
    client = TestClient(build_app(service))
    count = size(10, 250)
    deks = [os.urandom(32) for _ in range(count)]
    wrapped = []
    for dek in deks:
        answer = client.post("/wrap", json={**_body(keys), "key": base64.b64encode(dek).decode()})
        assert answer.status_code == 200, answer.text
        wrapped.append(answer.json()["wrapped_key"])
    before = len(list(service._store.records()))
    outside = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    outside.execute(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'down'); END"
    )
    answers: dict[str, int] = {}
    slowest = 0.0
    try:
        for dek, blob in zip(deks, wrapped, strict=True):
            for op, body in (
                ("unwrap", {**_body(keys), "wrapped_key": blob}),
                ("wrap", {**_body(keys), "key": base64.b64encode(dek).decode()}),
            ):
                started = time.monotonic()
                answer = client.post(f"/{op}", json=body)
                slowest = max(slowest, time.monotonic() - started)
                assert answer.status_code == 503, answer.text
                assert set(answer.json()) == {"error"}
                assert base64.b64encode(dek).decode() not in answer.text
                name = f"{op}: {answer.status_code} {answer.json()['error']['reason']}"
                answers[name] = answers.get(name, 0) + 1
        during = len(list(service._store.records()))
    finally:
        outside.execute("DROP TRIGGER audit_down")
        outside.close()
    for dek, blob in zip(deks, wrapped, strict=True):
        answer = client.post("/unwrap", json={**_body(keys), "wrapped_key": blob})
        assert answer.status_code == 200, answer.text
        assert base64.b64decode(answer.json()["key"]) == dek
    report = service._store.verify()
    after = len(list(service._store.records()))
    http.close()
    print(
        f"faults (hybrid audit down): {answers}; slowest {slowest * 1000:.0f} ms; "
        f"audit records {before} -> {during} during -> {after} after"
    )
    assert answers == {"unwrap: 503 AuditUnavailable": count, "wrap: 503 AuditUnavailable": count}
    assert during == before
    assert after == before + count
    assert report.ok, report
    assert slowest < 10
