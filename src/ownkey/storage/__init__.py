"""Adapters to databases and blob stores (SQLAlchemy, Alembic, directory, S3).

One schema for SQLite (default: ``$OWNKEY_HOME/ownkey.db``) and PostgreSQL
(``OWNKEY_DATABASE_URL``), migrated by the Alembic scripts shipped in ``migrations/`` whenever
:meth:`Database.open` runs. The stores implement the key hierarchy's ports and the audit port;
see docs/storage.md.
"""

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
from ownkey.storage._directory import ORG_FLAGS, OrgRow, ProviderRow, SqlOrgDirectory, UserRow
from ownkey.storage._engine import Database, database_url, ownkey_home
from ownkey.storage._jobs import JOB_KINDS, JobStatus, JobStore
from ownkey.storage._keys import SqlKeyRegistry, SqlRuleStore, SqlScopeKeyStore
from ownkey.storage._tokens import ORG_TOKEN, PLATFORM_TOKEN, TOKEN_KINDS, ApiToken, TokenStore

__all__ = [
    "CHECKPOINT_EVERY",
    "JOB_KINDS",
    "MAX_QUERY_DAYS",
    "ORG_FLAGS",
    "ORG_TOKEN",
    "PLATFORM_LOG",
    "PLATFORM_TOKEN",
    "TOKEN_KINDS",
    "ApiToken",
    "AuditLog",
    "AuditQuery",
    "AuditSigningKey",
    "Database",
    "JobStatus",
    "JobStore",
    "OrgRow",
    "ProviderRow",
    "SqlAuditSink",
    "SqlKeyRegistry",
    "SqlOrgDirectory",
    "SqlRuleStore",
    "SqlScopeKeyStore",
    "TokenStore",
    "UserRow",
    "database_url",
    "event_body",
    "ownkey_home",
]
