"""The local provider passes the key-provider contract suite."""

from __future__ import annotations

import pytest

from ownkey.providers import LocalKeyProvider
from ownkey.testing.fakes import FakeClock, SeededRandom
from ownkey.testing.provider_contract import KeyProviderContract


class TestLocalProvider(KeyProviderContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def provider(self, clock: FakeClock) -> LocalKeyProvider:
        return LocalKeyProvider(random=SeededRandom(7), clock=clock)


def test_scheduled_destruction_happens_on_its_own_when_due() -> None:
    clock = FakeClock()
    provider = LocalKeyProvider(clock=clock)
    key_id = provider.create_key(label="k")
    provider.disable(key_id)
    provider.schedule_destruction(key_id, destroy_at=clock() + 10)
    clock.advance(10)
    assert provider.describe(key_id).state.value == "destroyed"
    assert provider.describe(key_id).versions == ()


def test_repr_hides_material() -> None:
    provider = LocalKeyProvider()
    provider.create_key(label="k")
    assert "redacted" in repr(provider)
