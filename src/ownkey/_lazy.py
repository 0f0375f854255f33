"""Packages whose public names load on first use (PEP 562).

A package ``__init__`` that imported every module would make each command pay for all of them:
``ownkey key list`` needs the key and org stores, not the asset, job and token stores, and the
service package's data-plane façades. Such a package lists where each name lives and takes its
``__getattr__`` and ``__dir__`` from :func:`lazy_names` (tests/cli/test_startup.py pins what a
read-only command imports).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str,
    namespace: MutableMapping[str, Any],
    homes: Mapping[str, str],
    names: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: a name in ``homes`` is imported from its
    module on first use, then kept in the package's ``namespace``."""

    def get(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    def listing() -> list[str]:
        return sorted([*namespace, *names])

    return get, listing
