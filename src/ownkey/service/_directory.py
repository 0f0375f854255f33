"""The org directory: each org's CMK settings and licensed users, cached for the data plane.

The platform seals and opens with only the *asset* part of a policy request; the runtime fills
``orgs`` from this directory for every org the asset touches. The data plane asks
:meth:`OrgDirectory.settings` per message, so it answers from memory: an org is loaded once
(its row and its licensed users) and kept until its ``revision`` changes. Changes made through
this process invalidate at once; changes made by another process are seen after
``recheck_interval`` seconds (one ``SELECT name, revision FROM orgs``), or at once when a change
notification calls :meth:`invalidate`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ownkey._outage import OUTAGE_GRACE, RETRY_AFTER, is_outage
from ownkey.catalog import SERVICE_IDS
from ownkey.errors import InvalidRequest
from ownkey.policy import OrgSettings, canonical_email, check_org
from ownkey.storage._directory import ORG_FLAGS, OrgRow, SqlOrgDirectory

__all__ = [
    "ORG_FLAGS",
    "Org",
    "OrgDirectory",
    "User",
    "check_org_name",
    "check_service_ids",
    "check_user",
]


def check_org_name(name: str, field: str = "org") -> str:
    """An org name by the one rule of ``ownkey.policy`` (letters, digits, ``.``, ``_``, ``-``;
    at most 128); InvalidRequest otherwise."""
    return check_org(field, name)


def check_user(user: str, field: str = "user") -> str:
    """A user of the directory in its canonical form: ``ownkey.policy.canonical_email``, the one
    identity rule the platform's grants and the customer's key service apply too (ASCII, a valid
    address, lower-cased), so ``Ann@Acme.test`` is ``ann@acme.test`` and ``ann`` is refused."""
    return canonical_email(field, user)


def check_service_ids(service_ids: Iterable[str], field: str = "services") -> tuple[str, ...]:
    """Known 4-digit service IDs, sorted and unique; InvalidRequest naming the first unknown one."""
    out = set()
    for service_id in service_ids:
        if service_id not in SERVICE_IDS:
            raise InvalidRequest(field, f"unknown service ID {service_id!r}")
        out.add(service_id)
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class Org:
    """An org as the directory knows it: the policy's settings plus bookkeeping."""

    name: str
    settings: OrgSettings
    revision: int
    created_at: float
    changed_at: float

    @property
    def cmk(self) -> bool:
        return self.settings.cmk

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(sorted(self.settings.services))

    def to_json(self) -> dict[str, Any]:
        """Settings as JSON; licensed users as a count (``users`` lists them)."""
        settings = self.settings
        out: dict[str, Any] = {
            "name": self.name,
            "cmk": settings.cmk,
            "services": list(self.services),
        }
        out.update({flag: getattr(settings, flag) for flag in ORG_FLAGS})
        out.update(
            licensed_users=len(settings.licensed_users),
            revision=self.revision,
            created_at=self.created_at,
            changed_at=self.changed_at,
        )
        return out


@dataclass(frozen=True, slots=True)
class User:
    """A user of an org and whether it holds a CMK licence."""

    org: str
    user: str
    licensed: bool

    def to_json(self) -> dict[str, Any]:
        return {"org": self.org, "user": self.user, "licensed": self.licensed}


def org_of(row: OrgRow, licensed: frozenset[str]) -> Org:
    """An :class:`Org` from its row and licensed users."""
    settings = OrgSettings(
        cmk=row.cmk,
        services=frozenset(row.services),
        licensed_users=licensed,
        **{flag: row.flags[flag] for flag in ORG_FLAGS},
    )
    return Org(row.name, settings, row.revision, row.created_at_ms / 1000, row.changed_at_ms / 1000)


class OrgDirectory:
    """Cached org settings for the hot path; see the module docstring for freshness."""

    def __init__(
        self,
        store: SqlOrgDirectory,
        *,
        recheck_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._recheck = recheck_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._orgs: dict[str, Org] = {}
        self._revisions: Mapping[str, int] = {}
        self._checked_at: float | None = None
        self._good_at: float | None = None

    @property
    def store(self) -> SqlOrgDirectory:
        return self._store

    def _recheck_revisions(self) -> None:
        started = self._clock()
        try:
            revisions = self._store.revisions()
        except Exception as exc:
            # Through a short outage the orgs as last read serve on (service/_outage.py).
            good = self._good_at
            if not is_outage(exc) or good is None or started - good >= OUTAGE_GRACE:
                raise
            with self._lock:
                self._checked_at = started - self._recheck + RETRY_AFTER
            return
        with self._lock:
            self._good_at = started
            self._revisions = revisions
            self._orgs = {
                name: org for name, org in self._orgs.items() if revisions.get(name) == org.revision
            }
            self._checked_at = started

    def _fresh(self) -> None:
        checked = self._checked_at
        if checked is None or self._clock() - checked >= self._recheck:
            self._recheck_revisions()

    def org(self, name: str) -> Org | None:
        """The org's cached view (loaded on first use), or None if the directory has no such org."""
        self._fresh()
        found = self._orgs.get(name)
        if found is not None:
            return found
        if name not in self._revisions:
            return None
        row = self._store.get_org(name)
        if row is None:
            return None
        org = org_of(row, self._store.licensed_users(name))
        with self._lock:
            if self._revisions.get(name, org.revision) <= org.revision:
                self._orgs[name] = org
        return org

    def settings(self, name: str) -> OrgSettings | None:
        """The policy's settings of ``name`` (None for an org ownkey does not know)."""
        found = self.org(name)
        return None if found is None else found.settings

    def revision(self, name: str) -> int:
        """The cached revision of ``name`` (0 for an unknown org)."""
        found = self.org(name)
        return 0 if found is None else found.revision

    def invalidate(self, orgs: Iterable[str] | None = None) -> None:
        """Forget cached orgs (all when None); the next call re-reads the revisions."""
        with self._lock:
            if orgs is None:
                self._orgs = {}
            else:
                for name in orgs:
                    self._orgs.pop(name, None)
            self._checked_at = None
