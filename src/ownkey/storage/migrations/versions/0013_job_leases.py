"""job leases: the node working on a job, until when, the request it repeats; named turns

Before, a job started through the API belonged to the threads of the node that accepted it: after
a kill -9 or a stop it showed ``running`` for ever and nothing took it over. ``jobs`` gains the
lease (``owner``, ``lease_until_ms``), renewed while the node works and taken over by another node
once it lapses, and ``dedupe`` (unique): the request a pending or running job was made for, so an
equal request finds it instead of making a duplicate. ``leases`` holds named turns that one node
at a time takes (the scheduled blob sweep). Rows written before have no lease: any node takes
their unfinished jobs over (docs/operations.md, "Jobs in a fleet").

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lease_until_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("dedupe", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_dedupe"), ["dedupe"], unique=True)
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("until_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_dedupe"))
        batch_op.drop_column("dedupe")
        batch_op.drop_column("lease_until_ms")
        batch_op.drop_column("owner")
