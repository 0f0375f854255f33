"""The ``ownkey`` Typer application: one place where the command groups are assembled.

The command modules are imported here, but each imports the service layer, SQLAlchemy and the
provider SDKs only inside the commands that need them, so that ``ownkey --help`` or a read-only
command starts fast (``tests/cli/test_startup.py`` pins it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ownkey.cli import (
    _audit,
    _audit_events,
    _demo,
    _jobs,
    _key,
    _keyadmin,
    _objects,
    _org,
    _policy,
    _serve,
    _token,
)
from ownkey.cli._hybrid import hybrid_app
from ownkey.errors import OwnkeyError


def _show_flags_bare(command: Any) -> None:
    """A flag takes no value, so its help row shows no type (Typer prints ``<bool>`` for every
    flag otherwise, which reads as if it took one); recurses into the command groups."""
    # The --help option is made on first use and cached; make it now so that it is tidied too.
    help_option = command.get_help_option(typer.Context(command))
    for param in [*getattr(command, "params", ()), help_option]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _show_flags_bare(sub)


class _OwnkeyGroup(TyperGroup):
    """The root group: every command below it is built when it is, so it tidies their help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _show_flags_bare(self)


def version() -> str:
    """The installed package's version: the one number lives in pyproject.toml."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("ownkey")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0+unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ownkey {version()}")
        raise typer.Exit()


app = typer.Typer(
    cls=_OwnkeyGroup,
    name="ownkey",
    help="ownkey: customer managed keys for collaboration content.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo", help="Tell the ownkey story on embedded defaults.")(_demo.demo)
app.add_typer(_policy.policy_app, name="policy")
app.add_typer(_audit.audit_app, name="audit")
_audit.audit_app.command("events")(_audit_events.events)
app.add_typer(_key.key_app, name="key")
_keyadmin.register_key_commands(_key.key_app)
app.add_typer(_org.org_app, name="org")
app.add_typer(_org.user_app, name="user")
app.command("coverage")(_org.coverage)
app.add_typer(_keyadmin.revoke_app, name="revoke")
app.add_typer(_jobs.jobs_app, name="jobs")
app.add_typer(_token.token_app, name="token")
app.add_typer(_objects.objects_app, name="objects")
app.add_typer(hybrid_app, name="hybrid")
app.command("serve", help="Serve the REST API on this node.")(_serve.serve)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="ownkey's directory (default: $OWNKEY_HOME or ~/.ownkey)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="PostgreSQL URL (default: $OWNKEY_DATABASE_URL, else SQLite)."
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print ownkey's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """ownkey: customer managed keys for collaboration content."""
    ctx.obj = {"home": home}
    if home is not None:
        os.environ["OWNKEY_HOME"] = str(home)
    if database_url is not None:
        os.environ["OWNKEY_DATABASE_URL"] = database_url


EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def main() -> None:
    """Console-script entry: turn ownkey errors into one line on stderr, never a traceback."""
    try:
        app(standalone_mode=True)
    except OwnkeyError as exc:
        print(f"ownkey: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
