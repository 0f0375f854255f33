"""The memo key tells apart what the policy engine tells apart, and refuses what it cannot see."""

from __future__ import annotations

import pytest

from ownkey.service._memo import LruMemo, request_key


def test_types_and_values_make_different_keys() -> None:
    base = {"orgs": {"acme": {"cmk": True}}, "scope": "s"}
    variants = [
        {"orgs": {"acme": {"cmk": 1}}, "scope": "s"},
        {"orgs": {"acme": {"cmk": 1.0}}, "scope": "s"},
        {"orgs": {"acme": {"cmk": False}}, "scope": "s"},
        {"orgs": {"acme": {"cmk": "true"}}, "scope": "s"},
        {"orgs": {"acme": {"cmk": [True]}}, "scope": "s"},
        {"orgs": {"acme": {"cmk": True}}, "scope": "t"},
    ]
    keys = {request_key(base), *(request_key(v) for v in variants)}
    assert None not in keys
    assert len(keys) == len(variants) + 1
    assert request_key(base) == request_key({"orgs": {"acme": {"cmk": True}}, "scope": "s"})


def test_the_left_out_field_does_not_count() -> None:
    one = {"asset": {"org": "acme"}, "asset_id": "m1"}
    two = {"asset": {"org": "acme"}, "asset_id": "m2"}
    assert request_key(one, without="asset_id") == request_key(two, without="asset_id")
    assert request_key(one) != request_key(two)


def test_subclasses_get_no_key() -> None:
    class Pairs(dict):  # type: ignore[type-arg]
        pass

    class Text(str):
        pass

    assert request_key(Pairs(a=1)) is None
    assert request_key({"a": Pairs()}) is None
    assert request_key({"a": [Text("x")]}) is None
    assert request_key({"a": object()}) is None


def test_memo_is_bounded_and_remembers_no_failure() -> None:
    memo: LruMemo[str, int] = LruMemo(max_entries=2)
    assert memo.get("a", lambda: 1) == 1
    assert memo.get("a", lambda: 2) == 1
    memo.get("b", lambda: 2)
    memo.get("c", lambda: 3)
    assert len(memo) == 2
    assert memo.get("a", lambda: 4) == 4  # "a" was the least recently used

    def fail() -> int:
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError, match="no"):
            memo.get("d", fail)
    assert memo.get("d", lambda: 5) == 5
