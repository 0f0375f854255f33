"""Key operations of a deployment that need more than the key layer: providers kept in the
database (each key's own settings, :mod:`ownkey.service._key_providers`), keys named by org,
revocation checked against the directory, previews over assets.

The key lifecycle itself is :class:`~ownkey.service.Administration` (``runtime.admin``); this
façade adds what only a deployment knows: which orgs exist, which providers are configured and
what the asset store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ownkey.audit import Auditor
from ownkey.errors import ConfigError
from ownkey.keys import KeyProvider, KeyRef, MasterKey, RevocationRule
from ownkey.service._admin import Administration
from ownkey.service._builder import LOCAL
from ownkey.service._directory import check_org_name
from ownkey.service._key_providers import KeyProviderSettings
from ownkey.service._org_ops import OrgOperations
from ownkey.service._providers import INSTANCE_SEPARATOR, LazyProviders, instance_name
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
        self._assets = assets
        self._settings = KeyProviderSettings(
            admin=admin, store=store, providers=providers, auditor=auditor, env=env
        )

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

        This is the operator's *template*: a key registered from it gets its own copy
        (:class:`KeyProviderSettings`), so changing the template later re-points no key. A
        key's own settings change through :meth:`register_key` only. ``provider`` is an
        instance the caller built and checked already (and will close); without it the
        provider is built here on first use.
        """
        if INSTANCE_SEPARATOR in name:
            raise ConfigError(
                f"a provider name with {INSTANCE_SEPARATOR!r} is one key's own; "
                "change it with ownkey key register"
            )
        self._settings.put(name, kind, settings or {}, provider=provider, actor=actor)

    def create_key(self, org: str, *, provider: str = LOCAL, actor: str | None = None) -> MasterKey:
        """Create ``org``'s customer key in a provider (the embedded local store by default).
        A key can be prepared before its org is in the directory."""
        check_org_name(org)
        ref = KeyRef.customer(org)
        self._settings.require_replaceable(ref)
        return self._settings.using(
            ref,
            provider,
            lambda name: self._admin.create_key(ref, provider=name, actor=actor),
            actor=actor,
        )

    def register_key(
        self,
        org: str,
        *,
        provider: str,
        key_id: str,
        kind: str | None = None,
        settings: Mapping[str, str] | None = None,
        built: KeyProvider | None = None,
        actor: str | None = None,
        operator: bool = False,
    ) -> MasterKey:
        """Register ``org``'s existing key after a round-trip check.

        With ``kind`` (the operator's ``ownkey key register``), ``settings`` become ``org``'s
        own provider row of that kind (``provider`` is then ignored; ``built`` is the provider
        the caller built from them and checked). Registering the key ``org`` already has, with
        new settings, re-points it: the key's round trip must pass through the new settings,
        or the old ones stay. Without ``kind``, ``provider`` names a configured provider (see
        :meth:`KeyProviderSettings.using`). ``operator``: the caller is the platform's operator
        (KL-15), who may register a key its manager cannot prove."""
        check_org_name(org)
        ref = KeyRef.customer(org)

        def register(name: str) -> MasterKey:
            return self._admin.register_key(
                ref, provider=name, key_id=key_id, actor=actor, operator=operator
            )

        if kind is None:
            self._settings.require_replaceable(ref)
            return self._settings.using(ref, provider, register, actor=actor)
        given = dict(settings or {})
        name = instance_name(kind, ref)
        current = self._settings.existing(ref)
        if current is not None and (current.provider, current.key_id) == (name, key_id):
            return self._settings.with_own(
                ref, kind, given, lambda _: self._recheck(ref), provider=built, actor=actor
            )
        self._settings.require_replaceable(ref)
        self._settings.require_unbound(ref, kind, given, key_id)
        return self._settings.with_own(ref, kind, given, register, provider=built, actor=actor)

    def _recheck(self, ref: KeyRef) -> MasterKey:
        """The key, once a describe and a round trip through its (new) settings passed."""
        self._admin.check_key(ref)
        return self._admin.key(ref)

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
