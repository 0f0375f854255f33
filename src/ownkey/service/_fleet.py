"""What every node of a fleet needs, from the database and one root key (issue 28, item 2).

Every node that opens a database must read the same keys, whatever its ``OWNKEY_HOME``:

- **The embedded local key store** (the platform key, ``--create-key`` keys): its records are
  rows of the database (:class:`SqlLocalKeys`, the store's ``LocalKeyRecords`` port), every key
  version sealed under the *root key*, as in the JSON file before.
- **The root key** is given to every node (``OWNKEY_ROOT_KEY``, ``OWNKEY_ROOT_KEY_FILE``, or
  ``$OWNKEY_HOME/root.key``). The database holds a check value sealed under it
  (``root-check``), written by the first node: a node that was given no root key, or another
  one, refuses to start with a :class:`ConfigError` naming ``OWNKEY_ROOT_KEY``, instead of
  answering ``provider_denied`` for every key it cannot find. A single node on a fresh home
  creates ``root.key`` as before, when the database has no check value yet.
- **The audit signing key**: one per fleet, its seed sealed under the root key
  (``audit-signing``), unless ``OWNKEY_AUDIT_SIGNING_KEY`` gives a node its own. Every key that
  signs checkpoints here registers its public key sealed under the root key
  (``audit-public:<key id>``), and verification trusts exactly the registered keys that open
  (:meth:`FleetKeys.public_keys`): a database writer cannot add one without the root key.
- **An existing home** (before this change) is moved in on its first start: ``local-keys.json``
  is imported and removed, ``audit-signing.key`` becomes the fleet's key (or, when the fleet
  has one, an accepted key) and is removed.

The witness log of the local store (``local-keys.log``) stays on each node's disk, like a key
manager's own log.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ownkey.envelope import RandomSource, ScopeKey, open_message, seal_message
from ownkey.errors import ConfigError, InvalidCiphertext
from ownkey.keys import KeyState
from ownkey.providers._local_store import KEY_FILE, JsonKeyFile, StoredKey
from ownkey.providers._rootkey import (
    ROOT_KEY_ENV,
    ROOT_KEY_FILE_ENV,
    given_root_key,
    load_root_key,
    ownkey_home,
)
from ownkey.storage import AuditSigningKey, Database, FleetStore

__all__ = ["FleetKeys", "SqlLocalKeys", "open_fleet"]

CHECK: Final = "root-check"
SIGNING: Final = "audit-signing"
PUBLIC: Final = "audit-public:"
_CHECK_VALUE: Final = b"ownkey fleet root key"
_PURPOSE: Final = "ownkey.fleet"
_SIGNING_FILE: Final = "audit-signing.key"


def _context(name: str) -> dict[str, str]:
    return {"purpose": _PURPOSE, "name": name}


def _body(key: StoredKey) -> str:
    return json.dumps(key.to_json(), sort_keys=True, separators=(",", ":"))


class SqlLocalKeys:
    """The embedded store's records (``LocalKeyRecords``) as rows of ``local_keys``.

    A destruction's old row (the key's sealed versions) is made unreadable from SQLite's files
    at once (``Database.purge_deleted``), as the JSON file was rewritten whole (KL-9); the store
    calls :meth:`purge_deleted` again at every ``destroy``, so a repeated one finishes a purge a
    reader held up."""

    def __init__(self, database: Database, store: FleetStore) -> None:
        self._db = database
        self._store = store

    def __repr__(self) -> str:
        return f"<SqlLocalKeys database={self._db.dialect}>"

    def get(self, key_id: str) -> StoredKey | None:
        body = self._store.get_key(key_id)
        return None if body is None else _parse(key_id, body)

    def add(self, key: StoredKey) -> None:
        if not self._store.add_key(key.key_id, _body(key)):
            raise ValueError(f"key {key.key_id} already exists")

    def replace(self, expected: StoredKey, new: StoredKey) -> bool:
        current = self._store.get_key(expected.key_id)
        if current is None or _parse(expected.key_id, current) != expected:
            return False
        if not self._store.replace_key(expected.key_id, current, _body(new)):
            return False
        if new.state is KeyState.DESTROYED and expected.state is not KeyState.DESTROYED:
            self._db.purge_deleted()  # a destruction, also one due at a key's next use
        return True

    def purge_deleted(self) -> None:
        """``Database.purge_deleted``: KeyUnavailable while a reader holds SQLite's WAL."""
        self._db.purge_deleted()

    def all(self) -> list[StoredKey]:
        return [_parse(key_id, body) for key_id, body in self._store.all_keys()]


def _parse(key_id: str, body: str) -> StoredKey:
    try:
        return StoredKey.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ConfigError(f"the local key store's record of {key_id} is unreadable") from exc


@dataclass(frozen=True, slots=True)
class FleetKeys:
    """The fleet's root key, the local store's records and the audit signing key."""

    root: ScopeKey = field(repr=False)
    records: SqlLocalKeys
    signing_key: AuditSigningKey
    store: FleetStore

    def public_keys(self) -> dict[str, bytes]:
        """Every public key that signs checkpoints in this database and whose registration
        opens under the root key, by key id; this node's own key always."""
        keys = {self.signing_key.key_id: self.signing_key.public_key}
        for name, sealed in self.store.secrets(PUBLIC):
            try:
                public = open_message(self.root, sealed, _context(name))
            except InvalidCiphertext:
                continue  # not sealed under the root key: not the fleet's, never trusted
            keys[name[len(PUBLIC) :]] = public
        return keys


def open_fleet(
    database: Database,
    env: Mapping[str, str],
    *,
    random: RandomSource = os.urandom,
    clock: Callable[[], float] = time.time,
) -> FleetKeys:
    """Check this node holds the fleet's root key, move an old home's keys into the database,
    and find the audit signing key. ConfigError, naming the setting, when the node lacks what
    the fleet needs."""
    store = FleetStore(database, clock=clock)
    root = _root_key(store, env, random)
    _import_key_file(database, store, root, env)
    signing = _signing_key(store, root, env, random)
    return FleetKeys(root, SqlLocalKeys(database, store), signing, store)


def _root_key(store: FleetStore, env: Mapping[str, str], random: RandomSource) -> ScopeKey:
    given = given_root_key(env)
    check = store.secret(CHECK)
    if (
        check is None
    ):  # the first node of this database: its key (created if need be) is the fleet's
        key = given[0] if given is not None else load_root_key(env, random=random)
        where = given[1] if given is not None else "the root key file this node created"
        sealed = seal_message(key, _CHECK_VALUE, _context(CHECK), random=random)
        check = store.add_secret(CHECK, sealed)
    elif given is None:
        raise ConfigError(
            f"{ROOT_KEY_ENV}: this database's key store is sealed under a root key this node "
            f"was not given; give every node the fleet's root key ({ROOT_KEY_ENV} or "
            f"{ROOT_KEY_FILE_ENV})"
        )
    else:
        key, where = given
    try:
        if open_message(key, check, _context(CHECK)) != _CHECK_VALUE:
            raise InvalidCiphertext()
    except InvalidCiphertext:
        raise ConfigError(
            f"{ROOT_KEY_ENV}: this database's key store is sealed under another root key than "
            f"the one from {where}; give every node the fleet's root key ({ROOT_KEY_ENV} or "
            f"{ROOT_KEY_FILE_ENV})"
        ) from None
    return key


def _import_key_file(
    database: Database, store: FleetStore, root: ScopeKey, env: Mapping[str, str]
) -> None:
    """Move ``$OWNKEY_HOME/local-keys.json`` (a home from before issue 28) into the database.

    Every version must open under the fleet's root key (else the file stays and the node
    refuses to start); a key already in the database is left as it is there. The file and
    its lock are removed once every record is in."""
    path = ownkey_home(env) / KEY_FILE
    if not path.exists():
        return
    records = SqlLocalKeys(database, store)
    for key in JsonKeyFile(path).all():
        for version in key.versions:
            context = {
                "purpose": "ownkey.local-store.key",
                "key_id": key.key_id,
                "version": version.name,
            }
            try:
                open_message(root, version.sealed, context)
            except InvalidCiphertext:
                raise ConfigError(
                    f"{ROOT_KEY_ENV}: {path} is sealed under another root key than this "
                    "database's key store; start this node with the root key that sealed it "
                    "once, alone, or move its keys by hand"
                ) from None
        if records.get(key.key_id) is None:
            with contextlib.suppress(ValueError):  # another process imported it meanwhile
                records.add(key)
    for leftover in (path, path.with_name(path.name + ".lock")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _signing_key(
    store: FleetStore, root: ScopeKey, env: Mapping[str, str], random: RandomSource
) -> AuditSigningKey:
    """The key this node signs checkpoints with; every key in use registered for verifiers."""
    legacy_path = ownkey_home(env) / _SIGNING_FILE
    legacy = AuditSigningKey.read_seed(legacy_path) if legacy_path.exists() else None
    sealed = store.secret(SIGNING)
    if sealed is None:
        seed = legacy if legacy is not None else random(32)
        sealed = store.add_secret(
            SIGNING, seal_message(root, seed, _context(SIGNING), random=random)
        )
    try:
        fleet = AuditSigningKey.from_seed(open_message(root, sealed, _context(SIGNING)))
    except InvalidCiphertext:
        raise ConfigError(
            "the database's audit signing key is not sealed under the fleet's root key "
            "(altered in the database)"
        ) from None
    given = AuditSigningKey.given(env)
    in_use = [fleet]
    if given is not None:
        in_use.append(given)
    if legacy is not None:
        in_use.append(AuditSigningKey.from_seed(legacy))
    for key in in_use:
        name = PUBLIC + key.key_id
        if store.secret(name) is None:
            store.add_secret(
                name, seal_message(root, key.public_key, _context(name), random=random)
            )
    if legacy is not None:
        # Its public key is registered (checkpoints it signed still verify everywhere); the
        # fleet's key signs from now on.
        with contextlib.suppress(FileNotFoundError):
            legacy_path.unlink()
    return given if given is not None else fleet
