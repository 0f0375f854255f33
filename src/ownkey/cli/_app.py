"""The ``ownkey`` Typer application: one place where the command groups are assembled."""

from __future__ import annotations

import sys

import typer

from ownkey.cli import _audit, _demo, _key, _policy, _serve, _token
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
app.add_typer(_token.token_app, name="token")
app.command("serve", help="Serve the REST API on this node.")(_serve.serve)

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def main() -> None:
    """Console-script entry: turn ownkey errors into one line on stderr, never a traceback."""
    try:
        app(standalone_mode=True)
    except OwnkeyError as exc:
        print(f"ownkey: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
