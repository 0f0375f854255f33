"""Private files and directories: what ownkey writes under ``OWNKEY_HOME`` is the owner's only.

The database holds wrapped shares, token digests and the audit log; ``objects/`` holds sealed
content. Both are created owner-only (files 0600, directories 0700) whatever the umask, and an
existing home that the group or others can read is refused at start, as the root key file is
(``providers/_rootkey.py``): if an operator created it 0755, everything in it would be readable
by every local account.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from ownkey.errors import ConfigError

__all__ = ["check_private_home", "private_dir", "private_file"]

_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def check_private_home(home: Path) -> None:
    """Refuse (ConfigError) a home that is not a directory or that others can enter or read.

    A home that does not exist yet is fine: it is created 0700 by the first writer."""
    try:
        mode = home.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"OWNKEY_HOME {home} cannot be read ({type(exc).__name__})") from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"OWNKEY_HOME {home} is not a directory")
    if mode & _OTHERS:
        raise ConfigError(
            f"OWNKEY_HOME {home} is open to others (mode {stat.S_IMODE(mode):o}); "
            "run chmod 700 on it"
        )


def private_dir(path: Path) -> None:
    """Create ``path`` (and its missing parents) 0700, not the umask's default."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)


def private_file(path: Path) -> None:
    """Make ``path`` exist owner-only (0600) before a library opens it with the umask's mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if stat.S_IMODE(path.stat().st_mode) & _OTHERS:
        os.chmod(path, 0o600)
