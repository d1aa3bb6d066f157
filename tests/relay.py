"""A recording TCP relay for the sync's wire tests: what the client sent, and when it waited.

The relay listens on 127.0.0.1 and passes every connection through to a lab
port, unchanged (TLS included), recording each chunk in the order the relay
saw it: ``("c", bytes)`` from the client, ``("s", bytes)`` from the server.
Because a chunk is recorded before it is forwarded, the server cannot
answer a client chunk before that chunk is recorded, and the client cannot
react to a server chunk before it is recorded: the order of the record is
the order of cause and effect.

:meth:`Relay.turns` counts the round trips the client waited for (the TCP
connect is not counted), from the tags it sent and the replies it got, so
the count does not depend on timing. Only in clear text, where the relay
can read the tags.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class Relay:
    """A relay in front of ``(host, port)``; ``port`` is where clients connect.

    ``delay``: seconds the server's bytes take to reach the client (half a
    round trip), so that what the client does while an answer is on its way
    shows as it would on a real line: on loopback an answer is back before
    the client has finished its next thought.
    """

    def __init__(self, upstream: tuple[str, int], delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay
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
        late: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        if side == "s" and self.delay:
            deliver = threading.Thread(target=self._deliver, args=(late, dst, record),
                                       daemon=True)
            deliver.start()
            self._threads.append(deliver)
        while True:
            try:
                data = src.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            if side == "s" and self.delay:
                late.put((time.monotonic() + self.delay, data))
                continue
            with self._lock:
                record.append((side, data))
            try:
                dst.sendall(data)
            except OSError:
                break
        if side == "s" and self.delay:
            late.put((time.monotonic() + self.delay, b""))
            return
        for sock in (dst, src):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _deliver(self, late: queue.SimpleQueue[tuple[float, bytes]], dst: socket.socket,
                 record: list[tuple[str, bytes]]) -> None:
        """The server's bytes, each ``delay`` after the relay read them (recorded then)."""
        while True:
            due, data = late.get()
            time.sleep(max(0.0, due - time.monotonic()))
            if not data:
                break
            with self._lock:
                record.append(("s", data))
            try:
                dst.sendall(data)
            except OSError:
                break
        with suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def sent(self, connection: int | None = None) -> bytes:
        """Everything the client sent (on one connection, or on all of them)."""
        with self._lock:
            records = self.connections if connection is None else [self.connections[connection]]
            return b"".join(data for record in records for side, data in record if side == "c")

    def turns(self, connection: int = 0) -> int:
        """How many times the client waited for the server (clear-text IMAP only).

        A client write counts when the server had spoken since the client's
        previous write and had answered every command sent so far: the
        client had everything and was waiting, as a latency proxy would
        count it. A write made while answers are still due (a command sent
        ahead) does not count.
        """
        with self._lock:
            record = list(self.connections[connection])
        count, heard, due, pending = 0, False, set(), b""
        for side, data in record:
            if side == "s":
                heard = True
                pending += data
                *lines, pending = pending.split(b"\r\n")
                for line in lines:
                    tag, _, rest = line.partition(b" ")
                    if rest[:3].upper() in (b"OK ", b"NO ", b"BAD"):
                        due.discard(tag)
                continue
            if heard and not due:
                count += 1
            heard = False
            due |= {line.partition(b" ")[0] for line in data.split(b"\r\n")
                    if b" " in line}
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
def relay(host: str, port: int, delay: float = 0.0) -> Iterator[Relay]:
    """A :class:`Relay` in front of ``host:port`` for the ``with`` block."""
    r = Relay((host, port), delay)
    try:
        yield r
    finally:
        r.close()
