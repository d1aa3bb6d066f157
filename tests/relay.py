"""A recording TCP relay for the sync's wire tests: what the client sent, and when it waited.

The relay listens on 127.0.0.1 and passes every connection through to a lab
port, unchanged (TLS included), recording each chunk in the order the relay
saw it: ``("c", bytes)`` from the client, ``("s", bytes)`` from the server.
Because a chunk is recorded before it is forwarded, the server cannot
answer a client chunk before that chunk is recorded, and the client cannot
react to a server chunk before it is recorded: the order of the record is
the order of cause and effect.

:meth:`Relay.turns` counts how many times the client spoke after hearing
from the server: each is a round trip the client waited for (the TCP
connect is not counted). A client that writes a pipelined batch with one
``send`` is seen as one chunk on loopback, so the count does not depend on
timing. Only meaningful in clear text, where each command is one write.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class Relay:
    """A relay in front of ``(host, port)``; ``port`` is where clients connect."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        #: per connection, in the order accepted: the chunks as recorded
        self.connections: list[list[tuple[str, bytes]]] = []
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            record: list[tuple[str, bytes]] = []
            with self._lock:
                self.connections.append(record)
                self._socks += [client, server]
            for src, dst, side in ((client, server, "c"), (server, client, "s")):
                t = threading.Thread(target=self._pump, args=(src, dst, side, record),
                                     daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, side: str,
              record: list[tuple[str, bytes]]) -> None:
        while True:
            try:
                data = src.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            with self._lock:
                record.append((side, data))
            try:
                dst.sendall(data)
            except OSError:
                break
        for sock in (dst, src):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def sent(self, connection: int | None = None) -> bytes:
        """Everything the client sent (on one connection, or on all of them)."""
        with self._lock:
            records = self.connections if connection is None else [self.connections[connection]]
            return b"".join(data for record in records for side, data in record if side == "c")

    def turns(self, connection: int = 0) -> int:
        """How many times the client spoke after hearing from the server."""
        with self._lock:
            record = list(self.connections[connection])
        count, heard = 0, False
        for side, _ in record:
            if side == "s":
                heard = True
            elif heard:
                count, heard = count + 1, False
        return count

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            sock.close()
        for t in self._threads:
            t.join(timeout=2)


@contextmanager
def relay(host: str, port: int) -> Iterator[Relay]:
    """A :class:`Relay` in front of ``host:port`` for the ``with`` block."""
    r = Relay((host, port))
    try:
        yield r
    finally:
        r.close()
