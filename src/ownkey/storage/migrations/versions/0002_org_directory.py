"""org directory: org settings, a revision per org, provider settings

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_FLAGS = (
    "large_org",
    "log_index_encryption",
    "compliance_archival",
    "advanced_chat_encryption",
    "hybrid",
)


def upgrade() -> None:
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("services", sa.Text(), nullable=False, server_default=""))
        for flag in _FLAGS:
            batch_op.add_column(
                sa.Column(flag, sa.Boolean(), nullable=False, server_default=sa.false())
            )
        batch_op.add_column(
            sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("changed_at_ms", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_table(
        "providers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("changed_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_providers")),
    )


def downgrade() -> None:
    op.drop_table("providers")
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        for column in ("changed_at_ms", "revision", *reversed(_FLAGS), "services"):
            batch_op.drop_column(column)
