"""A small JSON Schema (2020-12) validator for the keywords ownkey's policy schemas use.

The project does not depend on ``jsonschema``; this checks the published schemas against the
contract's examples all the same. It refuses any keyword it does not implement, so a schema that
grows a new keyword cannot pass here by being half-understood.
"""

from __future__ import annotations

from typing import Any

_ANNOTATIONS = {"$schema", "title", "description", "default"}
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


class SchemaViolation(Exception):  # noqa: N818 - reads as "the schema is violated"
    """The instance does not match; the message holds the JSON path."""


def validate(instance: object, schema: dict[str, Any], root: dict[str, Any] | None = None) -> None:
    """Raise :class:`SchemaViolation` unless ``instance`` matches ``schema``."""
    _check(instance, schema, root or schema, "$")


def is_valid(instance: object, schema: dict[str, Any]) -> bool:
    """Whether ``instance`` matches ``schema``."""
    try:
        validate(instance, schema)
    except SchemaViolation:
        return False
    return True


def _type_ok(instance: object, name: str) -> bool:
    if name == "boolean":
        return isinstance(instance, bool)
    return isinstance(instance, _TYPES[name]) and not (
        isinstance(instance, bool) and name != "boolean"
    )


def _check(instance: object, schema: dict[str, Any], root: dict[str, Any], at: str) -> None:
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("$defs", "then"):
            continue
        handler = _KEYWORDS.get(keyword)
        if handler is None:
            raise NotImplementedError(f"keyword {keyword!r} at {at}")
        handler(instance, value, schema, root, at)


def _ref(instance: object, ref: str, _s: Any, root: dict[str, Any], at: str) -> None:
    assert ref.startswith("#/$defs/"), ref
    _check(instance, root["$defs"][ref.removeprefix("#/$defs/")], root, at)


def _type(instance: object, value: Any, _s: Any, _r: Any, at: str) -> None:
    names = [value] if isinstance(value, str) else value
    if not any(_type_ok(instance, name) for name in names):
        raise SchemaViolation(f"{at}: not {value}")


def _enum(instance: object, value: list[Any], _s: Any, _r: Any, at: str) -> None:
    if not any(type(instance) is type(v) and instance == v for v in value):
        raise SchemaViolation(f"{at}: {instance!r} not in enum")


def _const(instance: object, value: Any, _s: Any, _r: Any, at: str) -> None:
    if not (type(instance) is type(value) and instance == value):
        raise SchemaViolation(f"{at}: {instance!r} is not {value!r}")


def _properties(instance: object, value: dict[str, Any], _s: Any, root: Any, at: str) -> None:
    if isinstance(instance, dict):
        for name, sub in value.items():
            if name in instance:
                _check(instance[name], sub, root, f"{at}.{name}")


def _additional(instance: object, value: Any, schema: dict[str, Any], root: Any, at: str) -> None:
    if not isinstance(instance, dict):
        return
    for name, item in instance.items():
        if name in schema.get("properties", {}):
            continue
        if value is False:
            raise SchemaViolation(f"{at}.{name}: additional property")
        if isinstance(value, dict):
            _check(item, value, root, f"{at}.{name}")


def _required(instance: object, value: list[str], _s: Any, _r: Any, at: str) -> None:
    if isinstance(instance, dict):
        for name in value:
            if name not in instance:
                raise SchemaViolation(f"{at}.{name}: required")


def _property_names(instance: object, value: dict[str, Any], _s: Any, root: Any, at: str) -> None:
    if isinstance(instance, dict):
        for name in instance:
            _check(name, value, root, f"{at}[{name!r}]")


def _items(instance: object, value: dict[str, Any], _s: Any, root: Any, at: str) -> None:
    if isinstance(instance, list):
        for position, item in enumerate(instance):
            _check(item, value, root, f"{at}[{position}]")


def _min_items(instance: object, value: int, _s: Any, _r: Any, at: str) -> None:
    if isinstance(instance, list) and len(instance) < value:
        raise SchemaViolation(f"{at}: fewer than {value} items")


def _max_items(instance: object, value: int, _s: Any, _r: Any, at: str) -> None:
    if isinstance(instance, list) and len(instance) > value:
        raise SchemaViolation(f"{at}: more than {value} items")


def _unique(instance: object, value: bool, _s: Any, _r: Any, at: str) -> None:
    if value and isinstance(instance, list):
        seen = [repr(item) for item in instance]
        if len(set(seen)) != len(seen):
            raise SchemaViolation(f"{at}: items not unique")


def _min_length(instance: object, value: int, _s: Any, _r: Any, at: str) -> None:
    if isinstance(instance, str) and len(instance) < value:
        raise SchemaViolation(f"{at}: shorter than {value}")


def _all_of(instance: object, value: list[Any], _s: Any, root: Any, at: str) -> None:
    for sub in value:
        _check(instance, sub, root, at)


def _one_of(instance: object, value: list[Any], _s: Any, root: Any, at: str) -> None:
    matches = 0
    for sub in value:
        try:
            _check(instance, sub, root, at)
        except SchemaViolation:
            continue
        matches += 1
    if matches != 1:
        raise SchemaViolation(f"{at}: matches {matches} of oneOf")


def _if(
    instance: object, value: dict[str, Any], schema: dict[str, Any], root: Any, at: str
) -> None:
    try:
        _check(instance, value, root, at)
    except SchemaViolation:
        return
    if "then" in schema:
        _check(instance, schema["then"], root, at)


_KEYWORDS: dict[str, Any] = {
    "$ref": _ref,
    "type": _type,
    "enum": _enum,
    "const": _const,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "propertyNames": _property_names,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "uniqueItems": _unique,
    "minLength": _min_length,
    "allOf": _all_of,
    "oneOf": _one_of,
    "if": _if,
}
