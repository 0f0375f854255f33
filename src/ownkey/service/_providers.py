"""Key providers by name, each built on first use: a command that never unwraps needs no HSM.

The SQL profile keeps each provider's non-secret settings in the database and reads its secrets
from the process environment, so every process builds the same provider the same way.

A key's provider belongs to its key reference (issue 28): ``ownkey key register acme --provider
aws_kms`` stores acme's settings as ``aws_kms/customer:acme`` (:func:`instance_name`), a row no
other org's registration writes. Running nodes re-read the rows at most ``recheck_interval``
after they last did (and at once on a change notification or an unknown name), so a changed
row is rebuilt without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from ownkey.keys import KeyProvider, KeyRef
from ownkey.providers import build_provider

__all__ = ["LazyProviders", "ProviderSpec", "instance_name", "provider_factory"]

#: What a provider row says: its kind and its non-secret settings.
ProviderSpec = tuple[str, Mapping[str, str]]
#: Separates the kind from the reference in a key's own provider name; no kind, no template
#: name may contain it.
INSTANCE_SEPARATOR = "/"


def instance_name(kind: str, ref: KeyRef) -> str:
    """The provider name of ``ref``'s own key manager of ``kind``: ``aws_kms/customer:acme``."""
    return f"{kind}{INSTANCE_SEPARATOR}{ref}"


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

    With a ``source`` (the ``providers`` rows), the rows are re-read when ``max_age`` seconds
    have passed since the last read, after :meth:`invalidate`, and when an unknown name is
    asked for; a provider whose row changed is rebuilt on its next use. Providers handed in by
    the caller stay the caller's to close; :meth:`owned` lists those built here.
    """

    def __init__(
        self,
        factories: dict[str, Callable[[], KeyProvider]],
        given: Mapping[str, KeyProvider],
        *,
        source: Callable[[], Mapping[str, ProviderSpec]] | None = None,
        build: Callable[[str, ProviderSpec], Callable[[], KeyProvider]] | None = None,
        max_age: float = 0.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._factories = factories
        self._built: dict[str, KeyProvider] = dict(given)
        self._owned: dict[str, KeyProvider] = {}
        self._retired: list[KeyProvider] = []
        self._lock = threading.Lock()
        self._source = source
        self._build = build
        self._max_age = max_age
        self._clock = clock
        self._specs: dict[str, ProviderSpec] = {}
        self._pinned = set(given)  # the caller's providers win over rows of the same name
        self._read_at: float | None = None
        if source is not None:
            self._refresh()

    def _due(self) -> bool:
        if self._source is None or self._clock is None:
            return False
        read_at = self._read_at
        return read_at is None or self._clock() - read_at >= self._max_age

    def _refresh(self) -> None:
        """Re-read the rows; rebuild on next use every provider whose row changed."""
        assert self._source is not None
        assert self._build is not None
        started = None if self._clock is None else self._clock()
        rows = dict(self._source())
        with self._lock:
            for name, spec in rows.items():
                if name not in self._pinned and self._specs.get(name) != spec:
                    self._replace(name, self._build(name, spec))
                    self._specs[name] = spec
            for name in [name for name in self._specs if name not in rows]:  # deleted rows
                del self._specs[name]
                self._factories.pop(name, None)
                self._drop(name)
            self._read_at = started

    def _drop(self, name: str) -> None:
        """Forget the built provider ``name``; one built here is closed with the others later
        (a call in flight on another thread may still hold it)."""
        self._built.pop(name, None)
        owned = self._owned.pop(name, None)
        if owned is not None:
            self._retired.append(owned)

    def _replace(self, name: str, factory: Callable[[], KeyProvider]) -> None:
        self._factories[name] = factory
        self._drop(name)

    def __getitem__(self, name: str) -> KeyProvider:
        if self._due():
            self._refresh()
        found = self._built.get(name)
        if found is not None:
            return found
        if name not in self._factories and self._source is not None:
            self._refresh()  # registered by another node since this one last looked
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

    def invalidate(self) -> None:
        """Re-read the rows on the next use (a change notification from another node)."""
        self._read_at = None

    def factory(
        self, name: str, spec: ProviderSpec, env: Mapping[str, str]
    ) -> Callable[[], KeyProvider]:
        """The builder of ``name`` from the row ``spec``, as the rows are built here (the
        embedded store is the deployment's own, whatever the row says: issue 28, item 2)."""
        if self._build is not None:
            return self._build(name, spec)
        return provider_factory(spec[0], spec[1], env, name)

    def configure(
        self,
        name: str,
        factory: Callable[[], KeyProvider],
        given: KeyProvider | None,
        spec: ProviderSpec | None = None,
    ) -> None:
        """Use ``factory`` for ``name`` from now on (``given``, the caller's, until reopened);
        ``spec`` is the row just stored, so the next re-read does not build it again."""
        with self._lock:
            self._pinned.discard(name)
            self._replace(name, factory)
            if spec is not None:
                self._specs[name] = (spec[0], dict(spec[1]))
            if given is not None:
                self._built[name] = given

    def owned(self) -> list[KeyProvider]:
        with self._lock:
            return [*self._owned.values(), *self._retired]

    def close(self) -> None:
        """Close the providers built here that hold connections (the caller's stay open)."""
        for provider in self.owned():
            close = getattr(provider, "close", None)
            if callable(close):
                close()
