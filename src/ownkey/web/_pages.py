"""The six pages of an org, each one or two calls into the service layer the API also uses.

Overview, coverage, revocation (with a preview), the key-usage log (with its CSV export), jobs
(live progress through htmx polling) and the key's lifecycle. Every change is made by the same
runtime call as its API route (``api/_admin.py``), with the session's token as the audit actor;
nothing here decides what is allowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ownkey.audit import AuditAction
from ownkey.catalog import ASSET_TYPES, SERVICE_IDS, asset_type
from ownkey.errors import InvalidRequest, NotFound, OwnkeyError
from ownkey.keys import KeyRef, KeyState, MasterKey, RevocationRule
from ownkey.storage import AuditQuery
from ownkey.web._guard import ConsoleDeps, Form, Guard, status_of
from ownkey.web._render import SECURITY_HEADERS, page
from ownkey.web._session import Session
from ownkey.web._views import (
    PAGE_ROWS,
    USES,
    UsageFilter,
    bars,
    coverage_summary,
    csv_text,
    day_counts,
    parse_time,
    row_of,
)

__all__ = ["KEY_ACTIONS", "Pages"]

_DAY = 86_400.0
_MAX_SCOPE = 1024

#: The key's lifecycle actions: (label, the state they need, what happens).
KEY_ACTIONS: dict[str, tuple[str, str, str]] = {
    "rotate": (
        "Rotate the key",
        KeyState.ENABLED.value,
        "The key manager makes a new primary version; a re-wrap job then re-wraps every scope "
        "key under it (no content is touched). Content stays readable throughout.",
    ),
    "disable": (
        "Disable the key",
        KeyState.ENABLED.value,
        "Every seal and open under your key is denied from the next call on, on every node: "
        "all content under it becomes unreadable (tombstones) until you enable it again.",
    ),
    "enable": (
        "Enable the key",
        KeyState.DISABLED.value,
        "Content under your key opens again from the next call on, on every node.",
    ),
    "schedule-destruction": (
        "Schedule destruction",
        KeyState.DISABLED.value,
        "After the waiting period the key is destroyed and every scope key under it is "
        "crypto-shredded: that content can never be read again, by anyone. Until then the key "
        "stays disabled and you can cancel.",
    ),
    "cancel-destruction": (
        "Cancel destruction",
        KeyState.PENDING_DESTRUCTION.value,
        "The pending destruction is cancelled; the key stays disabled until you enable it.",
    ),
}
_ACTIONS = tuple(
    (a.value, a.value)
    for a in AuditAction
    if a.value.startswith(("key_manager.", "content.", "access.", "key.", "revocation."))
)


def _rule(org: str, form: Form) -> RevocationRule:
    """The revocation rule a form selects (InvalidRequest names the field that is wrong)."""
    service_id = form.get("service_id") or None
    if service_id is not None and service_id not in SERVICE_IDS:
        raise InvalidRequest("service_id", "not a service ID of the catalog")
    scope = form.get("scope") or None
    if scope is not None and len(scope) > _MAX_SCOPE:
        raise InvalidRequest("scope", "at most 1024 characters")
    since_ms = parse_time(form.get("since"), "since")
    until_ms = parse_time(form.get("until"), "until")
    since = None if since_ms is None else since_ms / 1000
    until = None if until_ms is None else until_ms / 1000
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("until", "must be after since")
    note = form.get("note")[:1000]
    try:
        return RevocationRule(
            org=org, service_id=service_id, scope=scope, since=since, until=until, note=note
        )
    except ValueError as exc:
        raise InvalidRequest("rule", str(exc)) from None


class Pages:
    """The page handlers of one console (``router`` maps them to paths)."""

    def __init__(self, deps: ConsoleDeps, guard: Guard, clock: Callable[[], float]) -> None:
        self._deps = deps
        self._guard = guard
        self._clock = clock

    def _base(self, session: Session, name: str, title: str, **extra: Any) -> dict[str, Any]:
        return {
            "session": session,
            "org": session.org,
            "csrf": session.csrf,
            "page": name,
            "title": title,
            "error": "",
            "notice": "",
            **extra,
        }

    def _key(self, org: str) -> MasterKey | None:
        found = self._deps.runtime.list_keys(org)
        return found[0] if found else None

    # -- 1 overview ----------------------------------------------------------------------------

    def _last_use(self, org: str) -> dict[str, Any] | None:
        """The latest successful wrap or unwrap under the org's key in the last 31 days."""
        now_ms = int(self._clock() * 1000)
        query = AuditQuery(outcome="ok", since_ms=now_ms - 31 * 86_400_000 + 1, until_ms=now_ms + 1)
        last = None
        for event in self._deps.runtime.audit_log.query(org, query):
            if event.body.get("action") in USES:
                last = event.body
        return last

    def overview(
        self, request: Request, session: Session, form: Form, check: dict[str, Any] | None = None
    ) -> Response:
        runtime = self._deps.runtime
        org = session.org
        coverage = runtime.coverage(org)
        summary = coverage_summary(coverage)
        limits = runtime.settings.cache_limits
        charts = {
            "assets": bars([(k.label, k.assets, f"{k.assets} assets") for k in summary]),
            "bytes": bars([(k.label, k.asset_bytes, "") for k in summary]),
            "services": bars([(k.label, k.services, f"{k.services} services") for k in summary]),
        }
        return page(
            "overview.html",
            self._base(
                session,
                "overview",
                "Overview",
                coverage=coverage,
                key=coverage.key,
                limits=limits,
                last_use=self._last_use(org),
                summary=summary,
                charts=charts,
                check=check,
            ),
        )  # a failed check is the page's news, not an HTTP error (htmx swaps only 2xx)

    def check_key(self, request: Request, session: Session, form: Form) -> Response:
        """The health check: the audited wrap/unwrap round trip of ``POST /key/check``."""
        ref = KeyRef.customer(session.org)
        try:
            described = self._deps.runtime.admin.check_key(ref)
        except OwnkeyError as exc:
            check = {"ok": False, "message": " ".join(str(exc).split())}
        else:
            check = {
                "ok": True,
                "message": "The key manager wrapped and unwrapped a random probe.",
                "state": described.state.value,
                "primary_version": described.primary_version,
                "versions": list(described.versions),
            }
        return self.overview(request, session, form, check)

    # -- 2 coverage ----------------------------------------------------------------------------

    def coverage(self, request: Request, session: Session, form: Form) -> Response:
        coverage = self._deps.runtime.coverage(session.org)
        groups: dict[str, list[dict[str, Any]]] = {}
        for service in coverage.services:
            entry = asset_type(service.service_id)
            groups.setdefault(entry.group.heading, []).append(
                {
                    "s": service,
                    "entry": entry,
                    "toggle": entry.needs_enabling and not entry.client_side,
                    "listed": service.service_id in coverage.org.settings.services,
                }
            )
        return page(
            "coverage.html",
            self._base(session, "coverage", "Coverage", coverage=coverage, groups=groups),
        )

    def toggle_service(self, request: Request, session: Session, form: Form) -> Response:
        """Enable (or disable) a service, then start its backfill: the API's PATCH settings
        and POST jobs, in that order; the answer goes to the job's page."""
        service_id = str(request.path_params["service_id"])
        if service_id not in SERVICE_IDS:
            raise NotFound("no such service")
        enable = form.get("enable") == "1"
        runtime = self._deps.runtime
        runtime.update_org(
            session.org,
            enable=[service_id] if enable else [],
            disable=[] if enable else [service_id],
            actor=session.actor,
        )
        status = runtime.create_job(
            "backfill", org=session.org, services=[service_id], enable=enable
        )
        self._deps.jobs.start(status.job_id)
        return RedirectResponse(f"/admin/{session.org}/jobs/{status.job_id}", status_code=303)

    # -- 3 revocation --------------------------------------------------------------------------

    def _revocations(
        self,
        session: Session,
        *,
        preview: Any = None,
        values: dict[str, str] | None = None,
        error: str = "",
        notice: str = "",
        status: int = 200,
    ) -> Response:
        rules = self._deps.runtime.admin.rules(session.org)
        context = self._base(
            session,
            "revocations",
            "Revocation",
            rules=rules,
            services=ASSET_TYPES,
            preview=preview,
            values=values or {},
        )
        context.update(error=error, notice=notice)
        return page("revocations.html", context, status=status)

    def revocations(self, request: Request, session: Session, form: Form) -> Response:
        notice = "Rule lifted." if request.query_params.get("lifted") else ""
        if request.query_params.get("added"):
            notice = "Rule in force: it acts on the next call, on every node."
        return self._revocations(session, notice=notice)

    def preview_rule(self, request: Request, session: Session, form: Form) -> Response:
        values = {n: form.get(n) for n in ("service_id", "scope", "since", "until", "note")}
        try:
            rule = _rule(session.org, form)
            preview = self._deps.runtime.preview(rule)
        except OwnkeyError as exc:
            return self._revocations(
                session, values=values, error=" ".join(str(exc).split()), status=status_of(exc)
            )
        rows = [
            {
                "service_id": sid,
                "name": asset_type(sid).name,
                "scope_keys": preview.scope_keys_by_service.get(sid, 0),
                "assets": preview.assets_by_service.get(sid, 0),
                "bytes": preview.bytes_by_service.get(sid, 0),
            }
            for sid in preview.services
        ]
        return self._revocations(session, preview={"p": preview, "rows": rows}, values=values)

    def add_rule(self, request: Request, session: Session, form: Form) -> Response:
        values = {n: form.get(n) for n in ("service_id", "scope", "since", "until", "note")}
        try:
            rule = _rule(session.org, form)
            self._deps.runtime.revoke(rule, actor=session.actor)
        except OwnkeyError as exc:
            return self._revocations(
                session, values=values, error=" ".join(str(exc).split()), status=status_of(exc)
            )
        return RedirectResponse(f"/admin/{session.org}/revocations?added=1", status_code=303)

    def lift_rule(self, request: Request, session: Session, form: Form) -> Response:
        rule_id = str(request.path_params["rule_id"])
        admin = self._deps.runtime.admin
        if not any(rule.rule_id == rule_id for rule in admin.rules(session.org)):
            raise NotFound("no such rule")  # nor one of another org
        admin.lift(rule_id, actor=session.actor)
        return RedirectResponse(f"/admin/{session.org}/revocations?lifted=1", status_code=303)

    # -- 4 key-usage log -----------------------------------------------------------------------

    def _filter(self, request: Request) -> UsageFilter:
        params = {k: v for k, v in request.query_params.items()}
        return UsageFilter.of(params, int(self._clock() * 1000))

    def usage(self, request: Request, session: Session, form: Form) -> Response:
        runtime = self._deps.runtime
        org = session.org
        context = self._base(
            session,
            "usage",
            "Key-usage log",
            services=ASSET_TYPES,
            operations=_ACTIONS,
            outcomes=("ok", "denied", "unavailable", "failed"),
        )
        # this node's uses of the last second too, before the window ends at "now"
        runtime.protector.flush_access()
        try:
            wanted = self._filter(request)
            query = wanted.query()
        except (ValueError, OwnkeyError) as exc:
            typed = {k: v for k, v in request.query_params.items() if k != "after"}
            wanted = UsageFilter.of(typed, int(self._clock() * 1000))  # shown as typed
            context.update(error=" ".join(str(exc).split()), f=wanted, rows=[], days=[])
            context.update(total=0, next_url="", verify=None, window="", day_top=0)
            context.update(csv="", earlier="", later="")
            status = status_of(exc) if isinstance(exc, OwnkeyError) else 422
            return page("usage.html", context, status=status)
        since, until = wanted.window()
        bodies: list[dict[str, Any]] = []
        rows: list[dict[str, str]] = []
        next_after: int | None = None
        for event in runtime.audit_log.query(org, query):
            bodies.append(event.body)
            if event.seq <= wanted.after:
                continue
            if len(rows) < PAGE_ROWS:
                rows.append(row_of(event))
            elif next_after is None:
                next_after = int(rows[-1]["seq"])
        verify = runtime.audit_log.verify(org, runtime.audit_public_keys())
        base = f"/admin/{org}/usage"
        context.update(
            f=wanted,
            rows=rows,
            total=len(bodies),
            days=day_counts(bodies, since, until),
            next_url=f"{base}?{urlencode(wanted.pinned(after=next_after))}"
            if next_after is not None
            else "",
            verify=verify,
            window=wanted.described(),
            csv=f"/admin/{org}/usage.csv?{urlencode(wanted.pinned())}",
            earlier=f"{base}?{urlencode(wanted.shifted(-31))}",
            later=f"{base}?{urlencode(wanted.shifted(31))}",
        )
        top = max((max(d.uses, d.denials) for d in context["days"]), default=0)
        context["day_top"] = top
        return page("usage.html", context)

    def usage_csv(self, request: Request, session: Session, form: Form) -> Response:
        """Exactly the rows the filters select (every page of them), as CSV."""
        self._deps.runtime.protector.flush_access()
        try:
            query = self._filter(request).query()
        except ValueError as exc:
            raise InvalidRequest("since", str(exc)) from None
        events = self._deps.runtime.audit_log.query(session.org, query)

        def lines() -> Iterator[bytes]:
            for line in csv_text(row_of(event) for event in events):
                yield line.encode("utf-8")

        headers = dict(SECURITY_HEADERS)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        headers["Content-Disposition"] = f'attachment; filename="{session.org}-usage-{stamp}.csv"'
        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)

    # -- 5 jobs --------------------------------------------------------------------------------

    def _jobs_context(self, session: Session, job_id: str | None) -> dict[str, Any]:
        runtime = self._deps.runtime
        if job_id is None:
            jobs = list(reversed(runtime.list_jobs(session.org)))
        else:
            job = runtime.job(job_id)
            if job.org != session.org:
                raise NotFound("no such job")  # the same answer as for an unknown id
            jobs = [job]
        live = f"/admin/{session.org}/jobs/live" + ("" if job_id is None else f"/{job_id}")
        return self._base(
            session,
            "jobs",
            "Jobs" if job_id is None else f"Job {job_id}",
            jobs=jobs,
            live=live,
            polling=any(not job.finished for job in jobs),
            shreds=runtime.pending_shreds(session.org) if job_id is None else [],
            one=job_id is not None,
        )

    def jobs(self, request: Request, session: Session, form: Form) -> Response:
        job_id = request.path_params.get("job_id")
        return page("jobs.html", self._jobs_context(session, job_id))

    def jobs_live(self, request: Request, session: Session, form: Form) -> Response:
        """The jobs table alone: what htmx swaps in every second while a job runs."""
        job_id = request.path_params.get("job_id")
        return page("_jobs_table.html", self._jobs_context(session, job_id))

    # -- 6 key lifecycle -----------------------------------------------------------------------

    def _key_page(
        self,
        session: Session,
        *,
        confirm: str = "",
        error: str = "",
        notice: str = "",
        status: int = 200,
    ) -> Response:
        settings = self._deps.runtime.settings
        context = self._base(
            session,
            "key",
            "Key lifecycle",
            key=self._key(session.org),
            actions=KEY_ACTIONS,
            confirm=confirm,
            waiting=settings.destruction_waiting_period,
            min_waiting=settings.min_destruction_waiting_period,
        )
        context.update(error=error, notice=notice)
        return page("key.html", context, status=status)

    def key(self, request: Request, session: Session, form: Form) -> Response:
        done = request.query_params.get("done", "")
        notice = f"Done: {KEY_ACTIONS[done][0].lower()}." if done in KEY_ACTIONS else ""
        job = request.query_params.get("job", "")
        if job:
            notice += " The re-wrap job runs: see Jobs."
        return self._key_page(session, notice=notice)

    def confirm_key(self, request: Request, session: Session, form: Form) -> Response:
        action = str(request.path_params["action"])
        if action not in KEY_ACTIONS:
            raise NotFound("no such action")
        return self._key_page(session, confirm=action)

    def key_action(self, request: Request, session: Session, form: Form) -> Response:
        """One lifecycle change, the same call as its API route; the key's state decides."""
        action = str(request.path_params["action"])
        if action not in KEY_ACTIONS:
            raise NotFound("no such action")
        runtime = self._deps.runtime
        admin = runtime.admin
        ref = KeyRef.customer(session.org)
        actor = session.actor
        suffix = ""
        try:
            if action == "rotate":
                admin.rotate_key(ref, rewrap=False, actor=actor)
                status = runtime.create_job("rewrap", key=ref)
                self._deps.jobs.start(status.job_id)
                suffix = f"&job={status.job_id}"
            elif action == "disable":
                admin.disable_key(ref, actor=actor)
            elif action == "enable":
                admin.enable_key(ref, actor=actor)
            elif action == "schedule-destruction":
                days_text = form.get("waiting_period_days")
                try:
                    days = float(days_text) if days_text else None
                except ValueError:
                    raise InvalidRequest("waiting_period_days", "not a number") from None
                if days is not None and not 0 < days <= 3650:
                    raise InvalidRequest("waiting_period_days", "between 0 and 3650 days")
                admin.schedule_key_destruction(
                    ref, waiting_period=None if days is None else days * _DAY, actor=actor
                )
            else:
                admin.cancel_key_destruction(ref, actor=actor)
        except NotFound:
            raise
        except OwnkeyError as exc:
            return self._key_page(
                session, confirm=action, error=" ".join(str(exc).split()), status=status_of(exc)
            )
        return RedirectResponse(f"/admin/{session.org}/key?done={action}{suffix}", status_code=303)
