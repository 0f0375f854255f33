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
from ownkey.storage._engine import Database, database_url, ownkey_home
from ownkey.storage._keys import SqlKeyRegistry, SqlRuleStore, SqlScopeKeyStore

__all__ = [
    "CHECKPOINT_EVERY",
    "MAX_QUERY_DAYS",
    "PLATFORM_LOG",
    "AuditLog",
    "AuditQuery",
    "AuditSigningKey",
    "Database",
    "SqlAuditSink",
    "SqlKeyRegistry",
    "SqlRuleStore",
    "SqlScopeKeyStore",
    "database_url",
    "event_body",
    "ownkey_home",
]
