"""The jobs routes in a fleet (issue 28, item 4): no duplicate job on a second POST, a rotation
that answers before its re-wrap, and a job any node can be asked to resume."""

from __future__ import annotations

import pytest

from ownkey.keys import KeyRef, Selector
from ownkey.service import BackgroundJobs
from tests.api.conftest import Api, chat

ACME = KeyRef.customer("acme")
SCOPES = 5


def _jobs(api: Api) -> BackgroundJobs:
    jobs: BackgroundJobs = api.client.app.state.api.jobs  # type: ignore[attr-defined]
    return jobs


def _seal(api: Api, scopes: int = SCOPES) -> None:
    for n in range(scopes):
        answer = api.client.post(
            "/v1/seal",
            json={"request": chat(scope=f"chat-{n}", asset_id=f"m{n}"), "data": "aGk="},
            headers=api.platform,
        )
        assert answer.status_code == 200, answer.text


def _versions(api: Api) -> set[str]:
    return {
        wrap.version
        for record in api.runtime.admin.scope_keys(Selector(key=ACME))
        for wrap in record.wraps
        if wrap.key == ACME
    }


def _held(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """This node accepts jobs but does not get to work on them (still busy, or about to die)."""
    started: list[str] = []
    monkeypatch.setattr(_jobs(api), "start", lambda job_id, **_: started.append(job_id))
    return started


def test_a_second_post_answers_the_job_already_made(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seal(api)
    api.runtime.admin.rotate_key(ACME, rewrap=False)
    _held(api, monkeypatch)
    first = api.client.post("/v1/orgs/acme/jobs", json={"kind": "rewrap"}, headers=api.acme)
    assert first.status_code == 202, first.text
    assert first.json()["node"] == api.runtime.node_id
    again = api.client.post("/v1/orgs/acme/jobs", json={"kind": "rewrap"}, headers=api.acme)
    assert again.status_code == 200, again.text
    assert again.json()["job_id"] == first.json()["job_id"]
    other = api.client.post(  # another request is another job
        "/v1/orgs/acme/jobs", json={"kind": "backfill", "services": ["0001"]}, headers=api.acme
    )
    assert other.status_code == 202
    assert other.json()["job_id"] != first.json()["job_id"]
    listed = api.client.get("/v1/orgs/acme/jobs", headers=api.acme).json()["jobs"]
    assert [job["kind"] for job in listed] == ["rewrap", "backfill"]
    api.runtime.run_job(first.json()["job_id"])
    after = api.client.post("/v1/orgs/acme/jobs", json={"kind": "rewrap"}, headers=api.acme)
    assert after.status_code == 202
    assert after.json()["job_id"] != first.json()["job_id"]


def test_rotate_answers_before_the_rewrap_and_the_job_resumes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seal(api)
    started = _held(api, monkeypatch)
    rotated = api.client.post("/v1/orgs/acme/key/rotate", json={}, headers=api.acme)
    assert rotated.status_code == 202, rotated.text
    body = rotated.json()
    assert body["key"]["version"] == "v2"
    job = body["job"]
    assert (job["kind"], job["state"], job["total"], job["done"]) == ("rewrap", "pending", 5, 0)
    assert started == [job["job_id"]]
    assert _versions(api) == {"v1"}  # nothing re-wrapped yet: the answer did not wait for it
    monkeypatch.undo()  # this node works again
    resumed = api.client.post(f"/v1/orgs/acme/jobs/{job['job_id']}/resume", headers=api.acme)
    assert resumed.status_code == 202, resumed.text
    assert _jobs(api).wait(60)
    done = api.client.get(f"/v1/orgs/acme/jobs/{job['job_id']}", headers=api.acme).json()
    assert (done["state"], done["done"], done["node"]) == ("done", SCOPES, None)
    assert _versions(api) == {"v2"}
    finished = api.client.post(f"/v1/orgs/acme/jobs/{job['job_id']}/resume", headers=api.acme)
    assert finished.status_code == 200
    assert finished.json()["state"] == "done"
    plain = api.client.post("/v1/orgs/acme/key/rotate", json={"rewrap": False}, headers=api.acme)
    assert plain.status_code == 200
    assert plain.json()["job"] is None
    assert plain.json()["key"]["version"] == "v3"
    missing = api.client.post("/v1/orgs/acme/jobs/nosuch/resume", headers=api.acme)
    assert missing.status_code == 404
