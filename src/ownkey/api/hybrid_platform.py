"""``python -m ownkey.api.hybrid_platform``: the platform's CMK Hybrid routes alone on loopback.

For tests and the demo: the same router as ``ownkey serve`` mounts, its ciphertext in an asset
store of its own (SQLite ``platform.db`` and blobs under ``--state``), members from ``--members``.
It lives in the API layer because it reaches the platform's storage, which ``ownkey.hybrid``
must not (pyproject's import contracts). ``--rotate`` / ``--retire KID`` manage the grant keys.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from fastapi import FastAPI

from ownkey.hybrid import SigningKeys
from ownkey.hybrid.platform import build_platform_router
from ownkey.service import AssetCiphertexts
from ownkey.storage import AssetStore, Database, DirectoryBlobStore

__all__ = ["main", "platform_store"]


def platform_store(state: Path) -> AssetStore:
    """The asset store of a standalone platform: ``state/platform.db`` and ``state/blobs``."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    database = Database.open(f"sqlite:///{state / 'platform.db'}")
    return AssetStore(database, DirectoryBlobStore(state / "blobs"))


def main(argv: list[str] | None = None) -> None:
    """Run the platform's hybrid routes alone on loopback; print ``listening <url>``."""
    import uvicorn

    from ownkey._redact import uvicorn_log_config

    parser = argparse.ArgumentParser(prog="ownkey.api.hybrid_platform")
    parser.add_argument("--state", type=Path, required=True, help="platform state directory")
    parser.add_argument("--members", type=Path)
    parser.add_argument("--idp", help="issuer URL of the users' sign-in tokens")
    parser.add_argument("--idp-audience", default="ownkey-platform")
    parser.add_argument("--kacls-audience", default="ownkey-hybrid")
    parser.add_argument("--port", type=int, default=0, help="loopback port (default: any free)")
    parser.add_argument("--jwks-min-refresh", type=float, default=5.0, help="seconds")
    parser.add_argument("--rotate", action="store_true", help="rotate the grant keys and exit")
    parser.add_argument("--retire", metavar="KID", help="unpublish an old grant key and exit")
    args = parser.parse_args(argv)
    if args.rotate or args.retire:
        keys = SigningKeys.persistent(args.state / "authz-signing-keys.json")
        if args.retire:
            keys.retire(args.retire)
        print(keys.rotate() if args.rotate else keys.current_kid)
        return
    if args.members is None or args.idp is None:
        parser.error("serving needs --members and --idp")
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = FastAPI(title="ownkey platform (hybrid routes)", docs_url=None, redoc_url=None)
    app.include_router(
        build_platform_router(
            state=args.state,
            members=args.members,
            issuer_url=base + "/hybrid",
            idp=args.idp,
            idp_audience=args.idp_audience,
            kacls_audience=args.kacls_audience,
            ciphertexts=AssetCiphertexts(platform_store(args.state)),
            jwks_min_refresh_seconds=args.jwks_min_refresh,
        )
    )
    print(f"listening {base}", flush=True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, log_config=uvicorn_log_config()
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
