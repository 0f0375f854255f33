"""Bounded retries with back-off inside a deadline (FS-2)."""

from __future__ import annotations

import pytest

from ownkey.errors import AccessDenied, AuditUnavailable, ConfigError, KeyUnavailable
from ownkey.keys import RetryPolicy, call_with_retry
from ownkey.testing.fakes import FakeClock, SeededRandom


def _failing(times: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "ok"

    return calls, call


def _run(policy: RetryPolicy, call: object, clock: FakeClock) -> object:
    return call_with_retry(
        call,  # type: ignore[arg-type]
        policy=policy,
        clock=clock,
        sleep=clock.sleep,
        random=SeededRandom(3),
    )


def test_transient_failures_are_retried_with_growing_pauses() -> None:
    """FS-2: exponential back-off with jitter in [d/2, d]."""
    clock = FakeClock()
    calls, call = _failing(3, KeyUnavailable("down"))
    policy = RetryPolicy(attempts=4, base_delay=0.1, max_delay=1.0, deadline=10.0)
    assert _run(policy, call, clock) == "ok"
    assert len(calls) == 4
    assert len(clock.slept) == 3
    for retry, pause in enumerate(clock.slept, start=1):
        ceiling = min(1.0, 0.1 * 2 ** (retry - 1))
        assert ceiling / 2 <= pause <= ceiling


def test_attempts_are_bounded() -> None:
    """FS-2: at most ``attempts`` calls, then the last error."""
    clock = FakeClock()
    calls, call = _failing(99, KeyUnavailable("down"))
    with pytest.raises(KeyUnavailable):
        _run(RetryPolicy(attempts=3, deadline=100.0), call, clock)
    assert len(calls) == 3


def test_no_sleep_runs_past_the_deadline() -> None:
    """FS-2: a pause that would end after the deadline is not taken."""
    clock = FakeClock()
    start = clock()
    calls, call = _failing(99, KeyUnavailable("down"))
    policy = RetryPolicy(attempts=50, base_delay=0.5, max_delay=2.0, deadline=3.0)
    with pytest.raises(KeyUnavailable):
        _run(policy, call, clock)
    assert clock() - start <= 3.0
    assert 2 <= len(calls) < 50


@pytest.mark.parametrize(
    "error", [AccessDenied("no", reason="disabled"), AuditUnavailable("sink down")]
)
def test_denials_and_audit_failures_are_not_retried(error: Exception) -> None:
    """FS-1, FS-3: a denial is an answer; an audit failure must not cause another KMS call."""
    clock = FakeClock()
    calls, call = _failing(1, error)
    with pytest.raises(type(error)):
        _run(RetryPolicy(), call, clock)
    assert len(calls) == 1
    assert clock.slept == []


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"base_delay": 2.0, "max_delay": 1.0}, {"deadline": 0.0}],
)
def test_bad_policies_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
