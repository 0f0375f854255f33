"""The coercion without Pydantic (ownkey/cli/_coercion.py) gives what Typer's own would.

Every plain parameter of the whole app is checked against Typer's Pydantic coercion on the same
values, so that a Typer upgrade that changes what a text, flag, path or list value becomes fails
here rather than in a command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._coercion import build_runtime_param

from ownkey.cli._app import app
from ownkey.cli._coercion import PlainRuntimeParam, is_plain


def _parameters() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        found.extend((f"{path} {param.name}", param) for param in getattr(command, "params", ()))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


PARAMETERS = _parameters()
PLAIN = [(name, param) for name, param in PARAMETERS if is_plain(param)]


def _sample(param: Any, text: str) -> Any:
    annotation = param.type_descriptor.annotation
    if annotation is bool:
        return bool(len(text) % 2)
    if param.multiple or param.nargs == -1:
        return (text, text[::-1])
    return text


def test_most_parameters_are_plain_and_the_rest_keep_typers_coercion() -> None:
    assert len(PLAIN) >= 150, len(PLAIN)
    others = {param.type_descriptor.annotation for _, param in PARAMETERS if not is_plain(param)}
    assert str not in others, others
    assert bool not in others, others


def test_an_option_with_choices_keeps_typers_check() -> None:
    def command(mode: Literal["a", "b"] = "a", name: str = "x") -> None: ...

    built = typer.Typer()
    built.command()(command)
    params = {param.name: param for param in typer.main.get_command(built).params}
    assert not is_plain(params["mode"])
    assert is_plain(params["name"])


def test_the_app_built_for_a_command_uses_the_plain_coercion() -> None:
    for _, param in PLAIN:
        assert isinstance(param._runtime_param, PlainRuntimeParam)


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t))
def test_plain_and_typers_coercion_agree(text: str) -> None:
    ctx = typer.Context(typer.main.get_command(app))
    for name, param in PLAIN:
        value = _sample(param, text)
        ours = param._runtime_param.coerce(value, param=param, ctx=ctx)
        theirs = build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)
        assert ours == theirs, name
        assert type(ours) is type(theirs), name


def test_a_missing_value_is_none_or_empty_as_before() -> None:
    ctx = typer.Context(typer.main.get_command(app))
    for name, param in PLAIN:
        theirs = build_runtime_param(param.type_descriptor).coerce(None, param=param, ctx=ctx)
        assert param._runtime_param.coerce(None, param=param, ctx=ctx) == theirs, name


def test_an_unexpected_value_falls_back_to_typers_coercion() -> None:
    """A value Click would never hand over (an int for a text option) gets Typer's answer."""
    ctx = typer.Context(typer.main.get_command(app))
    name, param = next((n, p) for n, p in PLAIN if p.type_descriptor.annotation is str)
    theirs = build_runtime_param(param.type_descriptor).coerce(7, param=param, ctx=ctx)
    assert param._runtime_param.coerce(7, param=param, ctx=ctx) == theirs == "7", name


def test_a_path_option_keeps_its_checks(tmp_path: Path) -> None:
    ctx = typer.Context(typer.main.get_command(app))
    paths = [(n, p) for n, p in PLAIN if p.type_descriptor.annotation is Path]
    assert paths
    for name, param in paths:
        ours = param._runtime_param.coerce(str(tmp_path), param=param, ctx=ctx)
        assert ours == Path(tmp_path), name


@pytest.mark.parametrize("args", [["--home", "x", "key", "list", "--help"]])
def test_help_still_works_with_the_plain_coercion(args: list[str]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
