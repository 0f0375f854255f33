"""Typed reads from decoded JSON, each failure a :class:`PolicyError` naming the exact field.

Paths read like ``asset.container.members[1].org``; an org name that is not a plain word is
quoted (``orgs["acme.test"]``) so the path stays unambiguous. JSON booleans are not numbers
here: ``1`` is not ``true``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from ownkey.errors import PolicyError

__all__ = [
    "JsonObject",
    "child",
    "index",
    "read_bool",
    "read_enum",
    "read_list",
    "read_object",
    "read_optional_str",
    "read_str",
    "read_str_item",
]

_E = TypeVar("_E", bound=StrEnum)
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


class JsonObject(dict[str, object]):
    """A decoded JSON object that remembers keys given twice (which ``json`` silently merges).

    Two parsers can disagree on which duplicate wins; a policy request with one is refused
    rather than guessed at.
    """

    duplicates: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, object]]) -> JsonObject:
        """``object_pairs_hook`` for :func:`json.loads`."""
        obj = cls(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            repeated: list[str] = []
            for key, _ in pairs:
                if key in seen:
                    repeated.append(key)
                seen.add(key)
            obj.duplicates = tuple(repeated)
        return obj


def child(path: str, key: str) -> str:
    """The path of field ``key`` inside the object at ``path`` (``""`` is the request itself)."""
    if not _PLAIN.fullmatch(key):
        return f"{path}[{json.dumps(key)}]"
    return f"{path}.{key}" if path else key


def index(path: str, position: int) -> str:
    """The path of item ``position`` of the list at ``path``."""
    return f"{path}[{position}]"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def read_object(
    value: object,
    path: str,
    *,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] | None = (),
) -> Mapping[str, object]:
    """Check that ``value`` is an object with only the named fields and all required ones.

    ``optional=None`` allows any field name (the ``orgs`` map, keyed by org name).
    """
    if not isinstance(value, dict):
        raise PolicyError(path or "request", f"must be an object, not {_kind(value)}")
    for key in getattr(value, "duplicates", ()):
        raise PolicyError(child(path, key), "field given twice")
    for key in value:
        if optional is not None and key not in required and key not in optional:
            raise PolicyError(child(path, key), "unknown field")
    for key in required:
        if key not in value:
            raise PolicyError(child(path, key), "required field is missing")
    return value


def read_bool(obj: Mapping[str, object], key: str, path: str, default: bool = False) -> bool:
    """A JSON boolean (``true``/``false``), or ``default`` when absent."""
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(child(path, key), f"must be true or false, not {_kind(value)}")
    return value


def _check_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(path, f"must be a string, not {_kind(value)}")
    if not value:
        raise PolicyError(path, "must not be empty")
    return value


def read_str(obj: Mapping[str, object], key: str, path: str) -> str:
    """A non-empty JSON string."""
    return _check_str(obj.get(key), child(path, key))


def read_optional_str(obj: Mapping[str, object], key: str, path: str) -> str | None:
    """A non-empty JSON string or ``null`` (also when absent)."""
    value = obj.get(key)
    return None if value is None else _check_str(value, child(path, key))


def read_list(obj: Mapping[str, object], key: str, path: str) -> list[object]:
    """A JSON list, or an empty one when absent."""
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(child(path, key), f"must be a list, not {_kind(value)}")
    return value


def read_str_item(value: object, path: str) -> str:
    """One non-empty string inside a list."""
    return _check_str(value, path)


def read_enum(enum: type[_E], value: object, path: str) -> _E:
    """One of the enum's values, spelled exactly."""
    choices = ", ".join(member.value for member in enum)
    if not isinstance(value, str):
        raise PolicyError(path, f"must be one of {choices}; got {_kind(value)}")
    try:
        return enum(value)
    except ValueError:
        raise PolicyError(path, f"unknown value {json.dumps(value)}; one of {choices}") from None
