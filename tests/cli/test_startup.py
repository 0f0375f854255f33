"""Startup stays cheap: a read-only command imports no web framework, no Alembic, no provider SDK.

A timed assertion would be flaky on a shared machine, so this pins the cause instead: the modules a
command drags in. ``key list``, ``org show`` and ``audit verify`` on an up-to-date database need
SQLAlchemy and nothing heavier; the schema check on open is one query (``_revision.py``), so
Alembic is imported only when a migration is due.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Heavy modules that no read-only command needs (Pydantic: Typer's coercion of plain text, flag
#: and path values is replaced by ownkey/cli/_coercion.py).
HEAVY = (
    "fastapi", "starlette", "uvicorn", "alembic", "boto3", "botocore", "pkcs11", "kmip",
    "pydantic",
)  # fmt: skip
#: Parts of ownkey a read-only command does not need: the data plane's façades, the asset, job,
#: token and blob stores, the API's background work and the other commands' modules
#: (``ownkey.service`` and ``ownkey.storage`` load a name's module only when the name is used,
#: the runtime builds its asset store and job runner on first use, and ``main`` imports only
#: the command it runs).
UNUSED = (
    "ownkey.service._assets",
    "ownkey.service._background",
    "ownkey.service._build",
    "ownkey.service._jobs",
    "ownkey.service._nodes",
    "ownkey.service._objects",
    "ownkey.service._witness",
    "ownkey.storage._assets",
    "ownkey.storage._blobs",
    "ownkey.storage._jobs",
    "ownkey.storage._shreds",
    "ownkey.storage._tokens",
    "ownkey.cli._demo",
    "ownkey.cli._demo_hybrid",
    "ownkey.cli._hybrid",
    "ownkey.cli._objects",
    "ownkey.cli._policy",
    "ownkey.cli._serve",
    "ownkey.cli._token",
    "ownkey.api",
    "ownkey.web",
)

_PROBE = """
import json, sys
from ownkey.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _modules(home: Path, *args: str) -> set[str]:
    env = {**os.environ, "OWNKEY_HOME": str(home)}
    env.pop("OWNKEY_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), done.stderr
    return set(report["modules"])


def _top(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("startup")
    from ownkey.service import Runtime

    env = {"OWNKEY_HOME": str(home)}
    old = {name: os.environ.get(name) for name in ("OWNKEY_HOME", "OWNKEY_DATABASE_URL")}
    os.environ.update(env)
    os.environ.pop("OWNKEY_DATABASE_URL", None)
    try:
        with Runtime.open() as runtime:
            runtime.create_org("acme", services=["0008"])
            runtime.create_key("acme")
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return home


@pytest.mark.parametrize(
    "args", [("key", "list"), ("org", "show", "acme"), ("audit", "verify", "acme")]
)
def test_read_only_commands_import_nothing_heavy(home: Path, args: tuple[str, ...]) -> None:
    modules = _modules(home, *args)
    loaded = _top(modules)
    assert "sqlalchemy" in loaded  # the probe really ran the command
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert modules.isdisjoint(UNUSED), sorted(modules & set(UNUSED))


def test_a_command_that_prints_no_table_imports_no_rich(home: Path) -> None:
    loaded = _top(_modules(home, "audit", "verify", "acme"))
    assert "sqlalchemy" in loaded
    assert "rich" not in loaded


def _python(code: str) -> list[str]:
    """The words ``code`` prints, run in a fresh interpreter (nothing imported beforehand)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


@pytest.mark.parametrize(
    ("package", "name", "its_module", "another_module"),
    [
        ("ownkey.service", "ProtectorSettings", "_settings", "_assets"),
        ("ownkey.storage", "Database", "_engine", "_assets"),
    ],
)
def test_a_package_loads_a_module_when_its_name_is_used(
    package: str, name: str, its_module: str, another_module: str
) -> None:
    probe = (
        f"import sys, {package} as p\n"
        f"inside = lambda: sorted(m for m in sys.modules if m.startswith('{package}.'))\n"
        f"before = inside(); p.{name}\n"
        f"print(before, '{package}.{its_module}' in inside(), "
        f"'{package}.{another_module}' in inside())"
    )
    assert _python(probe) == ["[]", "True", "False"]


def test_help_and_version_open_no_database(home: Path) -> None:
    for args in (("--help",), ("--version",), ("key", "--help")):
        loaded = _modules(home, *args)
        assert "sqlalchemy" not in _top(loaded), args
        assert "ownkey.service" not in loaded, args


def test_importing_the_cli_imports_no_command_module() -> None:
    probe = (
        "import sys, ownkey.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('ownkey.cli.')))"
    )
    assert _python(probe) == ["['ownkey.cli._app',", "'ownkey.cli._coercion']"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["key", "list"], "key"),
        (["--home", "/h", "org", "show", "acme"], "org"),
        (["--home=/h", "--database-url", "sqlite://", "audit", "verify", "acme"], "audit"),
        (["coverage", "acme"], "coverage"),
        ([], None),
        (["--help"], None),
        (["--version"], None),
        (["--home"], None),
        (["kee", "list"], None),
    ],
)
def test_main_builds_only_the_command_it_is_given(argv: list[str], expected: str | None) -> None:
    from ownkey.cli._app import invoked_command

    assert invoked_command(argv) == expected


@pytest.mark.parametrize("group", ["key", "org", "audit", "revoke", "token"])
def test_a_group_built_alone_answers_as_in_the_whole_app(group: str) -> None:
    """The partial app main() builds is the same command: same help, same options."""
    from typer.testing import CliRunner

    from ownkey.cli._app import app, build_app

    runner = CliRunner()
    alone = runner.invoke(build_app(group), [group, "--help"], terminal_width=100)
    whole = runner.invoke(app, [group, "--help"], terminal_width=100)
    assert alone.exit_code == whole.exit_code == 0
    assert alone.output == whole.output
    assert "<bool>" not in alone.output


def test_the_collector_is_paused_while_the_runtime_opens_and_resumed_after(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from ownkey.cli._common import runtime
    from ownkey.service import Runtime

    seen: list[bool] = []
    real_open = Runtime.open

    def recording_open(**kwargs: object) -> Runtime:
        seen.append(gc.isenabled())
        return real_open(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setenv("OWNKEY_HOME", str(home))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    monkeypatch.setattr(Runtime, "open", staticmethod(recording_open))
    assert gc.isenabled()
    with runtime() as opened:
        assert gc.isenabled()  # the command itself runs with the collector on
        assert opened.org("acme").name == "acme"
    assert seen == [False]
    assert gc.isenabled()


def test_a_failed_open_resumes_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import typer

    from ownkey.cli._common import runtime

    (tmp_path / "ownkey.db").write_bytes(b"not a database")
    monkeypatch.setenv("OWNKEY_HOME", str(tmp_path))
    monkeypatch.delenv("OWNKEY_DATABASE_URL", raising=False)
    with pytest.raises(typer.Exit), runtime():
        pass
    assert gc.isenabled()
