"""Providers re-read from their rows (issue 28): a running node follows a key's new settings.

``LazyProviders`` builds each provider on first use; with a source of rows it re-reads them
``max_age`` seconds after it last did, at once after ``invalidate`` and when asked for a name
it does not know, and rebuilds a provider whose row changed. A provider the caller handed in
wins over a row of the same name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from ownkey.keys import KeyProvider, KeyRef
from ownkey.providers import LocalKeyProvider
from ownkey.service._providers import LazyProviders, ProviderSpec, instance_name
from ownkey.testing.fakes import FakeClock


class Rows:
    """A ``providers`` table in memory, counting reads; built providers say their settings."""

    def __init__(self) -> None:
        self.rows: dict[str, ProviderSpec] = {}
        self.reads = 0
        self.built: list[tuple[str, Mapping[str, str]]] = []
        self.closed = 0

    def source(self) -> Mapping[str, ProviderSpec]:
        self.reads += 1
        return dict(self.rows)

    def build(self, name: str, spec: ProviderSpec) -> Callable[[], KeyProvider]:
        def factory() -> KeyProvider:
            self.built.append((name, dict(spec[1])))
            provider = LocalKeyProvider(name=name)
            provider.close = self.close  # type: ignore[attr-defined]
            return provider

        return factory

    def close(self) -> None:
        self.closed += 1


def _providers(rows: Rows, clock: FakeClock, **given: KeyProvider) -> LazyProviders:
    return LazyProviders({}, given, source=rows.source, build=rows.build, max_age=1.0, clock=clock)


ACME = instance_name("kmip", KeyRef.customer("acme"))


def test_the_instance_name_is_the_kind_and_the_reference() -> None:
    assert ACME == "kmip/customer:acme"
    assert instance_name("aws_kms", KeyRef.platform()) == "aws_kms/platform"


def test_a_changed_row_is_rebuilt_within_max_age_and_not_before() -> None:
    rows, clock = Rows(), FakeClock()
    rows.rows[ACME] = ("kmip", {"port": "5696"})
    providers = _providers(rows, clock)
    first = providers[ACME]
    rows.rows[ACME] = ("kmip", {"port": "5697"})
    clock.advance(0.5)
    assert providers[ACME] is first  # within max_age: the row is not read again
    clock.advance(0.5)
    second = providers[ACME]
    assert second is not first
    assert rows.built == [(ACME, {"port": "5696"}), (ACME, {"port": "5697"})]
    clock.advance(1.0)
    assert providers[ACME] is second  # re-read, unchanged: not rebuilt
    providers.close()
    assert rows.closed == 2  # the replaced one too, once no call can hold it


def test_an_unknown_name_reads_the_rows_at_once() -> None:
    rows, clock = Rows(), FakeClock()
    providers = _providers(rows, clock)
    rows.rows[ACME] = ("kmip", {})
    assert providers[ACME] is not None  # registered by another node a moment ago


def test_invalidate_reads_the_rows_on_the_next_use() -> None:
    rows, clock = Rows(), FakeClock()
    rows.rows[ACME] = ("kmip", {"port": "5696"})
    providers = _providers(rows, clock)
    first = providers[ACME]
    rows.rows[ACME] = ("kmip", {"port": "5697"})
    providers.invalidate()  # a change notification
    assert providers[ACME] is not first


def test_a_deleted_row_is_forgotten() -> None:
    rows, clock = Rows(), FakeClock()
    rows.rows[ACME] = ("kmip", {})
    providers = _providers(rows, clock)
    assert ACME in providers
    del rows.rows[ACME]
    providers.invalidate()
    with pytest.raises(KeyError):
        providers[ACME]


def test_a_provider_the_caller_gave_wins_over_a_row_of_the_same_name() -> None:
    rows, clock = Rows(), FakeClock()
    rows.rows["fake"] = ("kmip", {})
    given = LocalKeyProvider(name="fake")
    providers = _providers(rows, clock, fake=given)
    clock.advance(5.0)
    assert providers["fake"] is given
    assert rows.built == []


def test_configure_is_not_rebuilt_by_the_next_read() -> None:
    rows, clock = Rows(), FakeClock()
    providers = _providers(rows, clock)
    spec: ProviderSpec = ("kmip", {"port": "5696"})
    rows.rows[ACME] = spec
    providers.configure(ACME, rows.build(ACME, spec), None, spec)
    built = providers[ACME]
    clock.advance(1.0)
    assert providers[ACME] is built
    assert len(rows.built) == 1
