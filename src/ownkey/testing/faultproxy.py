"""An in-process TCP proxy that injects network faults between a client and a key manager.

Point a provider at :attr:`FaultProxy.address` instead of the server and switch the proxy's
:class:`Fault` while the test runs::

    with FaultProxy(("127.0.0.1", kmip_port)) as proxy:
        provider = KmipProvider(host="127.0.0.1", port=proxy.port, ...)
        with proxy.fault(Fault.BLACKHOLE):
            with pytest.raises(KeyUnavailable):
                provider.wrap(...)

Faults apply to new *and* already-open connections (a pooled client meets them too):

- ``PASS``: forward bytes both ways;
- ``DELAY``: forward, but hold every chunk for ``delay`` seconds (a slow server);
- ``BLACKHOLE``: accept and swallow bytes, never answer (a hung server or a dropped route);
- ``RESET``: answer every connection, new or open, with a TCP reset (a crashed server);
- ``REFUSE``: close the listening socket, so connecting fails at once (a server that is down).
- ``GARBAGE``: answer whatever the client sends with random bytes, then close (a server, or a
  middlebox, that speaks something else).

``connections`` counts the connections the proxy accepted, which is how a test proves that a
client retried a bounded number of times. Threads only; nothing outlives :meth:`close`.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from types import TracebackType

__all__ = ["Fault", "FaultProxy"]

_CHUNK = 65536
_POLL = 0.05


class Fault(enum.Enum):
    """What the proxy does to traffic."""

    PASS = "pass"  # noqa: S105 - a mode name, not a password
    DELAY = "delay"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    REFUSE = "refuse"
    GARBAGE = "garbage"


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP RST, not a clean FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``, with switchable faults."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.delay = 0.0
        self.connections = 0
        self._fault = Fault.PASS
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()

    def __repr__(self) -> str:
        return f"<FaultProxy {self.host}:{self.port} -> {self.upstream} fault={self._fault.value}>"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listen()
        return self

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name="faultproxy-accept", daemon=True
        )
        self._accept_thread.start()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None

    def close(self) -> None:
        """Stop listening, cut every connection, and join every thread."""
        self._closed.set()
        self._stop_listening()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults ---------------------------------------------------------------------------

    @property
    def current(self) -> Fault:
        return self._fault

    def set_fault(self, fault: Fault, *, delay: float = 0.0) -> None:
        """Switch to ``fault`` now (``delay`` is the hold time of ``DELAY``)."""
        previous = self._fault
        self.delay = delay
        self._fault = fault
        if fault is Fault.REFUSE and previous is not Fault.REFUSE:
            self._stop_listening()
        if fault is not Fault.REFUSE and previous is Fault.REFUSE and not self._closed.is_set():
            self._listen()
        if fault in (Fault.RESET, Fault.REFUSE):
            with self._lock:
                sockets = list(self._sockets)
            for sock in sockets:
                _reset(sock)

    @contextlib.contextmanager
    def fault(self, fault: Fault, *, delay: float = 0.0) -> Iterator[FaultProxy]:
        """Apply ``fault`` for the ``with`` block, then forward normally again."""
        self.set_fault(fault, delay=delay)
        try:
            yield self
        finally:
            self.set_fault(Fault.PASS)

    # -- plumbing -------------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], _POLL)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream: socket.socket | None = None
        try:
            if self._fault is Fault.RESET:
                _reset(client)
                return
            if self._fault is Fault.BLACKHOLE:
                self._swallow(client)
                return
            if self._fault is Fault.GARBAGE:
                self._garbage(client)
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                return
            self._track(upstream)
            self._pump(client, upstream)
        finally:
            self._untrack(client)
            if upstream is not None:
                self._untrack(upstream)

    def _swallow(self, client: socket.socket) -> None:
        while not self._closed.is_set() and self._fault is Fault.BLACKHOLE:
            try:
                ready, _, _ = select.select([client], [], [], _POLL)
                if ready and not client.recv(_CHUNK):
                    return
            except (OSError, ValueError):
                return

    def _garbage(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            ready, _, _ = select.select([client], [], [], 1.0)
            if ready and client.recv(_CHUNK):
                client.sendall(os.urandom(512))

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select(list(peers), [], [], _POLL)
            except (OSError, ValueError):
                return
            for sock in ready:
                try:
                    data = sock.recv(_CHUNK)
                except OSError:
                    return
                if not data:
                    return
                fault = self._fault
                if fault is Fault.BLACKHOLE:
                    continue  # swallowed: the other side waits forever
                if fault in (Fault.RESET, Fault.REFUSE):
                    _reset(client)
                    return
                if fault is Fault.GARBAGE and sock is upstream:
                    data = os.urandom(len(data))
                if fault is Fault.DELAY and self.delay > 0:
                    deadline = time.monotonic() + self.delay
                    while time.monotonic() < deadline and not self._closed.is_set():
                        time.sleep(min(_POLL, deadline - time.monotonic()))
                try:
                    peers[sock].sendall(data)
                except OSError:
                    return
