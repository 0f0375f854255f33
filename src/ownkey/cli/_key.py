"""``ownkey key register``: check an org's key in its key manager, then record it.

``register ORG --provider KIND --key-id ID [--set name=value ...]`` builds the provider from the
settings (missing ones from ``OWNKEY_<KIND>_<NAME>``; see ``docs/guides/``), then checks the key
for real before accepting it:

1. the key manager knows the key and says it is enabled;
2. a random 32-byte probe wrapped under the key, with an encryption context naming the org,
   unwraps to the same bytes;
3. the same wrapped probe does *not* unwrap under another context (the manager binds it).

Only then is the key registered as ``customer:ORG`` in ownkey's database, through the service
layer (which audits the change and repeats the round trip). Any failure is one line on stderr
that says what is wrong and what to check; nothing is registered. Exit codes: 0 registered,
1 the key or its manager failed a check, 2 bad input (unknown provider, malformed or missing
setting).
"""

from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any

import typer

from ownkey.errors import (
    AccessDenied,
    ConfigError,
    InvalidCiphertext,
    KeyUnavailable,
    NotFound,
    OwnkeyError,
)

key_app = typer.Typer(help="Register and check customer keys.", no_args_is_help=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
PROBE_PURPOSE = "ownkey.key-register"


def _say(message: str, code: int) -> typer.Exit:
    typer.echo(f"ownkey: {' '.join(message.split())}", err=True)
    return typer.Exit(code=code)


def _parse_settings(pairs: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _say(f"--set takes name=value, not {pair!r}", EXIT_BAD_INPUT)
        settings[name.strip()] = value
    return settings


def _explain(kind: str, key_id: str, step: str, exc: OwnkeyError) -> typer.Exit:
    """One line for a failed check: what happened, at which step, what to look at."""
    what = f"{kind} key {key_id!r}"
    if isinstance(exc, NotFound):
        hint = "the key manager does not know it; check --key-id and the provider settings"
        # a named object that does not exist is bad input (exit 2), as for every command
        return _say(f"{what}: not found ({step}): {hint}", EXIT_BAD_INPUT)
    if isinstance(exc, AccessDenied):
        return _say(
            f"{what}: refused ({exc.reason}) during {step}: {exc}; enable the key or grant "
            "ownkey encrypt and decrypt on it",
            EXIT_FAILED,
        )
    if isinstance(exc, KeyUnavailable):
        return _say(
            f"{what}: the key manager did not answer during {step}: {exc}; check that it is "
            "reachable, then try again",
            EXIT_FAILED,
        )
    if isinstance(exc, InvalidCiphertext):
        return _say(
            f"{what}: the {step} failed: the key did not unwrap what it wrapped", EXIT_FAILED
        )
    return _say(f"{what}: {step} failed: {exc}", EXIT_FAILED)


def _check(provider: Any, kind: str, key_id: str, org: str) -> dict[str, Any]:
    """Steps 1-3 of the module docstring; returns what the report prints."""
    from ownkey.keys import KeyState

    try:
        described = provider.describe(key_id)
    except OwnkeyError as exc:
        raise _explain(kind, key_id, "describe", exc) from None
    if described.state is not KeyState.ENABLED:
        raise _say(
            f"{kind} key {key_id!r} is {described.state.value}; only an enabled key can be "
            "registered",
            EXIT_FAILED,
        )
    context = {"purpose": PROBE_PURPOSE, "org": org}
    probe = os.urandom(32)
    started = time.perf_counter()
    try:
        wrapped = provider.wrap(key_id, probe, context)
        wrapped_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        back = provider.unwrap(key_id, wrapped, context)
        unwrapped_ms = (time.perf_counter() - started) * 1000
    except OwnkeyError as exc:
        raise _explain(kind, key_id, "wrap/unwrap round trip", exc) from None
    if back != probe:
        raise _say(
            f"{kind} key {key_id!r}: the round trip returned other bytes than it was given",
            EXIT_FAILED,
        )
    try:
        provider.unwrap(key_id, wrapped, dict(context, org=org + ".other"))
    except InvalidCiphertext:
        pass
    except OwnkeyError as exc:
        raise _explain(kind, key_id, "context check", exc) from None
    else:
        raise _say(
            f"{kind} key {key_id!r}: the key manager unwrapped under another encryption "
            "context; it does not bind the context, so ownkey cannot use it",
            EXIT_FAILED,
        )
    return {
        "state": described.state.value,
        "version": described.primary_version,
        "wrap_ms": round(wrapped_ms, 2),
        "unwrap_ms": round(unwrapped_ms, 2),
    }


def _runtime() -> Any:
    """The deployment (the embedded store's keys are in its database)."""
    try:
        from ownkey.service import Runtime
    except ImportError:
        raise _say(
            "recording a key needs the 'sql' extra: pip install 'ownkey[sql]'", EXIT_BAD_INPUT
        ) from None
    from ownkey.cli._common import migrates_on_open

    return Runtime.open(migrate=migrates_on_open())


def _record(
    provider: Any, kind: str, key_id: str, org: str, settings: dict[str, str], runtime: Any
) -> Any:
    """Register ``customer:ORG`` through the runtime, in ownkey's database; the provider's
    non-secret settings are kept there too, as ORG's own (``KIND/customer:ORG``), so every
    ownkey process can build it again and no other org's registration changes them. The key
    ORG already has, registered again with other settings, is re-pointed to them."""
    if kind == "local":  # the embedded store: no settings, its keys are the database's
        return runtime.register_key(
            org, provider=kind, key_id=key_id, actor="cli:key-register", operator=True
        )
    with _runtime() as runtime:
        return runtime.register_key(
            org,
            provider=kind,
            key_id=key_id,
            kind=kind,
            settings=settings,
            built=provider,
            actor="cli:key-register",
            operator=True,
        )


@key_app.command("register")
def register(
    org: Annotated[str, typer.Argument(help="The organisation whose customer key this is.")],
    provider_kind: Annotated[
        str,
        typer.Option(
            "--provider",
            help="The key manager that holds the key.",
            metavar="<local|pkcs11|kmip|aws_kms>",
        ),
    ],
    key_id: Annotated[str, typer.Option("--key-id", help="The key's id in its key manager.")],
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A provider setting, name=value (repeatable); see docs/guides/<provider>.md.",
        ),
    ] = None,
    check_only: Annotated[
        bool, typer.Option("--check-only", help="Run the checks, record nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check KEY-ID with a real wrap/unwrap round trip, then register it as ORG's key."""
    from ownkey.providers import build_provider, provider_settings

    org = org.strip()
    if not org or any(c.isspace() for c in org) or ":" in org:
        raise _say(
            f"ORG must be a non-empty name without spaces or ':', not {org!r}", EXIT_BAD_INPUT
        )
    if not key_id.strip():
        raise _say("--key-id must not be empty", EXIT_BAD_INPUT)
    given = _parse_settings(settings or [])
    runtime = None
    try:
        if provider_kind == "local":
            # The embedded store lives in the database, the same on every node (issue 28).
            provider_settings(provider_kind, given)
            runtime = _runtime()
            provider = runtime.local_keys
        else:
            provider = build_provider(provider_kind, given)
    except ConfigError as exc:
        raise _say(str(exc), EXIT_BAD_INPUT) from None
    try:
        report = _check(provider, provider_kind, key_id, org)
        if not check_only:
            master = _record(provider, provider_kind, key_id, org, given, runtime)
            report["version"] = master.version
    except typer.Exit:
        raise
    except ConfigError as exc:
        raise _say(f"{provider_kind} key {key_id!r}: {exc}", EXIT_FAILED) from None
    except OwnkeyError as exc:
        raise _explain(provider_kind, key_id, "registration", exc) from None
    finally:
        close = getattr(provider, "close", None)
        if callable(close):
            close()
        if runtime is not None:
            runtime.close()
    report.update(
        {
            "org": org,
            "key": f"customer:{org}",
            "provider": provider_kind,
            "key_id": key_id,
            "registered": not check_only,
        }
    )
    if as_json:
        typer.echo(json.dumps(report, sort_keys=True))
        return
    verb = "checked" if check_only else "registered"
    typer.echo(
        f"{verb} customer:{org} -> {provider_kind} key {key_id} (version {report['version']}): "
        f"round trip ok (wrap {report['wrap_ms']:.1f} ms, unwrap {report['unwrap_ms']:.1f} ms), "
        "another context refused"
    )
