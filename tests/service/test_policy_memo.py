"""The memoized policy engine gives exactly the engine's plans, bounded, and caches no errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ownkey.errors import PolicyError
from ownkey.service._plan import MemoizedPolicy, policy_engine

REQUEST: dict[str, Any] = {
    "orgs": {"acme": {"cmk": True, "services": ["0008"], "licensed_users": ["ann@acme.test"]}},
    "asset": {
        "service_id": "0008",
        "org": "acme",
        "owner": "ann@acme.test",
        "owner_kind": "user",
        "container": {"kind": "channel", "members": [{"user": "ann@acme.test", "org": "acme"}]},
        "component": "message",
    },
}


def test_memo_answers_what_the_engine_answers_and_calls_it_once() -> None:
    calls: list[object] = []

    def engine(request: Any) -> Any:
        calls.append(request)
        return policy_engine(request)

    memo = MemoizedPolicy(engine)
    first = memo(REQUEST)
    again = memo(copy.deepcopy(REQUEST))
    assert first.to_json() == again.to_json() == policy_engine(REQUEST).to_json()
    assert len(calls) == 1


def test_any_change_in_the_request_is_a_different_entry() -> None:
    memo = MemoizedPolicy()
    unlicensed = copy.deepcopy(REQUEST)
    unlicensed["orgs"]["acme"]["licensed_users"] = []
    assert memo(REQUEST).to_json()["protection"] == "customer"
    assert memo(unlicensed).to_json()["protection"] == "platform"


def test_bad_requests_raise_every_time_and_are_not_remembered() -> None:
    calls: list[object] = []

    def engine(request: Any) -> Any:
        calls.append(request)
        return policy_engine(request)

    memo = MemoizedPolicy(engine)
    bad = copy.deepcopy(REQUEST)
    bad["asset"]["service_id"] = "0024"
    for _ in range(2):
        with pytest.raises(PolicyError):
            memo(bad)
    assert len(calls) == 2


def test_memo_is_bounded() -> None:
    memo = MemoizedPolicy(max_entries=8)
    for i in range(50):
        request = copy.deepcopy(REQUEST)
        request["asset"]["owner"] = f"user{i}@acme.test"
        request["asset"]["container"]["members"] = [{"user": f"user{i}@acme.test", "org": "acme"}]
        memo(request)
    assert len(memo._plans) == 8
