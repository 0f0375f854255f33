"""SQL implementations of the key hierarchy's ports: scope keys, the key registry, rules.

They pass the same contract suite as the in-memory stores (:mod:`ownkey.testing.storage_contract`).
Every method is one short transaction; concurrency between nodes is settled by the database:
a unique index on the *current* identity makes :meth:`SqlScopeKeyStore.create` first-writer-wins,
and a version column makes :meth:`SqlScopeKeyStore.replace_wraps` a compare-and-set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from ownkey.envelope import encode_fields
from ownkey.errors import Conflict, NotFound
from ownkey.keys import KeyRef
from ownkey.keys._lifecycle import KeyState
from ownkey.keys._records import MasterKey, ScopeIdentity, ScopeKeyRecord, Selector, Wrap
from ownkey.keys._revocation import RevocationRule
from ownkey.storage._engine import Database
from ownkey.storage._schema import (
    key_versions,
    master_keys,
    revocation_rules,
    scope_key_wraps,
    scope_keys,
)

__all__ = ["SqlKeyRegistry", "SqlRuleStore", "SqlScopeKeyStore"]

_SCAN_BATCH = 500


def _escape(value: str) -> str:
    """``%`` and ``|`` written as ``%25`` and ``%7C``: a value can hold neither separator, so
    the stored list reads back as exactly the tuple written (issue 10, finding 6)."""
    return value.replace("%", "%25").replace("|", "%7C")


def _unescape(value: str) -> str:
    return value.replace("%7C", "|").replace("%25", "%")


def _bars(values: Sequence[str]) -> str:
    return "|" + "|".join(_escape(value) for value in values) + "|"


def _unbars(text: str) -> tuple[str, ...]:
    return tuple(_unescape(part) for part in text.split("|") if part)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def identity_digest(identity: ScopeIdentity) -> str:
    """A stable digest of an identity, for the unique *current* index: SHA-256 of the
    envelope's canonical tuple encoding, so two identities never share a digest."""
    encoded = encode_fields(
        b"ownkey/identity",
        encode_fields(*identity.orgs),
        identity.service_id,
        identity.scope,
        str(identity.epoch_start),
        str(identity.epoch_seconds),
        encode_fields(*(str(key) for key in identity.keys)),
    )
    return hashlib.sha256(encoded).hexdigest()


def _current_for(record: ScopeKeyRecord) -> str | None:
    if not record.sealable or record.shredded:
        return None
    return identity_digest(record.identity)


def _wrap_rows(key_id: bytes, wraps: Sequence[Wrap]) -> list[dict[str, Any]]:
    return [
        {
            "key_id": key_id,
            "position": position,
            "key_ref": str(wrap.key),
            "provider": wrap.provider,
            "provider_key_id": wrap.key_id,
            "version": wrap.version,
            "blob": wrap.blob,
        }
        for position, wrap in enumerate(wraps)
    ]


def _origin(record: ScopeKeyRecord) -> str | None:
    """The ``origin`` column: the keys a format-3 record was created with (NULL before)."""
    return _bars([str(key) for key in record.origin]) if record.origin else None


def _keys_of(wraps: Sequence[Wrap]) -> set[tuple[str, str]]:
    return {(wrap.provider, wrap.key_id) for wrap in wraps}


class SqlScopeKeyStore:
    """Scope-key records in ``scope_keys`` and their wrapped shares in ``scope_key_wraps``."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- reading -------------------------------------------------------------------------

    @staticmethod
    def _wraps(conn: Connection, key_ids: Sequence[bytes]) -> dict[bytes, list[Wrap]]:
        out: dict[bytes, list[Wrap]] = {key_id: [] for key_id in key_ids}
        if not key_ids:
            return out
        rows = conn.execute(
            select(scope_key_wraps)
            .where(scope_key_wraps.c.key_id.in_(list(key_ids)))
            .order_by(scope_key_wraps.c.key_id, scope_key_wraps.c.position)
        )
        for row in rows:
            out[bytes(row.key_id)].append(
                Wrap(
                    key=KeyRef.parse(row.key_ref),
                    provider=row.provider,
                    key_id=row.provider_key_id,
                    version=row.version,
                    blob=bytes(row.blob),
                )
            )
        return out

    @staticmethod
    def _record(row: Row[Any], wraps: Sequence[Wrap]) -> ScopeKeyRecord:
        return ScopeKeyRecord(
            key_id=bytes(row.key_id),
            orgs=_unbars(row.orgs),
            service_id=row.service_id,
            scope=row.scope,
            epoch_start=int(row.epoch_start),
            epoch_seconds=int(row.epoch_seconds),
            wraps=tuple(wraps),
            created_at=float(row.created_at),
            sealable=bool(row.sealable),
            shredded_at=None if row.shredded_at is None else float(row.shredded_at),
            format=int(row.format),
            origin=tuple(KeyRef.parse(ref) for ref in _unbars(row.origin or "")),
        )

    def _load(self, conn: Connection, where: Any) -> list[ScopeKeyRecord]:
        rows = list(conn.execute(select(scope_keys).where(where)))
        wraps = self._wraps(conn, [bytes(row.key_id) for row in rows])
        return [self._record(row, wraps[bytes(row.key_id)]) for row in rows]

    def get(self, key_id: bytes) -> ScopeKeyRecord | None:
        with self._db.engine.connect() as conn:
            found = self._load(conn, scope_keys.c.key_id == key_id)
        return found[0] if found else None

    def current(self, identity: ScopeIdentity) -> ScopeKeyRecord | None:
        with self._db.engine.connect() as conn:
            found = self._load(conn, scope_keys.c.current_for == identity_digest(identity))
        return found[0] if found else None

    def scan(
        self, selector: Selector, *, include_shredded: bool = False
    ) -> Iterator[ScopeKeyRecord]:
        """Matching records, read in batches by key id (so writes while iterating are safe)."""
        clauses: list[Any] = []
        if not include_shredded:
            clauses.append(scope_keys.c.shredded_at.is_(None))
        if selector.service_id is not None:
            clauses.append(scope_keys.c.service_id == selector.service_id)
        if selector.scope is not None:
            clauses.append(scope_keys.c.scope == selector.scope)
        if selector.key_id is not None:
            clauses.append(scope_keys.c.key_id == selector.key_id)
        if selector.org is not None:
            pattern = f"%|{_like_escape(_escape(selector.org))}|%"
            clauses.append(scope_keys.c.orgs.like(pattern, escape="\\"))
        if selector.key is not None:
            pattern = f"%|{_like_escape(_escape(str(selector.key)))}|%"
            clauses.append(scope_keys.c["keys"].like(pattern, escape="\\"))
        if selector.until is not None:
            clauses.append(scope_keys.c.epoch_start < selector.until)
        if selector.since is not None:
            clauses.append(scope_keys.c.epoch_start + scope_keys.c.epoch_seconds > selector.since)
        after: bytes | None = None
        while True:
            where = and_(*clauses) if clauses else and_(True)
            if after is not None:
                where = and_(where, scope_keys.c.key_id > after)
            with self._db.engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(scope_keys)
                        .where(where)
                        .order_by(scope_keys.c.key_id)
                        .limit(_SCAN_BATCH)
                    )
                )
                wraps = self._wraps(conn, [bytes(row.key_id) for row in rows])
            for row in rows:
                record = self._record(row, wraps[bytes(row.key_id)])
                if selector.matches(record.identity, record.key_id):
                    yield record
            if len(rows) < _SCAN_BATCH:
                return
            after = bytes(rows[-1].key_id)

    # -- writing -------------------------------------------------------------------------

    def create(self, record: ScopeKeyRecord) -> ScopeKeyRecord:
        digest = _current_for(record)
        try:
            with self._db.engine.begin() as conn:
                if digest is not None:
                    existing = self._load(conn, scope_keys.c.current_for == digest)
                    if existing:
                        return existing[0]
                if conn.execute(
                    select(scope_keys.c.key_id).where(scope_keys.c.key_id == record.key_id)
                ).first():
                    raise ValueError("a scope key with this id already exists")
                conn.execute(
                    insert(scope_keys).values(
                        key_id=record.key_id,
                        orgs=_bars(record.orgs),
                        service_id=record.service_id,
                        scope=record.scope,
                        epoch_start=record.epoch_start,
                        epoch_seconds=record.epoch_seconds,
                        keys=_bars([str(key) for key in record.keys]),
                        created_at=record.created_at,
                        sealable=record.sealable,
                        shredded_at=record.shredded_at,
                        current_for=digest,
                        wraps_version=0,
                        format=record.format,
                        origin=_origin(record),
                    )
                )
                if record.wraps:
                    conn.execute(insert(scope_key_wraps), _wrap_rows(record.key_id, record.wraps))
                return record
        except IntegrityError:
            # Another node created the current record for this identity first: it wins.
            if digest is not None:
                current = self.current(record.identity)
                if current is not None:
                    return current
            raise

    def create_many(self, records: Sequence[ScopeKeyRecord]) -> None:
        """Insert new records in one transaction (imports, tests); ids and current identities
        must be new, or the whole batch is refused."""
        with self._db.engine.begin() as conn:
            conn.execute(
                insert(scope_keys),
                [
                    {
                        "key_id": r.key_id,
                        "orgs": _bars(r.orgs),
                        "service_id": r.service_id,
                        "scope": r.scope,
                        "epoch_start": r.epoch_start,
                        "epoch_seconds": r.epoch_seconds,
                        "keys": _bars([str(key) for key in r.keys]),
                        "created_at": r.created_at,
                        "sealable": r.sealable,
                        "shredded_at": r.shredded_at,
                        "current_for": _current_for(r),
                        "wraps_version": 0,
                        "format": r.format,
                        "origin": _origin(r),
                    }
                    for r in records
                ],
            )
            wraps = [row for r in records for row in _wrap_rows(r.key_id, r.wraps)]
            if wraps:
                conn.execute(insert(scope_key_wraps), wraps)

    def retire(self, key_id: bytes) -> None:
        with self._db.engine.begin() as conn:
            conn.execute(
                update(scope_keys)
                .where(scope_keys.c.key_id == key_id)
                .values(sealable=False, current_for=None)
            )

    def replace_wraps(
        self,
        key_id: bytes,
        expected: tuple[Wrap, ...],
        wraps: tuple[Wrap, ...],
        *,
        retire: bool = False,
    ) -> bool:
        with self._db.engine.begin() as conn:
            rows = list(conn.execute(select(scope_keys).where(scope_keys.c.key_id == key_id)))
            if not rows or rows[0].shredded_at is not None:
                return False
            row = rows[0]
            current = self._record(row, self._wraps(conn, [key_id])[key_id])
            if current.wraps != expected:
                return False
            updated = ScopeKeyRecord(
                key_id=current.key_id,
                orgs=current.orgs,
                service_id=current.service_id,
                scope=current.scope,
                epoch_start=current.epoch_start,
                epoch_seconds=current.epoch_seconds,
                wraps=wraps,
                created_at=current.created_at,
                sealable=current.sealable and not retire,
                format=current.format,
                origin=current.origin,
            )
            digest = _current_for(updated)
            if (
                digest is not None
                and conn.execute(
                    select(scope_keys.c.key_id).where(
                        scope_keys.c.current_for == digest, scope_keys.c.key_id != key_id
                    )
                ).first()
            ):
                digest = None  # another record already serves the new identity
            changed = conn.execute(
                update(scope_keys)
                .where(
                    scope_keys.c.key_id == key_id,
                    scope_keys.c.wraps_version == row.wraps_version,
                )
                .values(
                    keys=_bars([str(key) for key in updated.keys]),
                    sealable=updated.sealable,
                    current_for=digest,
                    wraps_version=row.wraps_version + 1,
                )
            ).rowcount
            if changed != 1:
                return False
            conn.execute(delete(scope_key_wraps).where(scope_key_wraps.c.key_id == key_id))
            if wraps:
                conn.execute(insert(scope_key_wraps), _wrap_rows(key_id, wraps))
        if _keys_of(expected) - _keys_of(wraps):
            # A share left a key (a backfill): its old wrap must not stay readable in the WAL,
            # or whoever holds that key recovers the share without the key it moved to.
            self._db.purge_deleted()
        return True

    def shred(self, key_id: bytes, at: float) -> ScopeKeyRecord | None:
        with self._db.engine.begin() as conn:
            found = self._load(conn, scope_keys.c.key_id == key_id)
            if not found:
                return None
            record = found[0]
            if not record.shredded:
                conn.execute(delete(scope_key_wraps).where(scope_key_wraps.c.key_id == key_id))
                conn.execute(
                    update(scope_keys)
                    .where(scope_keys.c.key_id == key_id)
                    .values(sealable=False, shredded_at=at, current_for=None)
                )
        # Also for a record shredded before: a shred whose WAL truncation failed finishes here.
        self._db.purge_deleted()
        if record.shredded:
            return record
        return ScopeKeyRecord(
            key_id=record.key_id,
            orgs=record.orgs,
            service_id=record.service_id,
            scope=record.scope,
            epoch_start=record.epoch_start,
            epoch_seconds=record.epoch_seconds,
            wraps=(),
            created_at=record.created_at,
            sealable=False,
            shredded_at=at,
            format=record.format,
            origin=record.origin,
        )

    def count(self) -> int:
        """How many records (shredded included) the store holds."""
        from sqlalchemy import func

        with self._db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(scope_keys)).scalar_one())


class SqlKeyRegistry:
    """Customer and platform key records in ``master_keys``; versions seen in ``key_versions``."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @staticmethod
    def _key(row: Row[Any]) -> MasterKey:
        return MasterKey(
            ref=KeyRef.parse(row.ref),
            provider=row.provider,
            key_id=row.key_id,
            version=row.version,
            state=KeyState(row.state),
            created_at=float(row.created_at),
            changed_at=float(row.changed_at),
            destroy_at=None if row.destroy_at is None else float(row.destroy_at),
        )

    def get(self, ref: KeyRef) -> MasterKey | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(select(master_keys).where(master_keys.c.ref == str(ref))).first()
        return None if row is None else self._key(row)

    def put(self, key: MasterKey) -> None:
        values = {
            "provider": key.provider,
            "key_id": key.key_id,
            "version": key.version,
            "state": key.state.value,
            "created_at": key.created_at,
            "changed_at": key.changed_at,
            "destroy_at": key.destroy_at,
        }
        ref = str(key.ref)
        try:
            self._put(ref, key, values)
        except IntegrityError:
            raise Conflict(
                f"key {key.key_id} of {key.provider} is bound to another key reference"
            ) from None

    def _put(self, ref: str, key: MasterKey, values: dict[str, Any]) -> None:
        with self._db.engine.begin() as conn:
            changed = conn.execute(
                update(master_keys).where(master_keys.c.ref == ref).values(**values)
            ).rowcount
            if changed == 0:
                conn.execute(insert(master_keys).values(ref=ref, **values))
            seen = conn.execute(
                select(key_versions.c.version).where(
                    key_versions.c.ref == ref, key_versions.c.version == key.version
                )
            ).first()
            if seen is None:
                conn.execute(
                    insert(key_versions).values(
                        ref=ref, version=key.version, first_seen=key.changed_at
                    )
                )

    def all(self) -> list[MasterKey]:
        with self._db.engine.connect() as conn:
            keys = [self._key(row) for row in conn.execute(select(master_keys))]
        return sorted(keys, key=lambda key: key.ref.sort_key)

    def versions(self, ref: KeyRef) -> list[str]:
        """Every primary version ownkey has recorded for ``ref``, oldest first."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(key_versions.c.version)
                .where(key_versions.c.ref == str(ref))
                .order_by(key_versions.c.first_seen, key_versions.c.version)
            )
            return [row.version for row in rows]


class SqlRuleStore:
    """Revocation rules in ``revocation_rules``."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @staticmethod
    def _rule(row: Row[Any]) -> RevocationRule:
        return RevocationRule.from_record(dict(row._mapping))

    def add(self, rule: RevocationRule) -> None:
        try:
            with self._db.engine.begin() as conn:
                conn.execute(insert(revocation_rules).values(**rule.to_record()))
        except IntegrityError:
            raise ValueError(f"revocation rule {rule.rule_id} already exists") from None

    def remove(self, rule_id: str) -> RevocationRule:
        with self._db.engine.begin() as conn:
            row = conn.execute(
                select(revocation_rules).where(revocation_rules.c.rule_id == rule_id)
            ).first()
            if row is None:
                raise NotFound(f"no revocation rule {rule_id}")
            conn.execute(delete(revocation_rules).where(revocation_rules.c.rule_id == rule_id))
        return self._rule(row)

    def all(self) -> list[RevocationRule]:
        with self._db.engine.connect() as conn:
            rules = [self._rule(row) for row in conn.execute(select(revocation_rules))]
        return sorted(rules, key=lambda rule: (rule.created_at, rule.rule_id))

    def for_key(self, ref: KeyRef) -> list[RevocationRule]:
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(revocation_rules)
                .where(revocation_rules.c.key_ref == str(ref))
                .order_by(revocation_rules.c.created_at, revocation_rules.c.rule_id)
            )
            return [self._rule(row) for row in rows]
