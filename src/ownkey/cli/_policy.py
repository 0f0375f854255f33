"""``ownkey policy``: dry-run the policy decision contract of docs/policy.md.

``explain`` reads the request JSON on stdin and prints the plan JSON on stdout, the same answer as
``POST /v1/policy/explain``. A bad request exits with code 2 and one line on stderr that names the
field; never a traceback, so scripts can tell "your request is wrong" from "ownkey failed" (1).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ownkey.errors import PolicyError

policy_app = typer.Typer(help="Dry-run the policy decision contract.", no_args_is_help=True)

EXIT_BAD_INPUT = 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


@policy_app.command("explain")
def explain(
    compact: Annotated[bool, typer.Option("--compact", help="Print the plan on one line.")] = False,
) -> None:
    """Read a policy request (JSON) on stdin and print the protection plan (JSON)."""
    try:
        from ownkey.policy import MAX_REQUEST_BYTES, parse_request_json
        from ownkey.policy import explain as explain_plan

        text = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
        if len(text) > MAX_REQUEST_BYTES:
            raise PolicyError("request", f"larger than {MAX_REQUEST_BYTES} bytes (the API's limit)")
        plan = explain_plan(parse_request_json(text))
    except PolicyError as exc:
        typer.echo(f"ownkey: {_one_line(str(exc))}", err=True)
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    typer.echo(json.dumps(plan.to_json(), indent=None if compact else 2))


@policy_app.command("schema")
def schema(
    plan: Annotated[
        bool, typer.Option("--plan", help="Print the plan's schema instead of the request's.")
    ] = False,
) -> None:
    """Print the JSON Schema of the policy request (or, with --plan, of the plan)."""
    from ownkey.policy import plan_schema, request_schema  # imported on use: startup stays cheap

    typer.echo(json.dumps(plan_schema() if plan else request_schema(), indent=2))
