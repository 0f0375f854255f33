"""The ``ownkey`` Typer application: one place where the command groups are assembled."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ownkey.cli import _audit, _demo, _jobs, _key, _keyadmin, _org, _policy, _serve, _token
from ownkey.cli._hybrid import hybrid_app
from ownkey.errors import OwnkeyError

app = typer.Typer(
    name="ownkey",
    help="ownkey: customer managed keys for collaboration content.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo", help="Tell the ownkey story on embedded defaults.")(_demo.demo)
app.add_typer(_policy.policy_app, name="policy")
app.add_typer(_audit.audit_app, name="audit")
app.add_typer(_key.key_app, name="key")
_keyadmin.register_key_commands(_key.key_app)
app.add_typer(_org.org_app, name="org")
app.add_typer(_org.user_app, name="user")
app.command("coverage")(_org.coverage)
app.add_typer(_keyadmin.revoke_app, name="revoke")
app.add_typer(_jobs.jobs_app, name="jobs")
app.add_typer(_token.token_app, name="token")
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
