"""Adapters to databases and blob stores (SQLAlchemy, Alembic, directory, S3).

One schema for SQLite (default: ``$OWNKEY_HOME/ownkey.db``) and PostgreSQL
(``OWNKEY_DATABASE_URL``), migrated by the Alembic scripts shipped in ``migrations/`` whenever
:meth:`Database.open` runs. The stores implement the key hierarchy's ports and the audit port;
see docs/storage.md.
"""

from ownkey.errors import RetiredScopeKey  # re-exported where it was first defined
from ownkey.storage._assets import (
    INLINE_LIMIT,
    AssetRecord,
    AssetStore,
    AssetTotals,
    SweepReport,
)
from ownkey.storage._audit import (
    CHECKPOINT_EVERY,
    MAX_QUERY_DAYS,
    PLATFORM_LOG,
    AuditLog,
    AuditQuery,
    AuditSigningKey,
    SqlAuditSink,
    event_body,
)
from ownkey.storage._blobs import (
    BlobReader,
    BlobStore,
    BlobWriter,
    DirectoryBlobStore,
    S3BlobStore,
    S3RangeReader,
    blob_store_from_env,
)
from ownkey.storage._changes import CHANNEL, Change, ChangeListener
from ownkey.storage._directory import ORG_FLAGS, OrgRow, ProviderRow, SqlOrgDirectory, UserRow
from ownkey.storage._engine import Database, database_url, ownkey_home
from ownkey.storage._files import check_private_home
from ownkey.storage._jobs import JOB_KINDS, JobStatus, JobStore
from ownkey.storage._keys import SqlKeyRegistry, SqlRuleStore, SqlScopeKeyStore
from ownkey.storage._shreds import PendingShred, ShredStore
from ownkey.storage._tokens import ORG_TOKEN, PLATFORM_TOKEN, TOKEN_KINDS, ApiToken, TokenStore

__all__ = [
    "CHANNEL",
    "CHECKPOINT_EVERY",
    "INLINE_LIMIT",
    "JOB_KINDS",
    "MAX_QUERY_DAYS",
    "ORG_FLAGS",
    "ORG_TOKEN",
    "PLATFORM_LOG",
    "PLATFORM_TOKEN",
    "TOKEN_KINDS",
    "ApiToken",
    "AssetRecord",
    "AssetStore",
    "AssetTotals",
    "AuditLog",
    "AuditQuery",
    "AuditSigningKey",
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "Change",
    "ChangeListener",
    "Database",
    "DirectoryBlobStore",
    "JobStatus",
    "JobStore",
    "OrgRow",
    "PendingShred",
    "ProviderRow",
    "RetiredScopeKey",
    "S3BlobStore",
    "S3RangeReader",
    "ShredStore",
    "SqlAuditSink",
    "SqlKeyRegistry",
    "SqlOrgDirectory",
    "SqlRuleStore",
    "SqlScopeKeyStore",
    "SweepReport",
    "TokenStore",
    "UserRow",
    "blob_store_from_env",
    "check_private_home",
    "database_url",
    "event_body",
    "ownkey_home",
]
