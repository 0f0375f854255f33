"""Org and user operations of a deployment: the directory's writes, audited, and coverage.

Each change is recorded in the audit chain before it is written, and invalidates the org in the
directory's cache at once, so the data plane of this process follows on its next call (other
processes within the directory's recheck interval). Which key the new content of a service gets
is the policy engine's decision (:mod:`ownkey.service._coverage`), never re-derived here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ownkey.audit import AuditAction, Auditor
from ownkey.errors import Conflict, InvalidRequest, NotFound
from ownkey.keys import KeyRef, KeyRegistry, MasterKey
from ownkey.policy import ORG_FLAGS
from ownkey.service._coverage import Coverage, coverage_of, customer_services
from ownkey.service._directory import (
    Org,
    OrgDirectory,
    User,
    check_org_name,
    check_service_ids,
    check_user,
    org_of,
)

__all__ = ["OrgOperations", "OrgUpdate"]


@dataclass(frozen=True, slots=True)
class OrgUpdate:
    """An org after a change, and the services whose new content changed key."""

    org: Org
    now_customer: tuple[str, ...] = ()
    now_platform: tuple[str, ...] = ()


def _check_flags(flags: Mapping[str, bool]) -> None:
    for flag, value in flags.items():
        if flag not in ORG_FLAGS:
            raise InvalidRequest(flag, f"unknown org setting; one of {', '.join(ORG_FLAGS)}")
        if not isinstance(value, bool):
            raise InvalidRequest(flag, "must be true or false")


class OrgOperations:
    """Orgs, users and coverage, over the org directory of one deployment.

    ``registry`` reads key records as stored (a CMK switch decides on the record, not on a
    cache); ``rule_count`` counts an org's revocation rules in force.
    """

    def __init__(
        self,
        directory: OrgDirectory,
        auditor: Auditor,
        registry: KeyRegistry,
        rule_count: Callable[[str], int],
    ) -> None:
        self._directory = directory
        self._store = directory.store
        self._auditor = auditor
        self._registry = registry
        self._rule_count = rule_count

    # -- reading ---------------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        """Whether ``name`` is an org of the directory (read from the database)."""
        return self._store.get_org(name) is not None

    def require(self, name: str) -> None:
        """NotFound unless ``name`` is an org of the directory."""
        if not self.exists(name):
            raise NotFound(f"no org {name!r}")

    def org(self, name: str) -> Org:
        """An org's settings, read from the database (NotFound if none)."""
        row = self._store.get_org(name)
        if row is None:
            raise NotFound(f"no org {name!r}")
        return org_of(row, self._store.licensed_users(name))

    def orgs(self) -> list[Org]:
        """Every org, by name."""
        return [
            org_of(row, self._store.licensed_users(row.name)) for row in self._store.list_orgs()
        ]

    def users(self, org: str, *, licensed: bool | None = None) -> list[User]:
        """The org's users (only licensed or unlicensed ones if asked)."""
        self.require(org)
        return [
            User(row.org, row.email, row.licensed)
            for row in self._store.users(org, licensed=licensed)
        ]

    def coverage(self, org: str) -> Coverage:
        """Which services of ``org`` are under its customer key, with counts of scope keys
        (customer vs platform only vs crypto-shredded) and recorded assets."""
        found = self.org(org)
        rules = self._rule_count(org)
        return coverage_of(found, self._customer_key(org), rules, self._store)

    # -- changing --------------------------------------------------------------------------------

    def _emit(self, action: AuditAction, org: str, actor: str | None, **detail: str) -> None:
        self._auditor.emit(action, org=org, actor=actor, detail=detail)

    def _customer_key(self, org: str) -> MasterKey | None:
        return self._registry.get(KeyRef.customer(org))

    def _require_key_for_cmk(self, org: str) -> None:
        if self._customer_key(org) is None:
            raise Conflict(
                f"org {org!r} has no customer key: create or register one first "
                f"(ownkey key create {org} / ownkey key register {org} ...)"
            )

    def create_org(
        self,
        /,
        name: str,
        *,
        cmk: bool = False,
        services: Collection[str] = (),
        actor: str | None = None,
        **flags: bool,
    ) -> Org:
        """Add an org to the directory. ``cmk=True`` needs its customer key registered first.
        ``flags``: any of :data:`~ownkey.policy.ORG_FLAGS`."""
        check_org_name(name)
        service_ids = check_service_ids(services)
        _check_flags(flags)
        if cmk:
            self._require_key_for_cmk(name)
        if self.exists(name):
            raise Conflict(f"org {name!r} already exists")
        detail = {"cmk": str(cmk).lower(), "services": ",".join(service_ids)}
        detail.update({flag: str(value).lower() for flag, value in flags.items()})
        self._emit(AuditAction.ORG_CREATE, name, actor, **detail)
        row = self._store.create_org(name, cmk=cmk, services=service_ids, flags=flags)
        self._directory.invalidate([name])
        return org_of(row, frozenset())

    def update_org(
        self,
        /,
        name: str,
        *,
        cmk: bool | None = None,
        enable: Collection[str] = (),
        disable: Collection[str] = (),
        actor: str | None = None,
        **flags: bool,
    ) -> OrgUpdate:
        """Change an org's settings: turn CMK on or off, enable or disable services, set flags.

        New content follows at once. Existing content stays under the key it was sealed with
        until a backfill moves it (a ``backfill`` job); the result says which services changed
        key.
        """
        before = self.org(name)
        on = set(check_service_ids(enable, "enable"))
        off = set(check_service_ids(disable, "disable"))
        if on & off:
            raise InvalidRequest(
                "enable", f"{', '.join(sorted(on & off))} both enabled and disabled"
            )
        _check_flags(flags)
        if cmk and not before.cmk:
            self._require_key_for_cmk(name)
        services = (set(before.settings.services) | on) - off
        detail: dict[str, str] = {}
        if cmk is not None and cmk != before.cmk:
            detail["cmk"] = str(cmk).lower()
        if on - before.settings.services:
            detail["enabled"] = ",".join(sorted(on - before.settings.services))
        if off & before.settings.services:
            detail["disabled"] = ",".join(sorted(off & before.settings.services))
        changed_flags = {f: v for f, v in flags.items() if getattr(before.settings, f) != v}
        detail.update({flag: str(value).lower() for flag, value in changed_flags.items()})
        if not detail:
            return OrgUpdate(before)
        self._emit(AuditAction.ORG_UPDATE, name, actor, **detail)
        row = self._store.update_org(
            name,
            cmk=cmk,
            services=None if services == set(before.settings.services) else services,
            flags=changed_flags,
        )
        self._directory.invalidate([name])
        after = org_of(row, before.settings.licensed_users)
        was, now = customer_services(before), customer_services(after)
        return OrgUpdate(after, tuple(sorted(now - was)), tuple(sorted(was - now)))

    def add_users(
        self,
        org: str,
        users: Collection[str],
        *,
        licensed: bool = False,
        actor: str | None = None,
    ) -> int:
        """Add users (licensed or not); existing ones get ``licensed`` set. Return rows changed."""
        return self._put_users(org, users, licensed, actor, "add")

    def set_licensed(
        self, org: str, users: Collection[str], licensed: bool, *, actor: str | None = None
    ) -> int:
        """Grant or withdraw the CMK licence of existing users; NotFound for an unknown one."""
        self.require(org)
        known = {user.user for user in self.users(org)}
        missing = sorted({check_user(user) for user in users} - known)
        if missing:
            raise NotFound(f"org {org!r} has no user {missing[0]!r}")
        return self._put_users(org, users, licensed, actor, "license" if licensed else "unlicense")

    def _put_users(
        self, org: str, users: Collection[str], licensed: bool, actor: str | None, op: str
    ) -> int:
        emails = list(dict.fromkeys(check_user(user) for user in users))
        if not emails:
            raise InvalidRequest("users", "name at least one user")
        self.require(org)
        self._refuse_claimed(org, emails)
        self._emit(
            AuditAction.ORG_USERS,
            org,
            actor,
            operation=op,
            licensed=str(licensed).lower(),
            users=str(len(emails)),
            first=emails[0],
        )
        changed = self._store.put_users(org, emails, licensed=licensed)
        self._directory.invalidate([org])
        return changed

    def _refuse_claimed(self, org: str, emails: Collection[str]) -> None:
        """A user belongs to one org: an org may not list a user another org lists (Conflict).

        A user listed by two orgs is a member of neither (CMK Hybrid grants name one org and
        fail closed), so letting globex add ``bob@acme.test`` locked bob out of acme's
        conversations, silently for acme. The claimant is not told which org; the org that lists
        the user is: the refused claim is an ``org.users`` event (``claim_refused``, the
        claimant in ``by_org``) in its own log. Checked before the write, in the service layer;
        two orgs racing to add one new user on PostgreSQL can both pass (a unique index on the
        canonical email is the storage half, not done yet)."""
        for email in emails:
            owners = [other for other in self._store.orgs_of_user(email) if other != org]
            for owner in owners:
                self._emit(
                    AuditAction.ORG_USERS,
                    owner,
                    None,
                    operation="claim_refused",
                    users="1",
                    first=email,
                    by_org=org,
                )
            if owners:
                raise Conflict(f"user {email!r} belongs to another org; a user is in one org only")

    def remove_users(self, org: str, users: Collection[str], *, actor: str | None = None) -> int:
        """Remove users from the directory; return how many existed."""
        emails = [check_user(user) for user in users]
        self.require(org)
        self._emit(AuditAction.ORG_USERS, org, actor, operation="remove", users=str(len(emails)))
        removed = self._store.remove_users(org, emails)
        self._directory.invalidate([org])
        return removed
