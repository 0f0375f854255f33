"""tenant isolation: a key id binds to one key reference; checkpoints chain to each other

Revision ID: 0008
Revises: 0007

- ``master_keys``: a unique index on (provider, key_id), so one key of a key manager is bound to
  at most one key reference (KL-14; the registry also refuses it with ``Conflict``).
- ``audit_checkpoints.previous``: the link to the checkpoint before it (AUD-5, version 2);
  NULL for the version 1 checkpoints written before this migration.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("master_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_master_keys_provider_key_id"), ["provider", "key_id"], unique=True
        )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous", sa.LargeBinary(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("previous")
    with op.batch_alter_table("master_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_master_keys_provider_key_id"))
