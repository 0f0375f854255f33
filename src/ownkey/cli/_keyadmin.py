"""``ownkey key ...`` (besides ``register``) and ``ownkey revoke``: keys and revocation rules.

KEY is ``ORG`` (its customer key), ``customer:ORG`` or ``platform``.

- ``key create ORG``: a new customer key in the embedded local store (or ``--provider``);
- ``key check KEY``: the key manager describes the key, and a probe wraps and unwraps;
- ``key rotate KEY``: a new primary version, then a re-wrap job (progress bar; no content touched);
- ``key disable|enable KEY``: deny or allow every use from the next call on;
- ``key schedule-destruction KEY [--waiting-period 7d]`` / ``cancel-destruction KEY``;
- ``key destroy KEY --yes``: once the waiting period is over, crypto-shred (irreversible);
- ``key list [ORG]``.

``revoke add ORG [--service --scope --since --until --key]`` denies the selected content at once
(tombstones); ``revoke preview`` says what a rule would deny (scope keys, stored assets and
their bytes, by service) without changing anything;
``revoke list [ORG]``; ``revoke lift RULE`` restores access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ownkey.cli._common import (
    CLI_ACTOR,
    JSON_OPTION,
    checked,
    duration,
    fail,
    iso,
    key_ref,
    moment,
    runtime,
    show,
    table,
)
from ownkey.cli._jobs import job_json, run_with_progress
from ownkey.errors import InvalidRequest

if TYPE_CHECKING:
    from rich.console import Console

    from ownkey.keys import MasterKey, RevocationRule

__all__ = ["register_key_commands", "revoke_app"]

revoke_app = typer.Typer(help="Revoke the use of a key for some content.", no_args_is_help=True)

KeyArg = Annotated[str, typer.Argument(help="ORG, customer:ORG or platform.")]


def key_json(master: MasterKey) -> dict[str, Any]:
    return {
        "key": str(master.ref),
        "provider": master.provider,
        "key_id": master.key_id,
        "version": master.version,
        "state": master.state.value,
        "created_at": iso(master.created_at),
        "changed_at": iso(master.changed_at),
        "destroy_at": iso(master.destroy_at),
    }


def _key_human(master: MasterKey, verb: str) -> Any:
    def human(console: Console) -> None:
        line = f"{master.ref}: {verb}; now {master.state.value} (version {master.version})"
        if master.destroy_at is not None:
            line += f", destroyed at {iso(master.destroy_at)} unless cancelled"
        console.print(line)

    return human


def create(
    org: Annotated[str, typer.Argument(help="The org whose customer key to create.")],
    provider: Annotated[
        str,
        typer.Option(help="A configured provider.", metavar="<local|pkcs11|kmip|aws_kms>"),
    ] = "local",
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Create ORG's customer key (in the embedded local store by default)."""
    with runtime() as rt:
        master = rt.create_key(org, provider=provider, actor=CLI_ACTOR)
    show(key_json(master), as_json, _key_human(master, f"created in {master.provider}"))


def check(key: KeyArg, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """Ask the key manager about a registered key and prove a wrap/unwrap round trip."""
    ref = key_ref(key)
    with runtime() as rt:
        admin = rt.admin
        master = admin.key(ref)
        description = admin.check_key(ref)
    out = key_json(master)
    out.update(
        manager_state=description.state.value,
        manager_primary_version=description.primary_version,
        manager_versions=list(description.versions),
        round_trip="ok",
    )

    def human(console: Console) -> None:
        console.print(
            f"{ref}: {master.provider} key {master.key_id} is {description.state.value} in the "
            f"key manager (primary {description.primary_version}, "
            f"{len(description.versions)} version(s)); wrap/unwrap round trip ok"
        )

    show(out, as_json, human)


def rotate(
    key: KeyArg,
    rewrap: Annotated[
        bool, typer.Option(help="Re-wrap existing scope keys under the new version.")
    ] = True,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """New primary version; existing scope keys are re-wrapped (content is not touched)."""
    ref = key_ref(key)
    with runtime() as rt:
        rotation = rt.admin.rotate_key(ref, rewrap=False, actor=CLI_ACTOR)
        job = None
        if rewrap:
            job = job_json(run_with_progress(rt, rt.create_job("rewrap", key=ref), quiet=as_json))
    out = key_json(rotation.key)
    out["rewrap"] = job

    def human(console: Console) -> None:
        _key_human(rotation.key, "rotated")(console)
        if job is not None:
            console.print(
                f"re-wrapped {job['done']}/{job['total']} scope keys under "
                f"{rotation.key.version} ({job['state']}); no content was touched"
            )

    show(out, as_json, human)
    if job is not None and job["state"] == "failed":
        raise typer.Exit(code=1)


def _transition(verb: str, method: str) -> Any:
    def command(key: KeyArg, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
        ref = key_ref(key)
        with runtime() as rt:
            master = getattr(rt.admin, method)(ref, actor=CLI_ACTOR)
        show(key_json(master), as_json, _key_human(master, verb))

    return command


def schedule_destruction(
    key: KeyArg,
    waiting_period: Annotated[
        str | None,
        typer.Option(help="How long before destruction (e.g. 7d; at least the minimum)."),
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Schedule a disabled key's destruction after a waiting period (cancellable until then)."""
    ref = key_ref(key)
    wait = duration("--waiting-period", waiting_period)
    with runtime() as rt:
        master = rt.admin.schedule_key_destruction(ref, waiting_period=wait, actor=CLI_ACTOR)
    show(key_json(master), as_json, _key_human(master, "destruction scheduled"))


def destroy(
    key: KeyArg,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Destroy a key whose waiting period is over: its content can never be opened again."""
    ref = key_ref(key)
    if not yes:
        fail(f"destroying {ref} crypto-shreds everything under it forever; add --yes")
    with runtime() as rt:
        evidence = rt.admin.destroy_key(ref, actor=CLI_ACTOR)
    out = {
        "key": str(evidence.key),
        "destroyed_at": iso(evidence.at),
        "scope_keys_shredded": evidence.scope_keys,
        "ids_sha256": evidence.digest,
    }

    def human(console: Console) -> None:
        console.print(
            f"{evidence.key}: destroyed; {evidence.scope_keys} scope keys crypto-shredded "
            f"(evidence sha256 {evidence.digest[:16]}...)"
        )

    show(out, as_json, human)


def list_keys(
    org: Annotated[str | None, typer.Argument(help="Only this org's key.")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List registered keys and their states."""
    with runtime() as rt:
        keys = rt.list_keys(org)
    rows = [
        (str(k.ref), k.provider, k.key_id, k.version, k.state.value, iso(k.destroy_at))
        for k in keys
    ]

    def human(console: Console) -> None:
        columns = ("key", "provider", "key id", "version", "state", "destroy at")
        console.print(table("keys", columns, rows))

    show([key_json(k) for k in keys], as_json, human)


def register_key_commands(key_app: typer.Typer) -> None:
    """Add the lifecycle commands to ``ownkey key`` (next to ``register``)."""
    key_app.command("create")(create)
    key_app.command("check")(check)
    key_app.command("rotate")(rotate)
    key_app.command("disable", help="Deny every use of the key from the next call on.")(
        _transition("disabled", "disable_key")
    )
    key_app.command("enable", help="Allow a disabled key again.")(
        _transition("enabled", "enable_key")
    )
    key_app.command("schedule-destruction")(schedule_destruction)
    key_app.command(
        "cancel-destruction", help="Stop a pending destruction; the key stays disabled."
    )(_transition("destruction cancelled", "cancel_key_destruction"))
    key_app.command("destroy")(destroy)
    key_app.command("list")(list_keys)


# -- revocation ----------------------------------------------------------------------------------


def rule_json(rule: RevocationRule) -> dict[str, Any]:
    """A rule for ``--json``: times in RFC 3339; a rule stored by an older version with a time
    that cannot be read keeps its times as stored (a number, or ``"inf"``) and says why."""
    from ownkey.keys import stored_time

    def time(value: float | None) -> Any:
        return iso(value) if rule.valid else stored_time(value)

    return {
        "rule_id": rule.rule_id or None,
        "org": rule.org,
        "key": str(rule.wrapping_key),
        "service_id": rule.service_id,
        "scope": rule.scope,
        "since": time(rule.since),
        "until": time(rule.until),
        "created_at": iso(rule.created_at) if rule.created_at else None,
        "actor": rule.actor,
        "note": rule.note,
        "valid": rule.valid,
        "problem": rule.problem,
    }


def _describe(rule: RevocationRule) -> str:
    """What the rule denies, as enforced: an unreadable one without its window, and why."""
    parts = [str(rule.wrapping_key)]
    if rule.service_id:
        parts.append(f"service {rule.service_id}")
    if rule.scope:
        parts.append(f"scope {rule.scope}")
    if rule.valid and (rule.since is not None or rule.until is not None):
        parts.append(f"epochs {iso(rule.since) or '...'} to {iso(rule.until) or '...'}")
    text = ", ".join(parts) if len(parts) > 1 else f"all of {parts[0]}"
    return text if rule.valid else f"{text} (UNREADABLE: {rule.problem})"


def _whole_key(rule: RevocationRule) -> bool:
    """True for a rule with no filter: it denies every use of the key."""
    return (rule.service_id, rule.scope, rule.since, rule.until) == (None, None, None, None)


def _rule(
    org: str,
    service: str | None,
    scope: str | None,
    since: str | None,
    until: str | None,
    key: str | None,
    note: str,
) -> RevocationRule:
    from ownkey.keys import RevocationRule
    from ownkey.policy import check_id, check_service_id

    if service is not None:
        checked(check_service_id, "--service", service)
    if scope is not None:
        checked(check_id, "--scope", scope)
    ref = None if key is None else key_ref(key)
    start, end = moment("--since", since), moment("--until", until)
    try:
        return RevocationRule(
            org=org,
            service_id=service,
            scope=scope,
            since=start,
            until=end,
            key=ref,
            note=note,
        ).check()
    except (ValueError, InvalidRequest) as exc:
        fail(str(exc))


OrgArg = Annotated[str, typer.Argument(help="The org whose key's use to revoke.")]
ServiceOpt = Annotated[str | None, typer.Option("--service", help="Only this service ID.")]
ScopeOpt = Annotated[str | None, typer.Option("--scope", help="Only this scope (a channel id).")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only epochs after this time (ISO 8601 or seconds).")
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only epochs before this time.")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="The key (default: ORG's customer key).")]


@revoke_app.command("add")
def add(
    org: OrgArg,
    service: ServiceOpt = None,
    scope: ScopeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    key: KeyOpt = None,
    note: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm a rule without filters (the whole key).")
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Deny the key's use for the selected content from the next call on (reversible)."""
    rule = _rule(org, service, scope, since, until, key, note)
    if _whole_key(rule) and not yes:
        # Like destroy: one short command would tombstone all of the org's content at once.
        fail(
            f"without --service, --scope, --since or --until this denies all of {org}'s "
            "content under the key; add --yes"
        )
    with runtime() as rt:
        stored = rt.revoke(rule, actor=CLI_ACTOR)

    def human(console: Console) -> None:
        console.print(f"rule {stored.rule_id} in force: {_describe(stored)} is denied")

    show(rule_json(stored), as_json, human)


@revoke_app.command("preview")
def preview(
    org: OrgArg,
    service: ServiceOpt = None,
    scope: ScopeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    key: KeyOpt = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """What a rule would deny (scope keys, stored assets and bytes by service), changing nothing."""
    rule = _rule(org, service, scope, since, until, key, "")
    with runtime() as rt:
        report = rt.preview(rule)
    services = report.services
    keys = {s: report.scope_keys_by_service.get(s, 0) for s in services}
    assets = {s: report.assets_by_service.get(s, 0) for s in services}
    sizes = {s: report.bytes_by_service.get(s, 0) for s in services}
    out = {
        "rule": rule_json(rule),
        "scope_keys": report.scope_keys,
        "scope_keys_by_service": keys,
        "assets": report.assets,
        "assets_by_service": assets,
        "bytes": report.bytes,
        "bytes_by_service": sizes,
    }

    def human(console: Console) -> None:
        rows = [(s, keys[s], assets[s], sizes[s]) for s in services]
        columns = ("service", "scope keys", "stored assets", "bytes")
        console.print(table(f"revoking {_describe(rule)} would deny", columns, rows))
        console.print(
            f"{report.scope_keys} scope keys, {report.assets} stored assets "
            f"({report.bytes} bytes) in all; nothing was changed"
        )

    show(out, as_json, human)


@revoke_app.command("list")
def list_rules(
    org: Annotated[str | None, typer.Argument(help="Only this org's rules.")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List the rules in force."""
    with runtime() as rt:
        rules = rt.admin.rules(org)

    def human(console: Console) -> None:
        rows = [(r.rule_id, r.org, _describe(r), iso(r.created_at), r.note) for r in rules]
        console.print(table("revocation rules", ("rule", "org", "denies", "added", "note"), rows))

    show([rule_json(r) for r in rules], as_json, human)


@revoke_app.command("lift")
def lift(
    rule_id: Annotated[str, typer.Argument(help="The rule to remove.")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Remove a rule: what it denied opens again."""
    with runtime() as rt:
        rule = rt.admin.lift(rule_id, actor=CLI_ACTOR)
    show(
        rule_json(rule),
        as_json,
        lambda console: console.print(f"rule {rule.rule_id} lifted: {_describe(rule)} opens again"),
    )
