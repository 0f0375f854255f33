"""Admin routes, one org at a time: ``/v1/orgs/{org}/...`` with that org's admin token.

Settings, users and licences, the org's customer key (create or register, check, rotate,
disable, enable, schedule or cancel destruction), revocation rules with a preview, coverage by
service, the audit log (events, export, verify) and jobs. Each route is one call into the
service layer; every change is audited there with the token as the actor.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ownkey.api._auth import OrgAdmin
from ownkey.api._models import (
    CoverageOut,
    DestructionIn,
    JobIn,
    JobOut,
    JobsOut,
    KeyCheckOut,
    KeyIn,
    KeyOut,
    OrgSettingsOut,
    OrgSettingsPatch,
    OrgUpdateOut,
    PendingShredOut,
    PendingShredsOut,
    PreviewOut,
    RekeyPreviewOut,
    RotateIn,
    RotationOut,
    RuleIn,
    RuleOut,
    RulesOut,
    ServiceId,
    UserIn,
    UserOut,
    UsersIn,
    UsersOut,
)
from ownkey.api._state import State, strict_query
from ownkey.audit._chain import ChainProblem, ChainReport, Checkpoint, format_head, parse_head
from ownkey.audit._witness_log import (
    check_recorded,
    check_timeline,
    describe_witness,
    grace_ms,
    read_witness_log,
    recorded_witnesses,
    select_entries,
)
from ownkey.errors import InvalidRequest, NotFound
from ownkey.keys import KeyRef
from ownkey.policy import canonical_email, check_window, parse_duration, parse_time
from ownkey.storage import AuditQuery, JobStatus
from ownkey.storage._audit import ExportedEvent, checkpoint_json, iso_ms, with_checkpoints

__all__ = ["admin_router"]

admin_router = APIRouter(prefix="/v1/orgs/{org}", dependencies=[Depends(strict_query)])
_DAY = 86_400


def _customer(admin: OrgAdmin) -> KeyRef:
    return KeyRef.customer(admin.org)


# -- settings and users ----------------------------------------------------------------------------


@admin_router.get("/settings", tags=["settings"], summary="The org's settings")
def get_settings(admin: OrgAdmin, state: State) -> OrgSettingsOut:
    runtime = state.runtime
    return OrgSettingsOut.of(runtime.org(admin.org), runtime.settings.cache_limits)


@admin_router.patch("/settings", tags=["settings"], summary="Change the org's settings")
def patch_settings(admin: OrgAdmin, state: State, body: OrgSettingsPatch) -> OrgUpdateOut:
    runtime = state.runtime
    update = runtime.update_org(
        admin.org,
        cmk=body.cmk,
        enable=body.enable,
        disable=body.disable,
        actor=admin.actor,
        **body.flags(),
    )
    return OrgUpdateOut.of(update, runtime.settings.cache_limits)


UserPath = Annotated[str, Path(min_length=1, max_length=320, pattern=r"^\S+$")]


@admin_router.get("/users", tags=["users"], summary="The org's users and licences")
def list_users(
    admin: OrgAdmin,
    state: State,
    licensed: Annotated[bool | None, Query(description="Only (un)licensed users.")] = None,
) -> UsersOut:
    users = state.runtime.users(admin.org, licensed=licensed)
    return UsersOut(users=[UserOut.of(user) for user in users])


@admin_router.post("/users", tags=["users"], summary="Add users (or set their licence)")
def add_users(admin: OrgAdmin, state: State, body: UsersIn) -> UsersOut:
    runtime = state.runtime
    runtime.add_users(admin.org, body.users, licensed=body.licensed, actor=admin.actor)
    wanted = {canonical_email("users", user) for user in body.users}  # as stored
    users = [user for user in runtime.users(admin.org) if user.user in wanted]
    return UsersOut(users=[UserOut.of(user) for user in users])


@admin_router.put("/users/{user}", tags=["users"], summary="Add a user or set its licence")
def put_user(admin: OrgAdmin, state: State, user: UserPath, body: UserIn) -> UserOut:
    state.runtime.add_users(admin.org, [user], licensed=body.licensed, actor=admin.actor)
    return UserOut(user=canonical_email("user", user), licensed=body.licensed)  # as stored


@admin_router.delete("/users/{user}", tags=["users"], summary="Remove a user", status_code=204)
def delete_user(admin: OrgAdmin, state: State, user: UserPath) -> Response:
    if not state.runtime.remove_users(admin.org, [user], actor=admin.actor):
        raise NotFound(f"org {admin.org!r} has no user {user!r}")
    return Response(status_code=204)


# -- the customer key ------------------------------------------------------------------------------


@admin_router.get("/key", tags=["key"], summary="The org's customer key and its state")
def get_key(admin: OrgAdmin, state: State) -> KeyOut:
    return KeyOut.of(state.runtime.admin.key(_customer(admin)))


@admin_router.put(
    "/key",
    tags=["key"],
    status_code=201,
    summary="Create the org's key in a provider, or register an existing one",
    description=(
        "Without `key_id`, a new key is created in `provider` (default: the embedded local "
        "store). With `key_id`, an existing key of an already configured provider is "
        "registered after a wrap/unwrap round trip. Providers and their secrets are "
        "configured by the operator on every node (`ownkey key register`, environment). "
        "Provider settings are per org key: `provider` is `local`, this org's own provider "
        "(`kmip/customer:ORG`) or an operator's template, copied into this org's own; "
        "another org's provider is refused like one nobody configured."
    ),
)
def put_key(admin: OrgAdmin, state: State, body: KeyIn) -> KeyOut:
    runtime = state.runtime
    if body.key_id is None:
        key = runtime.create_key(admin.org, provider=body.provider, actor=admin.actor)
    else:
        key = runtime.register_key(
            admin.org, provider=body.provider, key_id=body.key_id, actor=admin.actor
        )
    return KeyOut.of(key)


@admin_router.post(
    "/key/check", tags=["key"], summary="Ask the key manager and prove a wrap/unwrap round trip"
)
def check_key(admin: OrgAdmin, state: State) -> KeyCheckOut:
    admin_api = state.runtime.admin
    ref = _customer(admin)
    description = admin_api.check_key(ref)
    return KeyCheckOut.of(admin_api.key(ref), description)


@admin_router.post(
    "/key/rotate",
    tags=["key"],
    status_code=202,
    summary="Rotate the key at once; its scope keys are re-wrapped by a job (no content touched)",
    responses={200: {"description": "Rotated with `rewrap: false`: no job", "model": RotationOut}},
)
def rotate_key(
    admin: OrgAdmin, state: State, response: Response, body: RotateIn | None = None
) -> RotationOut:
    rewrap = True if body is None else body.rewrap
    ref = _customer(admin)
    rotation = state.runtime.admin.rotate_key(ref, rewrap=False, actor=admin.actor)
    if not rewrap:
        response.status_code = 200
        return RotationOut(key=KeyOut.of(rotation.key), job=None)
    status, _ = state.runtime.job_ops.submit("rewrap", key=ref)  # an equal one, if running
    state.jobs.start(status.job_id)
    return RotationOut(key=KeyOut.of(rotation.key), job=_job(status))


@admin_router.post("/key/disable", tags=["key"], summary="Deny every use of the key (reversible)")
def disable_key(admin: OrgAdmin, state: State) -> KeyOut:
    return KeyOut.of(state.runtime.admin.disable_key(_customer(admin), actor=admin.actor))


@admin_router.post("/key/enable", tags=["key"], summary="Allow a disabled key again")
def enable_key(admin: OrgAdmin, state: State) -> KeyOut:
    return KeyOut.of(state.runtime.admin.enable_key(_customer(admin), actor=admin.actor))


@admin_router.post(
    "/key/destruction",
    tags=["key"],
    summary="Schedule destruction of a disabled key after a waiting period",
)
def schedule_destruction(
    admin: OrgAdmin, state: State, body: DestructionIn | None = None
) -> KeyOut:
    days = None if body is None else body.waiting_period_days
    key = state.runtime.admin.schedule_key_destruction(
        _customer(admin),
        waiting_period=None if days is None else days * _DAY,
        actor=admin.actor,
    )
    return KeyOut.of(key)


@admin_router.delete(
    "/key/destruction", tags=["key"], summary="Cancel a pending destruction (key stays disabled)"
)
def cancel_destruction(admin: OrgAdmin, state: State) -> KeyOut:
    key = state.runtime.admin.cancel_key_destruction(_customer(admin), actor=admin.actor)
    return KeyOut.of(key)


# -- revocation ------------------------------------------------------------------------------------


@admin_router.get("/revocations", tags=["revocations"], summary="Revocation rules in force")
def list_rules(admin: OrgAdmin, state: State) -> RulesOut:
    return RulesOut(rules=[RuleOut.of(rule) for rule in state.runtime.admin.rules(admin.org)])


@admin_router.post(
    "/revocations",
    tags=["revocations"],
    status_code=201,
    summary="Revoke the key for what the rule selects (acts on the next call, on every node)",
)
def add_rule(admin: OrgAdmin, state: State, body: RuleIn) -> RuleOut:
    return RuleOut.of(state.runtime.revoke(body.rule(admin.org), actor=admin.actor))


@admin_router.post(
    "/revocations/preview",
    tags=["revocations"],
    summary="What a rule would deny by service (scope keys, stored assets, bytes); no change",
)
def preview_rule(admin: OrgAdmin, state: State, body: RuleIn) -> PreviewOut:
    return PreviewOut.of(state.runtime.preview(body.rule(admin.org)))


RuleId = Annotated[str, Path(min_length=1, max_length=128)]


@admin_router.delete(
    "/revocations/{rule_id}",
    tags=["revocations"],
    summary="Lift a rule: what it denied opens again",
)
def lift_rule(admin: OrgAdmin, state: State, rule_id: RuleId) -> RuleOut:
    admin_api = state.runtime.admin
    if not any(rule.rule_id == rule_id for rule in admin_api.rules(admin.org)):
        raise NotFound(f"no revocation rule {rule_id}")  # nor one of another org
    return RuleOut.of(admin_api.lift(rule_id, actor=admin.actor))


# -- coverage --------------------------------------------------------------------------------------


@admin_router.get(
    "/coverage", tags=["coverage"], summary="Which services are under the org's key, how much"
)
def coverage(admin: OrgAdmin, state: State) -> CoverageOut:
    return CoverageOut.of(state.runtime.coverage(admin.org))


# -- audit -----------------------------------------------------------------------------------------


def _time_ms(field: str, text: str | None) -> int | None:
    """Epoch milliseconds (the audit log's unit) from Unix seconds or RFC 3339: the CLI's one
    time rule (``ownkey.policy.parse_time``), so ``--since X`` and ``?since=X`` select alike."""
    return None if text is None else int(parse_time(field, text) * 1000)


def _query(
    user: str | None,
    asset_id: str | None,
    service_id: str | None,
    operation: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
) -> AuditQuery:
    since_ms, until_ms = _time_ms("since", since), _time_ms("until", until)
    check_window(since_ms, until_ms)  # in milliseconds: what the window below is cut in
    query = AuditQuery(
        user=user,
        asset_id=asset_id,
        service_id=service_id,
        operation=operation,
        outcome=outcome,
        since_ms=since_ms,
        until_ms=until_ms,
    )
    query.window()  # LimitExceeded for a range over 31 days, before anything is read
    return query


Filter = Annotated[str | None, Query(min_length=1, max_length=320)]
Time = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="Unix seconds (`1796149629`) or RFC 3339 (`2026-11-01T10:00:00Z`), "
        "within 1970..9999; the same rule as the CLI's `--since`/`--until`.",
    ),
]
#: The parameters of versions before issue 12, in milliseconds: refused naming the new one
#: rather than read in another unit (declared so that the refusal can say what to use).
Renamed = Annotated[str | None, Query(include_in_schema=False)]


def _no_millis(since_ms: Renamed = None, until_ms: Renamed = None) -> None:
    for old, value in (("since_ms", since_ms), ("until_ms", until_ms)):
        if value is not None:
            new = old.removesuffix("_ms")
            raise InvalidRequest(
                old, f"no longer taken: give '{new}' in Unix seconds or RFC 3339 instead"
            )


NoMillis = Depends(_no_millis)


def _seconds(millis: int | None) -> float | int | None:
    """A window end in the API's unit for an unsuffixed time: Unix seconds (docs/api.md)."""
    if millis is None:
        return None
    whole, rest = divmod(millis, 1000)
    return whole if rest == 0 else millis / 1000


def _event(event: ExportedEvent) -> dict[str, Any]:
    body = dict(event.body)
    return {
        "seq": event.seq,
        "hash": event.hash.hex(),
        "at": iso_ms(int(body.get("at_ms", 0))),
        **body,
    }


@admin_router.get(
    "/audit/events",
    tags=["audit"],
    summary="The org's key-usage log, filtered (a window of at most 31 days)",
    dependencies=[NoMillis],
)
def audit_events(
    admin: OrgAdmin,
    state: State,
    user: Filter = None,
    asset_id: Filter = None,
    service_id: Annotated[ServiceId | None, Query()] = None,
    operation: Filter = None,
    outcome: Annotated[str | None, Query(pattern="^(ok|denied|unavailable|failed)$")] = None,
    since: Time = None,
    until: Time = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="The previous page's next_after")
    ] = 0,
) -> dict[str, Any]:
    state.runtime.protector.flush_access()  # this node's uses of the last second too
    query = _query(user, asset_id, service_id, operation, outcome, since, until)
    later = (e for e in state.runtime.audit_log.query(admin.org, query) if e.seq > after)
    found = list(itertools.islice(later, limit + 1))
    answer: dict[str, Any] = {"events": [_event(event) for event in found[:limit]]}
    # Paged like `ownkey audit events --after`: a window holds more than one page can.
    answer["next_after"] = found[limit - 1].seq if len(found) > limit else None
    if query.cut:  # one end given: say which 31 days were searched, never an empty silence
        start, end = query.window()
        answer["window"] = {"since": _seconds(start), "until": _seconds(end)}
        answer["note"] = (
            "only 31 days from the given end were searched; pass both since and until, "
            "or use /audit/export for the whole range"
        )
    return answer


@admin_router.get(
    "/audit/export",
    tags=["audit"],
    summary="Export the org's audit chain as JSON lines (seq, hash, body; and checkpoints)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
    dependencies=[NoMillis],
)
def audit_export(
    admin: OrgAdmin,
    state: State,
    since: Time = None,
    until: Time = None,
) -> StreamingResponse:
    query = dataclasses.replace(
        _query(None, None, None, None, None, since, until), export=True
    )  # the whole range, paged through: no 31-day cut
    events = state.runtime.audit_log.query(admin.org, query)

    checkpoints = state.runtime.audit_log.checkpoints(admin.org)

    def lines() -> Iterator[bytes]:
        for item in with_checkpoints(events, checkpoints):
            line = (
                {"checkpoint": checkpoint_json(item)}
                if isinstance(item, Checkpoint)
                else _event(item)
            )
            yield json.dumps(line, sort_keys=True).encode("utf-8") + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@admin_router.get(
    "/audit/verify",
    tags=["audit"],
    summary="Recompute the org's hash chain and check its signed checkpoints",
)
def audit_verify(
    admin: OrgAdmin,
    state: State,
    since_head: Annotated[
        str | None,
        Query(
            max_length=96,
            description="A head seen before (`SEQ:HASH`, from an earlier verify or the key "
            "manager's log): the answer is not ok unless the chain still extends it.",
        ),
    ] = None,
) -> dict[str, Any]:
    remembered = _remembered(since_head)
    runtime = state.runtime
    report = runtime.audit_log.verify(admin.org, runtime.audit_public_keys(), since_head=remembered)
    return _verified(report, list(report.problems), _anchors(remembered, None))


class WitnessedVerifyIn(BaseModel):
    """``POST /audit/verify``: the customer's key-manager log to check the chain against."""

    model_config = ConfigDict(extra="forbid")

    witness_log: str = Field(
        description="An export of the customer's own key-manager log, as text: a CloudTrail "
        "file or `lookup-events` output, the local store's `local-keys.log`, a KMIP log as JSON "
        "lines (docs/spec/audit-chain.md, AUD-13); within the 1 MiB body limit."
    )
    witness_keys: list[str] | None = Field(
        default=None, description="Count only witness calls under these keys (ARN or key id)."
    )
    witness_interval: str = Field(
        default="3600",
        max_length=32,
        description="The interval the witness ran at (`3600`, `15m`, `24h`; `0`: no gap check).",
    )
    since_head: str | None = Field(default=None, max_length=96)


@admin_router.post(
    "/audit/verify",
    tags=["audit"],
    summary="Verify the org's chain against every head witnessed in its key-manager log",
)
def audit_verify_witnessed(
    admin: OrgAdmin, state: State, body: WitnessedVerifyIn
) -> dict[str, Any]:
    remembered = _remembered(body.since_head)
    text = body.witness_interval.strip()
    try:
        interval_s = (
            0.0 if text in ("0", "0s") else parse_duration("witness_interval", text, minimum=60.0)
        )
    except InvalidRequest:
        raise InvalidRequest("witness_interval", "a duration of at least 60 s, or 0") from None
    keys = body.witness_keys or None
    try:
        found = read_witness_log(admin.org, body.witness_log.encode("utf-8"))
    except ValueError as exc:
        raise InvalidRequest("witness_log", str(exc)) from None
    entries = select_entries(found, keys)
    runtime = state.runtime
    report = runtime.audit_log.verify(
        admin.org,
        runtime.audit_public_keys(),
        since_head=remembered,
        witnessed_heads=[(e.seq, e.hash) for e in entries],
    )
    now_ms = int(time.time() * 1000)
    problems = list(report.problems)
    interval_ms = int(interval_s * 1000)
    if report.ok:
        grace = grace_ms(interval_ms)
        problems += check_timeline(
            admin.org,
            entries,
            interval_ms=interval_ms,
            grace_ms=grace,
            until_ms=now_ms,
            keys=keys,
        )
        wraps = AuditQuery(operation="key_manager.wrap", export=True)
        recorded = recorded_witnesses(e.body for e in runtime.audit_log.query(admin.org, wraps))
        problems += check_recorded(entries, recorded, grace_ms=grace, until_ms=now_ms)
    witnessed = describe_witness(entries, now_ms)
    witnessed["interval_seconds"] = int(interval_s)
    return _verified(report, problems, _anchors(remembered, witnessed))


def _remembered(since_head: str | None) -> tuple[int, bytes] | None:
    if since_head is None:
        return None
    try:
        return parse_head(since_head)
    except ValueError as exc:
        raise InvalidRequest("since_head", str(exc)) from None


def _anchors(
    remembered: tuple[int, bytes] | None, witnessed: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The anchors a verify checked against; none means the database alone, which cannot show
    a cut of the newest events (docs/spec/audit-chain.md, AUD-9)."""
    anchors: list[dict[str, Any]] = []
    if remembered is not None:
        anchors.append({"kind": "remembered_head", "head": format_head(*remembered)})
    if witnessed is not None:
        anchors.append(witnessed)
    return anchors


def _verified(
    report: ChainReport, problems: list[ChainProblem], anchors: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "org": report.org,
        "ok": not problems,
        "records": report.records,
        "checkpoints": report.checkpoints,
        "last_seq": report.last_seq,
        "unsigned_tail": report.unsigned_tail,
        "head": format_head(*report.head),
        "anchors": anchors,
        "problems": [{"seq": p.seq, "kind": p.kind, "detail": p.detail} for p in problems],
    }


# -- jobs ------------------------------------------------------------------------------------------


def _job(status: JobStatus) -> JobOut:
    return JobOut(
        job_id=status.job_id,
        kind=status.kind,
        org=status.org,
        params=dict(status.params),
        state=status.state,
        total=status.total,
        done=status.done,
        failed=status.failed,
        error=status.error,
        node=status.owner,
        lease_until=status.lease_until,
    )


@admin_router.get("/jobs", tags=["jobs"], summary="The org's jobs and their progress")
def list_jobs(admin: OrgAdmin, state: State) -> JobsOut:
    return JobsOut(jobs=[_job(job) for job in state.runtime.list_jobs(admin.org)])


@admin_router.post(
    "/jobs",
    tags=["jobs"],
    status_code=202,
    summary="Start a re-wrap, backfill, rekey or due-shred job (another node takes it over if "
    "this one stops)",
    responses={
        200: {"description": "An equal job is pending or running: that job", "model": JobOut}
    },
)
def start_job(admin: OrgAdmin, state: State, body: JobIn, response: Response) -> JobOut:
    ops = state.runtime.job_ops
    if body.kind == "rewrap":
        status, created = ops.submit("rewrap", key=_customer(admin))
    elif body.kind == "rekey":
        status, created = ops.submit(
            "rekey",
            org=admin.org,
            services=body.services,
            scope=body.scope,
            shred_old=body.shred_old,
        )
    elif body.kind == "shred":
        status, created = ops.submit("shred", org=admin.org)  # only what is due
    else:
        status, created = ops.submit(
            "backfill", org=admin.org, services=body.services, enable=body.enable
        )
    if created:
        state.jobs.start(status.job_id)
    else:
        response.status_code = 200  # no duplicate: the job already made for this request
        state.jobs.start(status.job_id, takeover=True)  # works on it only if nobody does
    return _job(status)


@admin_router.post(
    "/jobs/preview",
    tags=["jobs"],
    summary="What a rekey job would shred and when (scope keys, stored assets moved); no change",
)
def preview_job(admin: OrgAdmin, state: State, body: JobIn) -> RekeyPreviewOut:
    if body.kind != "rekey":
        raise InvalidRequest("kind", "only rekey jobs have a preview")
    preview = state.runtime.rekey_preview(
        admin.org, services=body.services, scope=body.scope, shred_old=body.shred_old
    )
    return RekeyPreviewOut.of(preview)


@admin_router.get(
    "/shreds", tags=["jobs"], summary="Old scope keys of rekey jobs waiting to be shredded"
)
def list_shreds(admin: OrgAdmin, state: State) -> PendingShredsOut:
    found = state.runtime.pending_shreds(admin.org)
    return PendingShredsOut(shreds=[PendingShredOut.of(shred) for shred in found])


ScopeKeyHex = Annotated[str, Path(min_length=2, max_length=128, pattern=r"^([0-9a-f]{2})+$")]


@admin_router.delete(
    "/shreds/{scope_key_id}",
    tags=["jobs"],
    summary="Cancel a pending shred before it is due (the scope key stays retired and opens)",
)
def cancel_shred(admin: OrgAdmin, state: State, scope_key_id: ScopeKeyHex) -> PendingShredOut:
    cancelled = state.runtime.cancel_shred(
        bytes.fromhex(scope_key_id), org=admin.org, actor=admin.actor
    )
    return PendingShredOut.of(cancelled)


JobId = Annotated[str, Path(min_length=1, max_length=64)]


def _own_job(admin: OrgAdmin, state: State, job_id: str) -> JobStatus:
    status = state.runtime.job(job_id)
    if status.org != admin.org:
        raise NotFound(f"no job {job_id}")  # the same answer as for an id that does not exist
    return status


@admin_router.get("/jobs/{job_id}", tags=["jobs"], summary="One job's progress")
def get_job(admin: OrgAdmin, state: State, job_id: JobId) -> JobOut:
    return _job(_own_job(admin, state, job_id))


@admin_router.post(
    "/jobs/{job_id}/resume",
    tags=["jobs"],
    status_code=202,
    summary="Work on an unfinished job on this node (with any node already on it)",
    responses={200: {"description": "The job is finished: nothing to do", "model": JobOut}},
)
def resume_job(admin: OrgAdmin, state: State, job_id: JobId, response: Response) -> JobOut:
    status = _own_job(admin, state, job_id)
    if status.finished:
        response.status_code = 200
    else:
        state.jobs.start(job_id)
    return _job(status)
