"""The storage contract suite on the in-memory stores, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from ownkey.keys._memory import MemoryKeyRegistry, MemoryRuleStore, MemoryScopeKeyStore
from ownkey.storage import Database, SqlKeyRegistry, SqlRuleStore, SqlScopeKeyStore
from ownkey.testing.storage_contract import (
    KeyRegistryContract,
    RuleStoreContract,
    ScopeKeyStoreContract,
)


class TestMemoryScopeKeys(ScopeKeyStoreContract):
    @pytest.fixture
    def store(self) -> Any:
        return MemoryScopeKeyStore()


class TestMemoryRegistry(KeyRegistryContract):
    @pytest.fixture
    def registry(self) -> Any:
        return MemoryKeyRegistry()


class TestMemoryRules(RuleStoreContract):
    @pytest.fixture
    def rules(self) -> Any:
        return MemoryRuleStore()


class TestSqlScopeKeys(ScopeKeyStoreContract):
    @pytest.fixture
    def store(self, database: Database) -> Any:
        return SqlScopeKeyStore(database)


class TestSqlRegistry(KeyRegistryContract):
    @pytest.fixture
    def registry(self, database: Database) -> Any:
        return SqlKeyRegistry(database)


class TestSqlRules(RuleStoreContract):
    @pytest.fixture
    def rules(self, database: Database) -> Any:
        return SqlRuleStore(database)
