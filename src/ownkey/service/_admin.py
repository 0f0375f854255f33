"""Administration: what a customer's security team (or the platform operator) can do to keys.

A thin facade over the key layer, in the vocabulary of the admin API and CLI: key references may
be given as text (``customer:acme``, ``platform``), rotation re-wraps by default, backfill says
``enable``/``disable``. Every call is recorded in the audit log with its ``actor``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ownkey.audit import AuditAction
from ownkey.keys import (
    CacheReport,
    KeyAdmin,
    KeyCallReport,
    KeyDeps,
    KeyDescription,
    KeyRef,
    MasterKey,
    RevocationPreview,
    RevocationRule,
    Rewrapper,
    RewrapReport,
    ScopeKeyRecord,
    Selector,
    ShredEvidence,
)

__all__ = ["Administration", "Rotation"]

Ref = KeyRef | str


def _ref(ref: Ref) -> KeyRef:
    return ref if isinstance(ref, KeyRef) else KeyRef.parse(ref)


@dataclass(frozen=True, slots=True)
class Rotation:
    """A rotated key and, unless skipped, the report of re-wrapping its scope keys."""

    key: MasterKey
    rewrap: RewrapReport | None


class Administration:
    """Key lifecycle, revocation rules, rotation, backfill, rekey support and the cache."""

    def __init__(self, keys: KeyAdmin, rewrapper: Rewrapper, deps: KeyDeps) -> None:
        self._keys = keys
        self._rewrapper = rewrapper
        self._deps = deps

    # -- keys ------------------------------------------------------------------------------------

    def list_keys(self) -> Sequence[MasterKey]:
        """Every registered customer and platform key, with its state."""
        return self._keys.list_keys()

    def key(self, ref: Ref) -> MasterKey:
        """One key's record (NotFound if none is registered)."""
        return self._keys.get(_ref(ref))

    def check_key(self, ref: Ref) -> KeyDescription:
        """Describe a registered key in its key manager and prove a wrap/unwrap round trip."""
        return self._keys.check(_ref(ref))

    def create_key(
        self, ref: Ref, *, provider: str | None = None, actor: str | None = None
    ) -> MasterKey:
        """Create a key in a provider (the default one unless named) and register it."""
        return self._keys.create(_ref(ref), provider=provider, actor=actor)

    def register_key(
        self,
        ref: Ref,
        *,
        provider: str,
        key_id: str,
        actor: str | None = None,
        operator: bool = False,
    ) -> MasterKey:
        """Register a key that already exists in a provider, once the caller is shown to
        control it (:meth:`KeyAdmin.register`), after a round-trip check."""
        return self._keys.register(
            _ref(ref), provider=provider, key_id=key_id, actor=actor, operator=operator
        )

    def attest(self, ref: Ref, statement: Mapping[str, str]) -> None:
        """Put ``statement`` in the encryption context of one audited wrap under the key, so
        the key manager's log holds it (the audit witness)."""
        self._keys.attest(_ref(ref), statement)

    def rotate_key(self, ref: Ref, *, rewrap: bool = True, actor: str | None = None) -> Rotation:
        """New primary version; then re-wrap every scope key under the key (no content touched)."""
        master = self._keys.rotate(_ref(ref), actor=actor)
        report = self._rewrapper.rewrap(master.ref, actor=actor) if rewrap else None
        return Rotation(master, report)

    def rewrap(self, ref: Ref, *, actor: str | None = None) -> RewrapReport:
        """Re-wrap the scope keys still under an older version of the key (resumable)."""
        return self._rewrapper.rewrap(_ref(ref), actor=actor)

    def disable_key(self, ref: Ref, *, actor: str | None = None) -> MasterKey:
        """Deny every use of the key from the next call on (reversible)."""
        return self._keys.disable(_ref(ref), actor=actor)

    def enable_key(self, ref: Ref, *, actor: str | None = None) -> MasterKey:
        """Allow a disabled key again."""
        return self._keys.enable(_ref(ref), actor=actor)

    def schedule_key_destruction(
        self, ref: Ref, *, waiting_period: float | None = None, actor: str | None = None
    ) -> MasterKey:
        """Start the waiting period before destruction (the key must be disabled)."""
        return self._keys.schedule_destruction(
            _ref(ref), waiting_period=waiting_period, actor=actor
        )

    def cancel_key_destruction(self, ref: Ref, *, actor: str | None = None) -> MasterKey:
        """Stop a pending destruction; the key stays disabled."""
        return self._keys.cancel_destruction(_ref(ref), actor=actor)

    def destroy_key(self, ref: Ref, *, actor: str | None = None) -> ShredEvidence:
        """Destroy a key whose waiting period is over: crypto-shred its scope keys. Final."""
        return self._keys.destroy(_ref(ref), actor=actor)

    def destroy_due(self, *, actor: str | None = None) -> list[ShredEvidence]:
        """Destroy every key whose waiting period is over (for a timer or a job)."""
        return self._keys.destroy_due(actor=actor)

    # -- revocation ------------------------------------------------------------------------------

    def revoke(self, rule: RevocationRule, *, actor: str | None = None) -> RevocationRule:
        """Put a revocation rule in force; it acts on the next call. Returns it with its id."""
        return self._keys.revoke(rule, actor=actor)

    def preview(self, rule: RevocationRule) -> RevocationPreview:
        """What a rule would deny, by service, without changing anything."""
        return self._keys.preview(rule)

    def lift(self, rule_id: str, *, actor: str | None = None) -> RevocationRule:
        """Remove a rule; what it denied opens again."""
        return self._keys.lift(rule_id, actor=actor)

    def rules(self, org: str | None = None) -> list[RevocationRule]:
        """The rules in force, optionally of one org."""
        return self._keys.rules(org)

    # -- backfill and rekey ----------------------------------------------------------------------

    def backfill(
        self,
        org: str,
        service_id: str,
        *,
        enable: bool,
        scopes: Collection[str] | None = None,
        actor: str | None = None,
    ) -> RewrapReport:
        """CMK turned on (``enable``) or off for a service: move the org's existing scope keys of
        that service from the platform key to its customer key, or back. No content touched."""
        return self._rewrapper.backfill(
            org, service_id, to_customer=enable, scopes=scopes, actor=actor
        )

    def rewrap_scope_key(self, ref: Ref, key_id: bytes) -> bool:
        """Re-wrap one scope key under the primary version of ``ref`` (for resumable jobs)."""
        return self._rewrapper.rewrap_one(_ref(ref), key_id)

    def backfill_scope_key(self, org: str, key_id: bytes, *, enable: bool) -> bool:
        """Backfill one scope key of ``org`` (for resumable jobs)."""
        return self._rewrapper.backfill_one(org, key_id, to_customer=enable)

    def scope_key(self, key_id: bytes) -> ScopeKeyRecord | None:
        """A stored scope key (wrapped shares and attributes; never its material)."""
        return self._deps.store.get(key_id)

    def scope_keys(self, selector: Selector | None = None) -> list[ScopeKeyRecord]:
        """The stored scope keys a selector matches (all unshredded ones without one)."""
        return list(self._deps.store.scan(selector or Selector()))

    def retire_scope_key(self, key_id: bytes, *, actor: str | None = None) -> None:
        """Seal no new content with this scope key."""
        self._rewrapper.retire(key_id, actor=actor)

    def shred_scope_key(
        self,
        key_id: bytes,
        *,
        actor: str | None = None,
        reason: str = "rekey",
        retired_at: float | None = None,
    ) -> bool:
        """Delete one scope key's wrapped shares *now*: the primitive the shred jobs call once
        a waiting period is over (a rekey's pending shred, RW-8, or a key's destruction,
        ``reason="key destruction"``). Irreversible and unchecked here, so neither the API nor
        the CLI reaches it; to shred after a rekey, let the rekey job schedule it.

        Returns once no process can seal under it any more: a sealable key is retired first
        and its shares deleted after the re-check window (about 1.5 s, KL-8a); ``retired_at``
        (when a rekey job retired it) shortens the wait by the time already passed."""
        return self._rewrapper.shred(key_id, actor=actor, reason=reason, retired_at=retired_at)

    def record(
        self,
        action: AuditAction,
        *,
        org: str | None,
        actor: str | None,
        detail: dict[str, str],
    ) -> None:
        """Record a change the service layer makes beside the key layer (a scope key's pending
        shred) in the audit log *before* it is made: AuditUnavailable means do not make it."""
        self._deps.auditor.emit(action, org=org, actor=actor, detail=detail)

    # -- cache -----------------------------------------------------------------------------------

    def forget(
        self, selector: Selector | None = None, *, scope_key_ids: Collection[bytes] = ()
    ) -> int:
        """Drop cached scope keys because another node changed what they depend on.

        Not an admin action, so not audited: the change itself was recorded where it was made.
        ``selector`` drops what it matches (nothing if None), ``scope_key_ids`` those ids.
        """
        cache = self._deps.cache
        dropped = 0 if selector is None else cache.evict(selector)
        return dropped + sum(cache.evict_id(key_id) for key_id in scope_key_ids)

    def cache_report(self) -> CacheReport:
        """The cache's limits and counters."""
        return self._deps.cache.report()

    def key_call_report(self) -> KeyCallReport:
        """The key-manager calls' counters and the per-org bulkhead's state (no org names)."""
        return self._deps.calls.report()

    def audit_failures(self) -> int:
        """How many audit events the sink refused since the node started."""
        return self._deps.auditor.failures

    def evict(
        self,
        *,
        key: Ref | None = None,
        org: str | None = None,
        service_id: str | None = None,
        scope: str | None = None,
        since: float | None = None,
        until: float | None = None,
        scope_key_id: bytes | None = None,
        actor: str | None = None,
    ) -> int:
        """Drop cached scope keys by key, org, service, scope, epoch range or id; all if none."""
        fields = (key, org, service_id, scope, since, until, scope_key_id)
        selector = (
            None
            if all(value is None for value in fields)
            else Selector(
                key=None if key is None else _ref(key),
                org=org,
                service_id=service_id,
                scope=scope,
                since=since,
                until=until,
                key_id=scope_key_id,
            )
        )
        return self._keys.evict(selector, actor=actor)
