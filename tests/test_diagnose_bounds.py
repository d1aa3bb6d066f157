"""The doctor against servers that misbehave: every read is bounded.

A server nobody vouches for may send an endless line, announce a literal of
gigabytes (and stream it), announce one and never send it, or send garbage.
The doctor must stop within its timeout, holding little memory, and say the
server sent something no mail server sends (``server_misbehaved``).

Two levels: the wire against a real socket pair (a thread plays the server),
and the whole ``mailhat diagnose`` against the lab's hostile scenarios (the
sidecar plays the server), measured from outside: its peak memory
(``wait4``) and its wall time.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from mailhat_nb.diagnose.imap import ImapSession
from mailhat_nb.diagnose.transcript import Transcript
from mailhat_nb.diagnose.wire import MAX_LINE, Channel, ReadTimeout
from mailhat_nb.errors import ServerMisbehaved
from mailhat_nb.lab import SCENARIOS, Lab, LabInfo
from mailhat_nb.lab.hostile import MISBEHAVIOURS

#: Peak memory a whole `mailhat diagnose` run may reach against a hostile server.
MEMORY_LIMIT = 100 * 1024 * 1024
TIMEOUT = 2.0


#: Start a server thread playing its part on a socket; get the doctor's channel to it.
Serve = Callable[..., Channel]


@pytest.fixture
def server() -> Iterator[Serve]:
    """A channel whose other end a thread drives with ``play`` (real sockets, no mocks)."""
    ends: list[socket.socket] = []

    def start(play: Callable[[socket.socket], None], timeout: float = TIMEOUT) -> Channel:
        ours, theirs = socket.socketpair()
        ends.extend((ours, theirs))

        def run() -> None:
            with contextlib.suppress(OSError):  # the doctor hung up: what it should do
                play(theirs)

        threading.Thread(target=run, daemon=True).start()
        return Channel(ours, Transcript(), timeout)

    yield start
    for end in ends:
        end.close()


def stream(sock: socket.socket, head: bytes, chunk: bytes, total: int = 300 * 2**20) -> None:
    sock.sendall(head)
    sent = 0
    while sent < total:
        sock.sendall(chunk)
        sent += len(chunk)


def test_an_endless_line_is_cut_off_at_the_line_limit(server: Serve) -> None:
    chan = server(lambda s: stream(s, b"* OK ", b"x" * 65536))
    start = time.monotonic()
    with pytest.raises(ServerMisbehaved, match="line of more than 64 KB"):
        chan.read_line()
    assert time.monotonic() - start < 1.0
    assert len(chan.pending()) <= MAX_LINE + 65536  # the line limit and one read


def test_a_literal_before_the_login_is_refused_unread(server: Serve) -> None:
    chan = server(lambda s: stream(s, b"* OK ready\r\n* CAPABILITY {4294967296}\r\n",
                                   b"A" * 65536))
    session = ImapSession(chan)
    session.greeting(TIMEOUT)
    tracemalloc.start()
    try:
        with pytest.raises(ServerMisbehaved, match="4,294,967,296-byte literal before any "
                                                   "login worked"):
            session.capabilities()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20


def test_a_literal_never_sent_ends_within_the_timeout(server: Serve) -> None:
    def play(s: socket.socket) -> None:
        s.sendall(b"* OK ready\r\n")
        s.recv(100)
        s.sendall(b"* LIST () \".\" {10}\r\n")
        s.recv(1)  # and nothing more

    chan = server(play, timeout=0.5)
    session = ImapSession(chan)
    session.greeting(0.5)
    session.literal_limit = 1024  # as after a login
    start = time.monotonic()
    with pytest.raises(ServerMisbehaved, match="10-byte literal and did not send it"):
        session.command('LIST "" "*"')
    assert time.monotonic() - start < 1.5


def test_a_reply_that_never_ends_is_bounded_as_a_whole(server: Serve) -> None:
    def play(s: socket.socket) -> None:
        s.sendall(b"* OK ready\r\n")
        s.recv(100)
        while True:  # one plausible untagged line at a time, never the tagged one
            s.sendall(b"* 1 EXISTS\r\n")
            time.sleep(0.05)

    chan = server(play, timeout=0.5)
    session = ImapSession(chan)
    session.greeting(0.5)
    start = time.monotonic()
    with pytest.raises(ReadTimeout):
        session.command("NOOP")
    assert time.monotonic() - start < 1.5


def test_garbage_is_not_read_for_ever(server: Serve) -> None:
    chan = server(lambda s: stream(s, b"* OK ready\r\n", os.urandom(65536)))
    session = ImapSession(chan)
    session.greeting(TIMEOUT)
    start = time.monotonic()
    with pytest.raises(ServerMisbehaved):
        session.capabilities()
    assert time.monotonic() - start < 1.0
    assert len(chan.transcript.lines()) <= Transcript.MAX_LINES + 1


def test_too_much_on_one_connection_is_cut_off(server: Serve) -> None:
    chan = server(lambda s: stream(s, b"", b"* 1 EXISTS\r\n" * 4096))

    def read_all() -> None:
        while True:
            chan.read_line(record=False)

    with pytest.raises(ServerMisbehaved, match="more than"):
        read_all()


def test_a_transcript_keeps_its_first_lines_and_counts_the_rest() -> None:
    t = Transcript()
    for i in range(Transcript.MAX_LINES + 500):
        t.server(f"* {i} EXISTS")
    lines = t.lines()
    assert len(lines) == Transcript.MAX_LINES + 1
    assert lines[-1].text.startswith("500 more lines not kept")


# ------------------------------------------------------------------ the lab's hostile servers

HOSTILE = [name for name, s in SCENARIOS.items() if s.hostile]


def test_every_misbehaviour_has_its_scenario() -> None:
    assert sorted(SCENARIOS[name].hostile for name in HOSTILE) == sorted(MISBEHAVIOURS)
    assert all(name == f"hostile-{SCENARIOS[name].hostile}" for name in HOSTILE)


#: Runs its arguments and prints their peak RSS (KiB) on stderr. A small process of its
#: own: Linux counts the memory of the process that spawned a child in the child's peak
#: RSS, so measured straight from pytest (hundreds of MB) every run would look that big.
LAUNCHER = """import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_cli(info: LabInfo, password: str) -> tuple[int, dict[str, object], float, int]:
    """`mailhat diagnose --json` in a process of its own: status, JSON, seconds, peak RSS bytes."""
    env = dict(os.environ, MAILHAT_TEST_BOUNDS_PW=password)
    argv = [sys.executable, "-m", "mailhat_nb.cli", "diagnose", "--email", info.email("alice"),
            "--server", info.server, "--presets", info.presets, "--ca-file", info.ca_file,
            "--timeout", str(TIMEOUT), "--password-env", "MAILHAT_TEST_BOUNDS_PW", "--json"]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *argv], capture_output=True,
                          env=env, timeout=60, check=False)
    elapsed = time.monotonic() - start
    peak_kib = int(proc.stderr.decode().split()[-1])
    return proc.returncode, json.loads(proc.stdout), elapsed, peak_kib * 1024


@pytest.mark.lab
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_server_costs_one_timeout_and_little_memory(
        name: str, lab: Lab, lab_password: str, scenario: Callable[[str], LabInfo]) -> None:
    info = scenario(name)
    status, data, elapsed, peak = run_cli(info, lab_password)
    assert status == 1
    results = {r["preset"]: r for r in data["results"]}  # type: ignore[attr-defined]
    for preset in ("hostgator-imap-ssl", "imap-starttls-143"):
        assert results[preset]["code"] == "server_misbehaved", results[preset]
    verdict = data["verdict"]
    assert isinstance(verdict, dict)
    assert verdict["code"] == "server_misbehaved"
    assert "report it to the host" in verdict["remedy"]
    assert peak < MEMORY_LIMIT, f"peak RSS {peak / 2**20:.0f} MB"
    # the sweep ends within one timeout (and start-up), whatever the server does
    assert elapsed < TIMEOUT + 4.0, elapsed
