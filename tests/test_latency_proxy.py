"""The latency benchmark's proxy (benchmarks/latency_proxy.py): delay, rate, and what it counts.

Scripted exchanges against tiny line servers on loopback: the times must
follow the line's model (never faster, and close to it), and the round
trips and waits must be the ones the proxy's docstring defines.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from latency_proxy import LatencyProxy, Shape, burst_label, collapse, commands

RTT = 0.1
#: Scheduling slack on a loaded machine: the proxy may be late, never early.
LATE = 0.25
EARLY = 0.01


@contextlib.contextmanager
def line_server(answer: Callable[[bytes], bytes | None]) -> Iterator[tuple[str, int]]:
    """A server that greets, then answers each line with ``answer(line)`` (None: close)."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"* OK ready\r\n")
            for line in self.rfile:
                reply = answer(line)
                if reply is None:
                    return
                self.wfile.write(reply)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


def imap_like(line: bytes) -> bytes:
    tag, _, rest = line.partition(b" ")
    if rest.upper().startswith(b"FETCH"):
        return b"* 1 FETCH " + b"x" * 300_000 + b"\r\n" + tag + b" OK big\r\n"
    if rest.upper().startswith(b"LOGOUT"):
        return b"* BYE\r\n" + tag + b" OK bye\r\n"
    return tag + b" OK done\r\n"


def read_until(sock: socket.socket, end: bytes) -> bytes:
    got = b""
    while not got.endswith(end):
        chunk = sock.recv(1 << 16)
        assert chunk, got[-200:]
        got += chunk
    return got


def test_scripted_session_counts_each_wait_and_follows_the_delay() -> None:
    with line_server(imap_like) as upstream, \
            LatencyProxy({"imap": upstream}, Shape(rtt=RTT)) as proxy:
        start = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", proxy.ports["imap"]))
        received = read_until(sock, b"ready\r\n")
        greeted = time.monotonic() - start
        sent = b""
        for burst, end in [(b"a1 CAPABILITY\r\n", b"a1 OK done\r\n"),
                           (b"a2 NOOP\r\na3 NOOP\r\n", b"a3 OK done\r\n"),  # pipelined
                           (b"a4 LOGIN bob hunter2\r\n", b"a4 OK done\r\n"),
                           (b"a5 LOGOUT\r\n", b"a5 OK bye\r\n")]:
            sock.sendall(burst)
            sent += burst
            received += read_until(sock, end)
        elapsed = time.monotonic() - start
        sock.close()
        traffic = proxy.take()

    # Connect + greeting: 2 RTT (the handshake made up for), then one per burst.
    assert 2 * RTT - EARLY <= greeted <= 2 * RTT + LATE
    assert 6 * RTT - EARLY <= elapsed <= 6 * RTT + LATE
    (conn,) = traffic.connections
    assert conn.listener == "imap"
    assert conn.waits == ["TCP connect", "greeting", "CAPABILITY", "2 NOOP", "LOGIN", "LOGOUT"]
    assert conn.round_trips == traffic.round_trips == traffic.slowest == 6
    assert (conn.up, conn.down) == (len(sent), len(received))
    assert "hunter2" not in repr(conn) + repr(conn.as_dict())


def test_logout_not_waited_for_and_commands_sent_ahead_do_not_count() -> None:
    # Capped, so that the big answer takes a while to stream in.
    with line_server(imap_like) as upstream, \
            LatencyProxy({"imap": upstream}, Shape(rtt=RTT, rate=8e6)) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.ports["imap"]))
        read_until(sock, b"ready\r\n")
        sock.sendall(b"a1 FETCH 1:*\r\n")
        sock.recv(1000)  # the answer is streaming in: send the next command ahead
        sock.sendall(b"a2 NOOP\r\n")
        read_until(sock, b"a2 OK done\r\n")
        sock.sendall(b"a3 LOGOUT\r\n")  # and close without waiting for its answer
        sock.close()
        traffic = proxy.take()
    (conn,) = traffic.connections
    assert conn.waits == ["TCP connect", "greeting", "FETCH + NOOP"]
    assert conn.round_trips == 3


def test_rate_cap_paces_a_big_answer() -> None:
    rate = 8e6  # 1 MB/s
    with line_server(imap_like) as upstream, \
            LatencyProxy({"imap": upstream}, Shape(rtt=RTT, rate=rate)) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.ports["imap"]))
        read_until(sock, b"ready\r\n")
        start = time.monotonic()
        sock.sendall(b"a1 FETCH 1:*\r\n")
        first = None
        got = b""
        while not got.endswith(b"a1 OK big\r\n"):
            got += sock.recv(1 << 16)
            first = first or time.monotonic() - start
        elapsed = time.monotonic() - start
        sock.close()
        proxy.take()
    line = len(got) * 8 / rate
    assert RTT - EARLY <= first <= RTT + LATE  # the first piece does not wait for the rest
    assert RTT + line - EARLY <= elapsed <= RTT + line + LATE


def test_several_ports_share_one_line() -> None:
    rate = 8e6
    with line_server(imap_like) as first, line_server(imap_like) as second, \
            LatencyProxy({"a": first, "b": second}, Shape(rtt=0.02, rate=rate)) as proxy:
        socks = [socket.create_connection(("127.0.0.1", proxy.ports[name])) for name in "ab"]
        assert proxy.ports["a"] != proxy.ports["b"]
        for sock in socks:
            read_until(sock, b"ready\r\n")
        start = time.monotonic()
        for sock in socks:
            sock.sendall(b"a1 FETCH 1:*\r\n")
        for sock in socks:
            read_until(sock, b"a1 OK big\r\n")
        elapsed = time.monotonic() - start
        for sock in socks:
            sock.close()
        traffic = proxy.take()
    assert sorted(c.listener for c in traffic.connections) == ["a", "b"]
    line = traffic.down * 8 / rate  # both answers, one after the other on the one line
    assert line - EARLY <= elapsed <= line + 0.02 + LATE


def test_a_refused_upstream_closes_the_client() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with LatencyProxy({"x": ("127.0.0.1", closed_port)}, Shape(rtt=0.02)) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.ports["x"]))
        sock.settimeout(5)
        assert sock.recv(100) == b""
        sock.close()
        traffic = proxy.take()
    assert [c.round_trips for c in traffic.connections] == [1]


@pytest.mark.parametrize(("data", "names"), [
    (b"a1 LOGIN bob hunter2\r\n", ["LOGIN"]),
    (b"a2 UID FETCH 1:* (FLAGS)\r\na3 uid search all\r\n", ["UID FETCH", "UID SEARCH"]),
    (b"a4 AUTHENTICATE PLAIN AGJvYgBodW50ZXIy\r\n", ["AUTHENTICATE"]),
    (b"AGJvYgBodW50ZXIy\r\n", ["data"]),
    (b"PASS hunter2\r\nSTAT\r\n", ["PASS", "STAT"]),
    (b"EHLO me\r\nAUTH PLAIN AGJvYgBodW50ZXIy\r\n", ["EHLO", "AUTH"]),
    (b"a5 XYZZY hunter2\r\n", ["data"]),
    (b"\x16\x03\x01\x02\x00\x01", ["TLS handshake"]),
    (b"\x17\x03\x03\x00\x20", ["TLS data"]),
    (b"\r\n", []),  # a line end written apart from its command names nothing
    (b"", ["close"]),
])
def test_commands_name_verbs_only(data: bytes, names: list[str]) -> None:
    assert commands(data) == names
    assert not any("hunter2" in n or "AGJv" in n or "bob" in n for n in commands(data))


def test_labels() -> None:
    assert burst_label([]) == "greeting"
    assert burst_label(["ENABLE", "LIST"]) == "ENABLE + LIST"
    assert burst_label(["STATUS"] * 60) == "60 STATUS"
    assert collapse(["LIST"] + ["STATUS"] * 3 + ["LOGOUT"]) == "LIST, STATUS ×3, LOGOUT"
