"""A delaying, rate-capping TCP proxy: a customer's distance from the mail server, on loopback.

The lab's servers answer in microseconds; customers sit 30-150 ms from a
HostGator-like server on a 10-50 Mbit/s line. :class:`LatencyProxy` listens
on 127.0.0.1, one port per upstream (the doctor's presets name eight), and
passes bytes through untouched (TLS included: it never looks inside a
record) after a one-way delay of RTT/2 in each direction and no faster than
the line's rate in each direction. It counts, from its own view, the bytes
each way and the round trips, per connection and in total.

The line
    One link per direction, shared by every connection of the proxy (the
    customer's access line): a chunk that arrives at ``now`` leaves when the
    link is free and has had ``8 * size / rate`` seconds to carry it (bytes
    leave no faster than the rate: a token bucket with no burst), then
    reaches the other side ``rtt / 2`` later. Chunks are cut into pieces of
    :data:`PIECE` bytes, so a big answer trickles in as it would over a
    real line. TCP's own behaviour (slow start, receive windows, header
    bytes) is not modelled: bytes are payload bytes, and the line is as good
    as TCP ever gets.

Connecting
    The client's ``connect()`` returns at once (the kernel of 127.0.0.1
    completes the handshake), so the proxy makes up for the handshake's
    round trip: it opens the server side 1.5 RTT after accepting (the SYN's
    way there, the SYN-ACK's way back, the ACK's way there). A server's
    first words (a greeting) then reach the client 2 RTT after its connect,
    and a client's first bytes (a TLS ClientHello) reach the server no
    sooner than 1.5 RTT after it, both as over a real path. A server port
    that refuses the proxy shows the client a connection closed, not
    refused.

Round trips (the times the client had to wait for the server)
    * The TCP connect counts one.
    * The client's bytes come in bursts: a burst is everything the client
      sends between two deliveries of server bytes to it, so commands
      pipelined in one write, or in several writes with no answer between
      them, are one burst.
    * A burst counts one round trip when it begins after server bytes
      reached the client *and* every byte the server had sent so far had
      reached the client: the client had everything and was waiting. A
      burst sent while an answer is still streaming in (the next command
      sent ahead) does not count.
    * The client closing its side (EOF) is a burst too: a client that waits
      for the answer to ``LOGOUT`` before closing pays for that round trip.
    So a TLS 1.3 session over implicit TLS that logs in and lists counts:
    connect, the handshake (the client's Finished waits for the server's
    flight), the greeting (the login waits for it), the login, the list, and
    one more if the client waits for the answer to its logout.

What each round trip waited for
    Each wait is named after what the client had sent since its previous
    wait, i.e. the commands whose answers it waited for: ``TCP connect``;
    ``greeting`` when it had sent nothing; command names in clear text
    (``LOGIN``, ``UID FETCH``, ``60 STATUS`` for sixty pipelined in one
    write, ``EXAMINE + UID SEARCH``; POP3 and SMTP verbs); ``TLS handshake``
    or ``TLS data`` inside TLS, whose commands the proxy cannot see. Only
    names from :data:`COMMANDS` are ever kept, never an argument and never
    a line that is not a known command (a SASL response, a literal): a
    password never reaches the log, whatever the client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Largest piece the line carries at once (bytes).
PIECE = 16 * 1024
#: Bytes held in one direction of one connection before the proxy stops reading that side.
HOLD = 8 << 20

#: Command names worth naming in a wait: IMAP (after a tag), POP3 and SMTP (first word).
IMAP_COMMANDS = frozenset({
    "APPEND", "AUTHENTICATE", "CAPABILITY", "CHECK", "CLOSE", "COMPRESS", "COPY", "CREATE",
    "DELETE", "ENABLE", "EXAMINE", "EXPUNGE", "FETCH", "GETQUOTAROOT", "ID", "IDLE", "LIST",
    "LOGIN", "LOGOUT", "LSUB", "MOVE", "NAMESPACE", "NOOP", "RENAME", "SEARCH", "SELECT",
    "STARTTLS", "STATUS", "STORE", "SUBSCRIBE", "UID", "UNSELECT", "UNSUBSCRIBE",
})
LINE_COMMANDS = frozenset({
    "APOP", "AUTH", "CAPA", "DATA", "DELE", "EHLO", "HELO", "LIST", "MAIL", "NOOP", "PASS",
    "QUIT", "RCPT", "RETR", "RSET", "STAT", "STARTTLS", "STLS", "TOP", "UIDL", "USER", "VRFY",
})
COMMANDS = IMAP_COMMANDS | LINE_COMMANDS
#: TLS record content types (first byte of a record, then 0x03 of the version).
TLS_RECORDS = {0x14: "TLS handshake", 0x15: "TLS alert", 0x16: "TLS handshake",
               0x17: "TLS data"}
_WORD = re.compile(rb"[A-Za-z]+")


@dataclass(frozen=True)
class Shape:
    """The line: round-trip time in seconds, rate in bits per second each way (None: uncapped)."""

    rtt: float = 0.0
    rate: float | None = None

    def __str__(self) -> str:
        rate = "uncapped" if self.rate is None else f"{self.rate / 1e6:g} Mbit/s"
        return f"{self.rtt * 1000:g} ms, {rate}"

    def seconds(self, size: int) -> float:
        """How long ``size`` bytes occupy the line."""
        return 0.0 if self.rate is None else 8 * size / self.rate


class Link:
    """One direction of the line, shared by every connection."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.free_at = 0.0

    def arrival(self, now: float, size: int) -> float:
        """When ``size`` bytes handed to the line at ``now`` reach the other side."""
        leave = max(now, self.free_at) + self.shape.seconds(size)
        self.free_at = leave
        return leave + self.shape.rtt / 2


def commands(data: bytes) -> list[str]:
    """Name what a chunk of client bytes holds: command names, a TLS record type, or ``data``.

    Only names in :data:`COMMANDS` are returned: arguments, SASL responses and
    literals are never echoed (see the module docstring). A chunk of nothing
    but a line end names nothing; an empty chunk (the client closed) is
    ``close``.
    """
    if not data:
        return ["close"]
    if not data.strip():
        return []  # a line end written on its own, after its command
    if len(data) >= 3 and data[0] in TLS_RECORDS and data[1] == 3:
        return [TLS_RECORDS[data[0]]]
    names: list[str] = []
    for line in data.split(b"\n"):
        words = line.split(None, 3)
        if not words:
            continue
        name = "data"
        if _name(words[0]) in LINE_COMMANDS:
            name = _name(words[0])
        elif len(words) > 1 and _name(words[1]) in IMAP_COMMANDS:
            name = _name(words[1])
            if name == "UID" and len(words) > 2 and _name(words[2]) in IMAP_COMMANDS:
                name += " " + _name(words[2])
        if not (name == "data" and names and names[-1] == "data"):
            names.append(name)
    return names


def _name(word: bytes) -> str:
    return word.decode("ascii").upper() if _WORD.fullmatch(word) else ""


@dataclass
class Connection:
    """One client connection as the proxy saw it (times in seconds since the proxy started)."""

    listener: str
    opened: float
    closed: float | None = None
    round_trips: int = 1
    up: int = 0
    down: int = 0
    #: What each round trip waited for, in order (see the module docstring).
    waits: list[str] = field(default_factory=lambda: ["TCP connect"])
    #: What the client sent since it last waited: what its next wait waits for.
    _burst: list[str] = field(default_factory=list, repr=False)
    _down_held: int = field(default=0, repr=False)
    _up_held: int = field(default=0, repr=False)
    _answered: bool = field(default=False, repr=False)

    def client_sent(self, data: bytes) -> None:
        """Account for a chunk the client sent (``b""``: it closed its side)."""
        if self._answered and self._down_held == 0:
            self.round_trips += 1
            self.waits.append(burst_label(self._burst))
            self._burst = []
        self._answered = False
        self._burst += commands(data)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the counts and the waits."""
        return {"listener": self.listener, "round_trips": self.round_trips, "up": self.up,
                "down": self.down, "seconds": None if self.closed is None
                else round(self.closed - self.opened, 4), "waits": list(self.waits)}


@dataclass
class Traffic:
    """What a set of connections moved, and how often their clients waited."""

    connections: list[Connection]

    @property
    def round_trips(self) -> int:
        """Round trips over every connection."""
        return sum(c.round_trips for c in self.connections)

    @property
    def slowest(self) -> int:
        """Round trips of the connection that waited most (the path of concurrent work)."""
        return max((c.round_trips for c in self.connections), default=0)

    @property
    def up(self) -> int:
        """Bytes the clients sent."""
        return sum(c.up for c in self.connections)

    @property
    def down(self) -> int:
        """Bytes the servers sent."""
        return sum(c.down for c in self.connections)


def _runs(items: Iterable[str]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for item in items:
        if out and out[-1][0] == item:
            out[-1] = (item, out[-1][1] + 1)
        else:
            out.append((item, 1))
    return out


def burst_label(names: list[str]) -> str:
    """One burst's commands: ``ENABLE + LIST``, ``60 STATUS`` (sixty pipelined in one wait).

    A burst that sent nothing (the client waited for the server's first
    words) is ``greeting``.
    """
    if not names:
        return "greeting"
    return " + ".join(name if n == 1 else f"{n} {name}" for name, n in _runs(names))


def collapse(waits: Iterable[str]) -> str:
    """Waits in order, repeats counted: ``LIST, STATUS ×60`` is sixty waits, one per STATUS."""
    return ", ".join(w if n == 1 else f"{w} ×{n}" for w, n in _runs(waits))


class LatencyProxy:
    """Listen on ``host``, one port per upstream, and carry bytes over a :class:`Shape` line.

    Parameters
    ----------
    upstreams:
        Name -> (host, port) of the real server behind each listening port.
    shape:
        Round-trip time and rate of the line.
    host:
        Where to listen (loopback).

    Use as a context manager; :attr:`ports` maps each name to its listening
    port, and :meth:`take` hands over (and forgets) the connections so far.
    The proxy runs its own event loop in a thread, so blocking clients and
    subprocesses can use it.
    """

    def __init__(self, upstreams: Mapping[str, tuple[str, int]], shape: Shape,
                 host: str = "127.0.0.1") -> None:
        self.upstreams = dict(upstreams)
        self.shape = shape
        self.host = host
        self.ports: dict[str, int] = {}
        self._up = Link(shape)
        self._down = Link(shape)
        self._connections: list[Connection] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy",
                                        daemon=True)
        self._t0 = 0.0

    def __enter__(self) -> LatencyProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the loop's thread and listen on every port."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    def stop(self) -> None:
        """Close every listener and connection, and end the loop's thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def take(self, settle: float = 10.0) -> Traffic:
        """The connections since the last call, once every one of them has closed.

        Waits up to ``settle`` seconds for open connections to finish (a
        client that has exited may still have bytes on the line); any still
        open then is handed over as it stands.
        """
        future = asyncio.run_coroutine_threadsafe(self._take(settle), self._loop)
        return future.result(timeout=settle + 5)

    # ------------------------------------------------------------------ the loop's side

    async def _listen(self) -> None:
        self._t0 = self._loop.time()
        for name, (host, port) in self.upstreams.items():
            server = await asyncio.start_server(
                functools.partial(self._serve, name, host, port), self.host, 0)
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _take(self, settle: float) -> Traffic:
        deadline = self._loop.time() + settle
        while any(c.closed is None for c in self._connections) and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        taken, self._connections = self._connections, []
        return Traffic(taken)

    def _now(self) -> float:
        return self._loop.time() - self._t0

    async def _serve(self, name: str, host: str, port: int,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(name, self._now())
        self._connections.append(conn)
        up: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        down: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        jobs = [asyncio.create_task(self._read(conn, reader, up, self._up, upward=True))]
        server_writer: asyncio.StreamWriter | None = None
        try:
            await asyncio.sleep(1.5 * self.shape.rtt)
            try:
                server_reader, server_writer = await asyncio.open_connection(host, port)
            except OSError:
                return
            jobs += [asyncio.create_task(self._deliver(conn, up, server_writer, upward=True)),
                     asyncio.create_task(self._read(conn, server_reader, down, self._down,
                                                    upward=False)),
                     asyncio.create_task(self._deliver(conn, down, writer, upward=False))]
            await asyncio.gather(*jobs)
        except (OSError, asyncio.IncompleteReadError):
            pass  # a side reset the connection: the other side is closed below
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            for w in (writer, server_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()
            conn.closed = self._now()
            self._tasks.discard(task)

    async def _read(self, conn: Connection, reader: asyncio.StreamReader,
                    queue: asyncio.Queue[tuple[float, bytes | None]], link: Link,
                    upward: bool) -> None:
        loop = self._loop
        while True:
            data = await reader.read(1 << 16)
            now = loop.time()
            if upward:
                conn.client_sent(data)
            if not data:
                queue.put_nowait((link.arrival(now, 0), None))
                return
            for start in range(0, len(data), PIECE):
                piece = data[start:start + PIECE]
                queue.put_nowait((link.arrival(now, len(piece)), piece))
            if upward:
                conn.up += len(data)
                conn._up_held += len(data)
            else:
                conn.down += len(data)
                conn._down_held += len(data)
            while (conn._up_held if upward else conn._down_held) > HOLD:
                await asyncio.sleep(0.005)

    async def _deliver(self, conn: Connection, queue: asyncio.Queue[tuple[float, bytes | None]],
                       writer: asyncio.StreamWriter, upward: bool) -> None:
        loop = self._loop
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            # Counted before yielding: the client may answer as soon as the kernel has the bytes.
            if upward:
                conn._up_held -= len(data)
            else:
                conn._down_held -= len(data)
                conn._answered = True
            await writer.drain()
