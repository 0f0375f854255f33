"""The console's front door over HTTP, without a browser: cookies, CSRF, who signs in, headers,
the usage window's limit and CSV cells (fast: an app over a SQLite runtime in a temp home)."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ownkey.api import create_app
from ownkey.service import Runtime
from ownkey.storage import Database, SessionStore, TokenStore
from ownkey.web._session import SESSION_SECONDS, Sessions
from ownkey.web._views import CSV_COLUMNS, csv_text
from tests.api.conftest import setup_orgs


@dataclass
class Site:
    runtime: Runtime
    tokens: TokenStore
    acme: str
    acme_id: str
    platform: str

    def client(self, base_url: str = "http://testserver") -> TestClient:
        return TestClient(create_app(self.runtime, tokens=self.tokens), base_url=base_url)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    home = tmp_path / "home"
    with Runtime.open(home=home, env={"OWNKEY_HOME": str(home)}) as rt:
        setup_orgs(rt)
        tokens = TokenStore(rt.database)
        issued, acme = tokens.issue("org", org="acme")
        _, platform = tokens.issue("platform")
        yield Site(rt, tokens, acme, issued.token_id, platform)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


def _sign_in(client: TestClient, token: str) -> str:
    """Sign in; the session's CSRF token (from the overview's forms)."""
    form = client.get("/admin/signin")
    answer = client.post("/admin/signin", data={"csrf": _csrf(form.text), "token": token})
    assert answer.status_code == 200, answer.text[:300]
    return _csrf(answer.text)


def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(site: Site) -> None:
    with site.client("https://testserver") as client:
        form = client.get("/admin/signin")
        answer = client.post(
            "/admin/signin",
            data={"csrf": _csrf(form.text), "token": site.acme},
            follow_redirects=False,
        )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/acme"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "ownkey_console=" in c)
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=strict", "path=/admin"} <= flags
    assert site.acme not in cookie  # the cookie holds an id, never the token


def test_sign_in_without_its_form_token_is_refused(site: Site) -> None:
    with site.client() as client:
        client.get("/admin/signin")
        answer = client.post("/admin/signin", data={"token": site.acme}, follow_redirects=False)
    assert answer.status_code == 403
    assert "ownkey_console=" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("kind", ["platform", "unknown"])
def test_only_an_org_admin_token_signs_in_with_one_answer_for_the_rest(
    site: Site, kind: str
) -> None:
    token = site.platform if kind == "platform" else "okt_0000000000000000.bm90IGEgdG9rZW4"
    with site.client() as client:
        form = client.get("/admin/signin")
        answer = client.post("/admin/signin", data={"csrf": _csrf(form.text), "token": token})
        assert answer.status_code == 401
        assert "That is not a valid org admin token." in answer.text
        assert client.get("/admin/acme", follow_redirects=False).status_code == 303


def test_a_revoked_token_ends_its_session_on_the_next_page(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, site.acme)
        assert client.get("/admin/acme/key").status_code == 200
        site.tokens.revoke(site.acme_id)
        answer = client.get("/admin/acme/key", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/signin"


def test_a_forged_post_changes_nothing(site: Site) -> None:
    with site.client() as client:
        csrf = _sign_in(client, site.acme)
        for data in ({}, {"csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}):
            answer = client.post("/admin/acme/coverage/0010", data={**data, "enable": "1"})
            assert answer.status_code == 403
        assert "0010" not in site.runtime.org("acme").settings.services
        assert site.runtime.list_jobs("acme") == []
        done = client.post(
            "/admin/acme/coverage/0010", data={"csrf": csrf, "enable": "1"}, follow_redirects=False
        )
    assert done.status_code == 303
    assert "0010" in site.runtime.org("acme").settings.services
    assert [job.kind for job in site.runtime.list_jobs("acme")] == ["backfill"]


def test_pages_are_never_cached_framed_or_given_foreign_scripts(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, site.acme)
        answer = client.get("/admin/acme/coverage")
        script = client.get("/admin/static/htmx.min.js")
        missing = client.get("/admin/static/_pages.py")
    headers = answer.headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert script.status_code == 200
    assert script.text.startswith("/*! htmx 2.0.11")
    assert missing.status_code == 404


def test_a_usage_window_over_31_days_is_refused_with_the_reason(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, site.acme)
        wide = client.get(
            "/admin/acme/usage", params={"since": "2026-01-01T00:00", "until": "2026-02-15T00:00"}
        )
        csv_wide = client.get(
            "/admin/acme/usage.csv",
            params={"since": "2026-01-01T00:00", "until": "2026-02-15T00:00"},
        )
        fine = client.get(
            "/admin/acme/usage", params={"since": "2026-01-01T00:00", "until": "2026-01-31T00:00"}
        )
    assert wide.status_code == 422
    assert "more than 31 days" in wide.text
    assert csv_wide.status_code == 422
    assert fine.status_code == 200


def test_the_usage_page_says_its_chain_check_has_no_external_anchor(site: Site) -> None:
    """AUD-9: the page's "verified" is the database alone; it says so and where to check the
    chain against the key manager's log (AUD-13)."""
    with site.client() as client:
        _sign_in(client, site.acme)
        page = client.get("/admin/acme/usage")
    assert page.status_code == 200
    assert "Checked against the database alone" in page.text
    assert "ownkey audit verify acme --witness-log FILE" in page.text


@pytest.mark.parametrize("since", ["1969-12-01T00:00", "0001-01-01T00:00"])
def test_a_usage_window_before_1970_is_refused_by_the_one_time_rule(site: Site, since: str) -> None:
    """The console's times pass the rule of ownkey.policy, as the CLI's and the API's do."""
    with site.client() as client:
        _sign_in(client, site.acme)
        page = client.get("/admin/acme/usage", params={"since": since})
        csv = client.get("/admin/acme/usage.csv", params={"since": since})
    assert page.status_code == csv.status_code == 422
    assert "since: before 1970-01-01" in page.text
    assert "before 1970-01-01" in csv.text


def test_csv_cells_never_start_a_formula() -> None:
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(seq="7", user="=HYPERLINK(1)", scope="+1", asset_id="@x", reason="-2")
    text = "".join(csv_text([row]))
    cells = dict(zip(CSV_COLUMNS, next(csv.reader([text.splitlines()[1]])), strict=True))
    assert (cells["user"], cells["scope"], cells["asset_id"], cells["reason"]) == (
        "'=HYPERLINK(1)",
        "'+1",
        "'@x",
        "'-2",
    )


def test_the_console_and_the_cli_export_one_csv_schema() -> None:
    """Issue 23: one CSV schema for the CLI export and the console export."""
    from ownkey.audit._export import CSV_COLUMNS as AUDIT_CSV_COLUMNS

    assert CSV_COLUMNS is AUDIT_CSV_COLUMNS
    assert text_header() == ",".join(AUDIT_CSV_COLUMNS)


def text_header() -> str:
    return "".join(csv_text([])).splitlines()[0]


def test_a_session_ends_after_its_lifetime(tmp_path: Path) -> None:
    now = [1000.0]
    database = Database.open(f"sqlite:///{tmp_path / 'ownkey.db'}")
    sessions = Sessions(SessionStore(database), clock=lambda: now[0])
    session = sessions.start(token_id="0123456789abcdef", org="acme", actor="token:x")
    assert sessions.get(session.session_id) == session
    assert session.session_id not in repr(session)
    assert session.csrf not in repr(session)
    now[0] += SESSION_SECONDS
    assert sessions.get(session.session_id) is None
    database.close()


def test_a_session_is_stored_by_its_digest_with_its_tokens_id_never_the_token(site: Site) -> None:
    """What a copy of the database holds of a session: nothing that signs anyone in."""
    from sqlalchemy import select

    from ownkey.envelope import sha256
    from ownkey.storage._schema import console_sessions

    with site.client() as client:
        _sign_in(client, site.acme)
        cookie = client.cookies.get("ownkey_console")
    assert cookie is not None
    with site.runtime.database.engine.connect() as conn:
        rows = conn.execute(select(console_sessions)).all()
    assert len(rows) == 1
    (row,) = rows
    assert bytes(row.digest) == sha256(cookie.encode("utf-8"))
    assert (row.org, row.token_id, row.actor) == ("acme", site.acme_id, f"token:{site.acme_id}")
    stored = " ".join(str(value) for value in row)
    assert cookie not in stored
    assert site.acme not in stored
    assert site.acme.split(".", 1)[1] not in stored


def test_the_jobs_table_polls_while_a_job_runs_and_stops_when_it_is_done(site: Site) -> None:
    job = site.runtime.create_job("backfill", org="acme", services=["0001"])
    with site.client() as client:
        _sign_in(client, site.acme)
        running = client.get(f"/admin/acme/jobs/live/{job.job_id}")
        site.runtime.run_job(job.job_id)
        done = client.get(f"/admin/acme/jobs/live/{job.job_id}")
        page = client.get(f"/admin/acme/jobs/{job.job_id}")
    assert running.status_code == 200
    assert f'hx-get="/admin/acme/jobs/live/{job.job_id}"' in running.text
    assert 'hx-trigger="every 1s"' in running.text
    assert "hx-get" not in done.text
    assert 'data-state="done"' in done.text
    assert "<html" not in done.text  # the fragment alone, for the swap
    assert page.status_code == 200
    assert "<html" in page.text


def test_a_job_of_another_org_is_not_found_like_an_unknown_one(site: Site) -> None:
    site.runtime.create_org("initech")
    other = site.runtime.create_job("shred", org="initech")
    with site.client() as client:
        _sign_in(client, site.acme)
        theirs = client.get(f"/admin/acme/jobs/{other.job_id}")
        unknown = client.get("/admin/acme/jobs/no-such-job")
        live = client.get(f"/admin/acme/jobs/live/{other.job_id}")
    assert theirs.status_code == unknown.status_code == live.status_code == 404
    assert theirs.text == unknown.text


def test_a_poll_after_the_session_ended_sends_the_page_to_sign_in(site: Site) -> None:
    with site.client() as client:
        answer = client.get(
            "/admin/acme/jobs/live", headers={"HX-Request": "true"}, follow_redirects=False
        )
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"] == "/admin/signin"
    assert answer.content == b""


@pytest.mark.parametrize(
    ("path", "data", "status", "says"),
    [
        ("/admin/acme/revocations/preview", {"since": "yesterday"}, 422, "not a date"),
        ("/admin/acme/revocations/preview", {"until": "yesterday"}, 422, "until: not a date"),
        # The one time rule of ownkey.policy, as on the CLI and the API (issue 12).
        ("/admin/acme/revocations", {"since": "1969-12-31T00:00"}, 422, "before 1970-01-01"),
        ("/admin/acme/revocations", {"service_id": "12"}, 422, "not a service ID"),
        (
            "/admin/acme/revocations/preview",
            {"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"},
            422,
            "must be after since",
        ),
        ("/admin/acme/key/enable", {}, 409, "enabled"),
        ("/admin/acme/key/cancel-destruction", {}, 409, "enabled"),
        ("/admin/acme/key/schedule-destruction", {"waiting_period_days": "x"}, 422, "number"),
        ("/admin/acme/key/melt", {}, 404, "Not found."),
        ("/admin/acme/coverage/0000", {"enable": "1"}, 404, "Not found."),
        ("/admin/acme/revocations/no-such-rule/lift", {}, 404, "Not found."),
    ],
)
def test_a_refused_change_shows_why_on_a_page_and_changes_nothing(
    site: Site, path: str, data: dict[str, str], status: int, says: str
) -> None:
    with site.client() as client:
        csrf = _sign_in(client, site.acme)
        answer = client.post(path, data={**data, "csrf": csrf})
    assert answer.status_code == status, answer.text[-800:]
    assert says in answer.text
    assert "<html" in answer.text
    assert site.runtime.admin.rules("acme") == []
    assert site.runtime.list_keys("acme")[0].state.value == "enabled"


def test_signing_in_again_ends_the_previous_session(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, site.acme)
        first = client.cookies.get("ownkey_console")
        assert client.get("/admin/signin").url.path == "/admin/acme"  # already signed in
        client.cookies.set("ownkey_signin", "a-stale-sign-in-form", path="/admin")  # another tab
        again = client.post(
            "/admin/signin", data={"csrf": "a-stale-sign-in-form", "token": site.acme}
        )
        assert again.url.path == "/admin/acme"
        second = client.cookies.get("ownkey_console")
        client.cookies.clear()
        fresh, stale = (
            client.get(
                "/admin/acme", headers={"Cookie": f"ownkey_console={id_}"}, follow_redirects=False
            )
            for id_ in (second, first)
        )
    assert first is not None
    assert second not in (None, first)
    assert fresh.status_code == 200
    assert stale.status_code == 303


def _seqs(html: str) -> list[int]:
    body = html.split('<table id="events">', 1)[1].split("</table>", 1)[0]
    return [int(seq) for seq in re.findall(r"<tr><td>(\d+)</td>", body)]


def test_the_usage_log_pages_through_every_row_and_the_csv_has_them_all(site: Site) -> None:
    for _ in range(60):  # each health check is a wrap and an unwrap in the log
        site.runtime.admin.check_key("customer:acme")
    with site.client() as client:
        _sign_in(client, site.acme)
        first = client.get("/admin/acme/usage")
        link = re.search(r'href="([^"]+)">Next 100 events', first.text)
        assert link is not None
        second = client.get(link.group(1).replace("&amp;", "&"))
        csv_link = re.search(r'href="([^"]+)" download', first.text)
        assert csv_link is not None
        exported = client.get(csv_link.group(1).replace("&amp;", "&"))
        api = client.get(
            "/v1/orgs/acme/audit/events",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {site.acme}"},
        ).json()["events"]
    shown = _seqs(first.text) + _seqs(second.text)
    assert len(_seqs(first.text)) == 100
    assert "Next 100 events" not in second.text
    assert shown == [event["seq"] for event in api]
    rows = exported.text.splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == shown
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]


def test_the_day_chart_counts_uses_and_denials_by_utc_day() -> None:
    from ownkey.web._views import day_counts

    day = 86_400_000
    events = [
        {"at_ms": 5, "action": "key_manager.unwrap", "outcome": "ok"},
        {"at_ms": day + 1, "action": "key_manager.wrap", "outcome": "ok"},
        {"at_ms": day + 2, "action": "access.denied", "outcome": "denied"},
        {"at_ms": day + 3, "action": "key.rotate", "outcome": "ok"},  # not a use
        {"at_ms": 3 * day, "action": "key_manager.wrap", "outcome": "ok"},  # outside
    ]
    counts = day_counts(events, 0, 2 * day)
    assert [(d.day, d.uses, d.denials) for d in counts] == [
        ("1970-01-01", 1, 0),
        ("1970-01-02", 1, 1),
    ]


def test_a_rule_stored_by_an_older_version_is_listed_as_unreadable(site: Site) -> None:
    """Issue 12: a rule with ``since = inf`` (stored before times were checked) ended the
    revocations page with a 500; it is listed, flagged, with what is enforced instead."""
    from ownkey.keys import RevocationRule
    from ownkey.storage import SqlRuleStore

    old = RevocationRule(
        org="acme", scope="chat-1", since=math.inf, rule_id="r-old", created_at=1.0
    )
    SqlRuleStore(site.runtime.database).add(old)
    site.runtime.invalidate()
    with site.client() as client:
        _sign_in(client, site.acme)
        page = client.get("/admin/acme/revocations")
    assert page.status_code == 200, page.text[:300]
    assert "r-old" in page.text
    assert "Unreadable" in page.text
    assert "since is inf" in page.text
    assert "whole scope" in page.text


def test_sign_out_needs_its_csrf_token(site: Site) -> None:
    """Issue 23: a forged sign-out (no token, a wrong one, not a form) leaves the session."""
    with site.client() as client:
        csrf = _sign_in(client, site.acme)
        forgeries = (
            client.post("/admin/signout", data={}, follow_redirects=False),
            client.post("/admin/signout", data={"csrf": "forged"}, follow_redirects=False),
            client.post(
                "/admin/signout",
                content=f"csrf={csrf}",
                headers={"Content-Type": "text/plain"},
                follow_redirects=False,
            ),
        )
        for forged in forgeries:
            assert forged.status_code == 403
            assert "CSRF" in forged.text
            assert client.get("/admin/acme", follow_redirects=False).status_code == 200
        done = client.post("/admin/signout", data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303
        assert done.headers["location"] == "/admin/signin"
        assert client.get("/admin/acme", follow_redirects=False).status_code == 303


def test_another_orgs_pages_and_forms_are_not_found_like_no_org(site: Site) -> None:
    """Issue 23: the cross-org check of the browser module, over HTTP (it runs without
    chromium): every page and form of another org answers the page of an org that does not
    exist, and changes nothing."""
    from ownkey.keys import RevocationRule

    rule = site.runtime.revoke(RevocationRule(org="globex", scope="channel-x"), actor="test")
    job = site.runtime.create_job("shred", org="globex")
    with site.client() as client:
        csrf = _sign_in(client, site.acme)
        nowhere = client.get("/admin/no-such-org")
        assert nowhere.status_code == 404
        for path in (
            "/admin/globex",
            "/admin/globex/coverage",
            "/admin/globex/revocations",
            "/admin/globex/usage",
            "/admin/globex/usage.csv",
            "/admin/globex/jobs",
            f"/admin/globex/jobs/{job.job_id}",
            f"/admin/globex/jobs/live/{job.job_id}",
            "/admin/globex/key",
            "/admin/globex/key/disable",
            f"/admin/acme/jobs/{job.job_id}",
        ):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 404, path
            assert answer.text == nowhere.text, path  # the same page as no org at all
        for path, data in (
            ("/admin/globex/check", {}),
            ("/admin/globex/coverage/0010", {"enable": "1"}),
            ("/admin/globex/revocations/preview", {"scope": "all"}),
            ("/admin/globex/revocations", {"scope": "all"}),
            (f"/admin/globex/revocations/{rule.rule_id}/lift", {}),
            (f"/admin/acme/revocations/{rule.rule_id}/lift", {}),
            ("/admin/globex/key/disable", {}),
        ):
            answer = client.post(path, data={**data, "csrf": csrf}, follow_redirects=False)
            assert answer.status_code == 404, path
            assert answer.text == nowhere.text, path
    assert [r.rule_id for r in site.runtime.admin.rules("globex")] == [rule.rule_id]
    assert "0010" not in site.runtime.org("globex").settings.services
    assert [j.job_id for j in site.runtime.list_jobs("globex")] == [job.job_id]
    assert site.runtime.list_jobs("acme") == []


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/admin/acme/check", {}),
        ("/admin/acme/coverage/0010", {"enable": "1"}),
        ("/admin/acme/revocations/preview", {"scope": "chat-1"}),
        ("/admin/acme/revocations", {"scope": "chat-1"}),
        ("/admin/acme/revocations/RULE/lift", {}),
        ("/admin/acme/key/disable", {}),
        ("/admin/acme/key/rotate", {}),
        ("/admin/acme/key/schedule-destruction", {"waiting_period_days": "30"}),
    ],
)
def test_every_console_form_needs_its_csrf_token(
    site: Site, path: str, data: dict[str, str]
) -> None:
    """The browser module's CSRF check of every form, over HTTP (it runs without chromium):
    no token, a wrong one, another session's, or a body that is not a form: 403, nothing done."""
    from ownkey.keys import RevocationRule

    rule = site.runtime.revoke(RevocationRule(org="acme", scope="kept"), actor="test")
    path = path.replace("RULE", rule.rule_id)
    key = site.runtime.list_keys("acme")[0]
    with site.client() as other:
        foreign = _sign_in(other, site.acme)  # another session of the same org
    with site.client() as client:
        csrf = _sign_in(client, site.acme)
        assert foreign != csrf
        for answer in (
            client.post(path, data=data),
            client.post(path, data={**data, "csrf": "forged"}),
            client.post(path, data={**data, "csrf": foreign}),
            client.post(
                path,
                content=f"csrf={csrf}",
                headers={"Content-Type": "text/plain"},
            ),
        ):
            assert answer.status_code == 403, answer.text[-300:]
            assert "CSRF" in answer.text
    assert [r.rule_id for r in site.runtime.admin.rules("acme")] == [rule.rule_id]
    assert "0010" not in site.runtime.org("acme").settings.services
    after = site.runtime.list_keys("acme")[0]
    assert (after.state, after.version) == (key.state, key.version)
    assert site.runtime.list_jobs("acme") == []


def test_the_user_and_asset_filters_find_who_sealed_and_opened_what(site: Site) -> None:
    """Issue 23: the console's User and Asset filters never matched (no event carried them)."""
    from tests.api.conftest import recording

    sealed = site.runtime.protector.seal({**recording(), "actor": "alice@acme.test"}, b"x")
    site.runtime.protector.open({**recording(), "actor": "bob@acme.test"}, sealed)
    with site.client() as client:
        _sign_in(client, site.acme)
        by_bob = client.get("/admin/acme/usage", params={"user": "bob@acme.test"})
        by_asset = client.get("/admin/acme/usage.csv", params={"asset_id": "rec-1"})
    assert by_bob.status_code == 200
    assert len(_seqs(by_bob.text)) == 1, re.sub(r"\s+", " ", by_bob.text)[-1500:]
    assert "content.access" in by_bob.text
    assert "meeting-1" in by_bob.text
    rows = list(csv.DictReader(by_asset.text.splitlines()))
    assert sorted((row["actor"], row["operation"]) for row in rows) == [
        ("alice@acme.test", "seal"),
        ("bob@acme.test", "open"),
    ]
