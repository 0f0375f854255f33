"""In-memory implementations of the storage ports: the default for one process and for tests.

They hold no I/O and are thread-safe; the SQL storage adapter implements the same Protocols and
passes the same contract suite (:mod:`ownkey.testing`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

from ownkey._refs import KeyRef
from ownkey.errors import Conflict, NotFound
from ownkey.keys._records import MasterKey, ScopeIdentity, ScopeKeyRecord, Selector, Wrap
from ownkey.keys._revocation import RevocationRule

__all__ = ["MemoryKeyRegistry", "MemoryRuleStore", "MemoryScopeKeyStore"]


class MemoryScopeKeyStore:
    """Scope-key records in a dict, with an index of the current record per identity."""

    def __init__(self) -> None:
        self._records: dict[bytes, ScopeKeyRecord] = {}
        self._current: dict[ScopeIdentity, bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def _live_current(self, identity: ScopeIdentity) -> ScopeKeyRecord | None:
        key_id = self._current.get(identity)
        record = None if key_id is None else self._records[key_id]
        if record is None or not record.sealable or record.shredded:
            return None
        return record

    def _unindex(self, record: ScopeKeyRecord) -> None:
        identity = record.identity
        if self._current.get(identity) == record.key_id:
            del self._current[identity]

    def create(self, record: ScopeKeyRecord) -> ScopeKeyRecord:
        with self._lock:
            existing = self._live_current(record.identity)
            if existing is not None:
                return existing
            if record.key_id in self._records:
                raise ValueError("a scope key with this id already exists")
            self._records[record.key_id] = record
            if record.sealable and not record.shredded:
                self._current[record.identity] = record.key_id
            return record

    def get(self, key_id: bytes) -> ScopeKeyRecord | None:
        with self._lock:
            return self._records.get(key_id)

    def current(self, identity: ScopeIdentity) -> ScopeKeyRecord | None:
        with self._lock:
            return self._live_current(identity)

    def retire(self, key_id: bytes) -> None:
        with self._lock:
            record = self._records.get(key_id)
            if record is None:
                return
            self._unindex(record)
            self._records[key_id] = dataclasses.replace(record, sealable=False)

    def replace_wraps(
        self,
        key_id: bytes,
        expected: tuple[Wrap, ...],
        wraps: tuple[Wrap, ...],
        *,
        retire: bool = False,
    ) -> bool:
        with self._lock:
            record = self._records.get(key_id)
            if record is None or record.shredded or record.wraps != expected:
                return False
            self._unindex(record)
            updated = dataclasses.replace(
                record, wraps=wraps, sealable=record.sealable and not retire
            )
            self._records[key_id] = updated
            if updated.sealable and self._live_current(updated.identity) is None:
                self._current[updated.identity] = key_id
            return True

    def shred(self, key_id: bytes, at: float) -> ScopeKeyRecord | None:
        with self._lock:
            record = self._records.get(key_id)
            if record is None:
                return None
            if record.shredded:
                return record
            self._unindex(record)
            tombstone = dataclasses.replace(record, wraps=(), sealable=False, shredded_at=at)
            self._records[key_id] = tombstone
            return tombstone

    def scan(self, selector: Selector, *, include_shredded: bool = False) -> list[ScopeKeyRecord]:
        with self._lock:
            records = list(self._records.values())
        return [
            record
            for record in records
            if (include_shredded or not record.shredded)
            and selector.matches(record.identity, record.key_id)
        ]


class MemoryKeyRegistry:
    """Customer and platform key records in a dict."""

    def __init__(self) -> None:
        self._keys: dict[KeyRef, MasterKey] = {}
        self._versions: dict[KeyRef, list[str]] = {}
        self._lock = threading.Lock()
        self._changes = 0

    @property
    def version(self) -> int:
        """Changes with every ``put`` (see :class:`~ownkey.keys.Lease`)."""
        return self._changes

    def get(self, ref: KeyRef) -> MasterKey | None:
        return self._keys.get(ref)

    def put(self, key: MasterKey) -> None:
        with self._lock:
            for other in self._keys.values():
                if (other.provider, other.key_id) == (key.provider, key.key_id) and (
                    other.ref != key.ref
                ):
                    raise Conflict(
                        f"key {key.key_id} of {key.provider} is bound to another key reference"
                    )
            self._keys[key.ref] = key
            self._changes += 1
            seen = self._versions.setdefault(key.ref, [])
            if key.version not in seen:
                seen.append(key.version)

    def versions(self, ref: KeyRef) -> list[str]:
        with self._lock:
            return list(self._versions.get(ref, ()))

    def all(self) -> list[MasterKey]:
        with self._lock:
            return sorted(self._keys.values(), key=lambda key: key.ref.sort_key)


class MemoryRuleStore:
    """Revocation rules in a dict, indexed by the key they revoke."""

    def __init__(self) -> None:
        self._rules: dict[str, RevocationRule] = {}
        self._by_key: dict[KeyRef, tuple[RevocationRule, ...]] = {}
        self._lock = threading.Lock()
        self._changes = 0

    @property
    def version(self) -> int:
        """Changes with every ``add`` and ``remove`` (see :class:`~ownkey.keys.Lease`)."""
        return self._changes

    def _reindex(self) -> None:
        self._changes += 1
        by_key: dict[KeyRef, list[RevocationRule]] = {}
        for rule in self._rules.values():
            by_key.setdefault(rule.wrapping_key, []).append(rule)
        self._by_key = {key: tuple(rules) for key, rules in by_key.items()}

    def add(self, rule: RevocationRule) -> None:
        with self._lock:
            if rule.rule_id in self._rules:
                raise ValueError(f"revocation rule {rule.rule_id} already exists")
            self._rules[rule.rule_id] = rule
            self._reindex()

    def remove(self, rule_id: str) -> RevocationRule:
        with self._lock:
            try:
                rule = self._rules.pop(rule_id)
            except KeyError:
                raise NotFound(f"no revocation rule {rule_id}") from None
            self._reindex()
            return rule

    def all(self) -> list[RevocationRule]:
        with self._lock:
            return sorted(self._rules.values(), key=lambda rule: (rule.created_at, rule.rule_id))

    def for_key(self, ref: KeyRef) -> Sequence[RevocationRule]:
        return self._by_key.get(ref, ())
