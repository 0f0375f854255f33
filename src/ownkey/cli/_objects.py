"""``ownkey objects list ORG``: the org's stored objects (metadata only; no key is used).

Filters ``--service-id`` and ``--prefix`` (of the asset id); a page of ``--limit`` objects in
asset-id order, the next one with ``--after`` = the last id shown (printed as a hint when there
are more). ``--json`` prints ``{"objects": [...], "next": ...}`` like ``GET /v1/objects``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ownkey.cli._common import EXIT_BAD_INPUT, errors, fail, runtime, show, table

if TYPE_CHECKING:
    from rich.console import Console

objects_app = typer.Typer(help="List the objects in the asset store.", no_args_is_help=True)


@objects_app.command("list")
def list_objects(
    org: Annotated[str, typer.Argument(help="The organisation whose objects to list.")],
    service_id: Annotated[
        str | None, typer.Option("--service-id", help="Only this service ID (4 digits).")
    ] = None,
    prefix: Annotated[str | None, typer.Option(help="Only asset ids starting so.")] = None,
    after: Annotated[str | None, typer.Option(help="Start after this asset id (paging).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1 to 1000).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List ORG's stored objects: id, service, scope, sizes, when stored."""
    if service_id is not None:
        from ownkey.policy import check_service_id

        with errors():  # the catalog's IDs only: "²²²²" passed str.isdigit() and listed nothing
            check_service_id("--service-id", service_id)
    if not 1 <= limit <= 1000:
        fail(f"--limit: 1 to 1000, not {limit}", EXIT_BAD_INPUT)
    from ownkey.storage._audit import iso_ms

    with runtime() as rt:
        rt.org(org)  # NotFound (exit 2) for an org that does not exist
        page = rt.assets.page(
            org=org, service_id=service_id, prefix=prefix, after=after, limit=limit + 1
        )
    shown = page[:limit]
    following = shown[-1].asset_id if len(page) > limit else None
    objects: list[dict[str, Any]] = [
        {
            "asset_id": r.asset_id,
            "org": r.org,
            "service_id": r.service_id,
            "scope": r.scope,
            "size": r.size,
            "sealed_size": r.sealed_size,
            "created_at": iso_ms(r.created_at_ms),
        }
        for r in shown
    ]

    def human(console: Console) -> None:
        fields = ("asset_id", "service_id", "scope", "size", "sealed_size", "created_at")
        rows = [tuple(o[name] for name in fields) for o in objects]
        columns = ("asset id", "service", "scope", "bytes", "sealed", "stored at")
        console.print(table(f"objects of {org}", columns, rows))
        if following is not None:
            console.print(f"more: --after {following}")

    show({"objects": objects, "next": following}, as_json, human)
