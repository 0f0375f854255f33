"""A Protector on SQL stores plus the asset store and the job runner: one "node" of a test.

Nodes built on the same database URL and home share everything that is shared in production
(scope keys, key registry, rules, audit chain, blobs, the local key store file) and nothing else
(each has its own cache), so a test can run several of them as threads, or as processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ownkey.keys import KeyProvider
from ownkey.providers import LocalKeyStoreProvider
from ownkey.service import Protector, ProtectorSettings, build_protector
from ownkey.service._assets import AssetService
from ownkey.service._caching import CachedKeyRegistry, CachedRuleStore
from ownkey.service._jobs import JobRunner
from ownkey.storage import (
    AssetStore,
    AuditSigningKey,
    Database,
    DirectoryBlobStore,
    JobStore,
    SqlAuditSink,
    SqlKeyRegistry,
    SqlRuleStore,
    SqlScopeKeyStore,
)

ROOT_KEY = "11" * 32
SIGNING_SEED = bytes(range(32))
SETTINGS = ProtectorSettings(
    auto_create_keys=True,
    segment_size=4096,
    destruction_waiting_period=0.0,
    min_destruction_waiting_period=0.0,
)


@dataclass
class Node:
    database: Database
    protector: Protector
    store: AssetStore
    assets: AssetService
    runner: JobRunner
    jobs: JobStore
    scope_keys: SqlScopeKeyStore

    @property
    def admin(self) -> Any:
        return self.protector.admin

    def close(self) -> None:
        self.database.close()


def local_provider(home: Path) -> KeyProvider:
    """The embedded key store under ``home``: the same keys in every process of a test."""
    return LocalKeyStoreProvider(env={"OWNKEY_HOME": str(home), "OWNKEY_ROOT_KEY": ROOT_KEY})


def make_node(
    url: str,
    home: Path,
    *,
    provider: KeyProvider | None = None,
    settings: ProtectorSettings = SETTINGS,
    clock: Callable[[], float] | None = None,
    migrate: bool = True,
) -> Node:
    database = Database.open(url, migrate=migrate)
    scope_keys = SqlScopeKeyStore(database)
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    protector = build_protector(
        settings,
        providers={"local": provider or local_provider(home)},
        scope_keys=scope_keys,
        # As the Runtime does: key states and rules read from memory, re-read after 1 s.
        registry=CachedKeyRegistry(SqlKeyRegistry(database), max_age=1.0, clock=time.monotonic),
        rules=CachedRuleStore(SqlRuleStore(database), max_age=1.0, clock=time.monotonic),
        audit=SqlAuditSink(database, AuditSigningKey.from_seed(SIGNING_SEED)),
        random=os.urandom,
        **extra,
    )
    store = AssetStore(database, DirectoryBlobStore(home / "objects"), inline_limit=2048)
    assets = AssetService(protector, store, small_limit=1024)
    jobs = JobStore(database)
    runner = JobRunner(protector, jobs, assets, **extra)
    return Node(database, protector, store, assets, runner, jobs, scope_keys)
