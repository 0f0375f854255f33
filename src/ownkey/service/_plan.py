"""The adapter between the policy engine's plan and the key layer.

The key layer names keys with :class:`ownkey.keys.KeyRef` and does not import the policy engine;
this module reads a plan (the engine's :class:`~ownkey.policy.ProtectionPlan`, or any object or
mapping of the same shape, e.g. a stub in a test) into the few fields sealing needs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from ownkey import policy
from ownkey.keys import KeyRef
from ownkey.service._memo import LruMemo, request_key

__all__ = ["MemoizedPolicy", "PlanView", "PolicyFn", "policy_engine", "view_plan"]

#: Anything that answers a policy request (a mapping in docs/policy.md's shape) with a plan.
#: A policy that also has ``revision(request) -> Hashable`` (what its answer depends on besides
#: the request) lets the Protector remember one prepared handle per request and revision.
PolicyFn = Callable[[Mapping[str, Any]], Any]


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
        self._plans: LruMemo[Hashable, Any] = LruMemo(max_entries)

    def __call__(self, request: Mapping[str, Any]) -> Any:
        key = request_key(request)
        if key is None:
            return self._engine(request)  # not plain JSON: let the engine judge it, uncached
        # A bad request raises PolicyError from the engine: nothing is remembered.
        return self._plans.get(key, lambda: self._engine(request))

    def revision(self, request: Mapping[str, Any]) -> Hashable:
        """What the plan depends on besides the request: nothing (the engine is pure)."""
        return ()


def _field(plan: Any, name: str) -> Any:
    return plan[name] if isinstance(plan, Mapping) else getattr(plan, name)


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def view_plan(plan: Any) -> PlanView:
    """Read a plan object or mapping; its keys keep the plan's order (the share order)."""
    keys = tuple(
        KeyRef(_text(_field(key, "type")), _field(key, "org") if _has_org(key) else None)
        for key in _field(plan, "keys")
    )
    return PlanView(_text(_field(plan, "service_id")), _text(_field(plan, "protection")), keys)


def _has_org(key: Any) -> bool:
    if isinstance(key, Mapping):
        return key.get("org") is not None
    return getattr(key, "org", None) is not None
