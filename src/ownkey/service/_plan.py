"""The adapter between the policy engine's plan and the key layer.

The key layer names keys with :class:`ownkey.keys.KeyRef` and does not import the policy engine;
this module reads a plan (the engine's :class:`~ownkey.policy.ProtectionPlan`, or any object or
mapping of the same shape, e.g. a stub in a test) into the few fields sealing needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ownkey import policy
from ownkey.keys import KeyRef

__all__ = ["PlanView", "PolicyFn", "policy_engine", "view_plan"]

#: Anything that answers a policy request (a mapping in DESIGN.md's shape) with a plan.
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
