"""``ownkey jobs``: run and follow resumable jobs over scope keys, with progress bars.

- ``jobs run rewrap --key KEY``: re-wrap every scope key under an older version of a key (after
  a rotation);
- ``jobs run backfill ORG --service S``: move an org's existing scope keys of a service to its
  customer key (``--disable``: back to the platform key);
- ``jobs run shred --key KEY``: crypto-shred a key whose destruction is due, scope key by scope
  key, then destroy it; ``jobs run shred ORG``: carry out the org's due pending shreds;
- ``jobs run rekey ORG [--service S] [--scope SCOPE] [--scope-key HEX] [--keep-old]``:
  re-encrypt the org's stored assets under fresh scope keys (blob by blob, atomically), then
  make the old scope keys pending shred, due after the destruction waiting period (unless
  ``--keep-old``); ``jobs preview rekey ORG ...`` says which keys and when, changing nothing;
- ``jobs shreds [ORG]`` lists the pending shreds, ``jobs cancel-shred ORG HEX`` stops one
  before it is due (audited);
- ``jobs resume JOB`` continues an interrupted job (run it from several processes to share the
  work); ``jobs watch JOB`` follows one the serve nodes run (a progress bar, no work);
  ``jobs status [JOB]`` shows progress and the node holding each job's lease (a serve node
  takes over a job whose lease lapsed: docs/operations.md, "Jobs in a fleet").

Rewrap and backfill touch no content; where the asset store holds content of a scope key, a
backfill moves it only if the policy now calls for it for at least one of its assets. Progress
bars go to stderr, so ``--json`` stays clean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ownkey.cli._common import (
    CLI_ACTOR,
    JSON_OPTION,
    fail,
    iso,
    key_ref,
    progress_console,
    runtime,
    show,
    split_csv,
    table,
)

if TYPE_CHECKING:
    from ownkey.service import Runtime
    from ownkey.storage import JobStatus

__all__ = ["job_json", "jobs_app", "run_with_progress"]

jobs_app = typer.Typer(
    help="Run and follow re-wrap, backfill, rekey and shred jobs.", no_args_is_help=True
)
KINDS = ("rewrap", "backfill", "rekey", "shred")


def job_json(job: JobStatus) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "org": job.org,
        "params": dict(job.params),
        "state": job.state,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "error": job.error,
        "node": job.owner,
        "lease_until": job.lease_until,
    }


def run_with_progress(rt: Runtime, job: JobStatus, *, quiet: bool = False) -> JobStatus:
    """Run a job to the end with a progress bar on stderr (none when ``quiet``)."""
    if quiet or job.total == 0:
        return rt.run_job(job.job_id)
    label = f"{job.kind} {job.org or job.params.get('key', '')}".strip()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("items" if job.kind == "rekey" else "scope keys"),
        TimeElapsedColumn(),
        console=progress_console(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=job.total, completed=job.done + job.failed)
        return rt.run_job(
            job.job_id,
            progress=lambda status: bar.update(task, completed=status.done + status.failed),
        )


def _report(job: JobStatus, as_json: bool) -> None:
    def human(out: Any) -> None:
        colour = "green" if job.state == "done" else "red" if job.state == "failed" else "yellow"
        unit = "items" if job.kind == "rekey" else "scope keys"
        out.print(
            f"job {job.job_id} ({job.kind}): [{colour}]{job.state}[/], "
            f"{job.done}/{job.total} {unit} done, {job.failed} failed"
        )
        if job.error:
            out.print(f"  {job.error}")

    show(job_json(job), as_json, human)
    if job.state == "failed":
        raise typer.Exit(code=1)


@jobs_app.command("run")
def run(
    kind: Annotated[str, typer.Argument(help="rewrap, backfill, rekey or shred.")],
    org: Annotated[
        str | None, typer.Argument(help="The org (backfill, rekey; shred without --key).")
    ] = None,
    key: Annotated[str | None, typer.Option(help="The key (rewrap, shred).")] = None,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", help="Service IDs to backfill or rekey (repeatable)."),
    ] = None,
    disable: Annotated[
        bool, typer.Option("--disable", help="Backfill back to the platform key.")
    ] = False,
    scope: Annotated[str | None, typer.Option(help="Rekey only this scope.")] = None,
    scope_key: Annotated[
        str | None, typer.Option("--scope-key", help="Rekey only this scope key (hex id).")
    ] = None,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Rekey without shredding the old scope keys.")
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Create a job and run it to the end (a progress bar on stderr)."""
    if kind not in KINDS:
        fail(f"KIND: one of {', '.join(KINDS)}, not {kind!r}")
    services = split_csv(service)
    key_id = None
    if kind == "rekey":
        if org is None:
            fail("ORG: a rekey job names an org")
        if len(services) > 1:
            fail("--service: a rekey job takes at most one service")
        key_id = _scope_key_id("--scope-key", scope_key)
    with runtime() as rt:
        job = rt.create_job(
            kind,
            key=None if key is None else key_ref(key),
            org=org,
            services=services,
            enable=not disable,
            scope=scope,
            scope_key_id=key_id,
            shred_old=not keep_old,
        )
        job = run_with_progress(rt, job, quiet=as_json)
    _report(job, as_json)


def _hex(option: str, text: str) -> bytes:
    if not text.strip():
        fail(f"{option}: required, a hex scope key id")
    try:
        return bytes.fromhex(text)
    except ValueError:
        fail(f"{option}: not a hex scope key id: {text!r}")


def _scope_key_id(option: str, text: str | None) -> bytes | None:
    return None if text is None else _hex(option, text)


@jobs_app.command("preview")
def preview(
    kind: Annotated[str, typer.Argument(help="rekey (the only job that shreds content).")],
    org: Annotated[str, typer.Argument(help="The org.")],
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Rekey only this service.")
    ] = None,
    scope: Annotated[str | None, typer.Option(help="Rekey only this scope.")] = None,
    scope_key: Annotated[
        str | None, typer.Option("--scope-key", help="Rekey only this scope key (hex id).")
    ] = None,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Rekey without shredding the old scope keys.")
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """What a rekey job would shred and when (scope keys, stored assets it moves); no change."""
    if kind != "rekey":
        fail(f"KIND: only rekey jobs have a preview, not {kind!r}")
    key_id = _scope_key_id("--scope-key", scope_key)
    with runtime() as rt:
        report = rt.rekey_preview(
            org,
            services=split_csv(service),
            scope=scope,
            scope_key_id=key_id,
            shred_old=not keep_old,
        )
    out = report.to_json()

    def human(console: Any) -> None:
        if not report.scope_keys:
            console.print("no scope key would be shredded; nothing was changed")
            return
        rows = [
            (c.scope_key_id.hex(), c.service_id, c.scope, c.assets, c.bytes)
            for c in report.scope_keys
        ]
        columns = ("scope key", "service", "scope", "assets moved", "bytes moved")
        console.print(table(f"rekeying {org} would shred, at {iso(report.due_at)}", columns, rows))
        console.print(f"[yellow]warning:[/] {report.warning}")
        console.print("nothing was changed")

    show(out, as_json, human)


@jobs_app.command("shreds")
def shreds(
    org: Annotated[str | None, typer.Argument(help="Only this org's (all when omitted).")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Scope keys pending shred after a rekey, with their due times (soonest first)."""
    with runtime() as rt:
        found = rt.pending_shreds(org)
    rows = [(p.scope_key_id.hex(), p.org, p.reason, iso(p.due_at), p.job_id or "") for p in found]

    def human(console: Any) -> None:
        if not found:
            console.print("no pending shreds")
            return
        columns = ("scope key", "org", "reason", "due", "job")
        console.print(table("pending shreds", columns, rows))

    show([p.to_json() for p in found], as_json, human)


@jobs_app.command("cancel-shred")
def cancel_shred(
    org: Annotated[str, typer.Argument(help="The org whose rekey job scheduled it.")],
    scope_key: Annotated[str, typer.Argument(help="The scope key (hex id).")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Stop a pending shred before it is due (audited); the scope key stays retired."""
    key_id = _hex("SCOPE_KEY", scope_key)
    with runtime() as rt:
        cancelled = rt.cancel_shred(key_id, org=org, actor=CLI_ACTOR)

    def human(console: Any) -> None:
        console.print(f"shred of scope key {scope_key} cancelled; it stays retired and opens")

    show(cancelled.to_json(), as_json, human)


@jobs_app.command("resume")
def resume(
    job_id: Annotated[str, typer.Argument(help="The job to continue.")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Continue an interrupted job where it stopped."""
    with runtime() as rt:
        job = run_with_progress(rt, rt.job(job_id), quiet=as_json)
    _report(job, as_json)


def _follow(rt: Runtime, job: JobStatus, interval: float, quiet: bool) -> JobStatus:
    """Read the job every ``interval`` seconds until it is finished, with a progress bar."""
    import time

    if quiet or job.finished:
        while not job.finished:
            time.sleep(interval)
            job = rt.job(job.job_id)
        return job
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    label = f"{job.kind} {job.org or job.params.get('key', '')}".strip()
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("items"),
        TimeElapsedColumn(),
        console=progress_console(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=job.total, completed=job.done + job.failed)
        while not job.finished:
            time.sleep(interval)
            job = rt.job(job.job_id)
            bar.update(task, completed=job.done + job.failed)
    return job


@jobs_app.command("watch")
def watch(
    job_id: Annotated[str, typer.Argument(help="The job to follow.")],
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between reads.", min=0.1, max=60)
    ] = 1.0,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Follow a job the serve nodes run (a key rotation's re-wrap, a POST /jobs) to its end,
    with a progress bar; does no work itself (``jobs resume`` does)."""
    with runtime() as rt:
        job = _follow(rt, rt.job(job_id), interval, as_json)
    _report(job, as_json)


@jobs_app.command("status")
def status(
    job_id: Annotated[str | None, typer.Argument(help="One job (all when omitted).")] = None,
    org: Annotated[str | None, typer.Option(help="Only this org's jobs.")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Show jobs and their progress."""
    with runtime() as rt:
        found = [rt.job(job_id)] if job_id else rt.list_jobs(org)
    rows = [
        (j.job_id, j.kind, j.org or "", j.state, f"{j.done}/{j.total}", j.failed, j.owner or "")
        for j in found
    ]

    def human(out: Any) -> None:
        if not found:
            out.print("no jobs")
            return
        columns = ("id", "kind", "org", "state", "done", "failed", "node")
        out.print(table("jobs", columns, rows))

    show([job_json(j) for j in found], as_json, human)
