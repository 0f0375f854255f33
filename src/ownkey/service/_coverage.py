"""Coverage by service: which services of an org are under its customer key, and how much.

For each of the seed's services: whether it is enabled, which key *new* content gets (customer,
platform or client-side) and why -- decided by the policy engine itself, from one synthetic
request per owner kind (there is one rule book: ``ownkey.policy``) -- and the org's scope keys
by key (customer vs platform only vs crypto-shredded) with the assets recorded in the asset
store.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ownkey.catalog import ASSET_TYPES, SERVICE_IDS, ContainerKind, OwnerKind, asset_type
from ownkey.errors import PolicyError
from ownkey.keys import KeyRef, MasterKey
from ownkey.policy import Asset, Container, KeyType, PolicyRequest, Rule, explain
from ownkey.service._directory import Org
from ownkey.storage import SqlOrgDirectory

__all__ = ["Coverage", "ServiceCoverage", "coverage_of", "customer_services", "service_protection"]


@dataclass(frozen=True, slots=True)
class ServiceCoverage:
    """How one service of one org is protected, and how much is under each key."""

    service_id: str
    name: str
    enabled: bool
    protection: str  # customer | platform | client_side
    why: str
    customer_scope_keys: int = 0
    platform_scope_keys: int = 0
    shredded_scope_keys: int = 0
    assets: int = 0
    asset_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "name": self.name,
            "enabled": self.enabled,
            "protection": self.protection,
            "why": self.why,
            "scope_keys": {
                "customer": self.customer_scope_keys,
                "platform": self.platform_scope_keys,
                "shredded": self.shredded_scope_keys,
            },
            "assets": self.assets,
            "asset_bytes": self.asset_bytes,
        }


@dataclass(frozen=True, slots=True)
class Coverage:
    """An org's coverage by service: which services are under its key, and how much content."""

    org: Org
    key: MasterKey | None
    users: int
    licensed_users: int
    rules: int
    services: tuple[ServiceCoverage, ...] = field(default=())

    def service(self, service_id: str) -> ServiceCoverage:
        return next(s for s in self.services if s.service_id == service_id)

    def to_json(self) -> dict[str, Any]:
        key = self.key
        return {
            "org": self.org.name,
            "cmk": self.org.cmk,
            "key": None
            if key is None
            else {
                "ref": str(key.ref),
                "provider": key.provider,
                "state": key.state.value,
                "version": key.version,
            },
            "users": self.users,
            "licensed_users": self.licensed_users,
            "revocation_rules": self.rules,
            "services": [s.to_json() for s in self.services],
        }


#: A licensed user that exists only in coverage's synthetic requests: coverage reports what new
#: content of a CMK-licensed owner gets (the unlicensed owner's content is always the platform's).
PROBE_USER = "coverage-probe"

_LICENSED_RULES = frozenset(
    {
        Rule.OWNER_LICENCE,
        Rule.ORGANISER_LICENCE,
        Rule.TEAM_CHAT_ANY_MEMBER,
        Rule.TEAM_CHAT_CHANNEL_OWNER,
        Rule.TEAM_CHAT_CROSS_ORG,
    }
)


def _probes(org: Org, service_id: str) -> list[PolicyRequest]:
    """One synthetic request per owner kind of the service: its first included component, in
    its first container kind, owned by a licensed user (or the call queue, room, account)."""
    entry = asset_type(service_id)
    settings = replace(org.settings, licensed_users=org.settings.licensed_users | {PROBE_USER})
    container = Container(next(kind for kind in ContainerKind if kind in entry.containers))
    return [
        PolicyRequest(
            {org.name: settings},
            Asset(
                service_id=service_id,
                org=org.name,
                owner=PROBE_USER if kind is OwnerKind.USER else None,
                owner_kind=kind,
                component=entry.included[0],
                container=container,
            ),
        )
        for kind in OwnerKind
        if kind in entry.owner_kinds
    ]


def _decide(org: Org, service_id: str) -> tuple[str, str]:
    """(protection of new content, why), as the policy engine decides for the synthetic
    requests; the first one under the customer key wins (a licensed owner's content)."""
    try:
        probes = _probes(org, service_id)
    except PolicyError:  # 1001 exists only with cmk and hybrid on (the engine's own check)
        return "platform", "needs cmk and hybrid on"
    decided: list[tuple[str, str]] = []
    for request in probes:
        plan = explain(request)
        types = {key.type for key in plan.keys}
        last = plan.reasons[-1]
        if KeyType.HYBRID in types:
            decided.append(("client_side", last.text))
        elif KeyType.CUSTOMER in types:
            why = (
                "content of licensed users (excluded components aside)"
                if last.rule in _LICENSED_RULES
                else "whole account, whatever the licences"
            )
            decided.append(("customer", why))
        else:
            decided.append(("platform", last.text))
    return next((d for d in decided if d[0] == "customer"), decided[0])


def service_protection(org: Org, key: MasterKey | None, service_id: str) -> tuple[bool, str, str]:
    """(enabled, protection of new content, why) for one service of one org: the policy
    engine's decision, and "platform" (sealing refused) where it needs a key not registered."""
    entry = asset_type(service_id)
    settings = org.settings
    if entry.client_side:
        enabled = settings.cmk and settings.hybrid
    else:
        enabled = service_id in settings.services or not entry.needs_enabling
    protection, why = _decide(org, service_id)
    if protection == "customer" and key is None:
        return enabled, "platform", "no customer key registered: sealing is refused"
    return enabled, protection, why


def coverage_of(org: Org, key: MasterKey | None, rules: int, store: SqlOrgDirectory) -> Coverage:
    """The coverage report of ``org`` (its customer key ``key``, ``rules`` rules in force)."""
    ref = str(KeyRef.customer(org.name))
    customer: dict[str, int] = {}
    platform: dict[str, int] = {}
    for service_id, keys, count in store.scope_key_counts(org.name):
        target = customer if ref in keys else platform
        target[service_id] = target.get(service_id, 0) + count
    shredded = store.shredded_counts(org.name)
    stored = store.asset_counts(org.name)
    services = []
    for entry in ASSET_TYPES:
        sid = entry.service_id
        enabled, protection, why = service_protection(org, key, sid)
        count, size = stored.get(sid, (0, 0))
        services.append(
            ServiceCoverage(
                service_id=sid,
                name=entry.name,
                enabled=enabled,
                protection=protection,
                why=why,
                customer_scope_keys=customer.get(sid, 0),
                platform_scope_keys=platform.get(sid, 0),
                shredded_scope_keys=shredded.get(sid, 0),
                assets=count,
                asset_bytes=size,
            )
        )
    users, licensed = store.user_counts(org.name)
    return Coverage(org, key, users, licensed, rules, tuple(services))


def customer_services(org: Org) -> set[str]:
    """The services whose new content goes under the org's customer key (licences aside), as
    the policy engine decides."""
    return {sid for sid in SERVICE_IDS if _decide(org, sid)[0] == "customer"}
