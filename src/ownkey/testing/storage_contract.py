"""The storage contract suite: every ScopeKeyStore, KeyRegistry and RuleStore passes it.

Subclass the ``*Contract`` classes in a test module and provide the ``store`` / ``registry`` /
``rules`` fixture; pytest collects the inherited tests::

    class TestSqlScopeKeys(ScopeKeyStoreContract):
        @pytest.fixture
        def store(self, database): return SqlScopeKeyStore(database)

The in-memory stores (``ownkey.keys._memory``) and the SQL stores (``ownkey.storage``) on SQLite
and PostgreSQL all run it (tests/storage/test_contract.py).
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest

from ownkey.errors import Conflict, NotFound
from ownkey.keys import KeyRef
from ownkey.keys._lifecycle import KeyState
from ownkey.keys._records import MasterKey, ScopeIdentity, ScopeKeyRecord, Selector, Wrap
from ownkey.keys._revocation import RevocationRule

__all__ = [
    "KeyRegistryContract",
    "RuleStoreContract",
    "ScopeKeyStoreContract",
    "make_record",
    "make_wrap",
]

ACME = KeyRef.customer("acme")
GLOBEX = KeyRef.customer("globex")
PLATFORM = KeyRef.platform()


def make_wrap(key: KeyRef, version: str = "v1", blob: bytes | None = None) -> Wrap:
    """A wrap whose blob is random unless given."""
    return Wrap(key, "local", f"id-{key}", version, os.urandom(48) if blob is None else blob)


def make_record(
    *,
    orgs: tuple[str, ...] = ("acme",),
    service_id: str = "0008",
    scope: str = "chat:1",
    epoch_start: int = 1_700_000_000,
    epoch_seconds: int = 3600,
    keys: tuple[KeyRef, ...] = (ACME,),
    sealable: bool = True,
    key_id: bytes | None = None,
) -> ScopeKeyRecord:
    """A scope-key record with one random wrap per key."""
    return ScopeKeyRecord(
        key_id=key_id or os.urandom(16),
        orgs=orgs,
        service_id=service_id,
        scope=scope,
        epoch_start=epoch_start,
        epoch_seconds=epoch_seconds,
        wraps=tuple(make_wrap(key) for key in keys),
        created_at=1_700_000_000.25,
        sealable=sealable,
    )


class ScopeKeyStoreContract:
    """What every ScopeKeyStore does (the ``store`` fixture is provided by the subclass)."""

    @pytest.fixture
    def store(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_create_then_get_round_trips(self, store: Any) -> None:
        record = make_record(keys=(ACME, PLATFORM), orgs=("acme", "globex"))
        assert store.create(record) == record
        assert store.get(record.key_id) == record
        assert store.get(os.urandom(16)) is None

    def test_first_writer_wins(self, store: Any) -> None:
        first = make_record()
        second = make_record()
        assert store.create(first) == first
        assert store.create(second) == first
        assert store.get(second.key_id) is None
        assert store.current(first.identity) == first

    def test_duplicate_id_refused(self, store: Any) -> None:
        record = make_record(sealable=False)
        store.create(record)
        with pytest.raises(ValueError, match="already exists"):
            store.create(make_record(key_id=record.key_id, scope="other"))

    def test_retire_keeps_record_but_not_current(self, store: Any) -> None:
        record = make_record()
        store.create(record)
        store.retire(record.key_id)
        assert store.current(record.identity) is None
        got = store.get(record.key_id)
        assert got is not None
        assert not got.sealable
        assert got.wraps == record.wraps
        fresh = make_record()
        assert store.create(fresh) == fresh
        store.retire(os.urandom(16))  # unknown: no error

    def test_replace_wraps_is_compare_and_set(self, store: Any) -> None:
        record = make_record(keys=(ACME, PLATFORM))
        store.create(record)
        new = (make_wrap(ACME, "v2"), make_wrap(PLATFORM, "v2"))
        assert store.replace_wraps(record.key_id, record.wraps, new)
        assert not store.replace_wraps(record.key_id, record.wraps, new)
        got = store.get(record.key_id)
        assert got is not None
        assert got.wraps == new
        assert store.current(record.identity) == got
        assert not store.replace_wraps(os.urandom(16), (), new)

    def test_replace_wraps_changes_keys(self, store: Any) -> None:
        record = make_record(keys=(PLATFORM,))
        store.create(record)
        new = (make_wrap(ACME),)
        assert store.replace_wraps(record.key_id, record.wraps, new)
        got = store.get(record.key_id)
        assert got is not None
        assert got.keys == (ACME,)
        assert store.current(got.identity) == got
        assert store.current(record.identity) is None
        assert [r.key_id for r in store.scan(Selector(key=ACME))] == [record.key_id]
        assert list(store.scan(Selector(key=PLATFORM))) == []

    def test_shred_leaves_tombstone(self, store: Any) -> None:
        record = make_record()
        store.create(record)
        tombstone = store.shred(record.key_id, 1_700_000_500.5)
        assert tombstone is not None
        assert tombstone.shredded
        assert tombstone.wraps == ()
        assert tombstone.shredded_at == 1_700_000_500.5
        assert store.get(record.key_id) == tombstone
        assert store.current(record.identity) is None
        assert store.shred(record.key_id, 1_700_000_999.0) == tombstone
        assert not store.replace_wraps(record.key_id, (), (make_wrap(ACME),))
        assert store.shred(os.urandom(16), 0.0) is None

    def test_scan_selects(self, store: Any) -> None:
        a = make_record(scope="chat:a", epoch_start=0)
        b = make_record(scope="chat:b", epoch_start=3600, service_id="0001")
        c = make_record(scope="chat:c", epoch_start=7200, orgs=("globex",), keys=(GLOBEX,))
        d = make_record(
            scope="chat:d%_", epoch_start=7200, orgs=("acme", "globex"), keys=(ACME, GLOBEX)
        )
        for record in (a, b, c, d):
            store.create(record)
        store.shred(c.key_id, 1.0)

        def ids(selector: Selector, **kwargs: Any) -> set[bytes]:
            return {record.key_id for record in store.scan(selector, **kwargs)}

        assert ids(Selector()) == {a.key_id, b.key_id, d.key_id}
        assert ids(Selector(), include_shredded=True) == {a.key_id, b.key_id, c.key_id, d.key_id}
        assert ids(Selector(org="globex")) == {d.key_id}
        assert ids(Selector(key=ACME)) == {a.key_id, b.key_id, d.key_id}
        assert ids(Selector(service_id="0001")) == {b.key_id}
        assert ids(Selector(scope="chat:d%_")) == {d.key_id}
        assert ids(Selector(since=3600, until=7200)) == {b.key_id}
        assert ids(Selector(since=3599)) == {a.key_id, b.key_id, d.key_id}
        assert ids(Selector(until=3600)) == {a.key_id}
        assert ids(Selector(key_id=b.key_id)) == {b.key_id}
        assert ids(Selector(org="acm")) == set()

    def test_scan_tolerates_writes(self, store: Any) -> None:
        records = [make_record(scope=f"s{i}") for i in range(30)]
        for record in records:
            store.create(record)
        seen = 0
        for record in store.scan(Selector(org="acme")):
            store.replace_wraps(record.key_id, record.wraps, (make_wrap(ACME, "v2"),))
            seen += 1
        assert seen == 30
        assert all(r.wraps[0].version == "v2" for r in store.scan(Selector(org="acme")))


class KeyRegistryContract:
    """What every KeyRegistry does (the ``registry`` fixture is provided by the subclass)."""

    @pytest.fixture
    def registry(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_put_get_replace_all(self, registry: Any) -> None:
        assert registry.get(ACME) is None
        acme = MasterKey(ACME, "local", "k1", "v1", KeyState.ENABLED, 1.5, 1.5)
        platform = MasterKey(PLATFORM, "local", "p1", "v1", KeyState.ENABLED, 1.0, 1.0)
        registry.put(platform)
        registry.put(acme)
        assert registry.get(ACME) == acme
        assert list(registry.all()) == [acme, platform]
        pending = MasterKey(
            ACME, "local", "k1", "v2", KeyState.PENDING_DESTRUCTION, 1.5, 9.25, destroy_at=99.5
        )
        registry.put(pending)
        assert registry.get(ACME) == pending
        assert len(registry.all()) == 2

    def test_a_key_binds_to_one_reference(self, registry: Any) -> None:
        """KL-14: the platform key's id cannot be bound to an org's reference as well."""
        registry.put(MasterKey(PLATFORM, "local", "p1", "v1", KeyState.ENABLED, 1.0, 1.0))
        with pytest.raises(Conflict):
            registry.put(MasterKey(ACME, "local", "p1", "v1", KeyState.ENABLED, 2.0, 2.0))
        assert registry.get(ACME) is None
        registry.put(MasterKey(ACME, "other", "p1", "v1", KeyState.ENABLED, 2.0, 2.0))


def _by_id(rule: RevocationRule) -> str:
    return rule.rule_id


class RuleStoreContract:
    """What every RuleStore does (the ``rules`` fixture is provided by the subclass)."""

    @pytest.fixture
    def rules(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_add_list_for_key_remove(self, rules: Any) -> None:
        whole = RevocationRule(org="acme", rule_id="r1", created_at=1.0)
        narrow = RevocationRule(
            org="acme",
            service_id="0008",
            scope="chat:1",
            since=10.5,
            until=20.25,
            rule_id="r2",
            created_at=2.0,
            actor="ann@acme.test",
            note="incident",
        )
        platform = RevocationRule(org="acme", key=PLATFORM, rule_id="r3", created_at=3.0)
        for rule in (narrow, whole, platform):
            rules.add(rule)
        assert list(rules.all()) == [whole, narrow, platform]
        assert sorted(rules.for_key(ACME), key=_by_id) == [whole, narrow]
        assert list(rules.for_key(PLATFORM)) == [platform]
        assert list(rules.for_key(GLOBEX)) == []
        with pytest.raises(ValueError, match="already exists"):
            rules.add(whole)
        assert rules.remove("r1") == whole
        with pytest.raises(NotFound):
            rules.remove("r1")
        assert list(rules.for_key(ACME)) == [narrow]

    def test_a_rule_with_an_unreadable_time_reads_back_failing_closed(self, rules: Any) -> None:
        """RV-7: times stored by an older version (before they were checked) read back as
        stored and unreadable; whatever the database made of them, the rule still denies its
        whole scope (SQLite keeps no NaN: it reads back as no time, which denies all too)."""
        stored: dict[str, tuple[float | None, float | None]] = {  # (since, until)
            "r-inf": (math.inf, None),
            "r-minf": (None, -math.inf),
            "r-nan": (math.nan, None),
            "r-ms": (1_796_149_629_000.0, None),
            "r-empty": (20.0, 10.0),
        }
        for rule_id, (since, until) in stored.items():
            rules.add(
                RevocationRule(org="acme", scope="s", since=since, until=until, rule_id=rule_id)
            )
        found = {rule.rule_id: rule for rule in rules.for_key(ACME)}
        assert set(found) == set(stored)
        anytime = ScopeIdentity(("acme",), "0008", "s", 1_700_000_000, 3600, (ACME,))
        for rule_id, rule in found.items():
            assert rule.matches(anytime), rule_id
            if rule_id == "r-nan":
                assert rule.since is None or not rule.valid
            else:
                assert not rule.valid, rule_id
                assert (rule.since, rule.until) == stored[rule_id], rule_id
