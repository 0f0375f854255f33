"""The fault-injection proxy itself, in front of a small echo server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ownkey.testing.faultproxy import Fault, FaultProxy


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.1)
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=serve, args=(conn,))
            workers.append(worker)
            worker.start()

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    yield listener.getsockname()
    stop.set()
    acceptor.join()
    for worker in workers:
        worker.join()
    listener.close()


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(echo) as started:
        yield started


def _ask(proxy: FaultProxy, payload: bytes = b"ping", timeout: float = 1.0) -> bytes:
    with socket.create_connection(proxy.address, timeout=timeout) as conn:
        conn.sendall(payload)
        return conn.recv(4096)


def test_pass_forwards_and_counts(proxy: FaultProxy) -> None:
    assert _ask(proxy) == b"ping"
    assert _ask(proxy, b"pong") == b"pong"
    assert proxy.connections == 2


def test_delay_holds_each_chunk(proxy: FaultProxy) -> None:
    with proxy.fault(Fault.DELAY, delay=0.3):
        started = time.monotonic()
        assert _ask(proxy) == b"ping"
        assert time.monotonic() - started >= 0.55  # held on the way in and on the way out
    started = time.monotonic()
    assert _ask(proxy) == b"ping"
    assert time.monotonic() - started < 0.3


def test_blackhole_never_answers(proxy: FaultProxy) -> None:
    with proxy.fault(Fault.BLACKHOLE), pytest.raises(TimeoutError):
        _ask(proxy, timeout=0.3)
    assert _ask(proxy) == b"ping"


def test_blackhole_also_stalls_open_connections(proxy: FaultProxy) -> None:
    with socket.create_connection(proxy.address, timeout=0.3) as conn:
        conn.sendall(b"a")
        assert conn.recv(16) == b"a"
        with proxy.fault(Fault.BLACKHOLE):
            conn.sendall(b"b")
            with pytest.raises(TimeoutError):
                conn.recv(16)


def test_reset_cuts_new_and_open_connections(proxy: FaultProxy) -> None:
    conn = socket.create_connection(proxy.address, timeout=1)
    with contextlib.closing(conn):
        conn.sendall(b"a")
        assert conn.recv(16) == b"a"
        with proxy.fault(Fault.RESET):
            with pytest.raises(ConnectionResetError):
                _send_and_read(conn, b"b")
            with pytest.raises(ConnectionError):
                _ask(proxy)


def _send_and_read(conn: socket.socket, payload: bytes) -> bytes:
    """One exchange on an open connection; a reset shows as ConnectionResetError."""
    conn.sendall(payload)
    data = conn.recv(16)
    if not data:
        raise ConnectionResetError("closed by the peer")
    return data


def test_refuse_closes_the_port_and_reopens_it(proxy: FaultProxy) -> None:
    port = proxy.port
    with proxy.fault(Fault.REFUSE), pytest.raises(ConnectionRefusedError):
        _ask(proxy)
    assert proxy.port == port
    assert _ask(proxy) == b"ping"


def test_close_leaves_no_thread_behind(echo: tuple[str, int]) -> None:
    before = threading.active_count()
    proxy = FaultProxy(echo).start()
    for _ in range(3):
        assert _ask(proxy) == b"ping"
    with socket.create_connection(proxy.address, timeout=1):
        proxy.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
