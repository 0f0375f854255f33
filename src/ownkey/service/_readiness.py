"""Is this node ready to serve? Each dependency a request needs, probed with a bound.

A node that answers "healthy" while its bucket does not exist sends its load balancer traffic it
then answers with 404s as if the data were gone (issue 28, item 6). :class:`Readiness` asks each
part a request stands on, and says which failed and why (never a secret: ownkey's own error
messages, redacted, or the failing call's error type):

- ``database``: ``SELECT 1`` through the pool;
- ``schema``: this build may run against the database's schema revision (docs/operations.md,
  "Upgrades"): failed once another build applied a migration that stops this one;
- ``blob_store``: the asset store's blobs can be listed, written and deleted (``probe()``);
- ``platform_key``: the platform key's key manager describes it as usable (not audited: it
  releases no key and would fill the platform's chain with probes);
- ``change_feed``: the PostgreSQL ``LISTEN`` connection of :class:`~ownkey.service.NodeSync` is
  up (``n/a`` on SQLite, or when the node does not follow other nodes).

Every probe runs on its own thread, all at once, and they are given ``timeout`` seconds
together: a hung key manager makes its check fail, it never holds the answer. The blob store and
the platform key are asked at most once per ``cache_for`` seconds (a load balancer probing every
second cannot hammer a KMS or a bucket); while one probe is still out, the next answer waits on
it rather than starting another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import text

from ownkey._redact import redact
from ownkey.errors import OwnkeyError
from ownkey.keys import KeyRef
from ownkey.storage._revision import build_name

if TYPE_CHECKING:
    from ownkey.service._nodes import NodeSync
    from ownkey.service._runtime import Runtime

__all__ = ["Check", "Readiness", "ReadinessReport"]

#: How long one probe may take before its check fails (seconds).
PROBE_TIMEOUT: Final = 2.0
#: How long a blob store or platform key answer is reused (seconds).
PROBE_CACHE_SECONDS: Final = 5.0
NOT_APPLICABLE: Final = "n/a"


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency's answer: ``status`` is ``ok``, ``failed`` or ``n/a``."""

    name: str
    status: str
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.status != "failed"

    def as_dict(self) -> dict[str, str]:
        found = {"status": self.status}
        if self.detail:
            found["detail"] = self.detail
        return found


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Every check, in a fixed order; ready when none failed."""

    checks: tuple[Check, ...]
    #: This node's build (``ownkey 0.1.0``), so that an operator tells nodes apart.
    build: str = ""

    @property
    def ready(self) -> bool:
        return all(check.ready for check in self.checks)

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not ready",
            "build": self.build,
            "checks": {check.name: check.as_dict() for check in self.checks},
        }


def reason(exc: BaseException) -> str:
    """Why a probe failed, safe to show: ownkey's own messages (which never hold a secret),
    redacted once more; another library's error by its type only (its text may hold a URL)."""
    if isinstance(exc, OwnkeyError | OSError) and str(exc):
        return redact(str(exc))[:300]
    return type(exc).__name__


class _Probe:
    """One dependency's probe: bounded by ``timeout``, its answer reused for ``cache_for``."""

    def __init__(
        self,
        name: str,
        probe: Callable[[], str],
        *,
        timeout: float,
        cache_for: float,
        clock: Callable[[], float],
    ) -> None:
        self._name = name
        self._probe = probe
        self._timeout = timeout
        self._cache_for = cache_for
        self._clock = clock
        self._lock = threading.Lock()
        self._last: Check | None = None
        self._at = 0.0
        self._running: threading.Event | None = None
        self.runs = 0  # how many times the dependency was asked (for tests)

    def begin(self) -> Check | threading.Event:
        """The cached answer while fresh, else the probe's run (started unless one is out)."""
        with self._lock:
            last = self._last
            if last is not None and self._clock() - self._at < self._cache_for:
                return last
            running = self._running
            if running is None:
                running = self._running = threading.Event()
                self.runs += 1
                name = f"ownkey-ready-{self._name}"
                threading.Thread(target=self._run, args=(running,), name=name, daemon=True).start()
            return running

    def finish(self, begun: Check | threading.Event, deadline: float) -> Check:
        """The answer of :meth:`begin`, waiting for the probe until ``deadline`` (monotonic)."""
        if isinstance(begun, Check):
            return begun
        if not begun.wait(max(0.0, deadline - time.monotonic())):
            return Check(self._name, "failed", f"no answer within {self._timeout:g} s")
        with self._lock:
            assert self._last is not None
            return self._last

    def check(self) -> Check:
        return self.finish(self.begin(), time.monotonic() + self._timeout)

    def _run(self, done: threading.Event) -> None:
        try:
            found = Check(self._name, "ok", self._probe())
        except Exception as exc:  # any failure is a failed check, never a crashed probe
            found = Check(self._name, "failed", reason(exc))
        with self._lock:
            self._last, self._at, self._running = found, self._clock(), None
        done.set()


class Readiness:
    """The node's readiness (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        sync: NodeSync | None = None,
        *,
        timeout: float = PROBE_TIMEOUT,
        cache_for: float = PROBE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._sync = sync
        self._timeout = timeout
        self._build = build_name()

        def probe(name: str, fn: Callable[[], str], ttl: float) -> _Probe:
            return _Probe(name, fn, timeout=timeout, cache_for=ttl, clock=clock)

        self.probes: dict[str, _Probe] = {
            "database": probe("database", self._database, 0.0),
            "schema": probe("schema", self._schema, cache_for),
            "blob_store": probe("blob_store", self._blob_store, cache_for),
            "platform_key": probe("platform_key", self._platform_key, cache_for),
        }

    def _database(self) -> str:
        with self._runtime.database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return self._runtime.database.dialect

    def _schema(self) -> str:
        """The schema revision and this build's newest migration, or why this build may not
        run against it."""
        status = self._runtime.database.schema()
        refusal = status.refusal()
        if refusal is not None:
            raise OwnkeyError(refusal)
        return f"{status.described()} (this build: up to {status.head})"

    def _blob_store(self) -> str:
        store = self._runtime.assets.store.blobs
        probe = getattr(store, "probe", None)
        if not callable(probe):  # a store of the caller's own: a write and a delete
            return f"{type(store).__name__} (not probed)"
        probe()
        return type(store).__name__

    def _platform_key(self) -> str:
        deps = self._runtime._deps  # the same package's composition root
        master = deps.registry.get(KeyRef.platform())
        if master is None:
            raise OwnkeyError("no platform key is registered")
        description = deps.provider(master.provider).describe(master.key_id)
        if not description.state.usable:
            raise OwnkeyError(f"the platform key is {description.state.value}")
        return master.provider.partition("/")[0]

    def _change_feed(self) -> Check:
        if self._sync is None or not self._runtime.database.is_postgresql:
            return Check("change_feed", NOT_APPLICABLE)
        if self._sync.listening:
            return Check("change_feed", "ok", "listening")
        return Check("change_feed", "failed", "the LISTEN connection is down (reconnecting)")

    def _restore(self) -> Check:
        """Not ready while the database is behind the audit heads this node saw (a restore
        waiting for ``ownkey audit reconcile-restore``: service/_restore.py)."""
        reason = self._runtime.protector.open_gate.reason
        if reason is None:
            return Check("restore", "ok", "the database extends every head this node saw")
        return Check("restore", "failed", reason)

    def check(self) -> ReadinessReport:
        """Every check now (the slow ones from their cache when fresh)."""
        # every probe runs at once: a node with two hung dependencies answers within one timeout
        begun = [(probe, probe.begin()) for probe in self.probes.values()]
        deadline = time.monotonic() + self._timeout
        checks = [probe.finish(started, deadline) for probe, started in begun]
        return ReadinessReport((*checks, self._change_feed(), self._restore()), self._build)
