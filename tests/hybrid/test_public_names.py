"""The public names of ownkey.client and ownkey.hybrid are pinned (a change is deliberate)."""

from __future__ import annotations

import ownkey.client
import ownkey.hybrid


def test_client_names() -> None:
    assert ownkey.client.__all__ == [
        "AsyncCredentials",
        "AsyncHybridClient",
        "AsyncPlatformCredentials",
        "Credentials",
        "DekCache",
        "HybridClient",
        "MessageHeader",
        "PlatformCredentials",
        "read_header",
    ]
    for name in ownkey.client.__all__:
        assert getattr(ownkey.client, name).__doc__, name


def test_hybrid_names_resolve() -> None:
    for name in ownkey.hybrid.__all__:
        assert getattr(ownkey.hybrid, name) is not None
    assert "build_app" in ownkey.hybrid.__all__
