"""Real processes on loopback: the test identity provider, the platform's hybrid routes and the
customer's key service, each started once per module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ownkey.client import HybridClient, PlatformCredentials
from ownkey.hybrid import Issuer, init_home
from ownkey.testing.oidc import OidcIssuer

ORG = "acme"
ALICE, BOB, CAROL, ADMIN = (
    "alice@acme.example",
    "bob@acme.example",
    "carol@acme.example",
    "admin@acme.example",
)
KACLS_AUD = "ownkey-hybrid"
PLATFORM_AUD = "ownkey-platform"
DAVE = "dave@globex.example"
MEMBERS = {
    ORG: {
        "users": [ALICE, BOB, CAROL, ADMIN],
        "conversations": {"conv-a": [ALICE, BOB], "conv-b": [ALICE, CAROL]},
        "advanced_chat_encryption": True,
    },
    "globex": {"users": [DAVE], "conversations": {"conv-g": [DAVE]}},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
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


@dataclass
class Flow:
    idp: OidcIssuer
    platform_url: str
    platform_state: Path
    kacls_url: str
    kacls_home: Path
    http: httpx.Client
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    _credentials: dict[str, PlatformCredentials] = field(default_factory=dict)

    def sign_in(self, email: str, audience: str = PLATFORM_AUD) -> str:
        """A sign-in token from the identity provider (one per user and audience: 5 minutes)."""
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
                authentication=lambda: self.sign_in(email, KACLS_AUD),
                http=self.http,
            )
        return self._credentials[email]

    def client(self, email: str, **kwargs: object) -> HybridClient:
        kwargs.setdefault("http", self.http)
        return HybridClient(
            self.kacls_url,
            org=ORG,
            credentials=self.credentials(email),
            **kwargs,  # type: ignore[arg-type]
        )

    def grant(
        self, email: str, conversation: str, role: str = "writer", service: str = "1001"
    ) -> str:
        return self.credentials(email).authorization(conversation, role, service)

    def upload(self, email: str, conversation: str, message: str, sealed: bytes) -> None:
        response = httpx.put(
            f"{self.platform_url}/hybrid/conversations/{conversation}/messages/{message}",
            content=sealed,
            headers={"Authorization": f"Bearer {self.sign_in(email)}"},
        )
        assert response.status_code == 204, response.text

    def download(self, email: str, conversation: str, message: str) -> bytes:
        response = httpx.get(
            f"{self.platform_url}/hybrid/conversations/{conversation}/messages/{message}",
            headers={"Authorization": f"Bearer {self.sign_in(email)}"},
        )
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("hybrid")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OWNKEY_HOME", None)
    env.pop("OWNKEY_ROOT_KEY", None)
    members = root / "members.json"
    members.write_text(json.dumps(MEMBERS), encoding="utf-8")
    with OidcIssuer() as idp:
        platform = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ownkey.hybrid.platform",
                "--state",
                str(root / "platform"),
                "--members",
                str(members),
                "--idp",
                idp.url,
                "--idp-audience",
                PLATFORM_AUD,
                "--kacls-audience",
                KACLS_AUD,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert platform.stdout is not None
            platform_url = platform.stdout.readline().strip().removeprefix("listening ")
            _wait(platform_url + "/hybrid/.well-known/jwks.json", platform)
            home = root / "kacls"
            init_home(
                home,
                org=ORG,
                authentication=Issuer(idp.url, KACLS_AUD),
                authorization=Issuer(platform_url + "/hybrid", KACLS_AUD),
                privileged=(ADMIN,),
                jwks_min_refresh_seconds=0.0,
            )
            port = _free_port()
            kacls = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ownkey",
                    "hybrid",
                    "serve",
                    "--home",
                    str(home),
                    "--port",
                    str(port),
                ],
                text=True,
                env=env,
            )
            try:
                kacls_url = f"http://127.0.0.1:{port}"
                _wait(kacls_url + "/status", kacls)
                with httpx.Client(timeout=5.0) as http:
                    yield Flow(idp, platform_url, root / "platform", kacls_url, home, http)
            finally:
                _stop(kacls)
        finally:
            _stop(platform)
