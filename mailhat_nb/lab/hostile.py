"""Hostile IMAP servers for the lab's sidecar: what no mail server sends, on demand.

The agent connects to servers nobody vouches for. A broken or hostile one
can stream without end; these stand in for it, one behaviour per scenario
(:attr:`mailhat_nb.lab.scenarios.Scenario.hostile`), on the IMAP ports the
scenario takes from Dovecot, with the lab's certificate on the TLS one so a
client gets as far as it would with a real server. Each greets, then:

``endless-line``
    greets without capabilities, so a client asks CAPABILITY; answers with a
    line that never ends (1 GB of it, as fast as the client reads);
``huge-literal``
    greets with ``SASL-IR``, so a client logs in at once; answers the login
    with a literal of 4 GB announced, and streams 300 MB of it;
``literal-never-sent``
    the same, with a literal of 100 bytes announced and never sent;
``garbage``
    greets without capabilities, then sends bytes that are no IMAP at all.

A client is sent nothing it did not provoke before the greeting, and nothing
of what it sends is kept or logged (a password may be in it).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from pathlib import Path

#: The behaviours, by name (see the module docstring).
BEHAVIOURS = ("endless-line", "huge-literal", "literal-never-sent", "garbage")

_GREETING = b"* OK hostile lab server ready\r\n"
_GREETING_SASL_IR = b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hostile lab server ready\r\n"
_CHUNK = 64 * 1024


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    behaviour = ""
    tls: ssl.SSLContext | None = None


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        with contextlib.suppress(OSError):  # the client hung up: it is done with us
            if self.server.tls is not None:
                sock = self.server.tls.wrap_socket(sock, server_side=True)
            behave(self.server.behaviour, sock)


def _command(sock: socket.socket) -> None:
    """Wait for the client's first command line (read and dropped: it may hold a password)."""
    seen = b""
    while b"\n" not in seen:
        data = sock.recv(4096)
        if not data:
            raise ConnectionResetError
        seen = (seen + data)[-4096:]


def _stream(sock: socket.socket, total: int) -> None:
    block = b"x" * _CHUNK
    for _ in range(total // _CHUNK):
        sock.sendall(block)


def behave(behaviour: str, sock: socket.socket) -> None:
    """Greet on ``sock``, then misbehave as ``behaviour`` says."""
    if behaviour in ("endless-line", "garbage"):
        sock.sendall(_GREETING)
    else:
        sock.sendall(_GREETING_SASL_IR)
    if behaviour == "garbage":
        sock.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1garbage\xff\xfe\r\n"
                     b"HTTP/1.1 400 Bad Request\r\n\r\n")
    else:
        _command(sock)
        if behaviour == "endless-line":
            sock.sendall(b"* CAPABILITY IMAP4rev1 ")
            _stream(sock, 1 << 30)
        elif behaviour == "huge-literal":
            sock.sendall(b"* CAPABILITY {4294967296}\r\n")
            _stream(sock, 300 << 20)
        else:
            sock.sendall(b"* CAPABILITY {100}\r\n")
    while sock.recv(4096):  # hold the connection until the client gives up
        pass


def serve(behaviour: str, address: str, port: int,
          tls: tuple[Path, Path] | None = None) -> socketserver.BaseServer:
    """A hostile server on ``address:port`` (TLS with ``(cert, key)``), serving in a thread."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
    server = _Server((address, port), _Handler)
    server.behaviour = behaviour
    if tls is not None:
        server.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.tls.load_cert_chain(str(tls[0]), str(tls[1]))
    threading.Thread(target=server.serve_forever, daemon=True,
                     name=f"hostile-{behaviour}-{port}").start()
    return server
