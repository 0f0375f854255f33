"""Coverage by service: which services of an org are under its customer key, and how much.

For each of the seed's services: whether it is enabled, which key *new* content gets (customer,
platform or client-side) and why, and the org's scope keys by key (customer vs platform only vs
crypto-shredded) with the assets recorded in the asset store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ownkey.catalog import ASSET_TYPES, SERVICE_IDS, asset_type
from ownkey.keys import KeyRef, MasterKey
from ownkey.service._directory import Org
from ownkey.storage import SqlOrgDirectory

__all__ = ["Coverage", "ServiceCoverage", "coverage_of", "customer_services"]


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


def _service_protection(org: Org, key: MasterKey | None, service_id: str) -> tuple[bool, str, str]:
    """(enabled, protection of new content, why) for one service of one org."""
    entry = asset_type(service_id)
    settings = org.settings
    enabled = service_id in settings.services or not entry.needs_enabling
    if entry.client_side:
        if settings.cmk and settings.hybrid:
            return True, "client_side", "CMK hybrid: encrypted on the client"
        return False, "platform", "needs cmk and hybrid on"
    if service_id == "0008" and settings.advanced_chat_encryption:
        return enabled, "client_side", "advanced chat encryption: encrypted on the client"
    if not settings.cmk:
        return enabled, "platform", "cmk is off"
    if not enabled:
        return False, "platform", "not enabled"
    if entry.requires_setting and not settings.setting(entry.requires_setting):
        return enabled, "platform", f"needs {entry.requires_setting} on"
    if key is None:
        return enabled, "platform", "no customer key registered: sealing is refused"
    if not entry.needs_licence:
        return enabled, "customer", "whole account, whatever the licences"
    return enabled, "customer", "content of licensed users (excluded components aside)"


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
        enabled, protection, why = _service_protection(org, key, sid)
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
    """The services whose new content goes under the org's customer key (licences aside)."""
    settings = org.settings
    return {
        sid
        for sid in SERVICE_IDS
        if settings.protects(sid)
        and not asset_type(sid).client_side
        and not (
            asset_type(sid).requires_setting
            and not settings.setting(str(asset_type(sid).requires_setting))
        )
    }
