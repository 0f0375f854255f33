"""The package's public face: the error tree and the console script."""

from __future__ import annotations

import subprocess
import sys

import ownkey.errors as errors


def test_every_public_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.OwnkeyError), name


def test_invalid_ciphertext_says_nothing_specific() -> None:
    assert str(errors.InvalidCiphertext()) == "invalid ciphertext"


def test_console_script_shows_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ownkey", "--help"], capture_output=True, text=True, check=True
    )
    assert "policy" in out.stdout
    assert "demo" in out.stdout


def test_public_names_are_pinned() -> None:
    """The curated front door: adding or removing a public name is a deliberate act."""
    import ownkey

    assert ownkey.__all__ == [
        "AccessDenied",
        "AuditDamaged",
        "AuditUnavailable",
        "ConfigError",
        "Conflict",
        "InvalidCiphertext",
        "InvalidRequest",
        "KeyUnavailable",
        "LifecycleError",
        "LimitExceeded",
        "NotFound",
        "OwnkeyError",
        "PolicyError",
        "Protector",
        "ProtectorSettings",
        "__version__",
        "build_protector",
    ]
    for name in ownkey.__all__:
        assert getattr(ownkey, name) is not None


def test_front_door_seals_and_opens() -> None:
    import ownkey

    protector = ownkey.build_protector(ownkey.ProtectorSettings(auto_create_keys=True))
    request = {
        "orgs": {"acme": {"cmk": True, "services": ["0004"], "licensed_users": ["ann@acme.test"]}},
        "asset": {
            "service_id": "0004",
            "org": "acme",
            "owner": "ann@acme.test",
            "owner_kind": "user",
            "component": "token",
        },
        "scope": "user:ann",
        "asset_id": "calendar-token",
    }
    sealed = protector.seal(request, b"oauth-refresh-token")
    assert b"oauth-refresh-token" not in sealed
    assert protector.open(request, sealed) == b"oauth-refresh-token"
    assert protector.explain(request).to_json()["protection"] == "customer"


def test_import_ownkey_does_not_load_the_service_layer() -> None:
    code = "import sys, ownkey; print('ownkey.service' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
