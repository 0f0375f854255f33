"""The local key provider: keys held in this process, for one machine and for tests.

It implements the full :class:`~ownkey.keys.KeyProvider` contract (versions, states, scheduled
destruction) so that everything above it can be exercised without a key manager. Wrapping uses
the envelope's message suite, whose key id names the key and version and whose associated data
is the canonical encryption context: a wrapped share opens only under the same key and the same
context. Key material lives in memory only; persisting it under a root key is the job of the
storage-backed local provider.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ownkey.envelope import (
    EncryptionContext,
    RandomSource,
    ScopeKey,
    open_message,
    peek_key_id,
    seal_message,
)
from ownkey.errors import AccessDenied, InvalidCiphertext, LifecycleError, NotFound
from ownkey.keys import (
    DestructionOutcome,
    DestructionReceipt,
    KeyAction,
    KeyDescription,
    KeyState,
    destruction_due,
    next_state,
)

__all__ = ["LocalKeyProvider"]

_KEY_BYTES = 32


@dataclass(slots=True)
class _Key:
    label: str
    state: KeyState = KeyState.ENABLED
    versions: dict[str, bytes] = field(default_factory=dict, repr=False)
    primary: str = ""
    destroy_at: float | None = None


class LocalKeyProvider:
    """An in-memory key manager with versions and the lifecycle of ``ownkey.keys``."""

    def __init__(
        self,
        *,
        name: str = "local",
        random: RandomSource = os.urandom,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._random = random
        self._clock = clock
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LocalKeyProvider name={self._name} keys={len(self._keys)} material=<redacted>>"

    @property
    def name(self) -> str:
        return self._name

    def _key(self, key_id: str) -> _Key:
        key = self._keys.get(key_id)
        if key is None:
            raise NotFound(f"no key {key_id} in provider {self._name}")
        if destruction_due(key.state, key.destroy_at, self._clock()):
            self._destroy(key)
        return key

    def _usable(self, key_id: str) -> _Key:
        key = self._key(key_id)
        if not key.state.usable:
            raise AccessDenied(f"key {key_id} is {key.state.value}", reason=key.state.value)
        return key

    @staticmethod
    def _destroy(key: _Key) -> None:
        key.versions.clear()
        key.state = KeyState.DESTROYED

    def create_key(self, *, label: str) -> str:
        with self._lock:
            key_id = "lk-" + self._random(8).hex()
            key = _Key(label)
            key.versions["v1"] = self._random(_KEY_BYTES)
            key.primary = "v1"
            self._keys[key_id] = key
            return key_id

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        with self._lock:
            key = self._usable(key_id)
            version, material = key.primary, key.versions[key.primary]
        wrapping = ScopeKey(f"{key_id}/{version}".encode(), material)
        return seal_message(wrapping, plaintext, EncryptionContext(context), random=self._random)

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        owner, _, version = peek_key_id(wrapped).decode("utf-8", "replace").partition("/")
        with self._lock:
            key = self._usable(key_id)
            material = key.versions.get(version) if owner == key_id else None
        if material is None:
            raise InvalidCiphertext()
        wrapping = ScopeKey(f"{key_id}/{version}".encode(), material)
        return open_message(wrapping, wrapped, EncryptionContext(context))

    def describe(self, key_id: str) -> KeyDescription:
        with self._lock:
            key = self._key(key_id)
            return KeyDescription(
                key_id=key_id,
                state=key.state,
                primary_version=key.primary,
                versions=tuple(key.versions),
                destroy_at=key.destroy_at,
                label=key.label,
            )

    def created_for(self, key_id: str) -> str | None:
        """:class:`~ownkey.keys.KeyOwnership`: the label the key was created with."""
        with self._lock:
            key = self._keys.get(key_id)
            return None if key is None else key.label

    def _move(self, key_id: str, action: KeyAction) -> _Key:
        key = self._key(key_id)
        key.state = next_state(key.state, action)
        return key

    def rotate(self, key_id: str) -> str:
        with self._lock:
            key = self._move(key_id, KeyAction.ROTATE)
            version = f"v{len(key.versions) + 1}"
            key.versions[version] = self._random(_KEY_BYTES)
            key.primary = version
            return version

    def disable(self, key_id: str) -> None:
        with self._lock:
            self._move(key_id, KeyAction.DISABLE)

    def enable(self, key_id: str) -> None:
        with self._lock:
            self._move(key_id, KeyAction.ENABLE)

    def schedule_destruction(self, key_id: str, *, destroy_at: float) -> None:
        with self._lock:
            self._move(key_id, KeyAction.SCHEDULE_DESTRUCTION).destroy_at = destroy_at

    def cancel_destruction(self, key_id: str) -> None:
        with self._lock:
            self._move(key_id, KeyAction.CANCEL_DESTRUCTION).destroy_at = None

    def destroy(self, key_id: str) -> DestructionReceipt:
        """Forget every version's material (this provider's keys are its own to destroy)."""
        with self._lock:
            key = self._key(key_id)
            if key.state is KeyState.DESTROYED:
                return DestructionReceipt(DestructionOutcome.DESTROYED, {"versions_left": "0"})
            if key.state is not KeyState.PENDING_DESTRUCTION:
                raise LifecycleError(f"key {key_id} is {key.state.value}; schedule it first")
            deleted = len(key.versions)
            self._destroy(key)
            return DestructionReceipt(
                DestructionOutcome.DESTROYED,
                {"versions_deleted": str(deleted), "versions_left": str(len(key.versions))},
            )
