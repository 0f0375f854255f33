"""asset store: the sealing request and inline data of assets; job items up to 1024 characters

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_assets_org_service_id"), ["org", "service_id"], unique=False
        )
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.alter_column(
            "item",
            existing_type=sa.String(length=255),
            type_=sa.String(length=1024),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.alter_column(
            "item",
            existing_type=sa.String(length=1024),
            type_=sa.String(length=255),
            existing_nullable=False,
        )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_org_service_id"))
        batch_op.drop_column("data")
        batch_op.drop_column("request")
