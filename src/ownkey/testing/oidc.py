"""A small OpenID Connect issuer for tests: a real process on loopback, never a patched verifier.

``python -m ownkey.testing.oidc`` serves, on 127.0.0.1 only:

===========================================  ====================================================
``GET /.well-known/openid-configuration``    discovery: ``issuer`` and ``jwks_uri``
``GET /jwks``                                the public keys (every published ``kid``)
``POST /mint``                               a signed ID token for the JSON claims posted
                                             (``iss``, ``iat``, ``exp`` default in; any can be
                                             overridden, e.g. an expired ``exp``)
``POST /rotate``                             a fresh current key; ``{"retire": kid}`` unpublishes
===========================================  ====================================================

``/mint`` is what makes it a *test* issuer: anyone on loopback may mint any identity. It exists so
that tests exercise the key service's real verification path (discovery, JWKS over HTTP, ``kid``
rotation) instead of a stub. :class:`OidcIssuer` starts and stops the process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from ownkey.hybrid._signing import SigningKeys

__all__ = ["OidcIssuer", "main"]

_TOKEN_SECONDS = 300


def _handler(keys: SigningKeys, base: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self) -> dict[str, Any]:
            size = int(self.headers.get("Content-Length") or 0)
            parsed = json.loads(self.rfile.read(size) or b"{}")
            return parsed if isinstance(parsed, dict) else {}

        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._reply(
                    200,
                    {
                        "issuer": base[0],
                        "jwks_uri": base[0] + "/jwks",
                        "id_token_signing_alg_values_supported": ["EdDSA"],
                    },
                )
            elif self.path == "/jwks":
                self._reply(200, keys.jwks())
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/mint":
                now = int(time.time())
                claims = {"iss": base[0], "iat": now, "exp": now + _TOKEN_SECONDS}
                claims.update(body.get("claims") or {})
                self._reply(200, {"token": keys.sign(claims, kid=body.get("kid"))})
            elif self.path == "/rotate":
                retire = body.get("retire")
                if retire:
                    keys.retire(str(retire))
                    self._reply(200, {"kid": keys.current_kid})
                else:
                    self._reply(200, {"kid": keys.rotate()})
            else:
                self._reply(404, {"error": "not found"})

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; print ``listening <url>`` once the socket is bound."""
    parser = argparse.ArgumentParser(prog="ownkey.testing.oidc")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    base: list[str] = [""]
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(SigningKeys(), base))
    base[0] = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"listening {base[0]}", flush=True)
    server.serve_forever()


class OidcIssuer:
    """The test issuer as a child process: ``with OidcIssuer() as idp: idp.token(email=...)``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> OidcIssuer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.spawn()
        self.wait()

    def spawn(self, port: int = 0) -> None:
        """Start the process; with a ``port``, ``url`` is known at once (call :meth:`wait`)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(  # noqa: S603 - our own module, our own arguments
            [sys.executable, "-m", "ownkey.testing.oidc", "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        if port:
            self.url = f"http://127.0.0.1:{port}"

    def wait(self) -> None:
        """Block until the process says it listens."""
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError("the test OIDC issuer did not start")
        self.url = line.removeprefix("listening ")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=5)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def token(self, *, kid: str | None = None, **claims: Any) -> str:
        """A token with ``claims`` (``email``, ``aud``, ... and any override)."""
        body: dict[str, Any] = {"claims": claims}
        if kid is not None:
            body["kid"] = kid
        response = httpx.post(self.url + "/mint", json=body, timeout=5)
        response.raise_for_status()
        return str(response.json()["token"])

    def rotate(self) -> str:
        """Publish a fresh current key and return its ``kid``."""
        response = httpx.post(self.url + "/rotate", json={}, timeout=5)
        response.raise_for_status()
        return str(response.json()["kid"])

    def retire(self, kid: str) -> None:
        httpx.post(self.url + "/rotate", json={"retire": kid}, timeout=5).raise_for_status()

    def jwks(self) -> dict[str, Any]:
        response = httpx.get(self.url + "/jwks", timeout=5)
        response.raise_for_status()
        return dict(response.json())


if __name__ == "__main__":
    main()
