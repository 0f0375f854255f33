"""Issue 12 (leftover): the audit query takes the CLI's one time rule, not milliseconds.

Each test failed before: ``GET .../audit/events`` and ``.../audit/export`` took ``since_ms`` and
``until_ms`` (Unix milliseconds) while ``ownkey audit events/export --since/--until`` take Unix
seconds or RFC 3339 through ``ownkey.policy.parse_time``; ``since`` was an unknown parameter.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

PROBLEM = "urn:ownkey:problem:"
ROUTES = ("events", "export")


def _invalid(response: Any, field: str) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == PROBLEM + "invalid-request", body
    assert body["field"] == field, body
    detail: str = body["detail"]
    assert "\n" not in detail
    return detail


def _add_rule(api: Api) -> None:
    answer = api.client.post("/v1/orgs/acme/revocations", json={"scope": "x"}, headers=api.acme)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("route", ROUTES)
def test_since_and_until_take_unix_seconds_or_rfc_3339(api: Api, route: str) -> None:
    _add_rule(api)
    url = f"/v1/orgs/acme/audit/{route}"
    everything = api.client.get(url, headers=api.acme)
    assert everything.status_code == 200, everything.text
    for since, until in (
        ("1", "2000000"),  # seconds, as the CLI takes them
        ("1970-01-01T00:00:01Z", "1970-01-24T03:33:20Z"),  # RFC 3339, the same window
        ("1970-01-01T00:00:01+00:00", "1970-01-24T03:33:20.000+00:00"),
    ):
        answer = api.client.get(url, params={"since": since, "until": until}, headers=api.acme)
        assert answer.status_code == 200, (since, until, answer.text)


def test_a_window_in_seconds_finds_what_was_logged_in_it(api: Api) -> None:
    _add_rule(api)
    events = api.client.get("/v1/orgs/acme/audit/events", headers=api.acme).json()["events"]
    at_ms = events[-1]["at_ms"]
    around = {"since": str(at_ms // 1000), "until": str(at_ms // 1000 + 1)}
    found = api.client.get("/v1/orgs/acme/audit/events", params=around, headers=api.acme).json()
    assert events[-1]["seq"] in [e["seq"] for e in found["events"]]
    day_before = at_ms // 1000 - 86_400
    before = {"since": str(day_before - 86_400), "until": str(day_before)}
    empty = api.client.get("/v1/orgs/acme/audit/events", params=before, headers=api.acme).json()
    assert empty["events"] == []


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("since", "1796149629000", "milliseconds"),  # milliseconds by mistake: named
        ("until", "1796149629000", "milliseconds"),
        ("since", "inf", "finite"),
        ("since", "-inf", "finite"),
        ("since", "nan", "finite"),
        ("since", "1e400", "finite"),
        ("since", "-5", "1970"),
        ("until", "10000-01-01", "ISO 8601"),
        ("since", "yesterday", "ISO 8601"),
    ],
)
def test_a_bad_time_is_422_with_one_line(
    api: Api, route: str, field: str, value: str, named: str
) -> None:
    answer = api.client.get(f"/v1/orgs/acme/audit/{route}", params={field: value}, headers=api.acme)
    assert named in _invalid(answer, field)


@pytest.mark.parametrize("route", ROUTES)
def test_an_empty_window_is_422(api: Api, route: str) -> None:
    answer = api.client.get(
        f"/v1/orgs/acme/audit/{route}",
        params={"since": "2026-02-01", "until": "2026-01-01"},
        headers=api.acme,
    )
    _invalid(answer, "until")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("old", "new"), [("since_ms", "since"), ("until_ms", "until")])
def test_the_millisecond_parameters_are_refused_naming_the_replacement(
    api: Api, route: str, old: str, new: str
) -> None:
    answer = api.client.get(f"/v1/orgs/acme/audit/{route}", params={old: "1000"}, headers=api.acme)
    detail = _invalid(answer, old)
    assert f"'{new}'" in detail or f"`{new}`" in detail or f" {new} " in detail, detail
    assert "seconds" in detail


def test_the_published_contract_names_since_and_until(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for route in ROUTES:
        names = {p["name"] for p in paths[f"/v1/orgs/{{org}}/audit/{route}"]["get"]["parameters"]}
        assert {"since", "until"} <= names
        assert not {"since_ms", "until_ms"} & names


def test_audit_events_page_past_a_thousand_like_the_cli(api: Api) -> None:
    """``/audit/events`` answered at most ``limit`` (<= 1000) events of its window and had no
    way to the rest; ``after`` and ``next_after`` page through it as ``ownkey audit events
    --after`` does."""
    for _ in range(7):
        api.client.post("/v1/orgs/acme/key/check", headers=api.acme)
    everything = api.client.get("/v1/orgs/acme/audit/events?limit=1000", headers=api.acme).json()
    assert everything["next_after"] is None
    seqs: list[int] = []
    after = 0
    while True:
        page = api.client.get(
            f"/v1/orgs/acme/audit/events?limit=3&after={after}", headers=api.acme
        ).json()
        seqs += [event["seq"] for event in page["events"]]
        if page["next_after"] is None:
            break
        assert len(page["events"]) == 3
        after = page["next_after"]
    assert seqs == [event["seq"] for event in everything["events"]]
    assert len(seqs) > 6
    for bad in ("-1", "x", str(2**63)):
        answer = api.client.get(f"/v1/orgs/acme/audit/events?after={bad}", headers=api.acme)
        assert answer.status_code == 422, answer.text
