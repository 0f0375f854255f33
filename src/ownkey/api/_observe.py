"""What an operator sees of a node: request ids, route latencies and the node's own gauges.

- :class:`Observe` (pure ASGI, outermost): gives every request an id (the client's
  ``X-Request-Id`` when well formed, else a fresh one: :func:`ownkey._logs.accept_request_id`),
  echoes it in the answer and puts it in every log line of the request
  (:data:`ownkey._logs.REQUEST_ID`); times the request until its last byte is sent, by route
  template (``/v1/orgs/{org}/settings``: never an org, asset or scope name) and method.
- :class:`NodeCollector`: key-manager calls by provider kind and action (counts by outcome,
  latency), the per-org bulkhead (calls in flight, waiting, refused), database errors and the
  connection pool, jobs and their items by kind and state, audit append failures, and the build
  (version and schema revision).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ownkey._logs import REQUEST_ID, REQUEST_ID_HEADER, accept_request_id
from ownkey.keys import LATENCY_BUCKETS, CallStats
from ownkey.service import Runtime

__all__ = ["NodeCollector", "Observe", "RouteLatency"]

_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")
#: Requests that matched no route share one label (a scanner's paths must not grow the series).
UNMATCHED = "unmatched"


def _histogram(
    name: str, text: str, labels: list[str], series: Mapping[tuple[str, str], CallStats]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, text, labels=labels)
    for values, stats in sorted(series.items()):
        cumulative, buckets = 0, []
        for bound, count in zip(LATENCY_BUCKETS, stats.buckets, strict=True):
            cumulative += count
            buckets.append((repr(float(bound)), float(cumulative)))
        buckets.append(("+Inf", float(stats.count)))
        family.add_metric(list(values), buckets, sum_value=stats.total)
    return family


class RouteLatency(Collector):
    """Request latency by route template and method (a histogram, in seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], CallStats] = {}

    def observe(self, route: str, method: str, seconds: float) -> None:
        with self._lock:
            stats = self._series.get((route, method))
            if stats is None:
                stats = self._series[(route, method)] = CallStats()
            stats.add("done", seconds)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            series = {key: stats.copy() for key, stats in self._series.items()}
        yield _histogram(
            "ownkey_http_request_duration_seconds",
            "Time to answer a request (to its last byte), by route template and method.",
            ["route", "method"],
            series,
        )


def _route_of(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ownkey")
    except PackageNotFoundError:  # pragma: no cover - a bare source tree
        return "unknown"


class Observe:
    """The request id and the route timer (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        latency: RouteLatency,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._app = app
        self._latency = latency
        self._timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", []):
            if name == _HEADER:
                given = value.decode("latin-1")
                break
        request_id = accept_request_id(given)
        token = REQUEST_ID.set(request_id)
        started = self._timer()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() != _HEADER]
                headers.append((_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            self._latency.observe(_route_of(scope), scope["method"], self._timer() - started)
            REQUEST_ID.reset(token)


class NodeCollector(Collector):
    """The node's key-manager, database, job, audit and build metrics (module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._version = _version()
        self._lock = threading.Lock()
        self._db_errors: dict[str, int] = {}
        self._engine = runtime.database.engine

    # -- database errors, counted by SQLAlchemy's error class ------------------------------------

    def _on_error(self, context: ExceptionContext) -> None:
        error = context.sqlalchemy_exception
        name = type(error if error is not None else context.original_exception).__name__
        with self._lock:
            self._db_errors[name] = self._db_errors.get(name, 0) + 1

    def start(self) -> None:
        event.listen(self._engine, "handle_error", self._on_error)

    def stop(self) -> None:
        if event.contains(self._engine, "handle_error", self._on_error):
            event.remove(self._engine, "handle_error", self._on_error)

    # -- collection ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        yield from self._build()
        yield from self._key_calls()
        yield from self._database()
        yield from self._jobs()
        audit = CounterMetricFamily(
            "ownkey_audit_append_failures",
            "Audit events the audit store refused (the operation was refused with them).",
            value=self._runtime.admin.audit_failures(),
        )
        yield audit

    def _build(self) -> Iterator[InfoMetricFamily]:
        try:
            status = self._runtime.database.schema()
            head, revision = status.head, status.revision or "unknown"
        except Exception:  # counted as a database error; the scrape still answers
            head, revision = "unknown", "unknown"
        yield InfoMetricFamily(
            "ownkey_build",
            "This node's build: ownkey's version, the newest migration it ships "
            "(schema_head) and the database's schema revision.",
            value={"version": self._version, "schema_head": head, "schema_revision": revision},
        )

    def _key_calls(self) -> Iterator[Any]:
        report = self._runtime.admin.key_call_report()
        calls = CounterMetricFamily(
            "ownkey_key_manager_calls",
            "Key-manager calls by provider kind, action and outcome (ok, denied, unavailable, "
            "failed, error).",
            labels=["provider", "action", "outcome"],
        )
        for (kind, action), stats in sorted(report.calls.items()):
            for outcome, count in sorted(stats.outcomes.items()):
                calls.add_metric([kind, action, outcome], count)
        yield calls
        errors = CounterMetricFamily(
            "ownkey_key_manager_errors",
            "Key-manager calls that did not answer ok, by provider kind and action.",
            labels=["provider", "action"],
        )
        for (kind, action), stats in sorted(report.calls.items()):
            failed = sum(n for outcome, n in stats.outcomes.items() if outcome != "ok")
            errors.add_metric([kind, action], failed)
        yield errors
        yield _histogram(
            "ownkey_key_manager_call_duration_seconds",
            "Key-manager call latency by provider kind and action.",
            ["provider", "action"],
            report.calls,
        )
        for verb in ("wrap", "unwrap"):
            total = sum(s.count for (_, action), s in report.calls.items() if action == verb)
            yield CounterMetricFamily(
                f"ownkey_key_manager_{verb}s", f"Key-manager {verb} calls, all kinds.", value=total
            )
        yield GaugeMetricFamily(
            "ownkey_key_manager_calls_in_flight",
            "Key-manager calls holding a bulkhead slot now (all orgs).",
            value=report.in_flight,
        )
        yield GaugeMetricFamily(
            "ownkey_key_manager_calls_waiting",
            "Key-manager calls waiting for their org's slot now (all orgs).",
            value=report.waiting,
        )
        rejected = CounterMetricFamily(
            "ownkey_key_manager_calls_rejected",
            "Calls refused by the per-org bulkhead (queue_full, wait): 503 key-unavailable.",
            labels=["why"],
        )
        for why in ("queue_full", "wait"):
            rejected.add_metric([why], report.rejected.get(why, 0))
        yield rejected
        limits = {
            "ownkey_key_manager_calls_per_org_limit": (
                "One org's calls in flight at most.",
                report.limits.concurrent,
            ),
            "ownkey_key_manager_calls_waiting_limit": (
                "One org's calls waiting at most.",
                report.limits.waiting,
            ),
        }
        for name, (text, value) in limits.items():
            yield GaugeMetricFamily(name, text, value=value)

    def _database(self) -> Iterator[Any]:
        with self._lock:
            errors = dict(self._db_errors)
        family = CounterMetricFamily(
            "ownkey_database_errors",
            "Database errors by SQLAlchemy error class.",
            labels=["error"],
        )
        for name, count in sorted(errors.items()):
            family.add_metric([name], count)
        yield family
        pool = self._engine.pool
        gauges = {
            "size": "Connections the pool keeps.",
            "checkedout": "Connections in use now.",
            "checkedin": "Idle connections in the pool.",
            "overflow": "Connections beyond the pool's size now.",
        }
        for name, text in gauges.items():
            measure = getattr(pool, name, None)
            if callable(measure):
                yield GaugeMetricFamily(f"ownkey_database_pool_{name}", text, value=measure())

    def _jobs(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily(
            "ownkey_jobs", "Jobs by kind and state (this database).", labels=["kind", "state"]
        )
        items = GaugeMetricFamily(
            "ownkey_job_items",
            "Items of unfinished jobs by kind: total, done, failed.",
            labels=["kind", "progress"],
        )
        progress: dict[tuple[str, str], int] = {}
        try:
            tally = self._runtime.jobs.tally()
        except Exception:  # a database error is counted above; the scrape still answers
            tally = []
        for kind, state, count, total, done, failed in sorted(tally):
            jobs.add_metric([kind, state], count)
            if state in ("pending", "running"):
                for name, value in (("total", total), ("done", done), ("failed", failed)):
                    progress[(kind, name)] = progress.get((kind, name), 0) + value
        for (kind, name), value in sorted(progress.items()):
            items.add_metric([kind, name], value)
        yield jobs
        yield items
