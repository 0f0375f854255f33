"""The package's public face: the error tree and the console script."""

from __future__ import annotations

import importlib.metadata
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
        "PlanChanged",
        "PolicyError",
        "Protector",
        "ProtectorSettings",
        "RetiredScopeKey",
        "__version__",
        "build_protector",
    ]
    from ownkey import errors, service

    for name in errors.__all__:
        assert getattr(ownkey, name) is getattr(errors, name), name
    for name in ("Protector", "ProtectorSettings", "build_protector"):
        assert getattr(ownkey, name) is getattr(service, name), name
    assert ownkey.__version__ == importlib.metadata.version("ownkey")


def test_every_error_class_is_in_the_tree_and_at_the_front_door() -> None:
    """Each error class ownkey defines lives in ``ownkey.errors``, is listed in its ``__all__``
    and its docstring's tree, and is re-exported by ``ownkey``."""
    import ownkey
    from ownkey import errors

    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.OwnkeyError)
    }
    assert defined == set(errors.__all__)
    assert defined <= set(ownkey.__all__)
    tree = errors.__doc__ or ""
    for name in defined - {"OwnkeyError"}:
        assert f"── {name} " in tree, name


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
