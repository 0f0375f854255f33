"""The org directory in SQL: organisations, their CMK settings, users and licences; providers.

Rows of ``orgs`` carry the policy's per-org settings (``cmk``, enabled services, the large-org,
compliance-archival, advanced-chat-encryption and hybrid flags) and a ``revision`` that every
change to the org *or its users* increments in the same transaction. A process that caches the
directory re-reads ``SELECT name, revision FROM orgs`` (one small query) to learn what changed,
and reloads only those orgs. ``users`` holds every user ownkey was told about, with the CMK licence
flag. ``providers`` holds the non-secret settings of key managers registered through ownkey: one
row per key reference that uses one (``aws_kms/customer:acme``), plus any template the operator
configured for org admins to register keys from (migration 0010).

This module is storage only: names and values are validated by the service layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from ownkey.errors import Conflict, InvalidRequest, NotFound
from ownkey.policy import ORG_FLAGS, canonical_email
from ownkey.storage._engine import Database
from ownkey.storage._schema import assets, orgs, providers, scope_keys, users

__all__ = ["ORG_FLAGS", "OrgRow", "ProviderRow", "SqlOrgDirectory", "UserRow"]


def _now_ms() -> int:
    return round(time.time() * 1000)


def _bars(values: Iterable[str]) -> str:
    items = sorted(set(values))
    return "|" + "|".join(items) + "|" if items else ""


def _unbars(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split("|") if part)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class OrgRow:
    """One ``orgs`` row."""

    name: str
    cmk: bool
    services: tuple[str, ...]
    flags: Mapping[str, bool]
    revision: int
    created_at_ms: int
    changed_at_ms: int


@dataclass(frozen=True, slots=True)
class UserRow:
    """One ``users`` row."""

    org: str
    email: str
    licensed: bool


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """One ``providers`` row: a key manager's kind and non-secret settings."""

    name: str
    kind: str
    settings: Mapping[str, str]
    changed_at_ms: int


def _org(row: Row[Any]) -> OrgRow:
    return OrgRow(
        name=row.name,
        cmk=bool(row.cmk),
        services=_unbars(row.services),
        flags={flag: bool(getattr(row, flag)) for flag in ORG_FLAGS},
        revision=int(row.revision),
        created_at_ms=int(row.created_at_ms),
        changed_at_ms=int(row.changed_at_ms),
    )


def _canonical_or_none(email: str) -> str | None:
    try:
        return canonical_email("email", email)
    except InvalidRequest:
        return None


class SqlOrgDirectory:
    """Reads and writes ``orgs``, ``users`` and ``providers``; counts for coverage."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- orgs ------------------------------------------------------------------------------------

    def create_org(
        self,
        name: str,
        *,
        cmk: bool = False,
        services: Collection[str] = (),
        flags: Mapping[str, bool] | None = None,
    ) -> OrgRow:
        """Insert an org; Conflict if the name is taken."""
        now = _now_ms()
        values: dict[str, Any] = {flag: False for flag in ORG_FLAGS}
        values.update(flags or {})
        try:
            with self._db.engine.begin() as conn:
                conn.execute(
                    insert(orgs).values(
                        name=name,
                        cmk=cmk,
                        services=_bars(services),
                        revision=1,
                        created_at_ms=now,
                        changed_at_ms=now,
                        **values,
                    )
                )
        except IntegrityError:
            raise Conflict(f"org {name!r} already exists") from None
        found = self.get_org(name)
        assert found is not None
        return found

    def get_org(self, name: str) -> OrgRow | None:
        with self._db.engine.connect() as conn:
            row = conn.execute(select(orgs).where(orgs.c.name == name)).first()
        return None if row is None else _org(row)

    def list_orgs(self) -> list[OrgRow]:
        with self._db.engine.connect() as conn:
            return [_org(row) for row in conn.execute(select(orgs).order_by(orgs.c.name))]

    def revisions(self) -> dict[str, int]:
        """Every org's revision: what a cache compares to learn what changed."""
        with self._db.engine.connect() as conn:
            return {
                row.name: int(row.revision)
                for row in conn.execute(select(orgs.c.name, orgs.c.revision))
            }

    @staticmethod
    def _bump(conn: Connection, name: str, **values: Any) -> None:
        changed = conn.execute(
            update(orgs)
            .where(orgs.c.name == name)
            .values(revision=orgs.c.revision + 1, changed_at_ms=_now_ms(), **values)
        ).rowcount
        if changed == 0:
            raise NotFound(f"no org {name!r}")

    def update_org(
        self,
        name: str,
        *,
        cmk: bool | None = None,
        services: Collection[str] | None = None,
        flags: Mapping[str, bool] | None = None,
    ) -> OrgRow:
        """Change settings (only those given); the revision goes up by one."""
        values: dict[str, Any] = dict(flags or {})
        if cmk is not None:
            values["cmk"] = cmk
        if services is not None:
            values["services"] = _bars(services)
        with self._db.engine.begin() as conn:
            self._bump(conn, name, **values)
        found = self.get_org(name)
        assert found is not None
        return found

    # -- users -----------------------------------------------------------------------------------

    def put_users(self, org: str, emails: Collection[str], *, licensed: bool | None) -> int:
        """Add users (``licensed`` False for new ones when None) or set their licence; return how
        many rows changed. NotFound if the org does not exist."""
        changed = 0
        with self._db.engine.begin() as conn:
            self._bump(conn, org)
            existing = {
                row.email: bool(row.licensed)
                for row in conn.execute(
                    select(users.c.email, users.c.licensed).where(
                        users.c.org == org, users.c.email.in_(list(emails))
                    )
                )
            }
            new = [
                {"org": org, "email": email, "licensed": bool(licensed)}
                for email in dict.fromkeys(emails)
                if email not in existing
            ]
            if new:
                conn.execute(insert(users), new)
                changed += len(new)
            if licensed is not None:
                flip = [e for e, was in existing.items() if was != licensed]
                if flip:
                    conn.execute(
                        update(users)
                        .where(users.c.org == org, users.c.email.in_(flip))
                        .values(licensed=licensed)
                    )
                    changed += len(flip)
        return changed

    def remove_users(self, org: str, emails: Collection[str]) -> int:
        """Delete users; return how many existed."""
        with self._db.engine.begin() as conn:
            self._bump(conn, org)
            return int(
                conn.execute(
                    delete(users).where(users.c.org == org, users.c.email.in_(list(emails)))
                ).rowcount
            )

    def users(self, org: str, *, licensed: bool | None = None) -> list[UserRow]:
        query = select(users).where(users.c.org == org)
        if licensed is not None:
            query = query.where(users.c.licensed == licensed)
        with self._db.engine.connect() as conn:
            return [
                UserRow(row.org, row.email, bool(row.licensed))
                for row in conn.execute(query.order_by(users.c.email))
            ]

    def orgs_of_user(self, email: str) -> list[str]:
        """The orgs that list ``email``, compared in the one canonical form of
        ``ownkey.policy.canonical_email`` (identity providers and the directory need not agree
        on case), sorted; an ``email`` with no canonical form is no one's. SQL's ``lower()``
        only narrows the scan: PostgreSQL's folds Unicode (a row ``\u212aim@...`` written
        before the rule would be kim), so each row found is compared canonically here, and a
        stored spelling with no canonical form matches no one. Not indexed: a scan of
        ``users``."""
        try:
            wanted = canonical_email("email", email)
        except InvalidRequest:
            return []
        query = select(users.c.org, users.c.email).where(func.lower(users.c.email) == wanted)
        with self._db.engine.connect() as conn:
            rows = list(conn.execute(query))
        return sorted({row.org for row in rows if _canonical_or_none(row.email) == wanted})

    def licensed_users(self, org: str) -> frozenset[str]:
        with self._db.engine.connect() as conn:
            return frozenset(
                row.email
                for row in conn.execute(
                    select(users.c.email).where(users.c.org == org, users.c.licensed.is_(True))
                )
            )

    def user_counts(self, org: str) -> tuple[int, int]:
        """(users, licensed users) of an org."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(users.c.licensed, func.count())
                .where(users.c.org == org)
                .group_by(users.c.licensed)
            )
            counts = {bool(row[0]): int(row[1]) for row in rows}
        return counts.get(True, 0) + counts.get(False, 0), counts.get(True, 0)

    # -- coverage --------------------------------------------------------------------------------

    def scope_key_counts(self, org: str) -> list[tuple[str, tuple[str, ...], int]]:
        """(service ID, keys, count) of the org's unshredded scope keys, one row per key set."""
        pattern = f"%|{_like_escape(org)}|%"
        query = (
            select(scope_keys.c.service_id, scope_keys.c["keys"], func.count())
            .where(
                and_(
                    scope_keys.c.orgs.like(pattern, escape="\\"),
                    scope_keys.c.shredded_at.is_(None),
                )
            )
            .group_by(scope_keys.c.service_id, scope_keys.c["keys"])
        )
        with self._db.engine.connect() as conn:
            return [(row[0], _unbars(row[1]), int(row[2])) for row in conn.execute(query)]

    def shredded_counts(self, org: str) -> dict[str, int]:
        """Crypto-shredded scope keys of the org, by service ID."""
        pattern = f"%|{_like_escape(org)}|%"
        query = (
            select(scope_keys.c.service_id, func.count())
            .where(
                and_(
                    scope_keys.c.orgs.like(pattern, escape="\\"),
                    scope_keys.c.shredded_at.is_not(None),
                )
            )
            .group_by(scope_keys.c.service_id)
        )
        with self._db.engine.connect() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def asset_counts(self, org: str) -> dict[str, tuple[int, int]]:
        """(assets, plaintext bytes) recorded in ``assets`` for the org, by service ID."""
        query = (
            select(assets.c.service_id, func.count(), func.coalesce(func.sum(assets.c.size), 0))
            .where(assets.c.org == org)
            .group_by(assets.c.service_id)
        )
        with self._db.engine.connect() as conn:
            return {row[0]: (int(row[1]), int(row[2])) for row in conn.execute(query)}

    # -- providers -------------------------------------------------------------------------------

    def put_provider(self, name: str, kind: str, settings: Mapping[str, str]) -> ProviderRow:
        """Insert or replace a provider's settings (never pass secrets here)."""
        values = {
            "kind": kind,
            "settings": json.dumps(dict(settings), sort_keys=True),
            "changed_at_ms": _now_ms(),
        }
        with self._db.engine.begin() as conn:
            changed = conn.execute(
                update(providers).where(providers.c.name == name).values(**values)
            ).rowcount
            if changed == 0:
                conn.execute(insert(providers).values(name=name, **values))
        return ProviderRow(name, kind, dict(settings), values["changed_at_ms"])  # type: ignore[arg-type]

    def provider(self, name: str) -> ProviderRow | None:
        """The provider ``name``, or None."""
        with self._db.engine.connect() as conn:
            row = conn.execute(select(providers).where(providers.c.name == name)).first()
        if row is None:
            return None
        return ProviderRow(row.name, row.kind, json.loads(row.settings), int(row.changed_at_ms))

    def delete_provider(self, name: str) -> None:
        """Forget the provider ``name`` (a registration that failed after storing it)."""
        with self._db.engine.begin() as conn:
            conn.execute(delete(providers).where(providers.c.name == name))

    def providers(self) -> list[ProviderRow]:
        with self._db.engine.connect() as conn:
            return [
                ProviderRow(row.name, row.kind, json.loads(row.settings), int(row.changed_at_ms))
                for row in conn.execute(select(providers).order_by(providers.c.name))
            ]
