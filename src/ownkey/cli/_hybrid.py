"""``ownkey hybrid``: the customer-run key service of CMK Hybrid (service 1001).

``init`` creates a key service home (its own directory, database and key; never the platform's
``--home``); ``serve`` runs it; ``revoke`` / ``restore`` a user, a conversation or the whole org
(effective on the next call, also for a running server); ``audit verify`` recomputes its hash
chain (exit 1 with the first problem). See docs/hybrid.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ownkey.cli._common import EXIT_BAD_INPUT, EXIT_FAILED, PORT_MAX, PORT_MIN, fail
from ownkey.errors import ConfigError, InvalidRequest

if TYPE_CHECKING:
    from ownkey.hybrid import HybridStore

hybrid_app = typer.Typer(
    help="The customer-run key service of CMK Hybrid (1001).", no_args_is_help=True
)
hybrid_audit_app = typer.Typer(help="The key service's audit chain.", no_args_is_help=True)
hybrid_app.add_typer(hybrid_audit_app, name="audit")

HomeOption = Annotated[Path, typer.Option("--home", help="The key service's own directory.")]


def _store(home: Path) -> HybridStore:
    from ownkey.hybrid import HybridStore, load_config
    from ownkey.hybrid._config import DB_FILE, load_audit_signer

    try:
        config = load_config(home)
        signer = load_audit_signer(home)
    except ConfigError as exc:
        fail(str(exc), EXIT_FAILED)
    return HybridStore(home / DB_FILE, config.org, signer=signer)


@hybrid_app.command("init")
def init(
    home: HomeOption,
    org: Annotated[str, typer.Option(help="The org this key service serves.")],
    idp: Annotated[str, typer.Option(help="Issuer URL of the customer's identity provider.")],
    platform: Annotated[str, typer.Option(help="Issuer URL of the platform's grants.")],
    idp_audience: Annotated[str, typer.Option()] = "ownkey-hybrid",
    audience: Annotated[str, typer.Option(help="aud of the platform's grants.")] = "ownkey-hybrid",
    privileged: Annotated[list[str] | None, typer.Option(help="Email allowed export.")] = None,
) -> None:
    """Create a key service home with a fresh key in the local key store."""
    from ownkey.hybrid import Issuer, init_home

    try:
        config = init_home(
            home,
            org=org,
            authentication=Issuer(idp, idp_audience),
            authorization=Issuer(platform, audience),
            privileged=tuple(privileged or ()),
        )
    except InvalidRequest as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ConfigError as exc:
        fail(str(exc), EXIT_FAILED)
    typer.echo(f"key service home for {config.org} at {home} (key {config.key_id})")


@hybrid_app.command("serve")
def serve(
    home: HomeOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on.", min=PORT_MIN, max=PORT_MAX)
    ] = 8787,
) -> None:
    """Serve the key service (plain HTTP; put TLS in front of it)."""
    from ownkey.hybrid._serve import serve as run

    run(home, host=host, port=port)


@hybrid_app.command("revoke")
def revoke(
    home: HomeOption,
    kind: Annotated[str, typer.Argument(help="user | conversation | org")],
    value: Annotated[str, typer.Argument(help="email, conversation id, or the org")],
) -> None:
    """Refuse every call for this user / conversation / org from the next call on."""
    store = _store(home)
    try:
        store.revoke(kind, value, int(time.time() * 1000))
    except InvalidRequest as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    store.append({"at_ms": int(time.time() * 1000), "op": "revoke", "kind": kind, "value": value})
    store.close()
    typer.echo(f"revoked {kind} {value}")


@hybrid_app.command("restore")
def restore(
    home: HomeOption,
    kind: Annotated[str, typer.Argument(help="user | conversation | org")],
    value: Annotated[str, typer.Argument()],
) -> None:
    """Lift a revocation."""
    store = _store(home)
    try:
        store.restore(kind, value)
    except InvalidRequest as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    store.append({"at_ms": int(time.time() * 1000), "op": "restore", "kind": kind, "value": value})
    store.close()
    typer.echo(f"restored {kind} {value}")


@hybrid_audit_app.command("verify")
def verify(home: HomeOption) -> None:
    """Recompute the chain; exit 1 at the first edited, missing or inserted record."""
    store = _store(home)
    report = store.verify()
    store.close()
    if not report.ok:
        problem = report.problems[0]
        fail(f"audit chain broken at seq {problem.seq}: {problem.kind}", EXIT_FAILED)
    typer.echo(
        f"audit chain of {report.org} verifies: {report.records} records, "
        f"{report.checkpoints} signed checkpoints, {report.unsigned_tail} after the last one"
    )
