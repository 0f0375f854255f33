"""``ownkey policy``: dry-run the policy decision contract (filled in by the policy issue)."""

from __future__ import annotations

import typer

policy_app = typer.Typer(help="Dry-run the policy decision contract.", no_args_is_help=True)


@policy_app.command("explain")
def explain() -> None:
    """Read a policy request (JSON) on stdin and print the protection plan (JSON)."""
    raise typer.Exit(code=2)
