"""The ``ownkey`` Typer application: one place where the command groups are assembled.

A command module is imported when its command is built (:func:`main` builds only the command it
is given), and each imports the service layer, SQLAlchemy and the provider SDKs only inside the
commands that need them, so that ``ownkey --help`` or a read-only command starts fast
(``tests/cli/test_startup.py`` pins it).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ownkey.cli._coercion import plain_coercion
from ownkey.errors import OwnkeyError

#: What a text value of an option is, by the option's name, for its help row (Typer prints the
#: Python type otherwise: ``<str>``, ``<list[str]>``).
_VALUE_NAMES: dict[str, str] = {
    "since": "TIME", "until": "TIME", "waiting_period": "DURATION", "expires_in": "DURATION",
    "service": "SERVICE-ID", "service_id": "SERVICE-ID", "enable": "SERVICE-IDS",
    "disable": "SERVICE-IDS", "public_key": "HEX", "scope_key": "HEX", "since_head": "SEQ:HASH",
    "settings": "NAME=VALUE", "host": "ADDRESS",
    "home": "DIR", "database_url": "URL", "note": "TEXT", "key": "KEY",
}  # fmt: skip


def _is_text(annotation: object) -> bool:
    """``str``, ``str | None`` or ``list[str]`` (an option that takes text, maybe repeated)."""
    if annotation is str:
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return bool(args) and all(a is str for a in args)


def _tidy_help(command: Any) -> None:
    """Help rows that say what a value is: a flag takes none, so it shows no type (Typer prints
    ``<bool>`` for every flag otherwise, which reads as if it took one), and a text option shows
    what its text is (``TIME``, ``SERVICE-ID``) instead of ``<str>``; recurses into the groups."""
    # The --help option is made on first use and cached; make it now so that it is tidied too.
    help_option = command.get_help_option(typer.Context(command))
    for param in [*getattr(command, "params", ()), help_option]:
        plain_coercion(param)
        if param is None or param.metavar is not None:
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif _is_text(getattr(getattr(param, "type_descriptor", None), "annotation", None)):
            name = param.name or ""
            param.metavar = _VALUE_NAMES.get(name, name.upper().replace("_", "-") or "TEXT")
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


class _OwnkeyGroup(TyperGroup):
    """The root group: every command below it is built when it is, so it tidies their help and
    gives their plain parameters a coercion without Pydantic (``_coercion.py``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy_help(self)


def version() -> str:
    """The installed package's version: the one number lives in pyproject.toml."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("ownkey")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0+unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ownkey {version()}")
        raise typer.Exit()


#: A top-level entry: a command group (a Typer app) or one command (a function, its help line).
Entry = typer.Typer | tuple[Callable[..., Any], str | None]


@functools.cache
def _audit_group() -> Entry:
    from ownkey.cli import _audit, _audit_events

    _audit.audit_app.command("events")(_audit_events.events)  # defined apart, added once
    return _audit.audit_app


@functools.cache
def _key_group() -> Entry:
    from ownkey.cli import _key, _keyadmin

    _keyadmin.register_key_commands(_key.key_app)  # the lifecycle commands, added once
    return _key.key_app


def _load(module: str, name: str, help_line: str | None = None, *, group: bool = False) -> Any:
    """A loader of ``ownkey.cli.<module>.<name>``: a group, or a command with its help line."""

    def load() -> Entry:
        found = getattr(importlib.import_module(f"ownkey.cli.{module}"), name)
        return found if group else (found, help_line)

    return load


#: The top-level commands in the order ``ownkey --help`` lists them, each imported only when it
#: is built: a read-only command imports its own module and nothing of the demo, the server or
#: the jobs (``tests/cli/test_startup.py``).
_ENTRIES: dict[str, Callable[[], Entry]] = {
    "demo": _load("_demo", "demo", "Tell the ownkey story on embedded defaults."),
    "policy": _load("_policy", "policy_app", group=True),
    "audit": _audit_group,
    "key": _key_group,
    "org": _load("_org", "org_app", group=True),
    "user": _load("_org", "user_app", group=True),
    "coverage": _load("_org", "coverage"),
    "revoke": _load("_keyadmin", "revoke_app", group=True),
    "jobs": _load("_jobs", "jobs_app", group=True),
    "token": _load("_token", "token_app", group=True),
    "objects": _load("_objects", "objects_app", group=True),
    "hybrid": _load("_hybrid", "hybrid_app", group=True),
    "serve": _load("_serve", "serve", "Serve the REST API on this node."),
    "db": _load("_db", "db_app", group=True),
}


def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="ownkey's directory (default: $OWNKEY_HOME or ~/.ownkey)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="PostgreSQL URL (default: $OWNKEY_DATABASE_URL, else SQLite)."
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print ownkey's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """ownkey: customer managed keys for collaboration content."""
    ctx.obj = {"home": home}
    if home is not None:
        os.environ["OWNKEY_HOME"] = str(home)
    if database_url is not None:
        os.environ["OWNKEY_DATABASE_URL"] = database_url


def build_app(only: str | None = None) -> typer.Typer:
    """The ``ownkey`` app with every top-level command, or with ``only`` that one.

    Typer turns the whole tree into Click commands on every run (about 30 ms for ~50 commands,
    a tenth of a read-only command's start-up), so :func:`main` builds just the command it was
    given; ``ownkey --help`` and an unknown command get the whole tree.
    """
    built = typer.Typer(
        cls=_OwnkeyGroup,
        name="ownkey",
        help="ownkey: customer managed keys for collaboration content.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    built.callback()(_global)
    for name, load in _ENTRIES.items():
        if only not in (None, name):
            continue
        entry = load()
        if isinstance(entry, typer.Typer):
            built.add_typer(entry, name=name)
        else:
            function, help_line = entry
            built.command(name, help=help_line)(function)
    return built


@functools.cache
def whole_app() -> typer.Typer:
    """The app with every command (``ownkey --help``, tests, docs); built on first use."""
    return build_app()


def __getattr__(name: str) -> Any:
    """``app`` is :func:`whole_app`, built on first use: importing this module imports no
    command module (PEP 562)."""
    if name == "app":
        return whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Global options that take a value (``--home DIR``), skipped when looking for the command.
_VALUED_OPTIONS = ("--home", "--database-url")


def invoked_command(argv: Sequence[str]) -> str | None:
    """The top-level command ``argv`` names (after the global options), or None when it names
    none we know (``--help``, ``--version``, a typo: the whole app answers those)."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif word.startswith(tuple(f"{option}=" for option in _VALUED_OPTIONS)):
            continue
        elif word.startswith("-"):
            return None
        else:
            return word if word in _ENTRIES else None
    return None


EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def main() -> None:
    """Console-script entry: turn ownkey errors into one line on stderr, never a traceback."""
    try:
        name = invoked_command(sys.argv[1:])
        (whole_app() if name is None else build_app(name))(standalone_mode=True)
    except OwnkeyError as exc:
        print(f"ownkey: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    except OSError as exc:  # the output could not be written (`> file` on a full disk)
        print(f"ownkey: writing the output failed: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
