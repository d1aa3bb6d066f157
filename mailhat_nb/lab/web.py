"""The world's web side: a small HTTP(S) server, and endpoints that misbehave.

One process (``python -m mailhat_nb.lab.web --config <root>/web.json
--pid-file <root>/run/web.pid``) holds, on the world's addresses
(:mod:`mailhat_nb.lab.world`):

* **web hosts** on 80 and 443 (TLS with a lab certificate per address): files
  from ``<root>/www/<Host header>/<path>``; this is where ``cafe.example``
  publishes its autoconfig and where the proxy of ``moved.example`` answers;
* **silent** TCP ports: the handshake completes, nothing is ever read or sent
  (the autoconfig host of ``slow.example``: a source that hangs);
* **blackhole** TCP ports: the handshake never completes (993 on the proxy);
* **silent UDP** ports: a resolver that never answers (``dns_timeout``).

It writes its pid file once everything is bound and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mailhat_nb.lab.sidecar import blackhole, listen, run_until_stopped


class _Handler(BaseHTTPRequestHandler):
    """GET a file of ``<www>/<host>/<path>``; anything else is 404."""

    www: Path = Path()
    server_version = "mailhat-lab-web"

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0].lower().strip(".")
        path = unquote(urlsplit(self.path).path)
        if path.endswith("/"):
            path += "index.html"
        base = (self.www / host).resolve()
        target = (base / path.lstrip("/")).resolve()
        if not host or "/" in host or not target.is_relative_to(base) or not target.is_file():
            self.send_error(404)
            return
        body = target.read_bytes()
        kind = "text/xml" if target.suffix == ".xml" else "text/html"
        self.send_response(200)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _TLSServer(ThreadingHTTPServer):
    """An HTTPS server: each accepted connection is wrapped (the handshake in its thread)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(wrapped, client_address)


def serve(config: dict[str, Any]) -> list[Any]:
    """Bind everything in ``config``; return what must stay open (servers and sockets)."""
    _Handler.www = Path(config["www"])
    held: list[Any] = []
    for site in config["sites"]:
        plain = ThreadingHTTPServer((site["address"], 80), _Handler)
        plain.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(site["cert"], site["key"])
        secure = _TLSServer((site["address"], 443), context)
        for server in (plain, secure):
            threading.Thread(target=server.serve_forever, daemon=True).start()
            held.append(server)
    for address, port in config["silent"]:
        held.append(listen(address, port))
    for address, port in config["blackhole"]:
        held += blackhole(address, port)
    for address, port in config["silent_udp"]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, port))
        held.append(sock)
    return held


def main(argv: list[str] | None = None) -> int:
    """Entry point of the web process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--pid-file", type=Path, required=True)
    args = parser.parse_args(argv)
    return run_until_stopped(serve(json.loads(args.config.read_text())), args.pid_file)


if __name__ == "__main__":
    raise SystemExit(main())
