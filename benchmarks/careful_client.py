"""The careful client the latency benchmark measures the sync against.

It syncs headers in the fewest round trips Dovecot allows (the argument is
in ``bench_latency.py``'s docstring): AUTHENTICATE PLAIN with SASL-IR in the
greeting's round trip, ENABLE CONDSTORE and ``LIST ... RETURN (STATUS ...)``
in one write, then every changed folder's EXAMINE and FETCHes in one more.
It stores nothing: it only says what it fetched, so the benchmark can set the
sync's round trips and seconds beside a client that needs no fewer.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
from dataclasses import dataclass

from bench_sync import ITEMS


@dataclass(frozen=True)
class Status:
    messages: int
    uidnext: int
    uidvalidity: int
    modseq: int


_STATUS_LINE = re.compile(rb'^\* STATUS ("(?:[^"\\]|\\.)*"|\S+) \((.*)\)\s*$')
#: What the careful client relies on: before the login (the greeting), and after it.
NEEDS_GREETING = {b"SASL-IR", b"AUTH=PLAIN"}
NEEDS_LOGGED_IN = {b"LIST-STATUS", b"CONDSTORE", b"ENABLE"}


def _capabilities(line: bytes) -> set[bytes]:
    """The capabilities in a ``[CAPABILITY ...]`` response code (empty when none)."""
    match = re.search(rb"\[CAPABILITY ([^]]*)\]", line, re.IGNORECASE)
    return set(match.group(1).upper().split()) if match else set()


def _require(caps: set[bytes], needs: set[bytes], when: str) -> None:
    if needs - caps:
        raise RuntimeError(f"the server's {when} lacks {sorted(needs - caps)}: the careful "
                           "client's round trips assume them")


class Wire:
    """Just enough IMAP for the careful client: send lines, wait for a tag's completion."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.data = bytearray(b"\r\n")  # a line start before the first line

    def send(self, *lines: bytes) -> None:
        self.sock.sendall(b"".join(line + b"\r\n" for line in lines))

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.data += chunk

    def greeting(self) -> bytes:
        while b"\r\n" not in self.data[2:]:
            self._more()
        end = self.data.index(b"\r\n", 2)
        line = bytes(self.data[2:end])
        del self.data[2:end + 2]
        return line

    def until(self, tag: bytes) -> bytes:
        """Everything up to and including ``tag``'s completion, which must be OK."""
        mark = b"\r\n" + tag + b" "
        scanned = 0
        while True:
            at = self.data.find(mark, max(0, scanned - len(mark)))
            if at >= 0:
                end = self.data.find(b"\r\n", at + 2)
                if end >= 0:
                    done = bytes(self.data[at + 2:end])
                    got = bytes(self.data[2:end + 2])
                    del self.data[2:end + 2]
                    if not done[len(tag) + 1:].startswith(b"OK"):
                        raise RuntimeError(f"the server answered {done[:200]!r}")
                    return got
                scanned = at  # its line is not complete yet
            else:
                scanned = len(self.data)
            self._more()


def quote(name: str) -> bytes:
    return b'"' + name.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _statuses(answer: bytes) -> dict[str, Status]:
    out = {}
    for line in answer.split(b"\r\n"):
        match = _STATUS_LINE.match(line)
        if match:
            raw = match.group(1)
            name = raw[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\") \
                if raw.startswith(b'"') else raw
            words = match.group(2).split()
            got = {k.decode().upper(): int(v) for k, v in zip(words[::2], words[1::2],
                                                               strict=True)}
            out[name.decode()] = Status(got["MESSAGES"], got["UIDNEXT"], got["UIDVALIDITY"],
                                        got["HIGHESTMODSEQ"])
    return out


def careful_sync(port: int, ca_file: str, user: str, password: str,
                 known: dict[str, Status] | None) -> tuple[dict[str, Status], int]:
    """Sync headers as a careful client would (see the module docstring); nothing is stored.

    Parameters
    ----------
    known:
        Each folder's state after the previous careful sync; None for a first sync.

    Returns
    -------
    state, fetched
        The folders' state now, and how many messages' headers came.
    """
    ctx = ssl.create_default_context(cafile=ca_file)
    login = f"{user}@localhost".encode()
    with socket.create_connection(("localhost", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        wire = Wire(sock)
        _require(_capabilities(wire.greeting()), NEEDS_GREETING, "greeting")
        wire.send(b"a AUTHENTICATE PLAIN "
                  + base64.b64encode(b"\0" + login + b"\0" + password.encode()))
        _require(_capabilities(wire.until(b"a")), NEEDS_LOGGED_IN, "login answer")
        wire.send(b"b ENABLE CONDSTORE",
                  b'c LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))')
        state = _statuses(wire.until(b"c"))
        commands: list[bytes] = []
        for name, now in state.items():
            old = None if known is None else known.get(name)
            if old == now:
                continue
            folder = quote(name)
            if old is None or old.uidvalidity != now.uidvalidity:
                if now.messages:
                    commands += [b"EXAMINE " + folder, b"UID FETCH 1:* " + ITEMS.encode()]
                continue
            commands.append(b"EXAMINE " + folder + b" (CONDSTORE)")
            if old.uidnext > 1:
                commands.append(b"UID FETCH 1:%d (FLAGS) (CHANGEDSINCE %d)"
                                % (old.uidnext - 1, old.modseq))
            if now.uidnext > old.uidnext:
                commands.append(b"UID FETCH %d:* " % old.uidnext + ITEMS.encode())
        fetched = 0
        if commands:
            wire.send(*(b"d%d " % i + c for i, c in enumerate(commands)))
            fetched = wire.until(b"d%d" % (len(commands) - 1)).count(b" BODY[HEADER.FIELDS (")
        wire.send(b"z LOGOUT")  # not waited for
    return state, fetched
