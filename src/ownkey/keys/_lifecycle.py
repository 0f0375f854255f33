"""The key lifecycle as a table (docs/spec/key-lifecycle.md, KL-1 to KL-5).

Customer and platform keys move through four states. Keeping the legal moves in one table, in the
pure core, means the service, every provider and the tests agree on them, and an illegal move is
refused before anything is recorded or sent to a key manager::

    enabled -disable-> disabled -schedule_destruction-> pending_destruction -destroy-> destroyed
    |  ^               |  ^                                     |
    |  '----enable-----'  '---------cancel_destruction----------'
    '-- rotate (stays enabled)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from ownkey.errors import LifecycleError

__all__ = ["TRANSITIONS", "KeyAction", "KeyState", "destruction_due", "next_state"]


class KeyState(StrEnum):
    """The state of a customer or platform key."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    PENDING_DESTRUCTION = "pending_destruction"
    DESTROYED = "destroyed"

    @property
    def usable(self) -> bool:
        """Only an enabled key wraps or unwraps (KL-6, KL-7)."""
        return self is KeyState.ENABLED


class KeyAction(StrEnum):
    """What an admin (or the destruction timer) can do to a key."""

    DISABLE = "disable"
    ENABLE = "enable"
    SCHEDULE_DESTRUCTION = "schedule_destruction"
    CANCEL_DESTRUCTION = "cancel_destruction"
    DESTROY = "destroy"
    ROTATE = "rotate"


S, A = KeyState, KeyAction
#: (state, action) -> next state. Anything missing is illegal (KL-2); nothing leaves DESTROYED
#: (KL-3); cancelling a destruction leaves the key disabled, so using it again takes a second,
#: explicit step (KL-5).
TRANSITIONS: Final[dict[tuple[KeyState, KeyAction], KeyState]] = {
    (S.ENABLED, A.DISABLE): S.DISABLED,
    (S.ENABLED, A.ROTATE): S.ENABLED,
    (S.DISABLED, A.ENABLE): S.ENABLED,
    (S.DISABLED, A.SCHEDULE_DESTRUCTION): S.PENDING_DESTRUCTION,
    (S.PENDING_DESTRUCTION, A.CANCEL_DESTRUCTION): S.DISABLED,
    (S.PENDING_DESTRUCTION, A.DESTROY): S.DESTROYED,
}
del S, A


def next_state(state: KeyState, action: KeyAction) -> KeyState:
    """The state after ``action``; raise :class:`LifecycleError` if the table forbids it."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s is state)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else "; it is final"
        raise LifecycleError(f"cannot {action.value} a key that is {state.value}{hint}") from None


def destruction_due(state: KeyState, destroy_at: float | None, now: float) -> bool:
    """True when a key pending destruction has reached its date: from then on it counts as
    destroyed wherever it is read, whether or not a job has shredded it yet (KL-4)."""
    return state is KeyState.PENDING_DESTRUCTION and destroy_at is not None and now >= destroy_at
