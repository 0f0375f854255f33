"""The prepared path: a handle bound to one container's request, for the platform's hot loop.

A chat service seals thousands of messages per channel, each with the same request but its own
asset id. :class:`PreparedScope` parses that request once (a :class:`ScopeAddress`), asks the
policy once (on the first seal; opening never asks it), and then per message does only what
depends on the message: it checks the asset id, encodes the content context by splicing the id
into a prebuilt template, and seals or opens with the scope key's cipher.

Every per-message check stays: the handle holds a :class:`~ownkey.keys.Lease` per scope key,
which compares the cache's generation, the clock and a reserved use count on every message and
sends the call back to the full access path (key states, revocation rules, the scope key's own
record, the epoch) as soon as any of them moved. A revocation made through ownkey therefore
denies the very next message, exactly as on the plain path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ownkey.audit import Outcome
from ownkey.envelope import peek_key_id
from ownkey.errors import AccessDenied, InvalidCiphertext, OwnkeyError
from ownkey.keys import Lease, ScopeIdentity, ScopeKeys
from ownkey.service._access_log import AccessLog
from ownkey.service._plan import PlanView, opening_plan
from ownkey.service._request import ScopeAddress, check_actor, check_asset_id
from ownkey.service._restore import OpenGate

__all__ = ["PreparedScope"]

#: Scope keys a handle keeps an opening lease for (epochs and rekeys of one container).
_OPEN_LEASES = 64
Epoch = Callable[[str], tuple[int, int]]


class PreparedScope:
    """``seal(asset_id, data)`` / ``open(asset_id, sealed)`` for one container's request.

    Built by :meth:`~ownkey.service.Protector.prepare`; thread-safe; holds no plaintext key
    outside the cache entries its leases point to.
    """

    __slots__ = (
        "_access",
        "_address",
        "_epoch",
        "_gate",
        "_keys",
        "_last_open",
        "_opening",
        "_plan",
        "_plan_of",
        "_scope",
        "_sealing",
        "_service",
    )

    def __init__(
        self,
        keys: ScopeKeys,
        address: ScopeAddress,
        plan: Callable[[], PlanView],
        epoch: Epoch,
        access: AccessLog,
        gate: OpenGate,
    ) -> None:
        self._keys = keys
        self._access = access
        self._gate = gate
        self._address = address
        self._service = address.service_id
        self._scope = address.scope
        self._plan_of = plan
        self._plan: PlanView | None = None
        self._epoch = epoch
        self._sealing: Lease | None = None
        self._opening: dict[bytes, Lease] = {}
        # The last opening lease and ``u8 kid_len || kid``, matched at offset 2 of an envelope:
        # a container's messages mostly name one scope key, so most opens skip the lookup.
        self._last_open: tuple[bytes, Lease] | None = None

    def __repr__(self) -> str:
        return f"<PreparedScope scope={self._address.scope!r} keys=<redacted>>"

    @property
    def address(self) -> ScopeAddress:
        """The container this handle serves."""
        return self._address

    def identity(self) -> ScopeIdentity:
        """The identity of the scope key that seals this container's content now."""
        return self._identity()[0]

    def _planned(self) -> PlanView:
        """The plan, asked of the policy once per handle (on the first seal or open)."""
        plan = self._plan
        if plan is None:
            plan = self._plan = self._plan_of()
        return plan

    def _identity(self) -> tuple[ScopeIdentity, float]:
        plan = self._planned()
        start, seconds = self._epoch(plan.service_id)
        address = self._address
        identity = ScopeIdentity(
            orgs=address.orgs(tuple(key.org for key in plan.keys if key.org)),
            service_id=plan.service_id,
            scope=address.scope,
            epoch_start=start,
            epoch_seconds=seconds,
            keys=plan.keys,
        )
        return identity, float(start + seconds)

    def seal_lease(self) -> Lease:
        """A valid lease on the scope key that seals now (the full path when the last one ended)."""
        lease = self._sealing
        if lease is None or not lease.valid():
            identity, until = self._identity()
            lease = self._sealing = self._keys.seal_lease(identity, until=until)
        return lease

    def seal(self, asset_id: str, data: bytes, *, actor: str | None = None) -> bytes:
        """Seal one asset of this container (as ``Protector.seal`` with this request would).

        ``actor`` is the end user on whose behalf the platform acts (not the asset's owner):
        every seal and open lands in the orgs' key-usage log with it (service/_access_log.py).
        """
        context = self._address.template.encode(check_asset_id(asset_id))
        if actor is not None:
            actor = check_actor(actor)
        try:
            entry = self.seal_lease().entry
        except AccessDenied:
            self._noted(asset_id, actor, "seal", Outcome.DENIED.value, None)
            raise
        sealed = entry.cipher.seal_encoded(data, context)
        self._access.note(entry.identity.orgs, self._service, self._scope, asset_id, actor, "seal")
        return sealed

    def seal_many(
        self, items: Iterable[tuple[str, bytes]], *, actor: str | None = None
    ) -> list[bytes | OwnkeyError]:
        """Seal many assets of this container in one call: each item's result on its own, in
        order (its envelope, or the error that refused it).

        An item's own fault (a bad asset id, too many bytes) fails that item alone; what
        concerns the container (a revocation, a key manager down, the audit sink down) fails
        every item the same way, since they share the scope key. The policy is asked once.
        """
        results: list[bytes | OwnkeyError] = []
        for asset_id, data in items:
            try:
                results.append(self.seal(asset_id, data, actor=actor))
            except OwnkeyError as exc:
                results.append(exc)
        return results

    def open_many(
        self, items: Iterable[tuple[str, bytes]], *, actor: str | None = None
    ) -> list[bytes | OwnkeyError]:
        """Open many envelopes of this container (``(asset_id, sealed)`` pairs), each item's
        result on its own, as :meth:`seal_many`: a damaged envelope fails alone."""
        results: list[bytes | OwnkeyError] = []
        for asset_id, sealed in items:
            try:
                results.append(self.open(asset_id, sealed, actor=actor))
            except OwnkeyError as exc:
                results.append(exc)
        return results

    def _noted(
        self,
        asset_id: str,
        actor: str | None,
        operation: str,
        outcome: str,
        orgs: tuple[str, ...] | None,
    ) -> None:
        """Count a use whose scope key was not reached (a denial) under the address's orgs."""
        self._access.note(
            self._address.orgs() if orgs is None else orgs,
            self._service,
            self._address.scope,
            asset_id,
            actor,
            operation,
            outcome,
        )

    def open_lease(self, key_id: bytes) -> Lease:
        """A valid lease on scope key ``key_id``, which must belong to this container's scope."""
        self._gate.check()
        lease = self._opening.get(key_id)
        if lease is None or not lease.valid():
            lease = self._keys.open_lease(key_id)
            identity = lease.entry.identity
            if identity.scope != self._address.scope:
                raise InvalidCiphertext()  # another scope's key: indistinguishable from garbage
            plan = self._plan if self._plan is not None else opening_plan(self._plan_of)
            if plan is not None:
                self._plan = plan
                self._keys.check_opening(identity, plan.keys, key_id)
            if len(self._opening) >= _OPEN_LEASES:
                self._opening.clear()
            self._opening[key_id] = lease
        self._last_open = (bytes((len(key_id),)) + key_id, lease)
        return lease

    def open(self, asset_id: str, sealed: bytes, *, actor: str | None = None) -> bytes:
        """Open what :meth:`seal` (or ``Protector.seal``) returned for this asset (``actor``
        as for :meth:`seal`)."""
        context = self._address.template.encode(check_asset_id(asset_id))
        if actor is not None:
            actor = check_actor(actor)
        if self._gate.reason is not None:  # a restore waits for an operator (service/_restore.py)
            self._gate.check()
        last = self._last_open
        if last is not None and sealed.startswith(last[0], 2) and last[1].valid():
            lease = last[1]  # the cipher checks the version and suite bytes before it
        else:
            try:
                lease = self.open_lease(peek_key_id(sealed))
            except AccessDenied:
                self._noted(asset_id, actor, "open", Outcome.DENIED.value, None)
                raise
        entry = lease.entry
        plaintext = entry.cipher.open_encoded(sealed, context)
        self._access.note(entry.identity.orgs, self._service, self._scope, asset_id, actor, "open")
        return plaintext
