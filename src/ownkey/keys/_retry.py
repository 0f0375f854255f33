"""Bounded retries for key-manager calls that fail transiently (FS-2).

Only :class:`~ownkey.errors.KeyUnavailable` is retried: a denial is an answer, not a failure, and
retrying it would only delay the tombstone. Delays grow exponentially with jitter (so that nodes
recovering from one outage do not call in lock-step) and never run past the deadline; the clock,
the sleep and the randomness are injected so tests run in virtual time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ownkey.errors import AuditUnavailable, ConfigError, KeyUnavailable

__all__ = ["RetryPolicy", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` calls, the whole sequence inside ``deadline`` seconds.

    The delay before retry ``n`` (1-based) is drawn from ``[d/2, d]`` with
    ``d = min(max_delay, base_delay * 2**(n-1))``.
    """

    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 1.0
    deadline: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("retry attempts must be at least 1")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ConfigError("retry delays need 0 <= base_delay <= max_delay")
        if self.deadline <= 0:
            raise ConfigError("the retry deadline must be positive")

    def delay(self, retry: int, random: Callable[[int], bytes]) -> float:
        """The pause before retry number ``retry`` (1-based), with jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        fraction = int.from_bytes(random(2), "big") / 0xFFFF
        return ceiling / 2 + fraction * ceiling / 2


def call_with_retry(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    random: Callable[[int], bytes],
) -> T:
    """Run ``call``; retry it on KeyUnavailable within the policy; re-raise the last failure.

    Audit failures are not retried here: they are raised by the caller after the key-manager call
    and must not trigger another call to the key manager.
    """
    started = clock()
    retry = 0
    while True:
        try:
            return call()
        except AuditUnavailable:
            raise
        except KeyUnavailable:
            retry += 1
            if retry >= policy.attempts:
                raise
            pause = policy.delay(retry, random)
            if clock() + pause - started > policy.deadline:
                raise
            sleep(pause)
