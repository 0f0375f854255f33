"""The root key of the embedded local key store: from ``OWNKEY_ROOT_KEY`` or a 0600 file.

The local store keeps every key version sealed under this one 256-bit key. It comes from the
environment (``OWNKEY_ROOT_KEY``: 64 hex digits or the base64 of 32 bytes) when an operator
injects it from a secret manager, else from the file ``OWNKEY_ROOT_KEY_FILE`` names, else from
``$OWNKEY_HOME/root.key``, created with mode 0600 on first run. A root-key file that others can
read is refused, as ssh refuses such a private key. :func:`given_root_key` reads the same places
without creating anything: a node of a fleet must be given the fleet's key, not make its own.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from ownkey.envelope import ScopeKey
from ownkey.errors import ConfigError

__all__ = [
    "HOME_ENV",
    "ROOT_KEY_ENV",
    "ROOT_KEY_FILE",
    "ROOT_KEY_FILE_ENV",
    "given_root_key",
    "load_root_key",
    "ownkey_home",
]

HOME_ENV: Final = "OWNKEY_HOME"
ROOT_KEY_ENV: Final = "OWNKEY_ROOT_KEY"
ROOT_KEY_FILE: Final = "root.key"
ROOT_KEY_FILE_ENV: Final = "OWNKEY_ROOT_KEY_FILE"
ROOT_KEY_ID: Final = b"ownkey/local-store/root"
_KEY_BYTES = 32


def ownkey_home(env: Mapping[str, str] | None = None) -> Path:
    """``OWNKEY_HOME``, default ``~/.ownkey`` (the same rule as the storage layer)."""
    env = os.environ if env is None else env
    return Path(env.get(HOME_ENV) or Path.home() / ".ownkey")


def _parse(text: str) -> bytes | None:
    text = text.strip()
    if len(text) == 2 * _KEY_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _KEY_BYTES else None


def given_root_key(env: Mapping[str, str] | None = None) -> tuple[ScopeKey, str] | None:
    """The root key this node was given and where it came from (the setting's name, or the
    file), or None when there is none: nothing is created."""
    env = os.environ if env is None else env
    setting = env.get(ROOT_KEY_ENV)
    if setting:
        material = _parse(setting)
        if material is None:
            raise ConfigError(f"{ROOT_KEY_ENV} must be 64 hex digits or the base64 of 32 bytes")
        return ScopeKey(ROOT_KEY_ID, material), ROOT_KEY_ENV
    named = env.get(ROOT_KEY_FILE_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{ROOT_KEY_FILE_ENV}: no such file {path}")
        return _read_file(path), ROOT_KEY_FILE_ENV
    path = ownkey_home(env) / ROOT_KEY_FILE
    if not path.exists():
        return None
    return _read_file(path), str(path)


def _read_file(path: Path) -> ScopeKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the root key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            "run chmod 600 on it"
        )
    material = _parse(path.read_text(encoding="ascii", errors="replace"))
    if material is None:
        raise ConfigError(f"the root key file {path} does not hold a 32-byte key")
    return ScopeKey(ROOT_KEY_ID, material)


def load_root_key(
    env: Mapping[str, str] | None = None,
    *,
    random: Callable[[int], bytes] = os.urandom,
) -> ScopeKey:
    """The root key, from the environment or a file (the home's is created on first run)."""
    env = os.environ if env is None else env
    given = given_root_key(env)
    if given is not None:
        return given[0]
    path = ownkey_home(env) / ROOT_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # Written whole under a name of this process's, then linked into place: the link is
        # atomic and fails if another process's key got there first, so no process ever reads
        # the file half-written (three nodes starting at once on one home read "does not hold
        # a 32-byte key" when the key was written after an O_EXCL create).
        draft = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        draft.unlink(missing_ok=True)  # a crashed process's, under a reused pid
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(random(_KEY_BYTES).hex() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another's came first: read theirs
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    return _read_file(path)
