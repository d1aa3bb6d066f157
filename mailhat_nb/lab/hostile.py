"""A hostile or broken IMAP server, for the lab's sidecar: what no mail server sends.

The doctor and the sync connect to servers nobody vouches for. This server
greets and answers ``CAPABILITY`` and ``STARTTLS`` like any IMAP server, then
misbehaves in one of the ways of :data:`MISBEHAVIOURS`, so that tests can show
a client stops within its timeout and holds little memory, whatever it is
sent. It serves plain IMAP (with STARTTLS) and implicit TLS with the lab's
certificate. Before TLS it lists ``LOGINDISABLED``, as a server refusing
clear-text passwords does: a client that honours it meets the misbehaviour
over TLS only. Its greeting names the misbehaviour, so the lab (and a test)
can check on the wire which one is on.

The lab's scenarios ``hostile-<misbehaviour>`` (:mod:`mailhat_nb.lab.scenarios`)
put it on the IMAP ports; any client of the lab can be pointed at them.
"""

from __future__ import annotations

import contextlib
import random
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

#: What the server does, by name. "At login" is its answer to ``LOGIN`` or
#: ``AUTHENTICATE``, where a client has just sent the password and waits for
#: a tagged reply: no mail server sends a literal there.
MISBEHAVIOURS: dict[str, str] = {
    "endless-line": "at login, a line that never ends (bytes with no line break, streamed)",
    "huge-literal": "at login, a 4 GB literal announced, and 300 MB of it streamed",
    "literal-never-sent": "at login, a 1000-byte literal announced and never sent",
    "garbage-after-greeting": "right after the greeting, a stream of random bytes (the same "
                              "on every connection)",
}
#: Most the server streams to one connection (what made a client grow to 918 MB).
STREAM_LIMIT = 300 * 1024 * 1024
#: How long a connection is held at most, for a client that stopped reading.
HOLD_SECONDS = 120.0
_CHUNK = 64 * 1024


class _Handler(socketserver.BaseRequestHandler):
    """One connection: greet, answer like a server, then misbehave."""

    server: HostileServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(HOLD_SECONDS)
        with contextlib.suppress(OSError):  # the client hung up: what it should do
            self._talk(conn, self.server.tls)

    def _talk(self, conn: socket.socket, tls: bool) -> None:
        behaviour, context = self.server.misbehaviour, self.server.context
        sock = context.wrap_socket(conn, server_side=True) if tls else conn
        sock.sendall(f"* OK [CAPABILITY {_caps(tls)}] mailhat lab sidecar: {behaviour}\r\n"
                     .encode())
        if behaviour == "garbage-after-greeting":
            # The same bytes on every connection: what a client makes of them repeats.
            noise = random.Random(0)  # noqa: S311 - test data, not security
            _stream(sock, b"", lambda: noise.randbytes(_CHUNK))
            return
        reader = sock.makefile("rb")
        while line := reader.readline(_CHUNK):
            tag, _, rest = line.decode("ascii", "replace").strip().partition(" ")
            command = rest.split(" ", 1)[0].upper()
            if command == "CAPABILITY":
                sock.sendall(f"* CAPABILITY {_caps(tls)}\r\n{tag} OK done\r\n".encode())
            elif command == "STARTTLS" and not tls:
                sock.sendall(f"{tag} OK Begin TLS negotiation now.\r\n".encode())
                sock, tls = context.wrap_socket(conn, server_side=True), True
                reader = sock.makefile("rb")
            elif command in ("LOGIN", "AUTHENTICATE"):
                _misbehave(sock, behaviour)
                return
            elif command == "LOGOUT":
                sock.sendall(f"* BYE bye\r\n{tag} OK done\r\n".encode())
                return
            else:
                sock.sendall(f"{tag} BAD not here\r\n".encode())


def _caps(tls: bool) -> str:
    return "IMAP4rev1 SASL-IR AUTH=PLAIN" if tls else "IMAP4rev1 STARTTLS LOGINDISABLED"


def _misbehave(sock: socket.socket, behaviour: str) -> None:
    if behaviour == "endless-line":
        _stream(sock, b"* OK ", lambda: b"x" * _CHUNK)
    elif behaviour == "huge-literal":
        _stream(sock, b"* CAPABILITY {4294967296}\r\n", lambda: b"A" * _CHUNK)
    elif behaviour == "literal-never-sent":
        sock.sendall(b"* CAPABILITY {1000}\r\n")
        sock.recv(1)  # hold the connection until the client gives up


def _stream(sock: socket.socket, head: bytes, chunk: Callable[[], bytes]) -> None:
    """Send ``head``, then chunks up to :data:`STREAM_LIMIT`, then hold without closing."""
    sock.sendall(head)
    for _ in range(STREAM_LIMIT // _CHUNK):
        sock.sendall(chunk())
    sock.recv(1)


class HostileServer(socketserver.ThreadingTCPServer):
    """The server on one address and port (``tls``: implicit TLS), a thread per client."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], misbehaviour: str, context: ssl.SSLContext,
                 tls: bool) -> None:
        if misbehaviour not in MISBEHAVIOURS:
            raise ValueError(f"unknown misbehaviour {misbehaviour!r}; known: "
                             + ", ".join(MISBEHAVIOURS))
        self.misbehaviour, self.context, self.tls = misbehaviour, context, tls
        super().__init__(address, _Handler)


def serve(misbehaviour: str, addresses: tuple[str, ...], plain: int, tls: int, cert: Path,
          key: Path) -> list[HostileServer]:
    """Start the server on the plain and TLS ports of every address; return the servers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers = [HostileServer((address, port), misbehaviour, context, is_tls)
               for address in addresses for port, is_tls in ((plain, False), (tls, True))]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers
