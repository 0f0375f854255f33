"""The key-provider contract suite: what every :class:`~ownkey.keys.KeyProvider` does.

Subclass :class:`KeyProviderContract` in a test module and provide the ``provider`` fixture (a
fresh provider) and, for providers that keep time themselves, the ``clock`` fixture (their clock,
with an ``advance(seconds)`` method, e.g. :class:`ownkey.testing.fakes.FakeClock`); pytest collects
the inherited tests::

    class TestLocalProvider(KeyProviderContract):
        @pytest.fixture
        def provider(self, clock): return LocalKeyProvider(clock=clock)

The suite checks the error contract of the Protocol: round trips, context binding, key binding,
tamper rejection, versions kept across rotation, every lifecycle state and its errors, and eight
threads at once. Outage behaviour (``KeyUnavailable`` within a deadline) depends on each
provider's transport and is tested with its fault injection.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from ownkey.errors import AccessDenied, InvalidCiphertext, LifecycleError, NotFound
from ownkey.keys import KeyState
from ownkey.testing.fakes import FakeClock

__all__ = ["CONTEXT", "KeyProviderContract"]

CONTEXT = {
    "purpose": "ownkey.scope-key",
    "orgs": "acme",
    "org": "acme",
    "service_id": "0008",
    "scope": "chat:1",
    "epoch": "2023-11-14T22:00:00Z",
    "epoch_seconds": "3600",
    "scope_key_id": "00" * 16,
}
DAY = 86_400.0


class KeyProviderContract:
    """What every key provider does (fixtures ``provider`` and ``advance`` from the subclass)."""

    @pytest.fixture
    def provider(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The provider's clock; the default suits providers that keep no time of their own."""
        return FakeClock(time.time())

    def test_wrap_unwrap_round_trip(self, provider: Any) -> None:
        key_id = provider.create_key(label="customer:acme")
        share = os.urandom(32)
        wrapped = provider.wrap(key_id, share, CONTEXT)
        assert share not in wrapped
        assert provider.unwrap(key_id, wrapped, CONTEXT) == share
        assert provider.wrap(key_id, share, CONTEXT) != wrapped  # randomised

    def test_context_is_bound(self, provider: Any) -> None:
        key_id = provider.create_key(label="k")
        wrapped = provider.wrap(key_id, os.urandom(32), CONTEXT)
        for name in CONTEXT:
            changed = dict(CONTEXT, **{name: CONTEXT[name] + "x"})
            with pytest.raises(InvalidCiphertext):
                provider.unwrap(key_id, wrapped, changed)
        with pytest.raises(InvalidCiphertext):
            provider.unwrap(key_id, wrapped, dict(CONTEXT, extra="1"))

    def test_key_is_bound(self, provider: Any) -> None:
        first, second = provider.create_key(label="a"), provider.create_key(label="b")
        wrapped = provider.wrap(first, os.urandom(32), CONTEXT)
        with pytest.raises(InvalidCiphertext):
            provider.unwrap(second, wrapped, CONTEXT)

    def test_tampering_is_rejected(self, provider: Any) -> None:
        key_id = provider.create_key(label="k")
        wrapped = provider.wrap(key_id, os.urandom(32), CONTEXT)
        for index in (0, len(wrapped) // 2, len(wrapped) - 1):
            bad = bytearray(wrapped)
            bad[index] ^= 0x01
            with pytest.raises(InvalidCiphertext):
                provider.unwrap(key_id, bytes(bad), CONTEXT)
        with pytest.raises(InvalidCiphertext):
            provider.unwrap(key_id, wrapped[:-1], CONTEXT)

    def test_unknown_key_is_not_found(self, provider: Any) -> None:
        with pytest.raises(NotFound):
            provider.describe("no-such-key")
        with pytest.raises(NotFound):
            provider.wrap("no-such-key", os.urandom(32), CONTEXT)

    def test_rotation_keeps_old_wraps_openable(self, provider: Any) -> None:
        key_id = provider.create_key(label="k")
        before = provider.describe(key_id)
        old_share = os.urandom(32)
        old = provider.wrap(key_id, old_share, CONTEXT)
        version = provider.rotate(key_id)
        after = provider.describe(key_id)
        assert version != before.primary_version
        assert after.primary_version == version
        assert before.primary_version in after.versions
        assert provider.unwrap(key_id, old, CONTEXT) == old_share
        new_share = os.urandom(32)
        assert provider.unwrap(key_id, provider.wrap(key_id, new_share, CONTEXT), CONTEXT) == (
            new_share
        )

    def test_disable_denies_until_enabled(self, provider: Any) -> None:
        key_id = provider.create_key(label="k")
        share = os.urandom(32)
        wrapped = provider.wrap(key_id, share, CONTEXT)
        provider.disable(key_id)
        assert provider.describe(key_id).state is KeyState.DISABLED
        with pytest.raises(AccessDenied) as denied:
            provider.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "disabled"
        with pytest.raises(AccessDenied):
            provider.wrap(key_id, share, CONTEXT)
        with pytest.raises(LifecycleError):
            provider.rotate(key_id)
        provider.enable(key_id)
        assert provider.unwrap(key_id, wrapped, CONTEXT) == share

    def test_illegal_transitions_raise(self, provider: Any) -> None:
        key_id = provider.create_key(label="k")
        with pytest.raises(LifecycleError):
            provider.enable(key_id)
        with pytest.raises(LifecycleError):
            provider.schedule_destruction(key_id, destroy_at=0.0)  # must be disabled first
        with pytest.raises(LifecycleError):
            provider.cancel_destruction(key_id)
        with pytest.raises(LifecycleError):
            provider.destroy(key_id)

    def test_destruction_is_cancellable_then_final(self, provider: Any, clock: FakeClock) -> None:
        key_id = provider.create_key(label="k")
        share = os.urandom(32)
        wrapped = provider.wrap(key_id, share, CONTEXT)
        provider.disable(key_id)
        provider.schedule_destruction(key_id, destroy_at=clock() + DAY)
        assert provider.describe(key_id).state is KeyState.PENDING_DESTRUCTION
        with pytest.raises(AccessDenied) as denied:
            provider.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "pending_destruction"
        provider.cancel_destruction(key_id)
        assert provider.describe(key_id).state is KeyState.DISABLED
        provider.enable(key_id)
        assert provider.unwrap(key_id, wrapped, CONTEXT) == share

        provider.disable(key_id)
        provider.schedule_destruction(key_id, destroy_at=clock() + DAY)
        clock.advance(DAY)
        provider.destroy(key_id)
        provider.destroy(key_id)  # idempotent
        assert provider.describe(key_id).state is KeyState.DESTROYED
        with pytest.raises(AccessDenied) as denied:
            provider.unwrap(key_id, wrapped, CONTEXT)
        assert denied.value.reason == "destroyed"
        for change in (provider.enable, provider.disable, provider.cancel_destruction):
            with pytest.raises(LifecycleError):
                change(key_id)

    def test_eight_threads_at_once(self, provider: Any) -> None:
        key_id = provider.create_key(label="k")
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(50):
                    share = os.urandom(32)
                    assert provider.unwrap(
                        key_id, provider.wrap(key_id, share, CONTEXT), CONTEXT
                    ) == (share)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
