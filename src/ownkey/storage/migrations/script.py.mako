"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None
# Expand-only unless said here (docs/operations.md, "Upgrades"): a migration that older builds
# cannot run against (a drop, a rename, a NOT NULL column without a server default) sets
# breaks_builds_before = "NNNN", the oldest build's newest migration that still runs after it.


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
