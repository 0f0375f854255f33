"""Explicit cache eviction by key, org, service, scope, epoch range and id (CA-4, CA-6)."""

from __future__ import annotations

import pytest

from ownkey.audit import AuditAction
from ownkey.envelope import peek_key_id
from ownkey.service import ProtectorSettings
from tests.service._helpers import DAY, START, chat, make_node, single

LONG_CACHE = ProtectorSettings(
    auto_create_keys=True, cache_max_age=3 * DAY, cache_refresh_after=3 * DAY
)


@pytest.mark.parametrize(
    ("kwargs", "evicted"),
    [
        ({"key": "customer:globex"}, 3),
        ({"org": "acme"}, 4),
        ({"service_id": "0001"}, 1),
        ({"scope": "chat-1"}, 2),
        ({"since": START + DAY}, 1),
        ({"until": START + DAY}, 3),
        ({}, 4),
    ],
)
def test_evict_selects_and_the_next_open_unwraps_again(kwargs: dict, evicted: int) -> None:  # type: ignore[type-arg]
    node = make_node(LONG_CACHE)
    p = node.protector
    sealed = [
        (chat("chat-1"), p.seal(chat("chat-1"), b"a")),
        (chat("chat-2"), p.seal(chat("chat-2"), b"b")),
        (single("0001", "video"), p.seal(single("0001", "video"), b"c")),
    ]
    node.clock.advance(DAY)
    sealed.append((chat("chat-1", "m9"), p.seal(chat("chat-1", "m9"), b"d")))
    assert node.admin.evict(**kwargs, actor="ops") == evicted
    unwraps = node.provider.calls["unwrap"]
    for request, blob in sealed:
        p.open(request, blob)
    reloaded = node.provider.calls["unwrap"]
    assert (reloaded > unwraps) is (evicted > 0)  # one unwrap per share of what was evicted
    for request, blob in sealed:
        p.open(request, blob)
    assert node.provider.calls["unwrap"] == reloaded  # cached again
    [event] = node.sink.of(AuditAction.CACHE_EVICT)
    assert (event.actor, event.detail["evicted"]) == ("ops", str(evicted))


def test_evict_one_scope_key_by_id() -> None:
    node = make_node()
    blob = node.protector.seal(chat(), b"a")
    assert node.admin.evict(scope_key_id=peek_key_id(blob)) == 1
    assert node.admin.evict(scope_key_id=peek_key_id(blob)) == 0
    report = node.admin.cache_report()
    assert report.entries == 0
    assert report.limits.max_age == node.protector.settings.cache_max_age
