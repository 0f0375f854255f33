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

from collections.abc import Callable

from ownkey.envelope import peek_key_id
from ownkey.errors import InvalidCiphertext
from ownkey.keys import Lease, ScopeIdentity, ScopeKeys
from ownkey.service._plan import PlanView
from ownkey.service._request import ScopeAddress, check_asset_id

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
        "_address",
        "_epoch",
        "_keys",
        "_last_open",
        "_opening",
        "_plan",
        "_plan_of",
        "_sealing",
    )

    def __init__(
        self,
        keys: ScopeKeys,
        address: ScopeAddress,
        plan: Callable[[], PlanView],
        epoch: Epoch,
    ) -> None:
        self._keys = keys
        self._address = address
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

    def _identity(self) -> tuple[ScopeIdentity, float]:
        plan = self._plan
        if plan is None:
            plan = self._plan = self._plan_of()
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

    def seal(self, asset_id: str, data: bytes) -> bytes:
        """Seal one asset of this container (as ``Protector.seal`` with this request would)."""
        context = self._address.template.encode(check_asset_id(asset_id))
        return self.seal_lease().entry.cipher.seal_encoded(data, context)

    def open_lease(self, key_id: bytes) -> Lease:
        """A valid lease on scope key ``key_id``, which must belong to this container's scope."""
        lease = self._opening.get(key_id)
        if lease is None or not lease.valid():
            lease = self._keys.open_lease(key_id)
            if lease.entry.identity.scope != self._address.scope:
                raise InvalidCiphertext()  # another scope's key: indistinguishable from garbage
            if len(self._opening) >= _OPEN_LEASES:
                self._opening.clear()
            self._opening[key_id] = lease
        self._last_open = (bytes((len(key_id),)) + key_id, lease)
        return lease

    def open(self, asset_id: str, sealed: bytes) -> bytes:
        """Open what :meth:`seal` (or ``Protector.seal``) returned for this asset."""
        context = self._address.template.encode(check_asset_id(asset_id))
        last = self._last_open
        if last is not None and sealed.startswith(last[0], 2) and last[1].valid():
            lease = last[1]  # the cipher checks the version and suite bytes before it
        else:
            lease = self.open_lease(peek_key_id(sealed))
        return lease.entry.cipher.open_encoded(sealed, context)
