"""The lab's sidecar: ports that misbehave where no server setting reaches.

Three kinds of port cannot be a Dovecot setting, so a small process holds them:

``silent``
    Listens and lets the kernel complete every handshake, then never reads and
    never writes: a hung server or a proxy with nothing behind it. A client
    connects and waits forever for the greeting.
``blackhole``
    Listens with a backlog of zero and fills that backlog with one connection
    of its own that is never accepted; the kernel then drops every further
    SYN, so a client's ``connect()`` never completes - what a firewall that
    drops packets looks like, on loopback only.
``hostile``
    A hostile or broken IMAP server on the two IMAP ports (plain and implicit
    TLS), misbehaving in one of the ways of
    :data:`mailhat_nb.lab.hostile.MISBEHAVIOURS`.

Run as ``python -m mailhat_nb.lab.sidecar --silent PORT ... --blackhole PORT ...
[--hostile NAME PLAIN_PORT TLS_PORT --cert PEM --key KEY]``; it binds each port
on every lab address, writes its pid file and sleeps until SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from mailhat_nb.lab import hostile

ADDRESSES = ("127.0.0.1", "127.0.0.2")


def listen(address: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket; never accepted from, it is a silent port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(backlog)
    return sock


def blackhole(address: str, port: int) -> list[socket.socket]:
    """A port whose handshakes never complete: the sockets that must stay open."""
    server = listen(address, port, 0)
    return [server, socket.create_connection((address, port), timeout=2)]


def hold(silent: list[int], blackholed: list[int]) -> list[socket.socket]:
    """Bind the ports and return every socket that must stay open."""
    return ([listen(address, port) for port in silent for address in ADDRESSES]
            + [sock for port in blackholed for address in ADDRESSES
               for sock in blackhole(address, port)])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the sidecar process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--silent", type=int, nargs="*", default=[])
    parser.add_argument("--blackhole", type=int, nargs="*", default=[])
    parser.add_argument("--hostile", nargs=3, metavar=("NAME", "PLAIN_PORT", "TLS_PORT"))
    parser.add_argument("--cert", type=Path, help="the hostile server's certificate (PEM)")
    parser.add_argument("--key", type=Path, help="its private key")
    parser.add_argument("--pid-file", type=Path, required=True)
    args = parser.parse_args(argv)
    held: list[Any] = hold(args.silent, args.blackhole)
    if args.hostile:
        name, plain, tls = args.hostile
        held += hostile.serve(name, ADDRESSES, int(plain), int(tls), args.cert, args.key)
    return run_until_stopped(held, args.pid_file)


def run_until_stopped(held: list[Any], pid_file: Path) -> int:
    """Write ``pid_file``, sleep until SIGTERM, then close everything ``held``.

    The lab's processes write their pid file only once every port is bound:
    ``lab up`` waits for it.
    """
    pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    finally:
        for item in held:
            getattr(item, "server_close", item.close)()
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
