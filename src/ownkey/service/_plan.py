"""The adapter between the policy engine's plan and the key layer.

The policy engine and the key layer share one :class:`~ownkey.keys.KeyRef` (``ownkey.policy.KeyRef``
is the same class); this module reads the engine's :class:`~ownkey.policy.ProtectionPlan` (whoever
produced it: the engine, the directory policy, a test's model) into the few fields sealing needs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from ownkey import policy
from ownkey.errors import InvalidRequest, NotFound
from ownkey.keys import KeyRef
from ownkey.service._memo import LruMemo, request_key

__all__ = [
    "MemoizedPolicy",
    "PlanView",
    "PolicyFn",
    "opening_plan",
    "policy_engine",
    "view_plan",
]

#: Anything that answers a policy request (a mapping in docs/policy.md's shape) with a plan.
#: A policy that also has ``revision(request) -> Hashable`` (what its answer depends on besides
#: the request) lets the Protector remember one prepared handle per request and revision.
PolicyFn = Callable[[Mapping[str, Any]], policy.ProtectionPlan]


@dataclass(frozen=True, slots=True)
class PlanView:
    """The part of a protection plan that sealing uses."""

    service_id: str
    protection: str
    keys: tuple[KeyRef, ...]


def policy_engine(request: Mapping[str, Any]) -> policy.ProtectionPlan:
    """ownkey's own policy engine: strict parsing, then :func:`ownkey.policy.explain`."""
    return policy.explain(policy.parse_request(request))


class MemoizedPolicy:
    """ownkey's policy engine behind a bounded memo keyed by the frozen request.

    The engine is a pure function of the request, and the request carries every input (org
    settings, licences, members), so a remembered plan is exactly the plan the engine would give:
    nothing to invalidate. Chat seals thousands of messages per channel with one request shape;
    parsing and explaining it once instead of per message takes most of the seal cost away.
    """

    def __init__(self, engine: PolicyFn = policy_engine, *, max_entries: int = 4096) -> None:
        self._engine = engine
        self._plans: LruMemo[Hashable, policy.ProtectionPlan] = LruMemo(max_entries)

    def __call__(self, request: Mapping[str, Any]) -> policy.ProtectionPlan:
        key = request_key(request)
        if key is None:
            return self._engine(request)  # not plain JSON: let the engine judge it, uncached
        # A bad request raises InvalidRequest (the engine: PolicyError); nothing is remembered.
        return self._plans.get(key, lambda: self._engine(request))

    def revision(self, request: Mapping[str, Any]) -> Hashable:
        """What the plan depends on besides the request: nothing (the engine is pure)."""
        return ()


def view_plan(plan: policy.ProtectionPlan) -> PlanView:
    """The plan's service, protection and keys; the keys keep the plan's order (the share
    order)."""
    return PlanView(plan.service_id, plan.protection.value, plan.keys)


def opening_plan(plan: Callable[[], PlanView]) -> PlanView | None:
    """The plan an opening is checked against (SK-8), or None when the request does not say
    enough for one.

    Opening needs only the content context (``org``, ``service_id``, ``scope``, ``asset_id``,
    ``component``): a stored object is opened by its context alone, and content sealed under a
    customer key stays under it whatever the policy says later. When the caller sends the whole
    asset, as ``/v1/open`` does, its plan must find every customer key it names among the scope
    key's keys; a bare context is checked by the scope key's own record only.
    """
    try:
        return plan()
    except (InvalidRequest, NotFound):
        return None
