"""``ownkey db``: the database schema, changed on purpose (docs/operations.md, "Upgrades").

``status`` shows this build (``ownkey --version``) and the newest migration it ships, the
database's schema revision, and whether this build can run against it: exit 0 when it can
(current, or ahead of this build as the rolling-upgrade rule allows), 1 when it cannot (behind:
``ownkey db upgrade``; ahead past a migration that stops this build; a revision it does not know).
``upgrade`` migrates the schema to this build's newest migration under the migration lock, from
any node and any number of them at once; a migration that older builds cannot run against needs
``--breaking`` (every node already runs a build that can). Neither prints the database's URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ownkey.cli._common import EXIT_FAILED, JSON_OPTION, errors, show

if TYPE_CHECKING:
    from rich.console import Console

    from ownkey.storage import Database
    from ownkey.storage._revision import SchemaStatus

db_app = typer.Typer(
    help="The database schema: status (this build and the schema), upgrade.",
    no_args_is_help=True,
)

_STATES = {
    "current": "current: this build runs against it",
    "behind": "behind this build: run `ownkey db upgrade`",
    "ahead": "ahead of this build, which the rolling-upgrade rule allows",
    "unknown": "a revision this build does not know",
}


def build_info(status: SchemaStatus) -> str:
    """One line an operator tells builds apart by: this build, its newest migration and the
    database's revision (``ownkey serve`` logs it at start)."""
    where = f"database schema {status.described()}"
    if status.state == "ahead":
        where += ", ahead of this build (allowed by the rolling-upgrade rule)"
    return f"{_build()} (migrations up to {status.head}), {where}"


def _build() -> str:
    """``ownkey 0.1.0``: what ``ownkey --version`` prints."""
    from ownkey.cli._app import version

    return f"ownkey {version()}"


def status_json(status: SchemaStatus, dialect: str) -> dict[str, Any]:
    return {
        "build": _build(),
        "head": status.head,
        "database": dialect,
        "revision": status.revision,
        "revisions": list(status.revisions),
        "state": status.state,
        "can_run": status.can_run,
        "oldest_build": status.oldest_build,
        "problem": status.refusal(),
    }


def _open() -> Database:
    from ownkey.storage import Database

    return Database.open(migrate=False, check=False)


@db_app.command("status")
def status(as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """This build, the database's schema revision, and whether this build can run against it
    (exit 1 when it cannot)."""
    with errors():
        database = _open()
        try:
            found = database.schema()
        finally:
            database.close()
    value = status_json(found, database.dialect)

    def human(console: Console) -> None:
        state = _STATES[found.state] if found.can_run or found.state == "behind" else "refused"
        console.print(f"build     {value['build']} (migrations up to {found.head})")
        console.print(f"database  {database.dialect}, schema revision {found.described()}")
        console.print(f"state     {state}")
        if found.oldest_build is not None:
            console.print(f"needs     builds from revision {found.oldest_build} on")
        if not found.can_run and found.state != "behind":
            console.print(f"problem   {value['problem']}", markup=False)

    show(value, as_json, human)
    if not found.can_run:
        raise typer.Exit(code=EXIT_FAILED)


@db_app.command("upgrade")
def upgrade(
    breaking: Annotated[
        bool,
        typer.Option(
            "--breaking",
            help="Also apply a migration that older builds cannot run against: every node "
            "already runs a build that can.",
        ),
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Migrate the schema to this build's newest migration (under the migration lock)."""
    with errors():
        database = _open()
        try:
            before = database.schema()
            after = database.migrate(breaking=breaking)
        finally:
            database.close()
    value = {"from": before.revision, **status_json(after, database.dialect)}

    def human(console: Console) -> None:
        if after.state == "ahead":
            console.print(f"schema at {after.revision}: {_STATES['ahead']}; nothing to do")
        elif before.revisions == after.revisions:
            console.print(f"schema at {after.revision}: current, nothing to do")
        else:
            console.print(f"schema upgraded: {before.described()} -> {after.revision}")

    show(value, as_json, human)
