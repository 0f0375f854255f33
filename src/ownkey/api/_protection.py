"""The protection a seal applied, as the data plane reports it (issue 14).

The plan is the policy's, computed again after sealing (it is memoized by the canonical request,
so this costs a dictionary lookup); the scope key id is the one the envelope header names, so the
answer says which key the bytes are really under. Should the org's settings change between the
seal and this call, ``keys`` can describe the newer plan; ``scope_key_id`` is always the truth.
"""

from __future__ import annotations

from typing import Any

from ownkey.api._models import ProtectionOut
from ownkey.envelope import peek_key_id
from ownkey.service import Runtime

__all__ = ["protection_of"]


def protection_of(runtime: Runtime, request: dict[str, Any], scope_key_id: bytes) -> ProtectionOut:
    plan = runtime.protector.explain(request)
    keys = [str(key) for key in plan.keys]
    return ProtectionOut(
        protection=plan.protection.value, keys=keys, scope_key_id=scope_key_id.hex()
    )


def sealed_key_id(sealed: bytes) -> bytes:
    """The scope key id in an envelope's header (unauthenticated, but ownkey just wrote it)."""
    return peek_key_id(sealed)
