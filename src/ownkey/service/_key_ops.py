"""Key operations of a deployment that need more than the key layer: providers kept in the
database, keys named by org, revocation checked against the directory, previews over assets.

The key lifecycle itself is :class:`~ownkey.service.Administration` (``runtime.admin``); this
façade adds what only a deployment knows: which orgs exist, which providers are configured and
what the asset store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ownkey.audit import AuditAction, Auditor
from ownkey.keys import KeyProvider, KeyRef, MasterKey, RevocationRule
from ownkey.providers import provider_settings
from ownkey.service._admin import Administration
from ownkey.service._builder import LOCAL
from ownkey.service._directory import check_org_name
from ownkey.service._org_ops import OrgOperations
from ownkey.service._providers import LazyProviders, provider_factory
from ownkey.storage import SqlOrgDirectory

if TYPE_CHECKING:  # the asset store is built on first use, by the runtime
    from ownkey.service._assets import AssetPreview, AssetService

__all__ = ["KeyOperations"]


class KeyOperations:
    """Customer keys by org, the providers they live in, and revocation rules."""

    def __init__(
        self,
        *,
        admin: Administration,
        orgs: OrgOperations,
        store: SqlOrgDirectory,
        providers: LazyProviders,
        auditor: Auditor,
        env: Mapping[str, str],
        assets: Callable[[], AssetService],
    ) -> None:
        self._admin = admin
        self._orgs = orgs
        self._store = store
        self._providers = providers
        self._auditor = auditor
        self._env = env
        self._assets = assets

    def configure_provider(
        self,
        name: str,
        kind: str,
        settings: Mapping[str, str] | None = None,
        *,
        provider: KeyProvider | None = None,
        actor: str | None = None,
    ) -> None:
        """Keep a key manager's non-secret settings under ``name``, so that every process builds
        it the same way (settings given, then ``OWNKEY_<KIND>_<NAME>`` from its environment).

        ``provider`` is an instance the caller built and checked already (and will close);
        without it the provider is built here on first use.
        """
        given = dict(settings or {})
        provider_settings(kind, given)  # ConfigError for unknown kinds, settings or a secret
        self._auditor.emit(
            AuditAction.PROVIDER_CONFIGURE,
            actor=actor,
            detail={"name": name, "kind": kind, "settings": ",".join(sorted(given))},
        )
        self._store.put_provider(name, kind, given)
        self._providers.configure(name, provider_factory(kind, given, self._env, name), provider)

    def create_key(self, org: str, *, provider: str = LOCAL, actor: str | None = None) -> MasterKey:
        """Create ``org``'s customer key in a provider (the embedded local store by default).
        A key can be prepared before its org is in the directory."""
        check_org_name(org)
        return self._admin.create_key(KeyRef.customer(org), provider=provider, actor=actor)

    def register_key(
        self,
        org: str,
        *,
        provider: str,
        key_id: str,
        kind: str | None = None,
        settings: Mapping[str, str] | None = None,
        actor: str | None = None,
        operator: bool = False,
    ) -> MasterKey:
        """Register ``org``'s existing key after a round-trip check. With ``kind`` (and
        ``settings``), configure the provider named ``provider`` first. ``operator``: the caller
        is the platform's operator (KL-15), who may register a key its manager cannot prove."""
        check_org_name(org)
        if kind is not None:
            self.configure_provider(provider, kind, settings, actor=actor)
        return self._admin.register_key(
            KeyRef.customer(org), provider=provider, key_id=key_id, actor=actor, operator=operator
        )

    def list_keys(self, org: str | None = None) -> list[MasterKey]:
        """Registered keys (of one org's customer key, or all including the platform key)."""
        keys = self._admin.list_keys()
        return [k for k in keys if org is None or k.ref.org == org]

    def revoke(self, rule: RevocationRule, *, actor: str | None = None) -> RevocationRule:
        """Put a revocation rule in force (its org must exist)."""
        self._orgs.require(rule.org)
        return self._admin.revoke(rule, actor=actor)

    def preview(self, rule: RevocationRule) -> AssetPreview:
        """What a rule would deny, by service: scope keys, stored assets and their plaintext
        bytes (:meth:`AssetService.preview`), without changing anything. Its org must exist."""
        self._orgs.require(rule.org)
        return self._assets().preview(rule)
