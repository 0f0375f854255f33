"""``ownkey token``: API bearer tokens, shown once, stored only as a SHA-256 digest.

``create --org ORG`` makes an org admin token (that org's admin routes only); ``create
--platform`` a platform service token (the data plane only). The token is printed once on
stdout, alone (``TOKEN=$(ownkey token create --platform)``); ownkey cannot show it again.
``--expires-in 90d`` gives the token a lifetime: from then on the API refuses it (401) as if it were
revoked. ``list`` shows ids, kinds, state (active, expired, revoked), expiry and when each token was
last used (to the minute), ``revoke ID`` stops a token from the next request on. Times are RFC 3339
in UTC. Exit codes: 0 done, 2 bad input (no or both kinds, an unknown org or token id, a malformed
lifetime).
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from ownkey.cli._common import console, duration, iso, migrates_on_open, table
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
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in", help="Lifetime, e.g. 3600, 15m, 24h or 90d (default: until revoked)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a token and print it once."""
    if (org is None) == (not platform):
        raise _bad("give exactly one of --org ORG or --platform")
    lifetime = duration("--expires-in", expires_in)
    if lifetime is not None and lifetime <= 0:
        raise _bad("--expires-in: a lifetime must be positive")
    from ownkey.service import Runtime
    from ownkey.storage import TokenStore

    try:
        with Runtime.open(migrate=migrates_on_open()) as runtime:
            if org is not None and not runtime.org_ops.exists(org):
                raise _bad(f"no org {org!r} (create it first: ownkey org create {org})")
            record, text = TokenStore(runtime.database).issue(
                "platform" if platform else "org", org=org, note=note, expires_in=lifetime
            )
    except OwnkeyError as exc:
        raise _bad(str(exc)) from None
    if as_json:
        body = {
            "token": text,
            "token_id": record.token_id,
            "kind": record.kind,
            "org": org,
            "expires_at": _iso_ms(record.expires_at_ms),
        }
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

    with Runtime.open(migrate=migrates_on_open()) as runtime:
        tokens = TokenStore(runtime.database).all(org=org)
    now_ms = round(time.time() * 1000)
    rows = [
        {
            "token_id": t.token_id,
            "kind": t.kind,
            "org": t.org,
            "active": t.active,
            "state": t.state(now_ms),
            "created_at": _iso_ms(t.created_at_ms),
            "expires_at": _iso_ms(t.expires_at_ms),
            "last_used_at": _iso_ms(t.last_used_at_ms),
            "note": t.note,
        }
        for t in tokens
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no tokens yet (ownkey token create --org ORG | --platform)")
        return
    columns = ("token", "kind", "org", "state", "created", "expires", "last used", "note")
    cells = [
        (
            r["token_id"],
            r["kind"],
            r["org"] or "-",
            r["state"],
            r["created_at"],
            r["expires_at"] or "never",
            r["last_used_at"] or "never",
            r["note"],
        )
        for r in rows
    ]
    console().print(table(None, columns, cells))


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else iso(ms / 1000)


@token_app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (okt_<id>.…).")]) -> None:
    """Revoke a token: it stops working from the next request on."""
    from ownkey.service import Runtime
    from ownkey.storage import TokenStore

    with Runtime.open(migrate=migrates_on_open()) as runtime:
        try:
            TokenStore(runtime.database).revoke(token_id)
        except NotFound as exc:
            raise _bad(str(exc)) from None
    typer.echo(f"revoked {token_id}")
