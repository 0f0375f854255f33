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


def _store(home: Path, *, witness: bool = True) -> HybridStore:
    """The home's store; appends witness their head in its key manager like the server's."""
    from ownkey.hybrid import HybridStore, load_config
    from ownkey.hybrid._config import DB_FILE, load_audit_signer, open_provider
    from ownkey.hybrid._store import head_witness

    try:
        config = load_config(home)
        signer = load_audit_signer(home)
    except ConfigError as exc:
        fail(str(exc), EXIT_FAILED)
    head = None
    if witness:
        try:
            provider = open_provider(home, config.provider_kind, config.provider_settings)
        except ConfigError as exc:  # a revocation must not wait for the key manager
            typer.echo(f"ownkey: the audit witness is off for this call: {exc}", err=True)
        else:
            head = head_witness(provider, config.key_id, config.org)
    return HybridStore(home / DB_FILE, config.org, signer=signer, witness=head)


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


@hybrid_app.command("xks-key-create")
def xks_key_create(
    home: HomeOption,
    key: Annotated[str, typer.Argument(help="the external key id to give AWS KMS ([A-Za-z0-9-])")],
    usage: Annotated[
        str, typer.Option(help="ENCRYPT,DECRYPT (default), ENCRYPT, DECRYPT, or NONE")
    ] = "ENCRYPT,DECRYPT",
) -> None:
    """Create an AES-256 key for the AWS XKS proxy API, wrapped by the home's provider key."""
    from ownkey.hybrid import load_config
    from ownkey.hybrid._config import open_provider
    from ownkey.hybrid._xks import create_xks_key

    try:
        config = load_config(home)
        provider = open_provider(home, config.provider_kind, config.provider_settings)
        allowed = tuple(u for u in usage.upper().split(",") if u and u != "NONE")
        create_xks_key(home, provider, config.key_id, config.org, key, allowed)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    typer.echo(f"created XKS key {key}")


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
def verify(
    home: HomeOption,
    witness_log: Annotated[
        Path | None,
        typer.Option(
            "--witness-log",
            help="An export of the key manager's log (CloudTrail JSON, keys/local-keys.log, a "
            "KMIP log as JSON lines): every head witnessed there (one every 16 records) must be "
            "a prefix of the chain, heads only grow, none may be missing.",
        ),
    ] = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option("--witness-key", help="Count only calls under this key (repeatable)."),
    ] = None,
) -> None:
    """Recompute the chain; exit 1 at the first edited, missing or inserted record, or (with
    --witness-log) a witnessed head the chain no longer holds or a head never witnessed."""
    from ownkey.audit._witness_log import (
        check_sequence,
        describe_witness,
        read_witness_log,
        select_entries,
    )

    store = _store(home, witness=False)
    entries = []
    if witness_log is not None:
        try:
            entries = select_entries(
                read_witness_log(store.org, witness_log.read_bytes()), witness_key or None
            )
        except OSError as exc:
            fail(f"--witness-log {witness_log}: {exc.strerror or 'cannot be read'}")
        except ValueError as exc:
            fail(f"--witness-log {witness_log}: {exc}")
    report = store.verify(witnessed_heads=[(e.seq, e.hash) for e in entries])
    store.close()
    problems = list(report.problems)
    if witness_log is not None and report.ok:
        problems += check_sequence(
            report.org,
            entries,
            every=store.every,
            last_seq=report.last_seq,
            keys=witness_key or None,
        )
    if witness_log is None:
        typer.echo(
            "anchor: none, the key service's database alone: a cut of the newest records "
            "(any number, with their checkpoints) cannot show; give --witness-log"
        )
    elif entries:
        newest = describe_witness(entries, int(time.time() * 1000))
        typer.echo(
            f"anchor: witness log {witness_log}: {newest['heads']} witnessed heads, newest "
            f"{newest['newest']} at {newest['newest_at']} ({newest['age_seconds']} s old); "
            f"{report.last_seq - entries[-1].seq} records after it rest on the chain alone"
        )
    else:
        typer.echo(f"anchor: witness log {witness_log}: no witnessed head")
    if problems:
        for problem in problems[1:]:
            typer.echo(
                f"audit chain problem at seq {problem.seq}: {problem.kind} ({problem.detail})"
            )
        problem = problems[0]
        fail(
            f"audit chain broken at seq {problem.seq}: {problem.kind} ({problem.detail})",
            EXIT_FAILED,
        )
    typer.echo(
        f"audit chain of {report.org} verifies: {report.records} records, "
        f"{report.checkpoints} signed checkpoints, {report.unsigned_tail} after the last one"
    )
