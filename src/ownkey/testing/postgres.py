"""A throw-away PostgreSQL server for tests: initdb + pg_ctl in a temp dir, on loopback.

CI runs as root and PostgreSQL refuses to, so the server runs as the ``postgres`` system user
(``runuser``) on a data directory that user owns. It listens on 127.0.0.1 on a free port with its
socket in the temp dir, uses trust authentication (loopback only), and is stopped (and its
directory removed) when the last user releases it. If it cannot start, :func:`acquire` raises:
tests that need PostgreSQL fail, they do not skip.

Used by ``tests/storage`` and ``tests/jobs`` through a session fixture::

    url = acquire()            # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
    db_url = create_database(url)
    ...
    release()
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

__all__ = ["PostgresServer", "acquire", "create_database", "drop_database", "release"]

_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def find_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest installed version first)."""
    candidates: list[Path] = []
    for pattern in _SEARCH:
        found = [Path(p) for p in glob.glob(pattern)]
        candidates.extend(sorted(found, key=lambda p: _version(p), reverse=True))
    which = shutil.which("initdb")
    if which:
        candidates.append(Path(which).parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; run scripts/ensure-system-deps"
    )


def _version(path: Path) -> float:
    try:
        return float(path.parent.name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server in its own temp dir; :meth:`start` then :meth:`stop`."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="ownkey-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
        except RuntimeError as exc:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"{exc}\n{tail}") from None
        self.started = True
        return self.url

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


_lock = threading.Lock()
_server: PostgresServer | None = None
_users = 0


def acquire() -> str:
    """Start the shared server on first use; return its admin URL. Raises if it cannot start."""
    global _server, _users
    with _lock:
        if _server is None:
            server = PostgresServer()
            server.start()
            _server = server
        _users += 1
        return _server.url


def release() -> None:
    """Stop the shared server once its last user has released it."""
    global _server, _users
    with _lock:
        _users -= 1
        if _users <= 0 and _server is not None:
            _server.stop()
            _server = None
            _users = 0


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def create_database(url: str, name: str | None = None) -> str:
    """Create a fresh database on the server of ``url``; return its URL."""
    import psycopg

    name = name or "t_" + uuid.uuid4().hex[:16]
    conninfo = _admin_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name built above, not user input
    return url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop the database of ``url`` (terminating its connections)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    conninfo = _admin_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
