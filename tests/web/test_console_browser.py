"""The security console end to end: a real ``ownkey serve`` on the demo's SQLite home, driven
by Debian's chromium through Playwright (one browser, one server, for the whole module).

The tests run in file order on one shared state, as an admin would use the console: sign in,
coverage, a backfill, a channel revocation and the denied open it causes in the usage log, the
key's lifecycle; then what another org's admin and a forged form get; then an axe-core scan and
a screenshot of every page (``tmp/artifacts/console/``, with the axe counts in ``axe.json``).

``axe.min.js`` is axe-core 4.14.1 from the npm registry (``npm pack axe-core@4.14.1``), unmodified,
MPL-2.0 (``axe.LICENSE``). Chromium is Debian's (``scripts/ensure-system-deps``), never a
browser downloaded by Playwright.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ownkey.service import Runtime
from ownkey.storage import TokenStore

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVE = [sys.executable, "-m", "ownkey", "serve", "--log-level", "warning"]
AXE = Path(__file__).with_name("axe.min.js")
ARTIFACTS = Path(__file__).resolve().parents[2] / "tmp" / "artifacts" / "console"
BO = "bo@globex.test"

if not CHROMIUM.exists():  # scripts/ensure-system-deps installs it for make test
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@dataclass
class Console:
    base: str
    home: Path
    browser: Any
    page: Any
    globex: str
    acme: str
    platform: str
    errors: list[str]

    def url(self, path: str) -> str:
        return self.base + path

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "OWNKEY_HOME": str(home), "NO_COLOR": "1"}
    env.pop("OWNKEY_DATABASE_URL", None)
    return env


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ownkey serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("ownkey serve did not become healthy")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    home = root / "home"
    with playwright_sync.sync_playwright() as driver:
        demo = subprocess.Popen(  # the demo and the browser's start overlap (wall time)
            [sys.executable, "-m", "ownkey", "demo", "--home", str(home), "--recording-mib", "1"],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        finally:
            told, _ = demo.communicate(timeout=120)
        try:
            assert demo.returncode == 0, told[-2000:]
            with Runtime.open(home=home, env=_env(home)) as runtime:
                tokens = TokenStore(runtime.database)
                _, globex = tokens.issue("org", org="globex", note="console test")
                _, acme = tokens.issue("org", org="acme", note="console test")
                _, platform = tokens.issue("platform", note="console test")
            port = _free_port()
            log = root / "serve.log"
            with log.open("wb") as output:
                server = subprocess.Popen(
                    [*SERVE, "--port", str(port)],
                    env=_env(home),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            base = f"http://127.0.0.1:{port}"
            try:
                _wait_healthy(base, server, log)
                context = browser.new_context(viewport={"width": 1366, "height": 768})
                page = context.new_page()
                page.set_default_timeout(30_000)  # a ceiling, not a timing: CI shares 2 cores
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                yield Console(base, home, browser, page, globex, acme, platform, errors)
            finally:
                server.terminate()
                server.wait(timeout=10)
        finally:
            browser.close()


def _put(console: Console, token: str, asset_id: str, asset: dict[str, Any], scope: str) -> None:
    header = json.dumps({"asset": asset, "scope": scope})
    put = console.api(
        "PUT",
        f"/v1/objects/{asset_id}",
        token,
        content=b"x" * 4096,
        headers={"Ownkey-Request": header, "Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 201, put.text


def _sign_in(page: Any, console: Console, token: str) -> None:
    page.goto(console.url("/admin"))
    assert page.url.endswith("/admin/signin")
    page.get_by_label("Org admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_then_overview_health_check_and_coverage(console: Console) -> None:
    page = console.page
    _sign_in(page, console, console.globex)
    assert page.url == console.url("/admin/globex")
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert "customer:globex" in page.locator("main").inner_text()
    cookie = next(c for c in page.context.cookies() if c["name"] == "ownkey_console")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)
    assert cookie["path"] == "/admin"
    before = console.api("GET", "/v1/orgs/globex/audit/events", console.globex).json()["events"]
    page.get_by_role("button", name="Run a health check").click()
    page.get_by_text("Healthy:").wait_for()
    after = console.api("GET", "/v1/orgs/globex/audit/events", console.globex).json()["events"]
    assert {"key_manager.wrap", "key_manager.unwrap"} <= {e["action"] for e in after[len(before) :]}
    page.get_by_role("link", name="Coverage", exact=True).click()
    chat = page.locator("#service-0008")
    assert "your key" in chat.inner_text()
    assert "Reaction emojis and giphys" in chat.inner_text()  # the exclusion, said plainly
    assert "Polls (Q&A, surveys, and reports)" in page.locator("#service-0001").inner_text()


def test_turning_a_service_on_starts_its_backfill_and_the_page_follows_it(
    console: Console,
) -> None:
    platform = console.platform
    clip = {
        "service_id": "0010",
        "org": "globex",
        "owner": BO,
        "owner_kind": "user",
        "container": {"kind": "meeting", "members": []},
        "component": "video",
    }
    _put(console, platform, "clip-1", clip, "meeting-9")
    coverage = console.api("GET", "/v1/orgs/globex/coverage", console.globex).json()
    clips = next(s for s in coverage["services"] if s["service_id"] == "0010")
    assert clips["scope_keys"] == {"customer": 0, "platform": 1, "shredded": 0}
    page = console.page
    page.goto(console.url("/admin/globex/coverage"))
    page.get_by_role("button", name="Turn on Clips (0010)").click()
    assert re.fullmatch(re.escape(console.url("/admin/globex/jobs/")) + r"[^/]+", page.url)
    row = page.locator("#jobs-live tbody tr").first
    page.wait_for_function(
        "() => document.querySelector('#jobs-live tbody tr')?.dataset.state === 'done'"
    )
    assert "1 of 1 done" in row.inner_text()
    assert page.locator("#jobs-live[hx-get]").count() == 0  # polling stops once it is done
    coverage = console.api("GET", "/v1/orgs/globex/coverage", console.globex).json()
    clips = next(s for s in coverage["services"] if s["service_id"] == "0010")
    assert clips["scope_keys"] == {"customer": 1, "platform": 0, "shredded": 0}
    assert clips["enabled"] is True


def _settled(console: Any, token: str) -> None:
    """Wait until the org's log stops growing: each server worker writes its key-usage counts
    within a second of a use (AUD-1a), so the page and the API, served by different workers,
    agree only once every worker has written. Two equal reads 1.5 s apart, within a minute."""
    previous = -1
    for _ in range(40):
        count = len(console.api("GET", "/v1/orgs/globex/audit/export", token).text.splitlines())
        if count == previous:
            return
        previous = count
        time.sleep(1.5)
    raise AssertionError("the audit log kept growing for a minute")


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_channel_revocation_previewed_applied_seen_in_the_log_then_lifted(
    console: Console,
) -> None:
    platform = console.platform
    message = {
        "service_id": "0008",
        "org": "globex",
        "owner": BO,
        "owner_kind": "user",
        "container": {"kind": "channel", "members": [{"user": BO, "org": "globex"}]},
        "component": "message",
    }
    _put(console, platform, "msg-1", message, "channel-7")
    assert console.api("GET", "/v1/objects/msg-1", platform).status_code == 200
    page = console.page
    page.goto(console.url("/admin/globex/revocations"))
    page.get_by_label("Service").select_option("0008")
    page.get_by_label("Scope (channel, chat, meeting or user id)").fill("channel-7")
    page.get_by_label("Note for the audit log").fill("incident 12")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    text = preview.inner_text()
    assert "1 scope key(s), 1 stored asset(s), 4.0 KiB" in text
    assert re.search(r"0008 Team Chat\s+1\s+1\s+4\.0 KiB", text)
    assert console.api("GET", "/v1/orgs/globex/revocations", console.globex).json() == {
        "rules": []
    }  # a preview changes nothing
    page.get_by_role("button", name="Confirm: revoke").click()
    page.get_by_text("Rule in force").wait_for()
    rules = console.api("GET", "/v1/orgs/globex/revocations", console.globex).json()["rules"]
    assert [(r["service_id"], r["scope"], r["note"]) for r in rules] == [
        ("0008", "channel-7", "incident 12")
    ]
    denied = console.api("GET", "/v1/objects/msg-1", platform)
    assert denied.status_code == 403
    _settled(console, console.globex)  # every worker's key-usage counts written (AUD-1a)
    # the usage log: the denied open, filtered, exported, and the same rows as the API's
    page.get_by_role("link", name="Key-usage log").click()
    page.get_by_label("Service").select_option("0008")
    page.get_by_label("Outcome").select_option("denied")
    page.get_by_role("button", name="Apply filters").click()
    rows = page.locator("#events tbody tr")
    texts = [rows.nth(index).inner_text() for index in range(rows.count())]
    # the key layer's denial (with its rule) and the key-usage log's count of the refused open
    denial = next(text for text in texts if "access.denied" in text)
    assert "channel-7" in denial
    assert "revocation_rule" in denial
    counted = next(text for text in texts if "content.access" in text)
    assert "msg-1" in counted
    assert "verified" in page.locator("#chain").inner_text()
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Export CSV")).click()
    exported = _csv_rows(Path(download.value.path()).read_text(encoding="utf-8"))
    assert len(exported) == rows.count()
    assert {r["outcome"] for r in exported} == {"denied"}
    api_rows = console.api(
        "GET",
        "/v1/orgs/globex/audit/events",
        console.globex,
        params={"service_id": "0008", "outcome": "denied"},
    ).json()["events"]
    # The page's window ends now; an earlier test of this server ran a week ahead, and its
    # key-usage counts (denied opens) are dated then: compare the same window.
    window_end = max(r["at"] for r in exported)
    api_rows = [e for e in api_rows if e["at"] <= window_end]
    assert [(r["seq"], r["hash"], r["action"], r["scope"]) for r in exported] == [
        (str(e["seq"]), e["hash"], e["action"], e["detail"]["scope"]) for e in api_rows
    ]
    full = console.api("GET", "/v1/orgs/globex/audit/export", console.globex).text.splitlines()
    wanted = [
        event["hash"]
        for event in map(json.loads, full)
        if event.get("outcome") == "denied"
        and (event.get("detail") or {}).get("service_id") == "0008"
        and event["at"] <= window_end
    ]
    assert [r["hash"] for r in exported] == wanted
    # lift it: the asset opens again
    page.goto(console.url("/admin/globex/revocations"))
    page.get_by_role("button", name=f"Lift rule {rules[0]['rule_id']}").click()
    page.get_by_text("Rule lifted.").wait_for()
    assert console.api("GET", "/v1/objects/msg-1", platform).status_code == 200


def test_key_lifecycle_each_change_behind_a_confirmation(console: Console) -> None:
    page = console.page
    page.goto(console.url("/admin/globex/key"))
    page.get_by_role("link", name="Disable the key").click()
    assert "unreadable" in page.locator("#confirm").inner_text()
    assert console.api("GET", "/v1/orgs/globex/key", console.globex).json()["state"] == "enabled"
    page.get_by_role("button", name="Confirm: disable the key").click()
    assert page.locator("#key-state").inner_text() == "disabled"
    page.get_by_role("link", name="Schedule destruction").click()
    confirm = page.locator("#confirm").inner_text()
    assert "crypto-shredded" in confirm
    assert "7 days" in confirm
    page.get_by_role("button", name="Confirm: schedule destruction").click()
    assert page.locator("#key-state").inner_text() == "pending_destruction"
    page.get_by_role("link", name="Cancel destruction").click()
    page.get_by_role("button", name="Confirm: cancel destruction").click()
    page.get_by_role("link", name="Enable the key").click()
    page.get_by_role("button", name="Confirm: enable the key").click()
    assert page.locator("#key-state").inner_text() == "enabled"
    version = console.api("GET", "/v1/orgs/globex/key", console.globex).json()["version"]
    page.get_by_role("link", name="Rotate the key").click()
    page.get_by_role("button", name="Confirm: rotate the key").click()
    assert console.api("GET", "/v1/orgs/globex/key", console.globex).json()["version"] != version
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#jobs-live tbody tr')]"
        ".every(row => row.dataset.state === 'done')"
    )
    assert "rotation (re-wrap)" in page.locator("#jobs-live").inner_text()
    actions = [
        e["action"]
        for e in console.api(
            "GET", "/v1/orgs/globex/audit/events", console.globex, params={"limit": 1000}
        ).json()["events"]
        if e["action"].startswith("key.")
    ]
    assert actions[-5:] == [
        "key.disable",
        "key.schedule_destruction",
        "key.cancel_destruction",
        "key.enable",
        "key.rotate",
    ]


def test_another_orgs_admin_sees_none_of_it(console: Console) -> None:
    rule = console.api(
        "POST", "/v1/orgs/globex/revocations", console.globex, json={"scope": "channel-x"}
    ).json()
    jobs = console.api("GET", "/v1/orgs/globex/jobs", console.globex).json()["jobs"]
    context = console.browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        _sign_in(page, console, console.acme)
        assert page.url == console.url("/admin/acme")
        nowhere = page.goto(console.url("/admin/no-such-org"))
        assert nowhere is not None
        assert nowhere.status == 404
        nowhere_text = nowhere.text()
        for path in (
            "/admin/globex",
            "/admin/globex/coverage",
            "/admin/globex/revocations",
            "/admin/globex/usage",
            "/admin/globex/usage.csv",
            "/admin/globex/jobs",
            "/admin/globex/key",
            f"/admin/acme/jobs/{jobs[0]['job_id']}",
        ):
            answer = page.goto(console.url(path))
            assert answer is not None
            assert answer.status == 404, path
            assert answer.text() == nowhere_text, path  # the same page as no org at all
        page.goto(console.url("/admin/acme/revocations"))
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        for path in (
            f"/admin/acme/revocations/{rule['rule_id']}/lift",
            f"/admin/globex/revocations/{rule['rule_id']}/lift",
        ):
            lift = context.request.post(console.url(path), form={"csrf": csrf})
            assert lift.status == 404, path
        rules = console.api("GET", "/v1/orgs/globex/revocations", console.globex).json()["rules"]
        assert [r["rule_id"] for r in rules] == [rule["rule_id"]]
    finally:
        context.close()
        console.api("DELETE", f"/v1/orgs/globex/revocations/{rule['rule_id']}", console.globex)


def test_a_post_without_its_csrf_token_is_refused(console: Console) -> None:
    request = console.page.context.request
    for form in ({}, {"csrf": "forged"}):
        answer = request.post(console.url("/admin/globex/key/disable"), form=form)
        assert answer.status == 403
        assert "CSRF" in answer.text()
    answer = request.post(
        console.url("/admin/globex/revocations"),
        data="scope=all",
        headers={"Content-Type": "text/plain"},
    )
    assert answer.status == 403
    assert console.api("GET", "/v1/orgs/globex/key", console.globex).json()["state"] == "enabled"
    assert console.api("GET", "/v1/orgs/globex/revocations", console.globex).json()["rules"] == []


PAGES = {
    "overview": "/admin/globex",
    "coverage": "/admin/globex/coverage",
    "revocations": "/admin/globex/revocations",
    "usage": "/admin/globex/usage",
    "jobs": "/admin/globex/jobs",
    "key": "/admin/globex/key",
}


def _axe(page: Any) -> list[dict[str, Any]]:
    """Every violation axe finds on the page (with all its default rules)."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return found


def _serious(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in found if v["impact"] in ("serious", "critical")]


def test_every_page_passes_axe_fits_a_phone_and_is_screenshotted(console: Console) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, path in PAGES.items():  # the signed-in pages load cleanly under the real CSP
        answer = console.page.goto(console.url(path))
        assert answer is not None
        assert answer.status == 200, name
        console.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert console.errors == []  # no CSP violation, no script error on any page
    # axe is injected as a script, which the pages' CSP rightly forbids: scan in a context
    # that bypasses CSP, with the same session
    context = console.browser.new_context(
        viewport={"width": 1366, "height": 768},
        bypass_csp=True,
        storage_state=console.page.context.storage_state(),
    )
    try:
        page = context.new_page()
        every: dict[str, list[dict[str, Any]]] = {}
        for name, path in PAGES.items():
            page.goto(console.url(path))
            every[name] = _axe(page)
        stranger = console.browser.new_context(bypass_csp=True)
        try:
            signin = stranger.new_page()
            signin.goto(console.url("/admin/signin"))
            every["signin"] = _axe(signin)
        finally:
            stranger.close()
        counts = {name: len(_serious(found)) for name, found in every.items()}
        page.set_viewport_size({"width": 390, "height": 844})
        for name, path in PAGES.items():
            page.goto(console.url(path))
            wide = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
            assert not wide, f"{name} scrolls sideways at phone width"
        page.goto(console.url(PAGES["overview"]))
        page.screenshot(path=str(ARTIFACTS / "overview-phone.png"), full_page=True)
    finally:
        context.close()
    report = {"serious_or_critical": counts, "all": every}
    (ARTIFACTS / "axe.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    # the keyboard: the first Tab reaches "Skip to content", which moves focus to the page
    page = console.page
    page.goto(console.url(PAGES["usage"]))
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "f-user"  # the first filter
    assert counts == dict.fromkeys(counts, 0), counts


def test_signing_out_ends_the_session(console: Console) -> None:
    page = console.page
    page.goto(console.url("/admin/globex"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "ownkey_console")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/admin/signin")
    page.screenshot(path=str(ARTIFACTS / "signin.png"))
    stale = httpx.get(
        console.url("/admin/globex"),
        cookies={"ownkey_console": cookie["value"]},
        follow_redirects=False,
    )
    assert stale.status_code == 303
    assert stale.headers["location"] == "/admin/signin"
