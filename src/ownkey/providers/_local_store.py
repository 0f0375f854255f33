"""The embedded local key store: customer and platform keys on this machine, sealed at rest.

Every key version is 32 random bytes, stored only sealed (envelope message suite) under the root
key of :mod:`ownkey.providers._rootkey`, with the key id and version as the encryption context.
Records live behind :class:`LocalKeyRecords`, a four-method port: :class:`JsonKeyFile` keeps them
in ``$OWNKEY_HOME/local-keys.json`` (written atomically: temp file, fsync, rename, fsync of the
directory; a lock file serialises writers across processes), the store of a customer-run key
service; a runtime keeps them in its database instead (``service/_fleet.py``, issue 28 item 2),
so that every node of a fleet reads the same keys.

Wrapping uses the message suite too: the wrapping key's id is ``<key id>/<version>`` (it travels
in the envelope header, which is associated data) and the canonical encryption context is bound
as associated data, so a wrapped share opens only under the same key, version and context.

Like a KMS's own log, the store appends each audit witness call it serves (a wrap whose context
names the purpose ``ownkey.audit-witness``) to ``$OWNKEY_HOME/local-keys.log``, one CloudTrail-
shaped JSON record per line (``eventSource`` ``ownkey.local``, ``eventName`` ``Encrypt``,
``requestParameters.encryptionContext``), which ``ownkey audit verify --witness-log`` reads. It
sits on the same disk as the database, so it anchors the chain against a database writer only
(docs/threat-model.md).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from ownkey.envelope import (
    MessageCipher,
    RandomSource,
    ScopeKey,
    open_message,
    seal_message,
)
from ownkey.errors import ConfigError, InvalidCiphertext, LifecycleError, NotFound
from ownkey.keys import (
    DestructionOutcome,
    DestructionReceipt,
    KeyAction,
    KeyDescription,
    KeyState,
    destruction_due,
    next_state,
)
from ownkey.providers._common import (
    check_plaintext,
    context_bytes,
    deny_unless_usable,
    frame,
    unframe,
)
from ownkey.providers._rootkey import load_root_key, ownkey_home

__all__ = [
    "KEY_FILE",
    "LOG_FILE",
    "JsonKeyFile",
    "LocalKeyRecords",
    "LocalKeyStoreProvider",
    "StoredKey",
    "StoredVersion",
]

KEY_FILE: Final = "local-keys.json"
#: The store's log of audit witness calls, next to the key file.
LOG_FILE: Final = "local-keys.log"
_WITNESS_PURPOSE: Final = "ownkey.audit-witness"
_FILE_FORMAT = 1
_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_CAS_ATTEMPTS = 16


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a key: its name and its material sealed under the root key."""

    name: str
    sealed: bytes = dataclasses.field(repr=False)
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key's record; ``versions`` is empty once the key is destroyed (a tombstone remains)."""

    key_id: str
    label: str
    state: KeyState
    primary: str
    versions: tuple[StoredVersion, ...]
    created_at: float
    changed_at: float
    destroy_at: float | None = None

    def version(self, name: str) -> StoredVersion | None:
        for version in self.versions:
            if version.name == name:
                return version
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "label": self.label,
            "state": self.state.value,
            "primary": self.primary,
            "versions": [
                {
                    "name": v.name,
                    "sealed": base64.b64encode(v.sealed).decode("ascii"),
                    "created_at": v.created_at,
                }
                for v in self.versions
            ],
            "created_at": self.created_at,
            "changed_at": self.changed_at,
            "destroy_at": self.destroy_at,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StoredKey:
        return cls(
            key_id=str(raw["key_id"]),
            label=str(raw["label"]),
            state=KeyState(raw["state"]),
            primary=str(raw["primary"]),
            versions=tuple(
                StoredVersion(str(v["name"]), base64.b64decode(v["sealed"]), float(v["created_at"]))
                for v in raw["versions"]
            ),
            created_at=float(raw["created_at"]),
            changed_at=float(raw["changed_at"]),
            destroy_at=None if raw.get("destroy_at") is None else float(raw["destroy_at"]),
        )


class LocalKeyRecords(Protocol):
    """Where the local store's records live: a JSON file now, the ownkey database later."""

    def get(self, key_id: str) -> StoredKey | None:
        """The record of ``key_id``, if any."""
        ...

    def add(self, key: StoredKey) -> None:
        """Insert a new record; raise ValueError if the id is taken."""
        ...

    def replace(self, expected: StoredKey, new: StoredKey) -> bool:
        """Store ``new`` if the current record still equals ``expected``; say if it did."""
        ...

    def all(self) -> list[StoredKey]:
        """Every record, in key-id order."""
        ...


class JsonKeyFile:
    """:class:`LocalKeyRecords` in one JSON file, safe across threads and processes.

    Reads are served from memory and reloaded when the file changes on disk (another process
    wrote it); every write takes an exclusive ``flock`` on ``<file>.lock``, re-reads the file,
    applies the change and replaces the file atomically.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock = threading.RLock()
        self._stamp: tuple[int, int, int] | None = None
        self._records: dict[str, StoredKey] = {}

    def __repr__(self) -> str:
        return f"<JsonKeyFile {self._path}>"

    @property
    def path(self) -> Path:
        return self._path

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        records: dict[str, StoredKey] = {}
        if stamp is not None:
            try:
                raw = json.loads(self._path.read_bytes())
                if raw.get("format") != _FILE_FORMAT:
                    raise ValueError("unknown format")
                for item in raw["keys"]:
                    key = StoredKey.from_json(item)
                    records[key.key_id] = key
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                raise ConfigError(f"the local key file {self._path} is unreadable") from exc
        self._records = records
        self._stamp = stamp

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, StoredKey]]:
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._stamp = None  # re-read under the lock: another process may have written
                self._refresh()
                records = dict(self._records)
                yield records
                self._write(records)
            finally:
                os.close(fd)  # closing releases the flock

    def _write(self, records: dict[str, StoredKey]) -> None:
        body = json.dumps(
            {"format": _FILE_FORMAT, "keys": [records[k].to_json() for k in sorted(records)]},
            indent=1,
        ).encode("ascii")
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._records = records
        self._stamp = self._current_stamp()

    def get(self, key_id: str) -> StoredKey | None:
        with self._lock:
            self._refresh()
            return self._records.get(key_id)

    def add(self, key: StoredKey) -> None:
        with self._writing() as records:
            if key.key_id in records:
                raise ValueError(f"key {key.key_id} already exists")
            records[key.key_id] = key

    def replace(self, expected: StoredKey, new: StoredKey) -> bool:
        with self._writing() as records:
            if records.get(expected.key_id) != expected:
                return False
            records[new.key_id] = new
            return True

    def all(self) -> list[StoredKey]:
        with self._lock:
            self._refresh()
            return [self._records[k] for k in sorted(self._records)]


class LocalKeyStoreProvider:
    """The ``local`` provider: versioned keys sealed under a root key, persisted by a port.

    ``records`` defaults to :class:`JsonKeyFile` under ``OWNKEY_HOME``; ``root_key`` to
    :func:`~ownkey.providers._rootkey.load_root_key`; ``log`` (the witness log) to
    ``local-keys.log`` beside the JSON file (none for other records unless given). A runtime
    gives it the database's records (``service/_fleet.py``), so every node reads the same keys.
    A key whose destruction date has passed is destroyed on its next use (its sealed versions
    deleted, a tombstone kept).
    """

    def __init__(
        self,
        *,
        records: LocalKeyRecords | None = None,
        root_key: ScopeKey | None = None,
        name: str = "local",
        env: Mapping[str, str] | None = None,
        random: RandomSource = os.urandom,
        clock: Callable[[], float] = time.time,
        log: Path | None = None,
    ) -> None:
        self._records: LocalKeyRecords = (
            records if records is not None else JsonKeyFile(ownkey_home(env) / KEY_FILE)
        )
        if log is None and isinstance(self._records, JsonKeyFile):
            log = self._records.path.with_name(LOG_FILE)
        self._log = log
        self._root = root_key if root_key is not None else load_root_key(env, random=random)
        self._name = name
        self._random = random
        self._clock = clock
        self._ciphers: dict[tuple[str, str, bytes], MessageCipher] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LocalKeyStoreProvider name={self._name} records={self._records!r} key=<redacted>>"

    @property
    def name(self) -> str:
        return self._name

    # -- records --------------------------------------------------------------------------

    def _get(self, key_id: str) -> StoredKey:
        key = self._records.get(key_id)
        if key is None:
            raise NotFound(f"no key {key_id} in provider {self._name}")
        if destruction_due(key.state, key.destroy_at, self._clock()):
            self._update(key_id, self._shred)
            key = self._records.get(key_id) or key
        return key

    def _shred(self, key: StoredKey) -> StoredKey:
        if key.state is KeyState.DESTROYED:
            return key
        if key.state is not KeyState.PENDING_DESTRUCTION:
            raise LifecycleError(
                f"key {key.key_id} is {key.state.value}; schedule its destruction first"
            )
        return dataclasses.replace(
            key, state=KeyState.DESTROYED, versions=(), changed_at=self._clock()
        )

    def _update(self, key_id: str, change: Callable[[StoredKey], StoredKey]) -> StoredKey:
        for _ in range(_CAS_ATTEMPTS):
            current = self._records.get(key_id)
            if current is None:
                raise NotFound(f"no key {key_id} in provider {self._name}")
            new = change(current)
            if new == current or self._records.replace(current, new):
                return new
        raise LifecycleError(f"key {key_id} changed concurrently too often; try again")

    def _move(self, key_id: str, action: KeyAction, **changes: Any) -> StoredKey:
        self._get(key_id)  # applies a due destruction first

        def change(key: StoredKey) -> StoredKey:
            return dataclasses.replace(
                key, state=next_state(key.state, action), changed_at=self._clock(), **changes
            )

        return self._update(key_id, change)

    # -- material -------------------------------------------------------------------------

    def _seal_material(self, key_id: str, version: str, material: bytes) -> bytes:
        context = {"purpose": "ownkey.local-store.key", "key_id": key_id, "version": version}
        return seal_message(self._root, material, context, random=self._random)

    def _cipher(self, key_id: str, version: StoredVersion) -> MessageCipher:
        cache_key = (key_id, version.name, version.sealed)
        cipher = self._ciphers.get(cache_key)
        if cipher is not None:
            return cipher
        context = {"purpose": "ownkey.local-store.key", "key_id": key_id, "version": version.name}
        try:
            material = open_message(self._root, version.sealed, context)
        except InvalidCiphertext:
            raise ConfigError(
                f"cannot open version {version.name} of local key {key_id}: the root key differs "
                "from the one that sealed the key store, or the store was altered"
            ) from None
        cipher = MessageCipher(
            ScopeKey(f"{key_id}/{version.name}".encode(), material), random=self._random
        )
        with self._lock:
            self._ciphers[cache_key] = cipher
        return cipher

    def _new_version(self, key_id: str, name: str) -> StoredVersion:
        material = self._random(_KEY_BYTES)
        return StoredVersion(name, self._seal_material(key_id, name, material), self._clock())

    # -- KeyProvider ----------------------------------------------------------------------

    def create_key(self, *, label: str) -> str:
        key_id = "lk-" + self._random(8).hex()
        now = self._clock()
        self._records.add(
            StoredKey(
                key_id=key_id,
                label=label,
                state=KeyState.ENABLED,
                primary="v1",
                versions=(self._new_version(key_id, "v1"),),
                created_at=now,
                changed_at=now,
            )
        )
        return key_id

    def wrap(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        check_plaintext(plaintext)
        key = self._get(key_id)
        deny_unless_usable(key.state, f"key {key_id}")
        version = key.version(key.primary)
        if version is None:
            raise ConfigError(f"local key {key_id} has no primary version")
        wrapped = frame(version.name, self._cipher(key_id, version).seal(plaintext, context))
        if context.get("purpose") == _WITNESS_PURPOSE:
            self._log_call(key_id, context)
        return wrapped

    def _log_call(self, key_id: str, context: Mapping[str, str]) -> None:
        """Append one witness call to the store's log (one write of one line, O_APPEND)."""
        if self._log is None:
            return
        now = self._clock()
        at = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        )
        record = {
            "eventTime": at,
            "eventSource": "ownkey.local",
            "eventName": "Encrypt",
            "requestParameters": {"keyId": key_id, "encryptionContext": dict(context)},
        }
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self._log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def unwrap(self, key_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        context_bytes(context)  # a malformed context is the caller's bug: ValueError first
        name, envelope = unframe(wrapped)
        key = self._get(key_id)
        deny_unless_usable(key.state, f"key {key_id}")
        version = key.version(name)
        if version is None:
            raise InvalidCiphertext()
        return self._cipher(key_id, version).open(envelope, context)

    def describe(self, key_id: str) -> KeyDescription:
        key = self._get(key_id)
        return KeyDescription(
            key_id=key_id,
            state=key.state,
            primary_version=key.primary,
            versions=tuple(v.name for v in key.versions),
            destroy_at=key.destroy_at,
            label=key.label,
        )

    def created_for(self, key_id: str) -> str | None:
        """:class:`~ownkey.keys.KeyOwnership`: the label given at creation, which ownkey alone
        sets (``str(KeyRef)``), so registering the key proves it was made for that reference."""
        key = self._records.get(key_id)
        return None if key is None else key.label

    def rotate(self, key_id: str) -> str:
        self._get(key_id)

        def change(key: StoredKey) -> StoredKey:
            state = next_state(key.state, KeyAction.ROTATE)
            name = f"v{len(key.versions) + 1}"
            return dataclasses.replace(
                key,
                state=state,
                primary=name,
                versions=(*key.versions, self._new_version(key_id, name)),
                changed_at=self._clock(),
            )

        return self._update(key_id, change).primary

    def disable(self, key_id: str) -> None:
        self._move(key_id, KeyAction.DISABLE)

    def enable(self, key_id: str) -> None:
        self._move(key_id, KeyAction.ENABLE)

    def schedule_destruction(self, key_id: str, *, destroy_at: float) -> None:
        self._move(key_id, KeyAction.SCHEDULE_DESTRUCTION, destroy_at=destroy_at)

    def cancel_destruction(self, key_id: str) -> None:
        self._move(key_id, KeyAction.CANCEL_DESTRUCTION, destroy_at=None)

    def destroy(self, key_id: str) -> DestructionReceipt:
        """Delete the key's sealed versions (the embedded store always destroys its own keys).

        The records are rewritten whole (temp file, rename), so the old sealed versions are in
        no file under ``OWNKEY_HOME`` afterwards; the answer is read back from the records.
        """
        before = self._get(key_id)
        if before.state is not KeyState.DESTROYED:
            self._update(key_id, self._shred)
        purge = getattr(self._records, "purge_deleted", None)
        if callable(purge):  # records in a database: the old row out of its files (KL-9)
            purge()
        with self._lock:
            for cache_key in [k for k in self._ciphers if k[0] == key_id]:
                del self._ciphers[cache_key]
        after = self._records.get(key_id)
        left = len(after.versions) if after is not None else 0
        if left:
            raise LifecycleError(f"local key {key_id} still has {left} version(s) after destroy")
        return DestructionReceipt(
            DestructionOutcome.DESTROYED,
            {"versions_deleted": str(len(before.versions)), "versions_left": "0"},
        )
