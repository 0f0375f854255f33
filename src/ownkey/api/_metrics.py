"""``/metrics``: Prometheus text for one node (one registry per app, no global state).

Counters of the data plane (seals, opens, denials by reason), the cache's counters and size
(its ``loads`` are the key-manager unwraps), and requests by status class. Nothing secret:
counts only, no org, scope or asset names as labels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ownkey.keys import CacheReport

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics(Collector):
    """The node's counters; :meth:`render` is the ``/metrics`` body."""

    def __init__(self, cache_report: Callable[[], CacheReport]) -> None:
        self._cache_report = cache_report
        self._lock = threading.Lock()
        self._seals: dict[str, int] = {}
        self._opens: dict[str, int] = {}
        self._denials: dict[str, int] = {}
        self._requests: dict[str, int] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    @staticmethod
    def _bump(counts: dict[str, int], label: str, count: int = 1) -> None:
        counts[label] = counts.get(label, 0) + count

    def sealed(self, kind: str, count: int = 1) -> None:
        """``count`` seals of a ``message`` or an ``object`` (a batch counts its items)."""
        with self._lock:
            self._bump(self._seals, kind, count)

    def opened(self, kind: str, count: int = 1) -> None:
        """``count`` successful opens of a ``message`` or an ``object`` (range)."""
        with self._lock:
            self._bump(self._opens, kind, count)

    def denied(self, reason: str) -> None:
        """One open or seal refused with AccessDenied."""
        with self._lock:
            self._bump(self._denials, reason)

    def answered(self, status: int) -> None:
        """One HTTP answer, by status class (2xx, 4xx, ...)."""
        with self._lock:
            self._bump(self._requests, f"{status // 100}xx")

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        with self._lock:
            seals, opens = dict(self._seals), dict(self._opens)
            denials, requests = dict(self._denials), dict(self._requests)
        yield _labelled("ownkey_seals", "Seals by kind.", "kind", seals)
        yield _labelled("ownkey_opens", "Successful opens by kind.", "kind", opens)
        yield _labelled("ownkey_denials", "Access denied, by reason.", "reason", denials)
        yield _labelled("ownkey_http_responses", "HTTP answers by class.", "class", requests)
        report = self._cache_report()
        counters = {
            "ownkey_unwraps": ("Scope keys unwrapped through the key managers.", report.loads),
            "ownkey_unwrap_failures": ("Unwraps that failed.", report.load_failures),
            "ownkey_cache_hits": ("Scope-key cache hits.", report.hits),
            "ownkey_cache_misses": ("Scope-key cache misses.", report.misses),
            "ownkey_cache_expirations": ("Entries past max age or max uses.", report.expirations),
            "ownkey_cache_evictions": ("Entries evicted.", report.evictions),
            "ownkey_cache_refreshes": ("Entries re-unwrapped when due.", report.refreshes),
            "ownkey_cache_stale_served": ("Entries kept during an outage.", report.stale_served),
        }
        for name, (text, value) in counters.items():
            yield CounterMetricFamily(name, text, value=value)
        limits = report.limits
        gauges = {
            "ownkey_cache_entries": ("Scope keys in the cache.", report.entries),
            "ownkey_cache_max_entries": ("Cache limit: entries.", limits.max_entries),
            "ownkey_cache_max_age_seconds": ("Cache limit: age.", limits.max_age),
            "ownkey_cache_max_uses": ("Cache limit: uses per entry.", limits.max_uses),
        }
        for name, (text, gauge) in gauges.items():
            yield GaugeMetricFamily(name, text, value=gauge)

    def include(self, collector: Collector) -> None:
        """Render ``collector``'s metrics with these (the node's own: :mod:`._observe`)."""
        self._registry.register(collector)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self._registry)


def _labelled(name: str, text: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family
