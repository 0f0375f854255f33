"""scope key origin: the keys a format-3 scope key was created with (issue 23, SK-7)

Records written before keep a NULL origin and their format (1 or 2): they still open content,
and are retired for sealing at their next use, so new content goes to format-3 records only.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scope_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scope_keys", schema=None) as batch_op:
        batch_op.drop_column("origin")
