"""The one relational schema of ownkey, for SQLite and PostgreSQL alike (docs/storage.md).

SQLAlchemy Core tables: the migrations in ``migrations/versions`` create exactly these, and a
test compares the two. Times that the audit chain hashes are integer milliseconds; times that
round-trip into the key layer's records (floats) are stored as double precision, which both
databases keep exactly.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

from ownkey.policy import ORG_FLAGS

__all__ = [
    "api_tokens",
    "assets",
    "audit_checkpoints",
    "audit_heads",
    "audit_records",
    "console_sessions",
    "fleet_secrets",
    "job_items",
    "jobs",
    "key_versions",
    "leases",
    "local_keys",
    "master_keys",
    "metadata",
    "orgs",
    "providers",
    "revocation_rules",
    "scope_key_shreds",
    "scope_key_wraps",
    "scope_keys",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

orgs = Table(
    "orgs",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("cmk", Boolean, nullable=False, default=False),
    Column("created_at_ms", BigInteger, nullable=False),
    # The org directory (migration 0002): enabled services as "|0001|0008|", the policy's flags,
    # and a revision bumped by every change to the org or its users (cheap change detection).
    Column("services", Text, nullable=False, server_default=""),
    *(Column(flag, Boolean, nullable=False, server_default=false()) for flag in ORG_FLAGS),
    Column("revision", BigInteger, nullable=False, server_default="0"),
    Column("changed_at_ms", BigInteger, nullable=False, server_default="0"),
)

users = Table(
    "users",
    metadata,
    Column("org", String(255), ForeignKey("orgs.name", ondelete="CASCADE"), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("licensed", Boolean, nullable=False, default=False),
)

# Key managers other than the embedded one, by name: kind and non-secret settings (JSON); secrets
# come from the environment of each process (OWNKEY_<KIND>_<NAME>). Migration 0010: a key's
# provider is its own row, named after its reference (``aws_kms/customer:acme``), so one org's
# registration never re-points another's key; names are as long as a reference plus the kind.
_PROVIDER_NAME = 320

providers = Table(
    "providers",
    metadata,
    Column("name", String(_PROVIDER_NAME), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("settings", Text, nullable=False),
    Column("changed_at_ms", BigInteger, nullable=False),
)

# The key registry: ownkey's record of each customer/platform key, by reference.
master_keys = Table(
    "master_keys",
    metadata,
    Column("ref", String(300), primary_key=True),
    Column("provider", String(_PROVIDER_NAME), nullable=False),
    Column("key_id", Text, nullable=False),
    Column("version", String(255), nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("changed_at", Double, nullable=False),
    Column("destroy_at", Double, nullable=True),
    # Migration 0008: one key of a key manager is bound to at most one reference (KL-14).
    Index(None, "provider", "key_id", unique=True),
)

key_versions = Table(
    "key_versions",
    metadata,
    Column("ref", String(300), ForeignKey("master_keys.ref", ondelete="CASCADE"), primary_key=True),
    Column("version", String(255), primary_key=True),
    Column("first_seen", Double, nullable=False),
)

# Scope keys exist only as public attributes plus wrapped shares (SK-2).
scope_keys = Table(
    "scope_keys",
    metadata,
    Column("key_id", LargeBinary(64), primary_key=True),
    Column("orgs", Text, nullable=False),  # "|acme|globex|", "%" and "|" escaped: LIKE-searchable
    Column("service_id", String(4), nullable=False),
    Column("scope", Text, nullable=False),
    Column("epoch_start", BigInteger, nullable=False),
    Column("epoch_seconds", BigInteger, nullable=False),
    Column("keys", Text, nullable=False),  # "|customer:acme|platform|"
    Column("created_at", Double, nullable=False),
    Column("sealable", Boolean, nullable=False),
    Column("shredded_at", Double, nullable=True),
    # The identity digest while this record is the current one, else NULL: the unique index
    # makes "first writer wins" hold across nodes.
    Column("current_for", String(64), nullable=True, unique=True),
    # Bumped on every change of wraps: replace_wraps is a compare-and-set on it.
    Column("wraps_version", Integer, nullable=False, default=0),
    # 1: made before issue 10 (read only); 2: bound wrap contexts and combination (SK-3);
    # 3: the keys it was created with in every wrap's context (SK-7).
    Column("format", Integer, nullable=False, server_default=text("1")),
    # Format 3: "|customer:acme|", the keys the record was created with (a backfill keeps it).
    Column("origin", Text, nullable=True),
    Index(None, "service_id", "epoch_start"),
)

scope_key_wraps = Table(
    "scope_key_wraps",
    metadata,
    Column(
        "key_id",
        LargeBinary(64),
        ForeignKey("scope_keys.key_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("key_ref", String(300), nullable=False),
    Column("provider", String(_PROVIDER_NAME), nullable=False),
    Column("provider_key_id", Text, nullable=False),
    Column("version", String(255), nullable=False),
    Column("blob", LargeBinary, nullable=False),
)

# Migration 0006: a scope key a rekey job is done with waits here out the destruction waiting
# period before its wrapped shares are deleted (RW-8). The row is written before anything is
# shredded; ``state`` is pending | cancelled | shredded, so a redone job step never reschedules a
# cancelled shred and a crash between the shred and its mark is finished by the next run.
scope_key_shreds = Table(
    "scope_key_shreds",
    metadata,
    Column(
        "scope_key_id",
        LargeBinary(64),
        ForeignKey("scope_keys.key_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("org", String(255), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("job_id", String(64), nullable=True),
    Column("state", String(16), nullable=False),
    Column("due_at", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("changed_at", Double, nullable=False),
    Column("actor", String(320), nullable=True),
    Index(None, "org", "state", "due_at"),
)

revocation_rules = Table(
    "revocation_rules",
    metadata,
    Column("rule_id", String(128), primary_key=True),
    Column("org", String(255), nullable=False),
    Column("key_ref", String(300), nullable=False, index=True),
    Column("service_id", String(4), nullable=True),
    Column("scope", Text, nullable=True),
    Column("since", Double, nullable=True),
    Column("until", Double, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("actor", String(320), nullable=True),
    Column("note", Text, nullable=False, default=""),
)

assets = Table(
    "assets",
    metadata,
    Column("asset_id", String(255), primary_key=True),
    Column("org", String(255), nullable=False, index=True),
    Column("service_id", String(4), nullable=False),
    Column("scope", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sealed_size", BigInteger, nullable=False),
    Column("scope_key_id", LargeBinary(64), nullable=False, index=True),
    Column("location", Text, nullable=False),
    Column("context", Text, nullable=False),  # canonical JSON of the encryption context
    Column("created_at_ms", BigInteger, nullable=False),
    # Migration 0004 (asset store): the policy request the asset was sealed with (JSON, for
    # rekey and backfill), and the sealed bytes of small assets kept inline (location "db:").
    Column("request", Text, nullable=True),
    Column("data", LargeBinary, nullable=True),
    Index(None, "org", "service_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("org", String(255), nullable=True),
    Column("params", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("total", BigInteger, nullable=False, default=0),
    Column("done", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("error", Text, nullable=True),
    # Migration 0013: the lease of the node working on the job, and the request an equal job
    # would repeat (set while the job is pending or running: one such job at a time).
    Column("owner", String(128), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=True),
    Column("dedupe", String(64), nullable=True),
    Index(None, "dedupe", unique=True),
)

#: Migration 0013: named turns held by one node at a time until ``until_ms`` (the blob sweep).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=True),
    Column("until_ms", BigInteger, nullable=False),
)

job_items = Table(
    "job_items",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    Column("item", String(1024), primary_key=True),  # widened by 0004: "a:" + an asset id
    Column("state", String(16), nullable=False),  # pending | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Index(None, "job_id", "state"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("org", String(255), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

audit_records = Table(
    "audit_records",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("org", String(255), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    # Copies of body fields for queries; the body (hashed) is authoritative and re-checked.
    Column("at_ms", BigInteger, nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("actor", String(320), nullable=True),
    Column("asset_id", String(255), nullable=True),
    Column("service_id", String(4), nullable=True),
    Index(None, "org", "seq"),
    Index(None, "org", "at_ms"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("org", String(255), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("hash", LargeBinary(32), nullable=False),
    Column("signed_at", BigInteger, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    # Migration 0008: the link to the checkpoint before (AUD-5 v2); NULL for version 1 ones.
    Column("previous", LargeBinary(32), nullable=True),
)

# Bearer tokens of the REST API: only a SHA-256 digest of each token's secret is stored.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),  # org | platform
    Column("org", String(255), nullable=True, index=True),
    Column("digest", LargeBinary(32), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger, nullable=True),
    Column("note", Text, nullable=False, default=""),
    # Migration 0009: an optional expiry, and when the token last opened a request (to a minute).
    Column("expires_at_ms", BigInteger, nullable=True),
    Column("last_used_at_ms", BigInteger, nullable=True),
)

# Migration 0012: what every node of a fleet needs, in the database rather than on one node's disk
# (issue 28, item 2). ``local_keys``: the embedded local key store's records (the JSON of one
# key: its state and its versions, each sealed under the fleet's root key), compared whole for a
# compare-and-set. ``fleet_secrets``: values sealed under the root key by name, first writer wins:
# ``root-check`` (opening it proves a node holds the fleet's root key), ``audit-signing`` (the
# fleet's checkpoint signing seed) and ``audit-public:<key id>`` (every public key that signed
# checkpoints here, which verification trusts).
local_keys = Table(
    "local_keys",
    metadata,
    Column("key_id", String(128), primary_key=True),
    Column("body", Text, nullable=False),
)

fleet_secrets = Table(
    "fleet_secrets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)

# Migration 0014: the security console's sessions, shared by every node of a fleet (issue 28,
# item 7). A row per signed-in org admin: only SHA-256 of the session id (the cookie), the org,
# the id of the token it signed in with (never the token: each page re-checks that token id is
# still active), the audit actor, the form (CSRF) token, and when it began, was last seen (to
# the minute) and ends. ``seq`` orders the sign-ins: an org's oldest session goes first.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("digest", LargeBinary(32), nullable=False, unique=True),
    Column("org", String(255), nullable=False, index=True),
    Column("token_id", String(32), nullable=False, index=True),
    Column("actor", String(255), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False, index=True),
)
