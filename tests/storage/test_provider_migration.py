"""Migration 0010 (issue 28, item 1): a shared provider row becomes each key's own copy.

A database made before it keeps working: every key that used the shared ``aws_kms`` row now
uses ``aws_kms/<its reference>`` with the same settings, its stored shares name that row (or
ownkey would refuse them as naming another key manager), and the shared row stays as the
operator's template. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

from sqlalchemy import text

from ownkey.storage import Database
from ownkey.storage._migrate import upgrade

SHARED = {"endpoint_url": "http://kms.shared.test", "region": "us-east-1"}
_KEY = (
    "INSERT INTO master_keys (ref, provider, key_id, version, state, created_at, changed_at) "
    "VALUES (:ref, :provider, :key_id, 'v1', 'enabled', 1.0, 1.0)"
)
_SCOPE_KEY = (
    "INSERT INTO scope_keys (key_id, orgs, service_id, scope, epoch_start, epoch_seconds, keys, "
    "created_at, sealable, wraps_version, format) "
    "VALUES (:key_id, '|acme|', '0001', 's', 0, 86400, '|customer:acme|', 1.0, true, 0, 2)"
)
_WRAP = (
    "INSERT INTO scope_key_wraps (key_id, position, key_ref, provider, provider_key_id, "
    "version, blob) VALUES (:key_id, 0, 'customer:acme', 'aws_kms', 'k-acme', 'v1', :blob)"
)


def _seed(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO providers (name, kind, settings, changed_at_ms) "
                "VALUES ('aws_kms', 'aws_kms', :settings, 1)"
            ),
            {"settings": json.dumps(SHARED, sort_keys=True)},
        )
        for org in ("acme", "slowco"):
            conn.execute(
                text(_KEY), {"ref": f"customer:{org}", "provider": "aws_kms", "key_id": f"k-{org}"}
            )
        conn.execute(text(_KEY), {"ref": "platform", "provider": "local", "key_id": "k-platform"})
        conn.execute(text(_SCOPE_KEY), {"key_id": b"\x01" * 16})
        conn.execute(text(_WRAP), {"key_id": b"\x01" * 16, "blob": b"wrapped"})


def test_a_shared_provider_row_becomes_each_keys_own(database_url: str) -> None:
    database = Database.open(database_url, migrate=False, check=False)
    try:
        upgrade(database.engine, "0009")
        _seed(database)
        upgrade(database.engine, "0010")
        with database.engine.connect() as conn:
            rows = {
                row.name: (row.kind, json.loads(row.settings))
                for row in conn.execute(text("SELECT name, kind, settings FROM providers"))
            }
            keys = dict(conn.execute(text("SELECT ref, provider FROM master_keys")).all())
            wraps = conn.execute(text("SELECT provider FROM scope_key_wraps")).scalars().all()
    finally:
        database.close()
    assert rows == {
        "aws_kms": ("aws_kms", SHARED),
        "aws_kms/customer:acme": ("aws_kms", SHARED),
        "aws_kms/customer:slowco": ("aws_kms", SHARED),
    }
    assert keys == {
        "customer:acme": "aws_kms/customer:acme",
        "customer:slowco": "aws_kms/customer:slowco",
        "platform": "local",
    }
    assert wraps == ["aws_kms/customer:acme"]


def test_the_migration_goes_back_while_the_copies_agree(sqlite_url: str) -> None:
    from alembic import command

    from ownkey.storage._migrate import alembic_config

    database = Database.open(sqlite_url, migrate=False, check=False)
    try:
        upgrade(database.engine, "0009")
        _seed(database)
        upgrade(database.engine, "0010")
        config = alembic_config()
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0009")
        with database.engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM providers")).scalars().all()
            keys = dict(conn.execute(text("SELECT ref, provider FROM master_keys")).all())
    finally:
        database.close()
    assert names == ["aws_kms"]
    assert keys["customer:acme"] == keys["customer:slowco"] == "aws_kms"
