"""Single-flight through the Protector: concurrent opens of a cold scope key (CA-2)."""

from __future__ import annotations

import threading
import time

from tests.service._helpers import chat, make_node


def test_concurrent_opens_of_a_cold_scope_key_make_one_unwrap_per_share() -> None:
    node = make_node()
    channels = [f"chat-{n}" for n in range(4)]
    sealed = {
        scope: [node.protector.seal(chat(scope, f"m{i}"), b"%d" % i) for i in range(8)]
        for scope in channels
    }
    cold = node.second_node()
    node.provider.gate = threading.Event()  # hold every unwrap until all threads are waiting
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(channels) * 8)

    def open_one(scope: str, i: int) -> None:
        try:
            barrier.wait()
            assert cold.protector.open(chat(scope, f"m{i}"), sealed[scope][i]) == b"%d" % i
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=open_one, args=(scope, i)) for scope in channels for i in range(8)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while node.provider.calls["unwrap"] < len(channels) and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # let any thread that would wrongly call the KMS do so now
    node.provider.gate.set()
    for thread in threads:
        thread.join()
    assert errors == []
    # Each chat's scope key has two shares (acme and globex): one unwrap each, whatever the load.
    assert node.provider.calls["unwrap"] == 2 * len(channels)
    assert cold.admin.cache_report().loads == len(channels)
