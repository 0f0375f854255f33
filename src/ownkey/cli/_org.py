"""``ownkey org``, ``ownkey user`` and ``ownkey coverage``: the org directory from the command line.

An org's settings decide which key protects its *new* content: ``cmk`` (it has a customer key in
use), the enabled services, and the large-org, log/index, compliance-archival, advanced-chat and
hybrid flags. Users carry the CMK licence that user-owned assets need. ``org set`` backfills by
default: when a service moves to the customer key (or back), the org's existing scope keys of that
service are re-wrapped by a job (no content touched); ``--no-backfill`` leaves them for
``ownkey jobs run backfill``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ownkey.cli._common import (
    CLI_ACTOR,
    JSON_OPTION,
    emit_json,
    fail,
    iso,
    runtime,
    show,
    split_csv,
    table,
)
from ownkey.cli._jobs import job_json, run_with_progress
from ownkey.policy import ORG_FLAG_HELP, canonical_email

if TYPE_CHECKING:
    from rich.console import Console

    from ownkey.service import Coverage, Org, Runtime

__all__ = ["coverage", "org_app", "user_app"]

org_app = typer.Typer(help="Create and configure organisations.", no_args_is_help=True)
user_app = typer.Typer(help="Users of an org and their CMK licences.", no_args_is_help=True)

ServiceOption = Annotated[
    list[str] | None,
    typer.Option("--enable", help="Enable service IDs (repeatable, or comma-separated)."),
]


_Command = TypeVar("_Command", bound=Callable[..., None])


def _flag_options(default: bool | None) -> Callable[[_Command], _Command]:
    """Give a command one ``--FLAG/--no-FLAG`` option per org flag (``ORG_FLAGS``, help from its
    table), passed on as ``flags``: those given (all, when ``default`` is a bool)."""

    def decorate(command: _Command) -> _Command:
        signature = inspect.signature(command, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != "flags"]
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[
                    bool | None,
                    typer.Option(
                        f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}",
                        help=text,
                        show_default=default is not None,
                    ),
                ],
            )
            for name, text in ORG_FLAG_HELP.items()
        ]

        @functools.wraps(command)
        def with_flags(*args: Any, **kwargs: Any) -> None:
            flags = {name: kwargs.pop(name) for name in ORG_FLAG_HELP}
            command(*args, flags={k: v for k, v in flags.items() if v is not None}, **kwargs)

        del with_flags.__wrapped__  # typer must read the signature below, not the command's
        with_flags.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
        return with_flags  # type: ignore[return-value]

    return decorate


def _org_human(org: Org) -> Any:
    def human(out: Console) -> None:
        settings = org.settings
        rows = [
            ("cmk", "on" if settings.cmk else "off"),
            ("services", ", ".join(org.services) or "none"),
            *((flag, "on" if getattr(settings, flag) else "off") for flag in ORG_FLAG_HELP),
            ("licensed users", len(settings.licensed_users)),
            ("revision", org.revision),
            ("changed", iso(org.changed_at)),
        ]
        out.print(table(f"org {org.name}", ("setting", "value"), rows))

    return human


@org_app.command("create")
@_flag_options(default=False)
def create(
    org: Annotated[str, typer.Argument(help="The org's name (letters, digits, . _ -).")],
    cmk: Annotated[bool, typer.Option("--cmk", help="Turn CMK on (needs a customer key).")] = False,
    create_key: Annotated[
        bool,
        typer.Option("--create-key", help="Create the org's customer key in the local store."),
    ] = False,
    enable: ServiceOption = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
    *,
    flags: dict[str, bool],
) -> None:
    """Add an org to the directory (optionally with a new customer key and CMK on)."""
    with runtime() as rt:
        created = rt.create_org(org, services=split_csv(enable), actor=CLI_ACTOR, **flags)
        key = rt.create_key(org, actor=CLI_ACTOR) if create_key else None
        if cmk:
            created = rt.update_org(org, cmk=True, actor=CLI_ACTOR).org
    out = created.to_json()
    out["key"] = None if key is None else str(key.ref)

    def human(console: Console) -> None:
        _org_human(created)(console)
        if key is not None:
            console.print(f"created {key.ref} in the {key.provider} store (version {key.version})")

    show(out, as_json, human)


@org_app.command("show")
def show_org(
    org: Annotated[str, typer.Argument(help="The org.")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Show an org's settings."""
    with runtime() as rt:
        found = rt.org(org)
    show(found.to_json(), as_json, _org_human(found))


@org_app.command("list")
def list_orgs(as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """List every org."""
    with runtime() as rt:
        orgs = rt.orgs()
    rows = [
        (o.name, "on" if o.cmk else "off", ", ".join(o.services), len(o.settings.licensed_users))
        for o in orgs
    ]

    def human(console: Console) -> None:
        if not orgs:
            console.print("no orgs yet: ownkey org create ORG")
            return
        console.print(table("orgs", ("org", "cmk", "services", "licensed users"), rows))

    show([o.to_json() for o in orgs], as_json, human)


def _backfill(rt: Runtime, org: str, services: tuple[str, ...], enable: bool, quiet: bool) -> Any:
    if not services:
        return None
    job = rt.create_job("backfill", org=org, services=services, enable=enable)
    return job_json(run_with_progress(rt, job, quiet=quiet))


@org_app.command("set")
@_flag_options(default=None)
def set_org(
    org: Annotated[str, typer.Argument(help="The org.")],
    cmk: Annotated[
        bool | None, typer.Option("--cmk/--no-cmk", help="Turn CMK on or off.", show_default=False)
    ] = None,
    enable: ServiceOption = None,
    disable: Annotated[
        list[str] | None,
        typer.Option("--disable", help="Disable service IDs (repeatable, or comma-separated)."),
    ] = None,
    backfill: Annotated[
        bool,
        typer.Option(help="Re-wrap existing scope keys of services that changed key."),
    ] = True,
    as_json: Annotated[bool, JSON_OPTION] = False,
    *,
    flags: dict[str, bool],
) -> None:
    """Change an org's settings; new content follows at once, existing content is backfilled."""
    on, off = split_csv(enable), split_csv(disable)
    if cmk is None and not on and not off and not flags:
        fail("nothing to change: give --cmk/--no-cmk, --enable, --disable or a flag")
    with runtime() as rt:
        update = rt.update_org(org, cmk=cmk, enable=on, disable=off, actor=CLI_ACTOR, **flags)
        moved = {}
        if backfill:
            moved["to_customer"] = _backfill(rt, org, update.now_customer, True, as_json)
            moved["to_platform"] = _backfill(rt, org, update.now_platform, False, as_json)
    out = update.org.to_json()
    out["now_customer"] = list(update.now_customer)
    out["now_platform"] = list(update.now_platform)
    out["backfill"] = moved
    from ownkey.service import backfill_notice

    notice = backfill_notice(update.now_customer)
    if notice is not None:
        out["notice"] = notice

    def human(console: Console) -> None:
        _org_human(update.org)(console)
        if update.now_customer:
            console.print(f"new content of {', '.join(update.now_customer)}: customer key")
        if update.now_platform:
            console.print(f"new content of {', '.join(update.now_platform)}: platform key")
        for direction, job in moved.items():
            if job is not None:
                console.print(
                    f"backfill {direction.replace('_', ' ')}: {job['done']}/{job['total']} "
                    f"existing scope keys re-wrapped ({job['state']})"
                )
        if notice is not None:
            console.print(f"note: {notice}", markup=False)

    show(out, as_json, human)


# -- users ---------------------------------------------------------------------------------------


def _users_changed(org: str, users: list[str], what: str, changed: int, as_json: bool) -> None:
    """Report users as the directory stores them (the call succeeded: each has that form)."""
    users = list(dict.fromkeys(canonical_email("user", user) for user in users))
    if as_json:
        emit_json({"org": org, "users": users, "operation": what, "changed": changed})
    else:
        typer.echo(f"{org}: {what} {len(users)} user(s), {changed} changed")


UsersArg = Annotated[list[str], typer.Argument(help="User ids (emails).")]


@user_app.command("add")
def add(
    org: Annotated[str, typer.Argument(help="The org.")],
    users: UsersArg,
    licensed: Annotated[bool, typer.Option("--licensed", help="With a CMK licence.")] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Add users to an org (unlicensed unless --licensed)."""
    with runtime() as rt:
        changed = rt.add_users(org, users, licensed=licensed, actor=CLI_ACTOR)
    _users_changed(org, users, "added", changed, as_json)


@user_app.command("license")
def license_users(
    org: Annotated[str, typer.Argument(help="The org.")],
    users: UsersArg,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Grant the CMK licence to existing users."""
    with runtime() as rt:
        changed = rt.set_licensed(org, users, True, actor=CLI_ACTOR)
    _users_changed(org, users, "licensed", changed, as_json)


@user_app.command("unlicense")
def unlicense_users(
    org: Annotated[str, typer.Argument(help="The org.")],
    users: UsersArg,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Withdraw the CMK licence (their new content goes under the platform key)."""
    with runtime() as rt:
        changed = rt.set_licensed(org, users, False, actor=CLI_ACTOR)
    _users_changed(org, users, "unlicensed", changed, as_json)


@user_app.command("remove")
def remove(
    org: Annotated[str, typer.Argument(help="The org.")],
    users: UsersArg,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Remove users from an org."""
    with runtime() as rt:
        changed = rt.remove_users(org, users, actor=CLI_ACTOR)
    _users_changed(org, users, "removed", changed, as_json)


@user_app.command("list")
def list_users(
    org: Annotated[str, typer.Argument(help="The org.")],
    licensed: Annotated[
        bool | None,
        typer.Option("--licensed/--unlicensed", help="Only licensed or unlicensed users."),
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List an org's users and their licences."""
    with runtime() as rt:
        users = rt.users(org, licensed=licensed)

    def human(console: Console) -> None:
        rows = [(u.user, "yes" if u.licensed else "no") for u in users]
        console.print(table(f"users of {org}", ("user", "CMK licence"), rows))

    show([u.to_json() for u in users], as_json, human)


# -- coverage ------------------------------------------------------------------------------------


def coverage_table(report: Coverage) -> Any:
    """The coverage report as a Rich table (also used by the demo)."""
    colours = {"customer": "green", "platform": "yellow", "client_side": "cyan"}
    rows = []
    for s in report.services:
        colour = colours.get(s.protection, "white")
        rows.append(
            (
                s.service_id,
                s.name,
                "yes" if s.enabled else "no",
                f"[{colour}]{s.protection}[/]",
                s.customer_scope_keys or "",
                s.platform_scope_keys or "",
                s.shredded_scope_keys or "",
                s.why,
            )
        )
    key = report.key
    title = (
        f"coverage of {report.org.name}: cmk {'on' if report.org.cmk else 'off'}, key "
        + ("none" if key is None else f"{key.ref} ({key.provider}, {key.state.value})")
        + f", {report.licensed_users}/{report.users} users licensed"
    )
    return table(
        title,
        ("id", "service", "enabled", "new content", "SK cust.", "SK platf.", "shredded", "why"),
        rows,
    )


def coverage(
    org: Annotated[str, typer.Argument(help="The org.")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Which services of ORG are under its customer key, with scope-key counts."""
    with runtime() as rt:
        report = rt.coverage(org)
    show(report.to_json(), as_json, lambda console: console.print(coverage_table(report)))
