"""The lifecycle table (docs/spec/key-lifecycle.md section 2)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ownkey.errors import LifecycleError
from ownkey.keys import TRANSITIONS, KeyAction, KeyState, next_state

S, A = KeyState, KeyAction


def test_the_table_is_the_one_in_the_spec() -> None:
    """KL-1, KL-5: exactly these moves; cancelling leaves the key disabled."""
    assert TRANSITIONS == {
        (S.ENABLED, A.DISABLE): S.DISABLED,
        (S.ENABLED, A.ROTATE): S.ENABLED,
        (S.DISABLED, A.ENABLE): S.ENABLED,
        (S.DISABLED, A.SCHEDULE_DESTRUCTION): S.PENDING_DESTRUCTION,
        (S.PENDING_DESTRUCTION, A.CANCEL_DESTRUCTION): S.DISABLED,
        (S.PENDING_DESTRUCTION, A.DESTROY): S.DESTROYED,
    }


@pytest.mark.parametrize(("state", "action"), list(itertools.product(KeyState, KeyAction)))
def test_every_move_not_in_the_table_raises(state: KeyState, action: KeyAction) -> None:
    """KL-2: anything the table does not list is a LifecycleError."""
    if (state, action) in TRANSITIONS:
        assert next_state(state, action) is TRANSITIONS[(state, action)]
    else:
        with pytest.raises(LifecycleError, match=action.value):
            next_state(state, action)


@given(st.lists(st.sampled_from(KeyAction), max_size=30))
def test_destroyed_is_final_and_only_reached_through_pending(actions: list[KeyAction]) -> None:
    """KL-3: no sequence of actions leaves destroyed; only destroy after scheduling reaches it."""
    state = KeyState.ENABLED
    for action in actions:
        try:
            new = next_state(state, action)
        except LifecycleError:
            continue
        if new is KeyState.DESTROYED:
            assert state is KeyState.PENDING_DESTRUCTION
        if state is KeyState.DESTROYED:  # pragma: no cover - would be the bug
            pytest.fail("left destroyed")
        state = new


def test_only_enabled_is_usable() -> None:
    """KL-6, KL-7."""
    assert [state for state in KeyState if state.usable] == [KeyState.ENABLED]


def test_error_message_says_what_is_allowed() -> None:
    with pytest.raises(LifecycleError, match="allowed: enable, schedule_destruction"):
        next_state(KeyState.DISABLED, KeyAction.ROTATE)
    with pytest.raises(LifecycleError, match="final"):
        next_state(KeyState.DESTROYED, KeyAction.ENABLE)


def test_destruction_is_due_only_for_a_pending_key_at_or_past_its_date() -> None:
    """KL-4: the one rule every provider and the key admin apply to scheduled destruction."""
    from ownkey.keys import KeyState, destruction_due

    pending = KeyState.PENDING_DESTRUCTION
    assert destruction_due(pending, 100.0, 100.0)
    assert destruction_due(pending, 100.0, 250.0)
    assert not destruction_due(pending, 100.0, 99.9)
    assert not destruction_due(pending, None, 1e12)
    for state in (KeyState.ENABLED, KeyState.DISABLED, KeyState.DESTROYED):
        assert not destruction_due(state, 100.0, 250.0)
