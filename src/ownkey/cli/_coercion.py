"""Plain values for plain options: text, flags and paths need no Pydantic.

Typer checks every parameter's value with a Pydantic ``TypeAdapter`` built on first use; importing
Pydantic for that is a fifth of a read-only command's start-up (``ownkey key list`` parses one
``--home`` and nothing else). Click has already turned a text option into ``str``, a flag into
``bool`` and a repeated option into a tuple of ``str``, so for those the adapter only copies the
value. :func:`plain_coercion` gives such parameters a coercion that copies it without Pydantic;
numbers, choices and anything with a parser keep Typer's (``tests/cli/test_startup.py`` pins
that a read-only command imports no Pydantic, and ``tests/cli/test_coercion.py`` that both give
the same values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer._coercion import RuntimeParam
from typer._param_types import coerce_cli_path

if TYPE_CHECKING:
    from typer._click import Context
    from typer.core import _TyperParameter


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """The value Click parsed, as the annotation's type: ``str``, ``bool``, ``Path`` or a list of
    ``str``. Anything else goes to Typer's own coercion, Pydantic and all."""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        annotation = self.annotation
        if annotation is str and isinstance(value, str):
            return value
        if annotation is bool and isinstance(value, bool):
            return value
        if annotation is Path and isinstance(value, (str, Path)):
            return coerce_cli_path(
                Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx
            )
        if _is_text_list(annotation) and _all_text(value):
            return list(value)
        return self._typer_coercion(param)._coerce_value(value, param=param, ctx=ctx)

    def _typer_coercion(self, param: _TyperParameter) -> RuntimeParam:
        from typer._coercion import build_runtime_param

        return build_runtime_param(param.type_descriptor)


def _all_text(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)


def _is_text_list(annotation: Any) -> bool:
    return get_origin(annotation) is list and get_args(annotation) == (str,)


def is_plain(param: Any) -> bool:
    """Whether ``param`` is a Typer parameter whose value Click already parsed in full."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or descriptor.file_annotation is not None:
        return False
    if descriptor.parameter_info.parser is not None:
        return False
    annotation = descriptor.annotation
    return annotation in (str, bool, Path) or _is_text_list(annotation)


def plain_coercion(param: Any) -> None:
    """Give a plain parameter (:func:`is_plain`) the coercion that needs no Pydantic."""
    if is_plain(param) and getattr(param, "_runtime_param", None) is None:
        descriptor = param.type_descriptor
        param._runtime_param = PlainRuntimeParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
