"""scope key shreds: old scope keys of a rekey wait out the destruction waiting period (RW-8)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scope_key_shreds",
        sa.Column("scope_key_id", sa.LargeBinary(length=64), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("changed_at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["scope_key_id"],
            ["scope_keys.key_id"],
            name=op.f("fk_scope_key_shreds_scope_key_id_scope_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("scope_key_id", name=op.f("pk_scope_key_shreds")),
    )
    with op.batch_alter_table("scope_key_shreds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scope_key_shreds_org_state_due_at"),
            ["org", "state", "due_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("scope_key_shreds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scope_key_shreds_org_state_due_at"))
    op.drop_table("scope_key_shreds")
