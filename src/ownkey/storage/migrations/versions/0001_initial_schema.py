"""initial schema

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("asset_id", sa.String(length=255), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("service_id", sa.String(length=4), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sealed_size", sa.BigInteger(), nullable=False),
        sa.Column("scope_key_id", sa.LargeBinary(length=64), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_assets")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assets_org"), ["org"], unique=False)
        batch_op.create_index(batch_op.f("ix_assets_scope_key_id"), ["scope_key_id"], unique=False)

    op.create_table(
        "audit_checkpoints",
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.PrimaryKeyConstraint("org", "seq", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_heads",
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("org", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "audit_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("asset_id", sa.String(length=255), nullable=True),
        sa.Column("service_id", sa.String(length=4), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_records_org_at_ms"), ["org", "at_ms"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_records_org_seq"), ["org", "seq"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_jobs")),
    )
    op.create_table(
        "master_keys",
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("changed_at", sa.Double(), nullable=False),
        sa.Column("destroy_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_master_keys")),
    )
    op.create_table(
        "orgs",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("cmk", sa.Boolean(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_orgs")),
    )
    op.create_table(
        "revocation_rules",
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("key_ref", sa.String(length=300), nullable=False),
        sa.Column("service_id", sa.String(length=4), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("since", sa.Double(), nullable=True),
        sa.Column("until", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_revocation_rules")),
    )
    with op.batch_alter_table("revocation_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revocation_rules_key_ref"), ["key_ref"], unique=False)

    op.create_table(
        "scope_keys",
        sa.Column("key_id", sa.LargeBinary(length=64), nullable=False),
        sa.Column("orgs", sa.Text(), nullable=False),
        sa.Column("service_id", sa.String(length=4), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("epoch_start", sa.BigInteger(), nullable=False),
        sa.Column("epoch_seconds", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("sealable", sa.Boolean(), nullable=False),
        sa.Column("shredded_at", sa.Double(), nullable=True),
        sa.Column("current_for", sa.String(length=64), nullable=True),
        sa.Column("wraps_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_scope_keys")),
        sa.UniqueConstraint("current_for", name=op.f("uq_scope_keys_current_for")),
    )
    with op.batch_alter_table("scope_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scope_keys_service_id_epoch_start"),
            ["service_id", "epoch_start"],
            unique=False,
        )

    op.create_table(
        "job_items",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("item", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.job_id"], name=op.f("fk_job_items_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "item", name=op.f("pk_job_items")),
    )
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_job_items_job_id_state"), ["job_id", "state"], unique=False
        )

    op.create_table(
        "key_versions",
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ref"],
            ["master_keys.ref"],
            name=op.f("fk_key_versions_ref_master_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ref", "version", name=op.f("pk_key_versions")),
    )
    op.create_table(
        "scope_key_wraps",
        sa.Column("key_id", sa.LargeBinary(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key_ref", sa.String(length=300), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("provider_key_id", sa.Text(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["scope_keys.key_id"],
            name=op.f("fk_scope_key_wraps_key_id_scope_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", "position", name=op.f("pk_scope_key_wraps")),
    )
    op.create_table(
        "users",
        sa.Column("org", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("licensed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org"], ["orgs.name"], name=op.f("fk_users_org_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org", "email", name=op.f("pk_users")),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.drop_table("scope_key_wraps")
    op.drop_table("key_versions")
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_items_job_id_state"))

    op.drop_table("job_items")
    with op.batch_alter_table("scope_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scope_keys_service_id_epoch_start"))

    op.drop_table("scope_keys")
    with op.batch_alter_table("revocation_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revocation_rules_key_ref"))

    op.drop_table("revocation_rules")
    op.drop_table("orgs")
    op.drop_table("master_keys")
    op.drop_table("jobs")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_org_seq"))
        batch_op.drop_index(batch_op.f("ix_audit_records_org_at_ms"))

    op.drop_table("audit_records")
    op.drop_table("audit_heads")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_scope_key_id"))
        batch_op.drop_index(batch_op.f("ix_assets_org"))

    op.drop_table("assets")
