"""Administration of customer and platform keys and of revocation rules (KL-1 to KL-12, RV-*).

Every change follows one order, so a failure anywhere leaves things safe:

1. the lifecycle table says whether the change is legal (nothing happens otherwise, KL-2);
2. the change is recorded in the audit log; if that fails, nothing happens (KL-12);
3. the key manager is told, then ownkey's registry, then the cache is evicted (KL-8).

If step 3 fails, a ``failed`` event follows; the states that can result (the provider stricter
than ownkey, or ownkey stricter than the provider) both deny, never allow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ownkey._refs import KeyRef, KeyType
from ownkey.audit import AuditAction, Outcome
from ownkey.errors import (
    AccessDenied,
    AuditUnavailable,
    ConfigError,
    Conflict,
    InvalidRequest,
    LifecycleError,
    NotFound,
)
from ownkey.keys._calls import describe_key, unwrap_share, wrap_share
from ownkey.keys._deps import KeyDeps
from ownkey.keys._lifecycle import KeyAction, KeyState, destruction_due, next_state
from ownkey.keys._ports import DestructionReceipt, KeyDescription, KeyOwnership
from ownkey.keys._records import MasterKey, Selector, describe_selector
from ownkey.keys._revocation import RevocationPreview, RevocationRule
from ownkey.policy import check_duration

__all__ = ["KeyAdmin", "ShredEvidence"]

_KEY_CHECK_PURPOSE = "ownkey.key-check"
_WITNESS_PURPOSE = "ownkey.audit-witness"
#: Appended to an org's name for the probe that must be refused (org names cannot hold '~').
_NOT_THIS_ORG = "~not-this-org"


def _check_context(ref: KeyRef, org: str | None = None) -> dict[str, str]:
    """The round-trip probe's context: it names the key's org like every share's context does
    (``org``), so a key policy that conditions on it admits the probe (KL-13)."""
    context = {"purpose": _KEY_CHECK_PURPOSE}
    owner = ref.org if org is None else org
    if owner is not None:
        context["org"] = owner
    return context


_ACTIONS = {
    KeyAction.DISABLE: AuditAction.KEY_DISABLE,
    KeyAction.ENABLE: AuditAction.KEY_ENABLE,
    KeyAction.SCHEDULE_DESTRUCTION: AuditAction.KEY_SCHEDULE_DESTRUCTION,
    KeyAction.CANCEL_DESTRUCTION: AuditAction.KEY_CANCEL_DESTRUCTION,
    KeyAction.DESTROY: AuditAction.KEY_DESTROY,
    KeyAction.ROTATE: AuditAction.KEY_ROTATE,
}


@dataclass(frozen=True, slots=True)
class ShredEvidence:
    """What a destruction deleted: recorded in the audit log as crypto-shred evidence (KL-9).

    ``digest`` is SHA-256 over the sorted ids of the shredded scope keys, so an auditor holding
    a list of ids can check it without the log carrying every id. ``key_manager`` is what the
    key manager answered to the destruction (destroyed, deletion scheduled with its date, or the
    key left in the customer's key manager): the part of the evidence that is not ownkey's own
    word. The audit chain hashes and signs both.
    """

    key: KeyRef
    at: float
    scope_keys: int
    digest: str
    key_manager: DestructionReceipt

    def detail(self) -> dict[str, str]:
        """The evidence as the ``scope_key.shred`` audit event's detail."""
        detail = {
            "scope_keys": str(self.scope_keys),
            "ids_sha256": self.digest,
            "key_manager": self.key_manager.outcome.value,
            "key_manager_statement": self.key_manager.statement,
        }
        detail.update(
            (f"key_manager.{name}", value) for name, value in self.key_manager.answer.items()
        )
        return detail


def _names_a_reference(label: str | None) -> bool:
    """Whether a key's creation label names a key reference (then only that one may bind it;
    an operator may bind a key labelled otherwise, e.g. made by hand for an import)."""
    try:
        KeyRef.parse(label or "")
    except ValueError:
        return False
    return True


class KeyAdmin:
    """Lifecycle of customer and platform keys, revocation rules, cache eviction."""

    def __init__(
        self,
        deps: KeyDeps,
        *,
        default_provider: str,
        min_waiting_period: float,
        default_waiting_period: float,
    ) -> None:
        if default_waiting_period < min_waiting_period:
            raise ConfigError("the default destruction waiting period is below the minimum")
        self._deps = deps
        # Changes to one process's view of a key are serialised (read, check, write); across
        # nodes the storage adapter's transactions do the same.
        self._lock = threading.RLock()
        self._default_provider = default_provider
        self._min_wait = min_waiting_period
        self._default_wait = default_waiting_period

    # -- keys ------------------------------------------------------------------------------------

    def get(self, ref: KeyRef) -> MasterKey:
        """ownkey's record of ``ref``; NotFound if none is registered."""
        master = self._deps.registry.get(ref)
        if master is None:
            raise NotFound(f"no key is registered for {ref}")
        return master

    def list_keys(self) -> Sequence[MasterKey]:
        """Every registered key, in plan order."""
        return self._deps.registry.all()

    def _check_replaceable(self, ref: KeyRef) -> None:
        existing = self._deps.registry.get(ref)
        if existing is not None and existing.state is not KeyState.DESTROYED:
            raise LifecycleError(f"{ref} already has a key ({existing.state.value})")
        if ref.type is KeyType.HYBRID:
            raise InvalidRequest(
                "key", f"{ref} is a client-side key: a platform deployment never holds it"
            )

    def create(
        self, ref: KeyRef, *, provider: str | None = None, actor: str | None = None
    ) -> MasterKey:
        """Create a key in a provider and register it for ``ref``.

        A destroyed key can be followed by a new one for new content; what the destroyed key
        protected stays destroyed (its wrapped shares are gone, KL-9).
        """
        with self._lock:
            self._check_replaceable(ref)
            name = provider or self._default_provider
            backend = self._deps.provider(name)
            key_id = backend.create_key(label=str(ref))
            version = describe_key(self._deps, ref, name, key_id).primary_version
            now = self._deps.clock()
            master = MasterKey(ref, name, key_id, version, KeyState.ENABLED, now, now)
            return self._register(master, actor, AuditAction.KEY_CREATE)

    def register(
        self,
        ref: KeyRef,
        *,
        provider: str,
        key_id: str,
        actor: str | None = None,
        operator: bool = False,
    ) -> MasterKey:
        """Register an existing key for ``ref`` once the caller is shown to control it.

        A key id is bound to at most one reference (Conflict otherwise, KL-14), so nobody can
        drive another org's key or the platform key by naming its id. Control is proven by the
        key itself where it can say (KL-15): a key of an embedded store must have been created
        for ``ref``; an external key must be refused by its key manager under another org's
        context (its own key policy binds it to ``ref``'s org). Where neither holds, only an
        ``operator`` (the command line, the platform's operator) may register it. Then a real
        wrap/unwrap round trip proves the key works (KL-13).
        """
        with self._lock:
            return self._register_existing(ref, provider, key_id, actor, operator)

    def _check_unbound(self, ref: KeyRef, provider: str, key_id: str) -> None:
        for master in self._deps.registry.all():
            if master.provider == provider and master.key_id == key_id and master.ref != ref:
                raise Conflict(f"key {key_id} of {provider} is bound to another key reference")

    def _prove_control(self, candidate: MasterKey, operator: bool) -> None:
        ref = candidate.ref
        backend = self._deps.provider(candidate.provider)
        if isinstance(backend, KeyOwnership):
            label = backend.created_for(candidate.key_id)
            if label != str(ref) and (not operator or _names_a_reference(label)):
                raise AccessDenied(
                    f"key {candidate.key_id} was not created for {ref}", reason="policy"
                )
            return
        if ref.org is None:
            if not operator:
                raise AccessDenied("only the operator registers the platform key", reason="policy")
            return
        probe = self._deps.random(32)
        try:
            wrap_share(
                self._deps,
                candidate,
                probe,
                _check_context(ref, ref.org + _NOT_THIS_ORG),
                retry=False,
            )
        except AccessDenied:
            return  # the key's own policy binds it to this org: it proves control
        if not operator:
            raise AccessDenied(
                f"key {candidate.key_id} is not bound to org {ref.org!r} by its key policy; "
                "only the operator can register it (ownkey key register)",
                reason="policy",
            )

    def _register_existing(
        self, ref: KeyRef, provider: str, key_id: str, actor: str | None, operator: bool
    ) -> MasterKey:
        self._check_replaceable(ref)
        self._check_unbound(ref, provider, key_id)
        description = describe_key(self._deps, ref, provider, key_id)
        if description.state is not KeyState.ENABLED:
            raise Conflict(f"key {key_id} in {provider} is {description.state.value}")
        now = self._deps.clock()
        candidate = MasterKey(
            ref, provider, key_id, description.primary_version, KeyState.ENABLED, now, now
        )
        self._prove_control(candidate, operator)
        probe = self._deps.random(32)
        context = _check_context(ref)
        wrapped = wrap_share(self._deps, candidate, probe, context)
        if unwrap_share(self._deps, wrapped, context) != probe:
            raise ConfigError(f"key {key_id} in {provider} failed a wrap/unwrap round trip")
        return self._register(candidate, actor, AuditAction.KEY_REGISTER)

    def check(self, ref: KeyRef) -> KeyDescription:
        """Ask the key manager about a registered key, then wrap and unwrap a random probe
        under it (both calls audited): its description if the round trip holds.

        Raises what the manager says (AccessDenied for a disabled or destroyed key,
        KeyUnavailable for an outage) and ConfigError if the probe does not come back.
        """
        master = self.get(ref)
        description = describe_key(self._deps, ref, master.provider, master.key_id)
        probe = self._deps.random(32)
        context = _check_context(ref)
        wrapped = wrap_share(self._deps, master, probe, context)
        if unwrap_share(self._deps, wrapped, context) != probe:
            raise ConfigError(f"{ref} failed a wrap/unwrap round trip")
        return description

    def attest(self, ref: KeyRef, statement: Mapping[str, str]) -> None:
        """Wrap a random probe under ``ref``'s key with ``statement`` in the encryption context
        (audited like every wrap): the key manager's own log (e.g. CloudTrail's
        ``encryptionContext``) then holds the statement, outside ownkey's reach. The audit
        witness uses it to put the chain head there (AUD-11)."""
        master = self.get(ref)
        context = dict(statement, **_check_context(ref))
        context["purpose"] = _WITNESS_PURPOSE
        wrap_share(self._deps, master, self._deps.random(32), context)

    def _register(self, master: MasterKey, actor: str | None, action: AuditAction) -> MasterKey:
        self._deps.auditor.emit(
            action,
            org=master.ref.org,
            key=str(master.ref),
            actor=actor,
            detail={
                "provider": master.provider,
                "key_id": master.key_id,
                "version": master.version,
            },
        )
        self._deps.registry.put(master)
        return master

    def _transition(
        self,
        ref: KeyRef,
        action: KeyAction,
        apply: Callable[[MasterKey], MasterKey],
        actor: str | None,
        detail: dict[str, str] | None = None,
    ) -> MasterKey:
        with self._lock:
            return self._transition_locked(ref, action, apply, actor, detail)

    def _transition_locked(
        self,
        ref: KeyRef,
        action: KeyAction,
        apply: Callable[[MasterKey], MasterKey],
        actor: str | None,
        detail: dict[str, str] | None,
    ) -> MasterKey:
        master = self.get(ref)
        next_state(master.state, action)  # KL-2: refuse before anything is recorded
        event = _ACTIONS[action]
        detail = dict(detail or {}, key_id=master.key_id, from_state=master.state.value)
        self._deps.auditor.emit(event, org=ref.org, key=str(ref), actor=actor, detail=detail)
        try:
            updated = apply(master)
        except AuditUnavailable:
            raise
        except Exception as exc:
            self._deps.auditor.emit(
                event,
                Outcome.FAILED,
                org=ref.org,
                key=str(ref),
                actor=actor,
                detail=dict(detail, error=type(exc).__name__),
            )
            raise
        self._deps.registry.put(updated)
        if not updated.state.usable:
            self._deps.cache.evict(Selector(key=ref))
        return updated

    def _moved(self, master: MasterKey, action: KeyAction) -> MasterKey:
        return dataclasses.replace(
            master, state=next_state(master.state, action), changed_at=self._deps.clock()
        )

    def disable(self, ref: KeyRef, *, actor: str | None = None) -> MasterKey:
        """Deny every use of the key until it is enabled again (reversible)."""

        def apply(master: MasterKey) -> MasterKey:
            self._deps.provider(master.provider).disable(master.key_id)
            return self._moved(master, KeyAction.DISABLE)

        return self._transition(ref, KeyAction.DISABLE, apply, actor)

    def enable(self, ref: KeyRef, *, actor: str | None = None) -> MasterKey:
        """Allow the key's use again."""

        def apply(master: MasterKey) -> MasterKey:
            self._deps.provider(master.provider).enable(master.key_id)
            return self._moved(master, KeyAction.ENABLE)

        return self._transition(ref, KeyAction.ENABLE, apply, actor)

    def schedule_destruction(
        self, ref: KeyRef, *, waiting_period: float | None = None, actor: str | None = None
    ) -> MasterKey:
        """Mark a disabled key for destruction after a waiting period (KL-4); cancellable."""
        wait = self._default_wait if waiting_period is None else waiting_period
        # Bad input (InvalidRequest: exit 2, HTTP 422), checked before anything is stored: a
        # destroy_at beyond 9999 would be stored and then fail every listing.
        wait = check_duration("waiting_period", wait, minimum=self._min_wait)
        destroy_at = self._deps.clock() + wait

        def apply(master: MasterKey) -> MasterKey:
            self._deps.provider(master.provider).schedule_destruction(
                master.key_id, destroy_at=destroy_at
            )
            moved = self._moved(master, KeyAction.SCHEDULE_DESTRUCTION)
            return dataclasses.replace(moved, destroy_at=destroy_at)

        return self._transition(
            ref,
            KeyAction.SCHEDULE_DESTRUCTION,
            apply,
            actor,
            {"destroy_at": repr(destroy_at), "waiting_period": repr(wait)},
        )

    def cancel_destruction(self, ref: KeyRef, *, actor: str | None = None) -> MasterKey:
        """Stop a pending destruction; the key stays disabled (KL-5).

        Only during the waiting period: once it is over the key manager may already have
        destroyed the key on its own schedule, so there is nothing left to cancel (KL-4).
        """
        master = self.get(ref)
        if master.destroy_at is not None and self._deps.clock() >= master.destroy_at:
            raise LifecycleError(f"the waiting period of {ref} is over; it cannot be cancelled")

        def apply(master: MasterKey) -> MasterKey:
            self._deps.provider(master.provider).cancel_destruction(master.key_id)
            moved = self._moved(master, KeyAction.CANCEL_DESTRUCTION)
            return dataclasses.replace(moved, destroy_at=None)

        return self._transition(ref, KeyAction.CANCEL_DESTRUCTION, apply, actor)

    def destroy(self, ref: KeyRef, *, actor: str | None = None) -> ShredEvidence:
        """Destroy a key whose waiting period is over: crypto-shred every scope key under it.

        Every scope key with a share under the key loses all its wrapped shares (a tombstone
        stays, so its content opens as *destroyed* forever), then the provider is asked to
        destroy the key (a customer's external key only where ownkey was configured to own that
        step; otherwise it says the key remains in the customer's key manager), and the
        evidence, with the provider's answer, is recorded (KL-9). Irreversible.
        """
        with self._lock:
            return self._destroy(ref, actor)

    def _destroy(self, ref: KeyRef, actor: str | None) -> ShredEvidence:
        master = self.get(ref)
        now = self._deps.clock()
        if master.state is KeyState.PENDING_DESTRUCTION and (
            master.destroy_at is None or now < master.destroy_at
        ):
            raise LifecycleError(f"the waiting period of {ref} ends at {master.destroy_at!r}")
        evidence: list[ShredEvidence] = []

        def apply(current: MasterKey) -> MasterKey:
            scope_keys, digest = self._shred_under(ref, now)
            receipt = self._deps.provider(current.provider).destroy(current.key_id)
            evidence.append(ShredEvidence(ref, now, scope_keys, digest, receipt))
            return self._moved(current, KeyAction.DESTROY)

        self._transition(ref, KeyAction.DESTROY, apply, actor)
        self._deps.cache.evict(Selector(key=ref))
        proof = evidence[0]
        self._deps.auditor.emit(
            AuditAction.SCOPE_KEY_SHRED,
            org=ref.org,
            key=str(ref),
            actor=actor,
            detail=dict(proof.detail(), provider=master.provider, key_id=master.key_id),
        )
        return proof

    def _shred_under(self, ref: KeyRef, now: float) -> tuple[int, str]:
        store = self._deps.store
        shredded = sorted(
            record.key_id
            for record in store.scan(Selector(key=ref))
            if store.shred(record.key_id, now) is not None
        )
        return len(shredded), hashlib.sha256(b"".join(shredded)).hexdigest()

    def destroy_due(self, *, actor: str | None = None) -> list[ShredEvidence]:
        """Destroy every key whose waiting period is over (run by a timer or a job)."""
        now = self._deps.clock()
        due = [
            master.ref
            for master in self._deps.registry.all()
            if destruction_due(master.state, master.destroy_at, now)
        ]
        return [self.destroy(ref, actor=actor) for ref in due]

    def rotate(self, ref: KeyRef, *, actor: str | None = None) -> MasterKey:
        """Make a new primary version; new scope keys wrap under it, old wraps still open.

        Re-wrapping existing scope keys under the new version is :meth:`Rewrapper.rewrap`.
        """

        def apply(master: MasterKey) -> MasterKey:
            version = self._deps.provider(master.provider).rotate(master.key_id)
            return dataclasses.replace(self._moved(master, KeyAction.ROTATE), version=version)

        return self._transition(ref, KeyAction.ROTATE, apply, actor)

    # -- revocation rules ------------------------------------------------------------------------

    def revoke(self, rule: RevocationRule, *, actor: str | None = None) -> RevocationRule:
        """Put a rule in force: it denies on the next call and evicts what it selects (RV-2)."""
        rule.check()
        stored = dataclasses.replace(
            rule,
            rule_id=rule.rule_id or "r-" + self._deps.random(8).hex(),
            created_at=self._deps.clock(),
            actor=actor,
        )
        self._deps.auditor.emit(
            AuditAction.REVOCATION_ADD,
            org=stored.org,
            key=str(stored.wrapping_key),
            actor=actor,
            detail=stored.describe(),
        )
        self._deps.rules.add(stored)
        self._deps.cache.evict(stored.selector)
        return stored

    def lift(self, rule_id: str, *, actor: str | None = None) -> RevocationRule:
        """Remove a rule: access it denied is restored (revocation is reversible, RV-3)."""
        rule = next((r for r in self._deps.rules.all() if r.rule_id == rule_id), None)
        if rule is None:
            raise NotFound(f"no revocation rule {rule_id}")
        self._deps.auditor.emit(
            AuditAction.REVOCATION_REMOVE,
            org=rule.org,
            key=str(rule.wrapping_key),
            actor=actor,
            detail=rule.describe(),
        )
        return self._deps.rules.remove(rule_id)

    def rules(self, org: str | None = None) -> list[RevocationRule]:
        """The rules in force, optionally of one org."""
        return [rule for rule in self._deps.rules.all() if org is None or rule.org == org]

    def preview(self, rule: RevocationRule) -> RevocationPreview:
        """Count the scope keys a rule would deny, by service, without changing anything (RV-4)."""
        rule.check()
        counts: dict[str, int] = {}
        for record in self._deps.store.scan(rule.selector):
            counts[record.service_id] = counts.get(record.service_id, 0) + 1
        return RevocationPreview(rule, dict(sorted(counts.items())))

    def evict(self, selector: Selector | None = None, *, actor: str | None = None) -> int:
        """Drop cached scope keys by key, org, service, scope, epoch range or id (CA-4)."""
        evicted = self._deps.cache.evict(selector)
        detail = {"evicted": str(evicted)}
        if selector is not None:
            detail.update(describe_selector(selector))
        self._deps.auditor.emit(AuditAction.CACHE_EVICT, actor=actor, detail=detail)
        return evicted
