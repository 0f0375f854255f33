"""fleet keys: the embedded key store and the audit signing keys in the database (issue 28, item 2)

Revision ID: 0012
Revises: 0011

Before, each node kept the local store's keys (``local-keys.json``), its root key and its audit
signing key under its own ``OWNKEY_HOME``: a second node on another home could not open content
under the platform key or a ``--create-key`` key, and signed checkpoints that the first node's
``audit verify`` called tampered. From here on both live in the database, sealed under the one
root key every node is given:

- ``local_keys``: one row per key of the embedded store (its JSON record, versions sealed under
  the root key as before);
- ``fleet_secrets``: named values sealed under the root key (``root-check``, ``audit-signing``,
  ``audit-public:<key id>``).

The rows are written by the first node that starts with this code (the migration cannot hold the
root key): it imports its home's ``local-keys.json`` and ``audit-signing.key`` (docs/operations.md,
"What each node needs").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "local_keys",
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_local_keys")),
    )
    op.create_table(
        "fleet_secrets",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fleet_secrets")),
    )


def downgrade() -> None:
    op.drop_table("fleet_secrets")
    op.drop_table("local_keys")
