"""provider per key: each key reference gets its own provider row (issue 28, item 1)

Revision ID: 0010
Revises: 0009

Before, ``ownkey key register ORG --provider aws_kms --set ...`` stored the settings under the
kind's name, one row every org's key used: registering slowco's key with another
``endpoint_url`` re-pointed acme's calls. From here on a key's provider is a row named after the
key reference (``aws_kms/customer:acme``), written only for that reference.

- ``providers.name``, ``master_keys.provider``, ``scope_key_wraps.provider``: 64 -> 320
  characters (a reference is up to 300, plus the kind).
- Each key that uses a shared row gets its own copy of it; its record and its stored shares
  (``scope_key_wraps.provider``, which ownkey compares with the record) are renamed to the copy.
  The provider name is in no encryption context, so every share still unwraps. The shared row
  stays, as the operator's template for keys org admins register later.
- PostgreSQL: a change to ``providers`` notifies ``ownkey_changes`` (``table`` and ``op``), so
  running nodes rebuild a provider whose settings changed at once.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_WIDE = 320
_NARROW = 64
_COLUMNS = (("providers", "name"), ("master_keys", "provider"), ("scope_key_wraps", "provider"))
_TRIGGER = "ownkey_notify_providers"

_providers = sa.table(
    "providers",
    sa.column("name", sa.String),
    sa.column("kind", sa.String),
    sa.column("settings", sa.Text),
    sa.column("changed_at_ms", sa.BigInteger),
)
_masters = sa.table("master_keys", sa.column("ref", sa.String), sa.column("provider", sa.String))
_wraps = sa.table(
    "scope_key_wraps", sa.column("key_ref", sa.String), sa.column("provider", sa.String)
)


def _resize(length: int, before: int) -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=before),
                type_=sa.String(length=length),
                existing_nullable=False,
            )


def _rename(conn: sa.Connection, ref: str, old: str, new: str) -> None:
    conn.execute(sa.update(_masters).where(_masters.c.ref == ref).values(provider=new))
    conn.execute(
        sa.update(_wraps)
        .where(_wraps.c.key_ref == ref, _wraps.c.provider == old)
        .values(provider=new)
    )


def upgrade() -> None:
    _resize(_WIDE, _NARROW)
    conn = op.get_bind()
    rows = {row.name: row for row in conn.execute(sa.select(_providers))}
    now = int(time.time() * 1000)
    for ref, name in conn.execute(sa.select(_masters.c.ref, _masters.c.provider)).all():
        shared = rows.get(name)
        if shared is None:
            continue  # the embedded local store, or a provider only a process hands in
        own = f"{shared.kind}/{ref}"
        if own == name:
            continue
        if own not in rows:
            conn.execute(
                sa.insert(_providers).values(
                    name=own, kind=shared.kind, settings=shared.settings, changed_at_ms=now
                )
            )
        _rename(conn, ref, name, own)
    if conn.dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON providers "
            "FOR EACH ROW EXECUTE FUNCTION ownkey_notify_change()"
        )


def downgrade() -> None:
    """Point each key back at a row named by its kind; refused when two keys of one kind have
    different settings (one shared row cannot hold both: that is the flaw 0010 removed)."""
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON providers")
    rows = {row.name: row for row in conn.execute(sa.select(_providers))}
    for ref, name in conn.execute(sa.select(_masters.c.ref, _masters.c.provider)).all():
        own = rows.get(name)
        if own is None or name != f"{own.kind}/{ref}":
            continue
        shared = rows.get(own.kind)
        if shared is None:
            conn.execute(
                sa.insert(_providers).values(
                    name=own.kind,
                    kind=own.kind,
                    settings=own.settings,
                    changed_at_ms=own.changed_at_ms,
                )
            )
            rows[own.kind] = own
        elif shared.settings != own.settings:
            raise RuntimeError(
                f"cannot downgrade: keys of {own.kind} use different provider settings"
            )
        _rename(conn, ref, name, own.kind)
        conn.execute(sa.delete(_providers).where(_providers.c.name == name))
    _resize(_NARROW, _WIDE)
