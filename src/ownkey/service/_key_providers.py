"""Each key's own provider settings (issue 28, item 1): one org never re-points another's key.

A provider row named after its kind once served every org's key of that kind, so registering
slowco's key with another ``endpoint_url`` (or KMIP port, PKCS#11 token, ...) rewrote the
settings acme's key calls used. Now a key reference's settings are a row of its own,
``<kind>/<reference>`` (``aws_kms/customer:acme``), written only when that reference's key is
registered or re-configured:

- the operator's ``ownkey key register ORG --provider KIND --set ...`` stores ``KIND/customer:ORG``;
- an org admin (API) names a provider: ``local``, a provider the process was given, its own
  ``KIND/customer:ORG``, or an operator's template row (``aws_kms``), which is copied into its
  own row; another reference's row answers as an unknown provider;
- a key whose provider row changes is the same key re-pointed: the new settings must pass the
  key's round trip, or the old ones are put back.

Two rows can reach one key manager; a key id is then still bound to one reference (KL-14),
compared by kind, the settings that say where the manager is, and the key id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from ownkey.audit import AuditAction, Auditor
from ownkey.errors import ConfigError, Conflict, LifecycleError
from ownkey.keys import KeyProvider, KeyRef, KeyState, MasterKey
from ownkey.providers import provider_settings
from ownkey.service._admin import Administration
from ownkey.service._providers import (
    INSTANCE_SEPARATOR,
    LazyProviders,
    instance_name,
)
from ownkey.storage import SqlOrgDirectory
from ownkey.storage._directory import ProviderRow

__all__ = ["KeyProviderSettings"]

T = TypeVar("T")

#: The settings that say which key manager a provider reaches (not how: timeouts, flags).
_ADDRESS: Final[Mapping[str, tuple[str, ...]]] = {
    "pkcs11": ("library", "token"),
    "kmip": ("host", "port"),
    "aws_kms": ("region", "endpoint_url", "profile"),
}


def _address(
    kind: str, settings: Mapping[str, str], key_id: str, env: Mapping[str, str]
) -> tuple[str, tuple[str | None, ...]]:
    """Which key manager ``key_id`` of a row is in: the kind and its address settings, the
    environment filling what the row leaves out (as when the provider is built). An AWS key
    ARN names its account and region itself, so any endpoint reaching it reaches one key."""
    if kind == "aws_kms" and key_id.startswith("arn:"):
        return kind, ()
    try:
        full = provider_settings(kind, settings, env, secrets_given=True)
    except ConfigError:  # a row no build would accept: compare it as stored
        full = dict(settings)
    return kind, tuple(full.get(name) for name in _ADDRESS.get(kind, ()))


class KeyProviderSettings:
    """Stores, resolves and guards the provider rows of key references."""

    def __init__(
        self,
        *,
        admin: Administration,
        store: SqlOrgDirectory,
        providers: LazyProviders,
        auditor: Auditor,
        env: Mapping[str, str],
    ) -> None:
        self._admin = admin
        self._store = store
        self._providers = providers
        self._auditor = auditor
        self._env = env

    # -- rows ------------------------------------------------------------------------------------

    def put(
        self,
        name: str,
        kind: str,
        settings: Mapping[str, str],
        *,
        provider: KeyProvider | None = None,
        org: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Store ``name``'s settings (audited, names only: never a value) and use them here."""
        given = dict(settings)
        provider_settings(kind, given)  # ConfigError for unknown kinds, settings or a secret
        self._auditor.emit(
            AuditAction.PROVIDER_CONFIGURE,
            org=org,
            actor=actor,
            detail={"name": name, "kind": kind, "settings": ",".join(sorted(given))},
        )
        self._store.put_provider(name, kind, given)
        factory = self._providers.factory(name, (kind, given), self._env)
        self._providers.configure(name, factory, provider, (kind, given))

    def _restore(self, name: str, before: ProviderRow | None) -> None:
        if before is None:
            self._store.delete_provider(name)
            self._providers.invalidate()
            return
        self._store.put_provider(name, before.kind, before.settings)
        factory = self._providers.factory(name, (before.kind, before.settings), self._env)
        self._providers.configure(name, factory, None, (before.kind, before.settings))

    def with_own(
        self,
        ref: KeyRef,
        kind: str,
        settings: Mapping[str, str],
        action: Callable[[str], T],
        *,
        provider: KeyProvider | None = None,
        actor: str | None = None,
    ) -> T:
        """Store ``ref``'s own row of ``kind``, then run ``action(name)``; if it fails, the row
        is put back as it was, so a refused registration changes no settings."""
        name = instance_name(kind, ref)
        before = self._store.provider(name)
        self.put(name, kind, settings, provider=provider, org=ref.org, actor=actor)
        try:
            return action(name)
        except BaseException:
            self._restore(name, before)
            raise

    # -- checks ----------------------------------------------------------------------------------

    def existing(self, ref: KeyRef) -> MasterKey | None:
        """``ref``'s key unless there is none or it was destroyed (then a new one may come)."""
        for master in self._admin.list_keys():
            if master.ref == ref and master.state is not KeyState.DESTROYED:
                return master
        return None

    def require_replaceable(self, ref: KeyRef) -> None:
        """LifecycleError before any row is touched, as the registration itself would raise."""
        master = self.existing(ref)
        if master is not None:
            raise LifecycleError(f"{ref} already has a key ({master.state.value})")

    def _spec(self, name: str) -> tuple[str, Mapping[str, str]] | None:
        row = self._store.provider(name)
        return None if row is None else (row.kind, row.settings)

    def require_unbound(
        self, ref: KeyRef, kind: str, settings: Mapping[str, str], key_id: str
    ) -> None:
        """Conflict if ``key_id`` of the same key manager is bound to another reference (KL-14
        across provider rows: two rows with one address reach one key)."""
        wanted = _address(kind, settings, key_id, self._env)
        for master in self._admin.list_keys():
            if master.ref == ref or master.key_id != key_id:
                continue
            spec = self._spec(master.provider)
            if spec is not None and _address(*spec, key_id, self._env) == wanted:
                raise Conflict(f"key {key_id} of {kind} is bound to another key reference")

    # -- names an org admin gives ----------------------------------------------------------------

    def using(
        self, ref: KeyRef, name: str, action: Callable[[str], T], *, actor: str | None = None
    ) -> T:
        """Run ``action`` with the provider name ``ref``'s key is to use for the ``name`` a
        caller gave: a template row is first copied into ``ref``'s own row (put back if the
        action fails); ``local``, a provider the process was given and ``ref``'s own row are
        used as they are.

        Another reference's row answers as an unknown provider (ConfigError), the same as a
        name nobody configured, so the answer tells nothing about other orgs.
        """
        _, separator, owner = name.partition(INSTANCE_SEPARATOR)
        if separator:
            if owner != str(ref) or self._store.provider(name) is None:
                raise ConfigError(f"no key provider named {name!r} is configured")
            return action(name)
        template = self._store.provider(name)
        if template is None:
            return action(name)  # local, or a provider the process was given
        return self.with_own(ref, template.kind, template.settings, action, actor=actor)
