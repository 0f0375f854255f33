"""How the nodes of a fleet share jobs: leases, heartbeats, takeover and the blob sweep.

Every unfinished job names the node working on it and until when (its *lease*). A node renews
the lease every ``heartbeat`` seconds while it works; every serve node looks every
``sweep_interval`` seconds for jobs whose lease ended and takes each over (one compare-and-set, so
exactly one node wins), resuming it from its items. A node that stops normally gives its leases
up, so a survivor resumes at its next look. Hence the bound: a job whose node died (kill -9,
power loss) resumes within ``lease + sweep_interval`` of the node's last heartbeat (40 s by
default); after a normal stop, within ``sweep_interval``.

The same look also sweeps orphan blobs and abandoned partial writes and S3 multipart uploads
(:meth:`~ownkey.storage.AssetStore.sweep`) every ``blob_sweep_interval`` seconds on one node of
the fleet at a time (a named turn in the database), leaving alone what is younger than
``blob_sweep_min_age``.

Each setting is read once from the environment (``OWNKEY_JOB_LEASE``, ``OWNKEY_JOB_HEARTBEAT``,
``OWNKEY_JOB_SWEEP_INTERVAL``, ``OWNKEY_BLOB_SWEEP_INTERVAL``, ``OWNKEY_BLOB_SWEEP_MIN_AGE``), as a
duration (``30``, ``30s``, ``15m``, ``1h``).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ownkey.errors import ConfigError, InvalidRequest
from ownkey.policy import parse_duration

__all__ = ["JOB_SETTINGS_ENV", "JobSettings", "new_node_id"]

#: The environment variable of each setting.
JOB_SETTINGS_ENV: Mapping[str, str] = {
    "lease": "OWNKEY_JOB_LEASE",
    "heartbeat": "OWNKEY_JOB_HEARTBEAT",
    "sweep_interval": "OWNKEY_JOB_SWEEP_INTERVAL",
    "blob_sweep_interval": "OWNKEY_BLOB_SWEEP_INTERVAL",
    "blob_sweep_min_age": "OWNKEY_BLOB_SWEEP_MIN_AGE",
}

#: The youngest orphan a sweep may remove: a writer may be between committing its blob and its
#: row (docs/storage.md), so never less than ten minutes.
MIN_BLOB_AGE = 600.0


@dataclass(frozen=True, slots=True)
class JobSettings:
    """Leases, heartbeats and sweeps of jobs in a fleet (see the module docstring), in seconds."""

    lease: float = 30.0
    heartbeat: float = 10.0
    sweep_interval: float = 10.0
    #: 0 turns the scheduled blob sweep off (``AssetStore.sweep`` still runs when called).
    blob_sweep_interval: float = 3600.0
    blob_sweep_min_age: float = 3600.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int | float) or value != value or value in (float("inf"),):
                raise ConfigError(f"{JOB_SETTINGS_ENV[item.name]}: a finite number of seconds")
        if self.lease <= 0 or self.heartbeat <= 0 or self.sweep_interval <= 0:
            raise ConfigError("the job lease, heartbeat and sweep interval must be positive")
        if self.heartbeat * 2 > self.lease:
            raise ConfigError(
                f"{JOB_SETTINGS_ENV['heartbeat']} must be at most half of "
                f"{JOB_SETTINGS_ENV['lease']}: one late heartbeat must not lose the lease"
            )
        if self.blob_sweep_interval < 0:
            raise ConfigError(f"{JOB_SETTINGS_ENV['blob_sweep_interval']} cannot be negative")
        if self.blob_sweep_min_age < MIN_BLOB_AGE:
            raise ConfigError(
                f"{JOB_SETTINGS_ENV['blob_sweep_min_age']} must be at least {MIN_BLOB_AGE:.0f} s"
            )

    @property
    def takeover_bound(self) -> float:
        """Seconds after a dead node's last heartbeat by which another node resumes its job."""
        return self.lease + self.sweep_interval

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobSettings:
        """The settings given in ``env``, the defaults for the rest (ConfigError if wrong)."""
        values: dict[str, float] = {}
        for name, variable in JOB_SETTINGS_ENV.items():
            text = env.get(variable, "").strip()
            if not text:
                continue
            if name == "blob_sweep_interval" and text in ("0", "0s", "0.0"):
                values[name] = 0.0
                continue
            try:
                values[name] = parse_duration(variable, text, minimum=0.001)
            except InvalidRequest as exc:
                raise ConfigError(str(exc)) from None
        return cls(**values)


def new_node_id() -> str:
    """This process's name in job leases: host, process id and a random part (a restarted
    process is another node)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"
