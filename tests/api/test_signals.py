"""The operator's signals (issue 28, item 6): /metrics and request ids.

Each metric is read from the Prometheus text after the event it counts; no metric carries an
org, scope or asset name. Request ids: the client's when well formed, else a fresh one, always
echoed.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.api.conftest import Api, recording


def _samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = api.client.get("/metrics")
    assert answer.status_code == 200
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _seal(api: Api, scope: str) -> Any:
    body = {"request": recording(scope=scope), "data": base64.b64encode(b"hi").decode()}
    return api.client.post("/v1/seal", json=body, headers=api.platform)


def test_route_latency_is_by_template_never_by_name(api: Api) -> None:
    assert _seal(api, "meeting-9").status_code == 200
    assert api.client.get("/v1/orgs/acme/settings", headers=api.acme).status_code == 200
    assert api.client.get("/no/such/route/acme").status_code == 404
    samples = _samples(api)
    name = "ownkey_http_request_duration_seconds"
    assert _value(samples, f"{name}_count", route="/v1/seal", method="POST") == 1
    assert _value(samples, f"{name}_count", route="/v1/orgs/{org}/settings", method="GET") == 1
    assert _value(samples, f"{name}_count", route="unmatched", method="GET") == 1
    assert _value(samples, f"{name}_bucket", route="/v1/seal", method="POST", le="+Inf") == 1
    for _, labels in samples:
        for _, value in labels:
            assert "acme" not in value
            assert "meeting-9" not in value


def test_key_manager_calls_are_counted_and_timed_by_provider_kind(api: Api) -> None:
    before = _samples(api)
    assert _seal(api, "meeting-fresh").status_code == 200  # a new scope key: a wrap per key
    after = _samples(api)
    name = "ownkey_key_manager_calls_total"
    labels = {"provider": "local", "action": "wrap", "outcome": "ok"}
    assert _value(after, name, **labels) > _value(before, name, **labels)
    count = "ownkey_key_manager_call_duration_seconds_count"
    assert _value(after, count, provider="local", action="wrap") == _value(after, name, **labels)
    assert _value(after, "ownkey_key_manager_wraps_total") >= 1
    assert _value(after, "ownkey_key_manager_calls_in_flight") == 0
    assert _value(after, "ownkey_key_manager_calls_per_org_limit") == 8
    assert _value(after, "ownkey_key_manager_calls_rejected_total", why="queue_full") == 0


def test_database_errors_and_pool(api: Api) -> None:
    with (
        pytest.raises(OperationalError, match="no_such_table"),
        api.runtime.database.engine.connect() as conn,
    ):
        conn.execute(text("SELECT * FROM no_such_table"))
    samples = _samples(api)
    assert _value(samples, "ownkey_database_errors_total", error="OperationalError") == 1
    assert ("ownkey_database_pool_checkedout", ()) in samples


def test_audit_append_failures(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_event: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(api.runtime.audit_sink, "record", refuse)
    answer = _seal(api, "meeting-unaudited")
    assert answer.status_code == 503
    monkeypatch.undo()
    assert _value(_samples(api), "ownkey_audit_append_failures_total") >= 1


def test_jobs_by_kind_and_state(api: Api) -> None:
    job = api.client.post("/v1/orgs/acme/jobs", json={"kind": "rewrap"}, headers=api.acme)
    assert job.status_code in (200, 201, 202), job.text
    samples = _samples(api)
    states = {
        dict(labels)["state"]
        for name, labels in samples
        if name == "ownkey_jobs" and dict(labels)["kind"] == "rewrap"
    }
    assert states
    assert states <= {"pending", "running", "done", "failed"}
    assert sum(v for (n, lb), v in samples.items() if n == "ownkey_jobs") == 1


def test_build_info(api: Api) -> None:
    samples = _samples(api)
    (labels,) = [dict(lb) for name, lb in samples if name == "ownkey_build_info"]
    assert labels["version"]
    assert re.fullmatch(r"\d{4}", labels["schema_head"])
    assert labels["schema_revision"] == labels["schema_head"]


# -- request ids -----------------------------------------------------------------------------------


def test_a_well_formed_request_id_is_echoed(api: Api) -> None:
    answer = api.client.get("/livez", headers={"X-Request-Id": "lb-7f3a.2026:01"})
    assert answer.headers["X-Request-Id"] == "lb-7f3a.2026:01"


@pytest.mark.parametrize(
    "given",
    [
        "",
        "has space",
        "x" * 129,
        "ünïcode",
        "okt_0123456789abcdef.s3cr3tvalue",  # a credential is never echoed nor logged
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    ],
)
def test_anything_else_gets_a_fresh_id(api: Api, given: str) -> None:
    headers = {"X-Request-Id": given} if given.isascii() else {}
    answer = api.client.get("/livez", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])


def test_every_answer_has_an_id_even_an_error(api: Api) -> None:
    first = api.client.get("/v1/orgs/acme/settings")  # 401
    second = api.client.get("/v1/orgs/acme/settings")
    assert first.status_code == 401
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_the_request_id_reaches_the_thread_that_serves_the_request(api: Api) -> None:
    """A sync route runs on a worker thread: its log lines carry the request's id too."""
    from ownkey._logs import REQUEST_ID

    seen: list[str] = []

    def route() -> dict[str, str]:
        seen.append(REQUEST_ID.get())
        return {}

    api.client.app.add_api_route("/test-only/request-id", route)  # type: ignore[attr-defined]
    answer = api.client.get("/test-only/request-id", headers={"X-Request-Id": "thread-1"})
    assert answer.status_code == 200
    assert seen == ["thread-1"]
    assert REQUEST_ID.get() == ""  # nothing left behind outside the request


def test_the_items_of_unfinished_jobs(api: Api) -> None:
    """A job stored but not yet run (a node's queue): its items count as total, none done."""
    store = api.runtime.jobs
    store.create("rekey", [f"item-{n}" for n in range(7)], org="acme")
    store.create("rekey", ["a", "b"], org="globex")
    assert ("rekey", "pending", 2, 9, 0, 0) in store.tally()
    samples = _samples(api)
    assert _value(samples, "ownkey_jobs", kind="rekey", state="pending") == 2
    assert _value(samples, "ownkey_job_items", kind="rekey", progress="total") == 9
    assert _value(samples, "ownkey_job_items", kind="rekey", progress="done") == 0
