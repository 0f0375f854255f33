"""Key providers by name, each built on first use: a command that never unwraps needs no HSM.

The SQL profile keeps each provider's non-secret settings in the database and reads its secrets
from the process environment, so every process builds the same provider the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from ownkey.keys import KeyProvider
from ownkey.providers import build_provider

__all__ = ["LazyProviders", "provider_factory"]


def provider_factory(
    kind: str, settings: Mapping[str, str], env: Mapping[str, str], name: str
) -> Callable[[], KeyProvider]:
    """A builder of the provider ``name`` of ``kind`` (settings, then ``OWNKEY_<KIND>_<NAME>``)."""
    given = dict(settings)

    def build() -> KeyProvider:
        return build_provider(kind, given, env=env, name=name)

    return build


class LazyProviders(Mapping[str, KeyProvider]):
    """Key providers by name, each built on first use from its factory.

    Providers handed in by the caller stay the caller's to close; :meth:`owned` lists those
    built here.
    """

    def __init__(
        self,
        factories: dict[str, Callable[[], KeyProvider]],
        given: Mapping[str, KeyProvider],
    ) -> None:
        self._factories = factories
        self._built: dict[str, KeyProvider] = dict(given)
        self._owned: dict[str, KeyProvider] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> KeyProvider:
        found = self._built.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._built.get(name)
            if found is None:
                factory = self._factories.get(name)
                if factory is None:
                    raise KeyError(name)
                found = self._built[name] = self._owned[name] = factory()
            return found

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._factories) | set(self._built)))

    def __len__(self) -> int:
        return len(set(self._factories) | set(self._built))

    def configure(
        self, name: str, factory: Callable[[], KeyProvider], given: KeyProvider | None
    ) -> None:
        """Use ``factory`` for ``name`` from now on (``given``, the caller's, until reopened)."""
        with self._lock:
            self._factories[name] = factory
            self._built.pop(name, None)
            if given is not None:
                self._built[name] = given

    def owned(self) -> list[KeyProvider]:
        with self._lock:
            return list(self._owned.values())

    def close(self) -> None:
        """Close the providers built here that hold connections (the caller's stay open)."""
        for provider in self.owned():
            close = getattr(provider, "close", None)
            if callable(close):
                close()
