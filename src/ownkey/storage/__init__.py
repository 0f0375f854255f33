"""Adapters to databases and blob stores (SQLAlchemy, Alembic, directory, S3).

One schema for SQLite (default: ``$OWNKEY_HOME/ownkey.db``) and PostgreSQL
(``OWNKEY_DATABASE_URL``), migrated by the Alembic scripts shipped in ``migrations/`` whenever
:meth:`Database.open` runs. The stores implement the key hierarchy's ports and the audit port;
see docs/storage.md.
"""

from typing import TYPE_CHECKING

from ownkey._lazy import lazy_names

if TYPE_CHECKING:
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
    from ownkey.storage._fleet import FleetStore
    from ownkey.storage._jobs import JOB_KINDS, JobStatus, JobStore
    from ownkey.storage._keys import SqlKeyRegistry, SqlRuleStore, SqlScopeKeyStore
    from ownkey.storage._sessions import SessionRecord, SessionStore
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
    "FleetStore",
    "JobStatus",
    "JobStore",
    "OrgRow",
    "PendingShred",
    "ProviderRow",
    "RetiredScopeKey",
    "S3BlobStore",
    "S3RangeReader",
    "SessionRecord",
    "SessionStore",
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

#: Where each public name lives: importing ``ownkey.storage`` loads none of them, so that a
#: command that reads keys and orgs does not pay for the asset, job, token and blob stores
#: (tests/cli/test_startup.py).
_HOMES: dict[str, str] = {
    "RetiredScopeKey": "ownkey.errors",
    "INLINE_LIMIT": "ownkey.storage._assets",
    "AssetRecord": "ownkey.storage._assets",
    "AssetStore": "ownkey.storage._assets",
    "AssetTotals": "ownkey.storage._assets",
    "SweepReport": "ownkey.storage._assets",
    "CHECKPOINT_EVERY": "ownkey.storage._audit",
    "MAX_QUERY_DAYS": "ownkey.storage._audit",
    "PLATFORM_LOG": "ownkey.storage._audit",
    "AuditLog": "ownkey.storage._audit",
    "AuditQuery": "ownkey.storage._audit",
    "AuditSigningKey": "ownkey.storage._audit",
    "SqlAuditSink": "ownkey.storage._audit",
    "event_body": "ownkey.storage._audit",
    "BlobReader": "ownkey.storage._blobs",
    "BlobStore": "ownkey.storage._blobs",
    "BlobWriter": "ownkey.storage._blobs",
    "DirectoryBlobStore": "ownkey.storage._blobs",
    "S3BlobStore": "ownkey.storage._blobs",
    "S3RangeReader": "ownkey.storage._blobs",
    "blob_store_from_env": "ownkey.storage._blobs",
    "CHANNEL": "ownkey.storage._changes",
    "Change": "ownkey.storage._changes",
    "ChangeListener": "ownkey.storage._changes",
    "ORG_FLAGS": "ownkey.storage._directory",
    "OrgRow": "ownkey.storage._directory",
    "ProviderRow": "ownkey.storage._directory",
    "SqlOrgDirectory": "ownkey.storage._directory",
    "UserRow": "ownkey.storage._directory",
    "Database": "ownkey.storage._engine",
    "database_url": "ownkey.storage._engine",
    "ownkey_home": "ownkey.storage._engine",
    "check_private_home": "ownkey.storage._files",
    "FleetStore": "ownkey.storage._fleet",
    "JOB_KINDS": "ownkey.storage._jobs",
    "JobStatus": "ownkey.storage._jobs",
    "JobStore": "ownkey.storage._jobs",
    "SqlKeyRegistry": "ownkey.storage._keys",
    "SqlRuleStore": "ownkey.storage._keys",
    "SqlScopeKeyStore": "ownkey.storage._keys",
    "SessionRecord": "ownkey.storage._sessions",
    "SessionStore": "ownkey.storage._sessions",
    "PendingShred": "ownkey.storage._shreds",
    "ShredStore": "ownkey.storage._shreds",
    "ORG_TOKEN": "ownkey.storage._tokens",
    "PLATFORM_TOKEN": "ownkey.storage._tokens",
    "TOKEN_KINDS": "ownkey.storage._tokens",
    "ApiToken": "ownkey.storage._tokens",
    "TokenStore": "ownkey.storage._tokens",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES, __all__)
