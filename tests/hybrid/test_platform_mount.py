"""The platform API mounts the CMK Hybrid routes only when configured, and fails closed when
half-configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ownkey.api.hybrid_platform import platform_store
from ownkey.errors import ConfigError
from ownkey.hybrid.platform import mount_platform_routes
from ownkey.service import AssetCiphertexts


def test_nothing_is_mounted_without_configuration() -> None:
    app = FastAPI()
    assert mount_platform_routes(app, {}) is False
    assert not [r for r in app.routes if getattr(r, "path", "").startswith("/hybrid")]


def test_half_a_configuration_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OWNKEY_HYBRID_ISSUER"):
        mount_platform_routes(FastAPI(), {"OWNKEY_HYBRID_IDP": "http://127.0.0.1:1"})


def test_configured_routes_publish_discovery_and_jwks(tmp_path: Path) -> None:
    members = tmp_path / "members.json"
    members.write_text(json.dumps({}), encoding="utf-8")
    env = {
        "OWNKEY_HOME": str(tmp_path),
        "OWNKEY_HYBRID_ISSUER": "https://platform.example/hybrid",
        "OWNKEY_HYBRID_IDP": "http://127.0.0.1:1",
        "OWNKEY_HYBRID_MEMBERS": str(members),
    }
    app = FastAPI()
    with pytest.raises(ConfigError, match="asset store"):
        mount_platform_routes(app, env)  # fail closed: no ciphertext anywhere but the store
    assert (
        mount_platform_routes(app, env, ciphertexts=AssetCiphertexts(platform_store(tmp_path)))
        is True
    )
    with TestClient(app) as client:
        discovery = client.get("/hybrid/.well-known/openid-configuration").json()
        assert discovery["issuer"] == "https://platform.example/hybrid"
        keys = client.get("/hybrid/.well-known/jwks.json").json()["keys"]
        assert keys
        assert all("d" not in key for key in keys)
        refused = client.post("/hybrid/authorize", json={"authentication": "x"})
        assert refused.status_code == 403
        for body in (b"[" * 5000, b"{not json", "\ud800".encode("utf-8", "surrogatepass")):
            # nested thousands deep was a RecursionError: a 500
            bad = client.post(
                "/hybrid/authorize", content=body, headers={"Content-Type": "application/json"}
            )
            assert bad.status_code == 400, (body[:10], bad.text)
    key_file = tmp_path / "hybrid-platform" / "authz-signing-keys.json"
    assert key_file.stat().st_mode & 0o077 == 0


def test_rotate_and_retire_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ownkey.api.hybrid_platform import main
    from ownkey.hybrid import SigningKeys

    path = tmp_path / "authz-signing-keys.json"
    first = SigningKeys.persistent(path)
    old = first.current_kid
    main(["--state", str(tmp_path), "--rotate"])
    new = capsys.readouterr().out.strip()
    assert new != old
    assert first.current_kid == new  # a serving instance follows the file
    assert {k["kid"] for k in first.jwks()["keys"]} == {old, new}
    main(["--state", str(tmp_path), f"--retire={old}"])  # a kid may start with "-"
    assert capsys.readouterr().out.strip() == new
    assert {k["kid"] for k in first.jwks()["keys"]} == {new}
    with pytest.raises(SystemExit):
        main(["--state", str(tmp_path)])  # serving needs --members and --idp


def test_a_sign_in_audience_the_key_service_accepts_is_a_config_error(tmp_path: Path) -> None:
    """Issue 23 s4: the platform holds every sign-in token; if they were for the key service's
    audience, the platform would hold the users' authentication too."""
    members = tmp_path / "members.json"
    members.write_text(json.dumps({}), encoding="utf-8")
    env = {
        "OWNKEY_HOME": str(tmp_path),
        "OWNKEY_HYBRID_ISSUER": "https://platform.example/hybrid",
        "OWNKEY_HYBRID_IDP": "http://127.0.0.1:1",
        "OWNKEY_HYBRID_MEMBERS": str(members),
        "OWNKEY_HYBRID_IDP_AUDIENCE": "ownkey-hybrid",
    }
    store = AssetCiphertexts(platform_store(tmp_path / "state"))
    with pytest.raises(ConfigError, match="sign-in audience must differ"):
        mount_platform_routes(FastAPI(), env, ciphertexts=store)
