"""``ownkey token``: API bearer tokens, shown once, stored only as a SHA-256 digest.

``create --org ORG`` makes an org admin token (that org's admin routes only); ``create
--platform`` a platform service token (the data plane only). The token is printed once on
stdout, alone (``TOKEN=$(ownkey token create --platform)``); ownkey cannot show it again.
``list`` shows ids and kinds, ``revoke ID`` stops a token from the next request on.
Exit codes: 0 done, 2 bad input (no or both kinds, an unknown org or token id).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ownkey.errors import NotFound, OwnkeyError

token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)

EXIT_BAD_INPUT = 2


def _bad(message: str) -> typer.Exit:
    typer.echo(f"ownkey: {message}", err=True)
    return typer.Exit(code=EXIT_BAD_INPUT)


@token_app.command("create")
def create(
    org: Annotated[str | None, typer.Option("--org", help="An admin token of this org.")] = None,
    platform: Annotated[
        bool, typer.Option("--platform", help="A platform service token (data plane).")
    ] = False,
    note: Annotated[str, typer.Option("--note", help="What the token is for.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a token and print it once."""
    if (org is None) == (not platform):
        raise _bad("give exactly one of --org ORG or --platform")
    from ownkey.service import Runtime
    from ownkey.storage import TokenStore

    try:
        with Runtime.open() as runtime:
            if org is not None and not runtime.org_ops.exists(org):
                raise _bad(f"no org {org!r} (create it first: ownkey org create {org})")
            record, text = TokenStore(runtime.database).issue(
                "platform" if platform else "org", org=org, note=note
            )
    except OwnkeyError as exc:
        raise _bad(str(exc)) from None
    if as_json:
        body = {"token": text, "token_id": record.token_id, "kind": record.kind, "org": org}
        typer.echo(json.dumps(body))
    else:
        typer.echo(text)
    typer.echo("ownkey: the token is shown once; store it now.", err=True)


@token_app.command("list")
def list_tokens(
    org: Annotated[str | None, typer.Option("--org", help="Only this org's tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tokens (ids, kinds, orgs; never the tokens themselves)."""
    from ownkey.service import Runtime
    from ownkey.storage import TokenStore

    with Runtime.open() as runtime:
        tokens = TokenStore(runtime.database).all(org=org)
    rows = [
        {
            "token_id": t.token_id,
            "kind": t.kind,
            "org": t.org,
            "active": t.active,
            "note": t.note,
        }
        for t in tokens
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        state = "active" if row["active"] else "revoked"
        typer.echo(f"{row['token_id']}  {row['kind']:<8}  {row['org'] or '-':<20}  {state}")


@token_app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (okt_<id>.…).")]) -> None:
    """Revoke a token: it stops working from the next request on."""
    from ownkey.service import Runtime
    from ownkey.storage import TokenStore

    with Runtime.open() as runtime:
        try:
            TokenStore(runtime.database).revoke(token_id)
        except NotFound as exc:
            raise _bad(str(exc)) from None
    typer.echo(f"revoked {token_id}")
