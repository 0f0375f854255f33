"""console sessions in the database, so that every node of a fleet knows them (issue 28, item 7)

Before, a console session lived in the memory of the node that made it: behind a load balancer a
page served by another node asked to sign in again, and a restart signed everyone out. From here
on each session is a row of ``console_sessions``: SHA-256 of the session id (never the id
itself), the org, the id of the token it signed in with (never the token), the audit actor, the
form (CSRF) token, and when it began, was last seen and ends. Expand-only: a node of an older
build keeps its sessions in memory as before.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("digest", name=op.f("uq_console_sessions_digest")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_sessions_org"), ["org"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_console_sessions_token_id"), ["token_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_console_sessions_expires_at_ms"), ["expires_at_ms"], unique=False
        )


def downgrade() -> None:
    op.drop_table("console_sessions")
