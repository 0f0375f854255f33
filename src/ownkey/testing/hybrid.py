"""The whole CMK Hybrid flow as real processes on loopback, for tests, the bench and the demo.

:class:`HybridStack` starts, under one directory: the test identity provider
(:mod:`ownkey.testing.oidc`), the platform's hybrid routes
(``python -m ownkey.api.hybrid_platform``, its ciphertext in an asset store of its own) and
the customer's key service (``python -m ownkey hybrid serve``, its own home). Each is its own
process, so the platform and the key service share nothing but HTTP, as in production.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import httpx

from ownkey.client import HybridClient, PlatformCredentials
from ownkey.hybrid import Issuer, init_home
from ownkey.storage import AssetRecord, AssetStore, Database, DirectoryBlobStore
from ownkey.testing.oidc import OidcIssuer

__all__ = ["KACLS_AUDIENCE", "PLATFORM_AUDIENCE", "HybridStack", "free_port"]

KACLS_AUDIENCE: Final = "ownkey-hybrid"
PLATFORM_AUDIENCE: Final = "ownkey-platform"


def free_port() -> int:
    """A TCP port that was free a moment ago on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process behind {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


class HybridStack:
    """``with HybridStack(root, org, members, privileged=...) as stack: stack.client(email)``."""

    def __init__(
        self,
        root: Path,
        org: str,
        members: Mapping[str, Any],
        *,
        privileged: tuple[str, ...] = (),
        audit_sync: str = "normal",
    ) -> None:
        self.root = root
        self._audit_sync = audit_sync
        self.org = org
        self.members_file = root / "members.json"
        self.platform_state = root / "platform"
        self.kacls_home = root / "kacls"
        self._members = members
        self._privileged = privileged
        self.idp = OidcIssuer()
        self.platform_url = ""
        self.kacls_url = ""
        self.http = httpx.Client(timeout=5.0)
        self._processes: list[subprocess.Popen[str]] = []
        self._tokens: dict[tuple[str, str], str] = {}
        self._credentials: dict[str, PlatformCredentials] = {}

    def __enter__(self) -> HybridStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        """Start the three processes at once (ports chosen up front), then wait for each."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OWNKEY_HOME", None)
        env.pop("OWNKEY_ROOT_KEY", None)
        self.root.mkdir(parents=True, exist_ok=True)
        self.members_file.write_text(json.dumps(self._members), encoding="utf-8")
        idp_port, platform_port, kacls_port = free_port(), free_port(), free_port()
        self.idp.spawn(idp_port)
        self.platform_url = f"http://127.0.0.1:{platform_port}"
        self.kacls_url = f"http://127.0.0.1:{kacls_port}"
        platform = subprocess.Popen(  # noqa: S603 - our own module, our own arguments
            [
                sys.executable,
                "-m",
                "ownkey.api.hybrid_platform",
                "--state",
                str(self.platform_state),
                "--members",
                str(self.members_file),
                "--idp",
                self.idp.url,
                "--idp-audience",
                PLATFORM_AUDIENCE,
                "--kacls-audience",
                KACLS_AUDIENCE,
                "--port",
                str(platform_port),
                "--jwks-min-refresh",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._processes.append(platform)
        init_home(
            self.kacls_home,
            org=self.org,
            authentication=Issuer(self.idp.url, KACLS_AUDIENCE),
            authorization=Issuer(self.platform_url + "/hybrid", KACLS_AUDIENCE),
            privileged=self._privileged,
            jwks_min_refresh_seconds=0.0,
        )
        if self._audit_sync != "normal":  # hybrid.json's audit_sync (HybridStore)
            config = self.kacls_home / "hybrid.json"
            raw = json.loads(config.read_text(encoding="utf-8"))
            raw["audit_sync"] = self._audit_sync
            config.write_text(json.dumps(raw), encoding="utf-8")
        serve = ["hybrid", "serve", "--home", str(self.kacls_home), "--port", str(kacls_port)]
        kacls = subprocess.Popen(  # noqa: S603 - our own command, our own arguments
            [sys.executable, "-m", "ownkey", *serve],
            text=True,
            env=env,
        )
        self._processes.append(kacls)
        self.idp.wait()
        _wait(self.platform_url + "/hybrid/.well-known/jwks.json", platform)
        _wait(self.kacls_url + "/status", kacls)

    def close(self) -> None:
        for process in reversed(self._processes):
            _stop(process)
        self._processes.clear()
        self.idp.stop()
        self.http.close()

    def stop_key_service(self) -> None:
        """Stop the key service (the last process started): the outage case."""
        if self._processes:
            _stop(self._processes.pop())

    # -- users -----------------------------------------------------------------------------------

    def sign_in(self, email: str, audience: str = PLATFORM_AUDIENCE) -> str:
        """A sign-in token from the identity provider (one per user and audience, 5 minutes)."""
        if (email, audience) not in self._tokens:
            self._tokens[(email, audience)] = self.idp.token(email=email, aud=audience)
        return self._tokens[(email, audience)]

    def forget_tokens(self) -> None:
        self._tokens.clear()

    def credentials(self, email: str) -> PlatformCredentials:
        if email not in self._credentials:
            self._credentials[email] = PlatformCredentials(
                self.platform_url,
                lambda: self.sign_in(email),
                authentication=lambda: self.sign_in(email, KACLS_AUDIENCE),
                http=self.http,
            )
        return self._credentials[email]

    def client(self, email: str, **kwargs: Any) -> HybridClient:
        kwargs.setdefault("http", self.http)
        return HybridClient(
            self.kacls_url, org=self.org, credentials=self.credentials(email), **kwargs
        )

    def grant(
        self, email: str, conversation: str, role: str = "writer", service: str = "1001"
    ) -> str:
        return self.credentials(email).authorization(conversation, role, service)

    def _message_url(self, conversation: str, message: str) -> str:
        return f"{self.platform_url}/hybrid/conversations/{conversation}/messages/{message}"

    def upload(self, email: str, conversation: str, message: str, sealed: bytes) -> None:
        """Store ciphertext at the platform as the member ``email``."""
        response = self.http.put(
            self._message_url(conversation, message),
            content=sealed,
            headers={"Authorization": f"Bearer {self.sign_in(email)}"},
        )
        if response.status_code != 204:
            raise RuntimeError(f"platform refused the upload: HTTP {response.status_code}")

    def platform_assets(self) -> dict[str, tuple[AssetRecord, bytes]]:
        """Everything the platform's asset store holds, read straight from its database and
        blobs (what a thief of the platform gets): record and sealed bytes by asset id."""
        database = Database.open(f"sqlite:///{self.platform_state / 'platform.db'}", migrate=False)
        try:
            store = AssetStore(database, DirectoryBlobStore(self.platform_state / "blobs"))
            return {r.asset_id: store.read(r.asset_id) for r in store.page(limit=10_000)}
        finally:
            database.close()

    def platform_files(self) -> list[bytes]:
        """The bytes of every file under the platform's state directory (database included)."""
        return [p.read_bytes() for p in sorted(self.platform_state.rglob("*")) if p.is_file()]

    def download(self, email: str, conversation: str, message: str) -> bytes:
        response = self.http.get(
            self._message_url(conversation, message),
            headers={"Authorization": f"Bearer {self.sign_in(email)}"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"platform refused the download: HTTP {response.status_code}")
        return response.content
