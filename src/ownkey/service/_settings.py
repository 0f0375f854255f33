"""The Protector's settings: cache limits, epochs per service, retries, destruction waiting period.

Defaults are the safe ones: one-hour epochs for Team Chat (0008), one day for the rest; a
five-minute cache maximum age, which bounds how long a revocation made directly in a
customer's KMS can go unnoticed; a seven-day destruction waiting period that cannot be set below
one day. No setting turns encryption off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ownkey.envelope import DEFAULT_SEGMENT_SIZE, MAX_SEGMENT_SIZE
from ownkey.errors import ConfigError
from ownkey.keys import CacheLimits, CallLimits, RetryPolicy

__all__ = ["SETTINGS_ENV", "ProtectorSettings"]

#: The settings an operator gives each node in its environment (``ownkey serve``); the others
#: are the library caller's.
SETTINGS_ENV: Mapping[str, str] = {
    "key_calls_per_org": "OWNKEY_KEY_CALLS_PER_ORG",
    "key_calls_waiting": "OWNKEY_KEY_CALLS_WAITING",
    "key_calls_wait": "OWNKEY_KEY_CALLS_WAIT",
}

HOUR = 3600
DAY = 24 * HOUR


def _default_epochs() -> Mapping[str, int]:
    return {"0008": HOUR}


@dataclass(frozen=True, slots=True)
class ProtectorSettings:
    """Everything the composition root needs to know; every field has a safe default."""

    cache_max_age: float = 300.0
    cache_refresh_after: float = 240.0
    cache_max_uses: int = 2**24
    cache_max_entries: int = 10_000
    #: Epoch length in seconds by service ID; services not listed use ``default_epoch_seconds``.
    epoch_seconds: Mapping[str, int] = field(default_factory=_default_epochs)
    default_epoch_seconds: int = DAY
    retry_attempts: int = 4
    retry_base_delay: float = 0.05
    retry_max_delay: float = 1.0
    retry_deadline: float = 5.0
    destruction_waiting_period: float = 7 * DAY
    min_destruction_waiting_period: float = DAY
    default_provider: str = "local"
    #: Create a missing customer key on first use (demos, tests); off: an unregistered key in a
    #: plan is a ConfigError, never a fallback to another key.
    auto_create_keys: bool = False
    segment_size: int = DEFAULT_SEGMENT_SIZE
    #: One org's key-manager calls on this node: at most this many in flight, this many more
    #: waiting for a slot, each for at most ``key_calls_wait`` seconds (then 503): one org's
    #: slow key manager cannot hold another org's requests (issue 28, item 6).
    key_calls_per_org: int = 8
    key_calls_waiting: int = 8
    key_calls_wait: float = 2.0

    def __post_init__(self) -> None:
        epochs = dict(self.epoch_seconds)
        for service_id, seconds in epochs.items():
            if not (isinstance(service_id, str) and re.fullmatch("[0-9]{4}", service_id)):
                raise ConfigError(f"epoch_seconds: {service_id!r} is not a 4-digit service ID")
            if seconds < 1:
                raise ConfigError(f"epoch_seconds[{service_id}] must be at least 1 second")
        if self.default_epoch_seconds < 1:
            raise ConfigError("default_epoch_seconds must be at least 1 second")
        if self.min_destruction_waiting_period < 0:
            raise ConfigError("min_destruction_waiting_period cannot be negative")
        if self.destruction_waiting_period < self.min_destruction_waiting_period:
            raise ConfigError("destruction_waiting_period is below its minimum")
        if not 1 <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ConfigError("segment_size must be between 1 byte and 16 MiB")
        object.__setattr__(self, "epoch_seconds", MappingProxyType(epochs))
        # building them checks them (ConfigError)
        _ = self.cache_limits, self.retry_policy, self.call_limits

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProtectorSettings:
        """The defaults, with what :data:`SETTINGS_ENV` names in ``env`` (ConfigError naming
        the variable for a value that is not a number)."""
        given: dict[str, float | int] = {}
        for name, variable in SETTINGS_ENV.items():
            raw = env.get(variable, "").strip()
            if not raw:
                continue
            try:
                given[name] = float(raw) if name == "key_calls_wait" else int(raw)
            except ValueError:
                raise ConfigError(f"{variable}: {raw!r} is not a number") from None
        try:
            return cls(**given)  # type: ignore[arg-type]
        except ConfigError as exc:
            names = ", ".join(SETTINGS_ENV[name] for name in given)
            raise ConfigError(f"{names}: {exc}") from None

    def epoch_for(self, service_id: str) -> int:
        """The epoch length, in seconds, of a service's scope keys."""
        return self.epoch_seconds.get(service_id, self.default_epoch_seconds)

    @property
    def cache_limits(self) -> CacheLimits:
        """The cache's limits."""
        return CacheLimits(
            max_age=self.cache_max_age,
            refresh_after=self.cache_refresh_after,
            max_uses=self.cache_max_uses,
            max_entries=self.cache_max_entries,
        )

    @property
    def call_limits(self) -> CallLimits:
        """The per-org bulkhead of key-manager calls."""
        return CallLimits(
            concurrent=self.key_calls_per_org,
            waiting=self.key_calls_waiting,
            wait=self.key_calls_wait,
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        """Back-off for transient key-manager failures."""
        return RetryPolicy(
            attempts=self.retry_attempts,
            base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay,
            deadline=self.retry_deadline,
        )
