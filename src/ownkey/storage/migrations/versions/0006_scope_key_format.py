"""scope-key records carry their format; every record made before it is retired for sealing

Format 2 (issue 10, finding 2 and 6) binds the share index, the key reference and the key list
into each wrap's context and the record's attributes into the share combination, and stores
lists in an injective encoding. Older records stay readable as format 1; none is handed out for
sealing again (their ``current_for`` digests were computed with the old, ambiguous encoding), so
every new seal makes a format-2 record.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scope_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("format", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
    op.execute("UPDATE scope_keys SET sealable = false, current_for = NULL")


def downgrade() -> None:
    with op.batch_alter_table("scope_keys", schema=None) as batch_op:
        batch_op.drop_column("format")
