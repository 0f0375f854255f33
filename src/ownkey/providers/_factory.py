"""Build a provider by kind from plain settings: what the CLI and the composition root call.

Settings come from the caller (``--set name=value`` on the CLI) and, for any not given, from the
environment as ``OWNKEY_<KIND>_<NAME>`` (``OWNKEY_KMIP_HOST``, ``OWNKEY_PKCS11_PIN``, ...). A secret
(the PKCS#11 PIN) is accepted from the environment or a file only, never as a command-line
value, and no error message ever repeats it. The SDK of each provider is an optional extra; a
missing one is a :class:`~ownkey.errors.ConfigError` that says what to install.

==========  ===================================================================================
kind        settings (required in bold in the guides)
==========  ===================================================================================
local       none (``OWNKEY_HOME``, ``OWNKEY_ROOT_KEY``)
pkcs11      library, token, pin (env) or pin_file, timeout, owns_destruction
kmip        host, port, cert, key, ca, server_name, timeout, owns_destruction,
            allow_local_binding, disable_in_server (``true``/``false``)
aws_kms     region, endpoint_url, profile, timeout, owns_destruction
==========  ===================================================================================

``owns_destruction`` (``true``/``false``, default ``false``) says whether the customer lets ownkey
destroy its key in its own key manager when ownkey destroys the key (KL-9): PKCS#11
``C_DestroyObject``, KMIP ``Revoke`` + ``Destroy``, AWS KMS ``ScheduleKeyDeletion``. Off, the key
stays in the customer's key manager and the shred evidence says so. The embedded ``local`` store
always destroys its own keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from ownkey.errors import ConfigError
from ownkey.keys import KeyProvider

__all__ = ["PROVIDER_KINDS", "SETTINGS", "build_provider", "provider_settings"]

PROVIDER_KINDS: Final = ("local", "pkcs11", "kmip", "aws_kms")
#: The settings each kind accepts.
SETTINGS: Final[Mapping[str, frozenset[str]]] = {
    "local": frozenset(),
    "pkcs11": frozenset({"library", "token", "pin", "pin_file", "timeout", "owns_destruction"}),
    "kmip": frozenset(
        {
            "host",
            "port",
            "cert",
            "key",
            "ca",
            "server_name",
            "timeout",
            "allow_local_binding",
            "disable_in_server",
            "owns_destruction",
        }
    ),
    "aws_kms": frozenset({"region", "endpoint_url", "profile", "timeout", "owns_destruction"}),
}
_SECRETS: Final = frozenset({"pin"})
#: The longest network timeout a provider setting may ask for (a typo like ``inf`` or ``nan``
#: would otherwise reach the socket, or hang a request for hours).
MAX_TIMEOUT_SECONDS: Final = 600.0
_EXTRAS: Final = {"pkcs11": "pkcs11", "kmip": "kmip", "aws_kms": "aws"}


def provider_settings(
    kind: str,
    given: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    secrets_given: bool = False,
) -> dict[str, str]:
    """The settings of ``kind``: ``given`` first, then ``OWNKEY_<KIND>_<NAME>`` variables.

    ``secrets_given=False`` (the CLI) refuses a secret among ``given``.
    """
    if kind not in SETTINGS:
        raise ConfigError(f"unknown provider {kind!r}; one of {', '.join(PROVIDER_KINDS)}")
    env = os.environ if env is None else env
    allowed = SETTINGS[kind]
    settings: dict[str, str] = {}
    for name, value in (given or {}).items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"{kind} has no setting {name!r} (settings: {known})")
        if name in _SECRETS and not secrets_given:
            raise ConfigError(
                f"pass the {kind} {name} in OWNKEY_{kind.upper()}_{name.upper()} or "
                f"{name}_file, never on the command line"
            )
        settings[name] = value
    for name in allowed:
        variable = f"OWNKEY_{kind.upper()}_{name.upper()}"
        if name not in settings and env.get(variable):
            settings[name] = env[variable]
    return settings


def _require(kind: str, settings: Mapping[str, str], name: str) -> str:
    value = settings.get(name)
    if not value:
        raise ConfigError(
            f"{kind} needs the {name} setting (--set {name}=... or "
            f"OWNKEY_{kind.upper()}_{name.upper()})"
        )
    return value


def _float(kind: str, settings: Mapping[str, str], name: str, default: float) -> float:
    text = settings.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{kind} {name} must be a number of seconds, not {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_SECONDS:  # nan and inf too: a socket takes neither
        raise ConfigError(f"{kind} {name} must be above 0 and at most {MAX_TIMEOUT_SECONDS:g} s")
    return value


def _flag(kind: str, settings: Mapping[str, str], name: str) -> bool:
    """A yes/no setting; anything but ``true``/``false`` is refused (default ``false``), so a
    typo never turns on a destructive step."""
    text = settings.get(name, "false").strip().lower()
    if text not in ("true", "false"):
        raise ConfigError(f"{kind} {name} must be true or false, not {text!r}")
    return text == "true"


def _missing_sdk(kind: str, exc: ImportError) -> ConfigError:
    return ConfigError(
        f"the {kind} provider needs its SDK ({exc.name}): pip install 'ownkey[{_EXTRAS[kind]}]'"
    )


def build_provider(
    kind: str,
    given: Mapping[str, str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    secrets_given: bool = False,
) -> KeyProvider:
    """A provider of ``kind`` (``local``, ``pkcs11``, ``kmip``, ``aws_kms``) from settings."""
    env = os.environ if env is None else env
    settings = provider_settings(kind, given, env, secrets_given=secrets_given)
    label = name or kind
    if kind == "local":
        from ownkey.providers._local_store import LocalKeyStoreProvider

        return LocalKeyStoreProvider(env=env, name=label)
    if kind == "pkcs11":
        try:
            from ownkey.providers._pkcs11 import Pkcs11Provider
        except ImportError as exc:
            raise _missing_sdk(kind, exc) from exc
        pin = settings.get("pin")
        if not pin and settings.get("pin_file"):
            try:
                pin = Path(settings["pin_file"]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"pkcs11 pin_file: cannot read {settings['pin_file']}") from exc
        if not pin:
            raise ConfigError("pkcs11 needs the token PIN (OWNKEY_PKCS11_PIN or pin_file)")
        return Pkcs11Provider(
            library=_require(kind, settings, "library"),
            token_label=_require(kind, settings, "token"),
            pin=pin,
            name=label,
            timeout=_float(kind, settings, "timeout", 5.0),
            owns_destruction=_flag(kind, settings, "owns_destruction"),
        )
    if kind == "kmip":
        try:
            from ownkey.providers._kmip import KmipProvider
        except ImportError as exc:
            raise _missing_sdk(kind, exc) from exc
        port_text = settings.get("port", "5696")
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ConfigError(f"kmip port must be a TCP port number, not {port_text!r}")
        return KmipProvider(
            host=_require(kind, settings, "host"),
            port=int(port_text),
            certfile=_require(kind, settings, "cert"),
            keyfile=_require(kind, settings, "key"),
            ca_file=_require(kind, settings, "ca"),
            server_hostname=settings.get("server_name"),
            name=label,
            timeout=_float(kind, settings, "timeout", 2.0),
            allow_local_binding=_flag(kind, settings, "allow_local_binding"),
            disable_in_server=_flag(kind, settings, "disable_in_server"),
            owns_destruction=_flag(kind, settings, "owns_destruction"),
        )
    try:
        from ownkey.providers._aws_kms import AwsKmsProvider
    except ImportError as exc:
        raise _missing_sdk(kind, exc) from exc
    return AwsKmsProvider(
        region=settings.get("region"),
        endpoint_url=settings.get("endpoint_url"),
        profile=settings.get("profile"),
        name=label,
        timeout=_float(kind, settings, "timeout", 2.0),
        owns_destruction=_flag(kind, settings, "owns_destruction"),
    )
