"""Latency benchmark: the sync and the doctor at a customer's distance, against their floors.

Usage::

    .venv/bin/python benchmarks/bench_latency.py [--rtt 0 50 150] [--rate 20 50]
        [--cases first resync60 resync14 new10 diagnose] [--count 20000] [--seed 1]
        [--no-breakdown] [--keep-lab] [--json-out FILE] [--readme]

Uses the lab in ``$MAILHAT_LAB_DIR`` (started there if it is not running),
else starts a private one in a temporary directory and stops it at the end.
It prepares three mailboxes, kept between runs in a reused lab:

* ``bench@localhost``: ``--count`` generated messages in the generator's 5
  folders (``mailhat lab generate``);
* ``bob@localhost``: 60 folders as a client lists them (the lab's INBOX,
  Sent, Drafts, Trash and spam, and 55 more), three messages each, made
  with IMAP CREATE and APPEND;
* ``alice@localhost``: the lab's demo mailbox as it is, 14 folders.

It first-syncs bob's and alice's stores on loopback, then measures, through
:class:`latency_proxy.LatencyProxy` (RTT/2 each way, the rate each way, TLS
untouched, every port the presets name behind it), at each RTT and rate:

==========  ================================================================
first       first sync of bench's mailbox into an empty store
resync60    re-sync of bob, nothing changed (60 folders)
resync14    re-sync of alice, nothing changed (14 folders)
new10       re-sync of bob after 10 new messages in one of its 60 folders
            (APPENDed to the lab directly, not through the proxy)
diagnose    ``mailhat diagnose`` of the lab's 11 presets
==========  ================================================================

The product runs as a user runs it: ``mailhat sync|diagnose ... --json`` in
a fresh interpreter (``mailhat_nb.cli.main``), the password in the
environment variable named by ``--password-env``, never in argv. ``time``
runs from ``cli.main``'s call to its return, with the package imported
before the clock starts: the share the network decides, compared with the
floor. ``wall`` is the whole process, interpreter and imports included.

Round trips and bytes are the proxy's (see its docstring for the
definition): for a sync, over its connections; for ``diagnose``, whose
presets run at once, the connection that waited most (the sum over all of
them is in the JSON).

Floors
------
``floor = max(bytes up, bytes down) / rate + (round trips a careful client
needs) x RTT``, with the bytes this run moved (a careful client moves the
same headers). A careful client, against a server that offers what Dovecot
and cPanel's Dovecot offer (``SASL-IR``, ``LIST-STATUS``, ``CONDSTORE``,
``ENABLE``), waits for:

1. the TCP connect;
2. the TLS 1.3 handshake (one round trip: the client's Finished leaves
   with whatever it sends next);
3. the greeting: its capabilities decide how to log in (``SASL-IR``,
   ``AUTH=PLAIN``), and it may say ``BYE`` or ``PREAUTH``;
4. ``AUTHENTICATE PLAIN`` with an initial response (RFC 4959): one round
   trip for the login, whose answer carries the capabilities after login
   (``LIST-STATUS``, ``CONDSTORE``: Dovecot lists them there, not in the
   greeting). Commands after it are not pipelined: a failed login may
   answer with a continuation that would eat them;
5. ``ENABLE CONDSTORE`` and ``LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT
   UIDVALIDITY HIGHESTMODSEQ))`` (RFC 5819) in one write: every folder's
   state at once, whatever the number of folders (a server without
   ``LIST-STATUS`` gets ``LIST`` and its ``STATUS`` commands pipelined
   behind, in the same write);
6. only when a folder changed: for every changed folder, in one write,
   ``EXAMINE f (CONDSTORE)``, ``UID FETCH 1:n (FLAGS) (CHANGEDSINCE m)``
   and ``UID FETCH uidnext:*`` of the headers; on a first sync ``EXAMINE f``
   and ``UID FETCH 1:*`` for every folder that ``LIST-STATUS`` says is not
   empty. The UIDVALIDITY from ``LIST-STATUS`` tells whether a stored UID
   still means the same message before the answers are used.

``LOGOUT`` is sent and not waited for. So: an unchanged re-sync 5, whatever
the number of folders; new messages 6; a first sync 6 (plus bytes / rate).

The doctor probes its presets at once, so its floor is its slowest preset's
careful path. A STARTTLS preset is the longest: IMAP on 143 waits for TCP,
the greeting, ``STARTTLS``, the TLS handshake, ``CAPABILITY`` (what the
server said before TLS no longer counts, RFC 3501 6.2.1), the login
(``SASL-IR``), and ``LIST``, ``NAMESPACE`` and ``EXAMINE INBOX`` (what the
doctor reports of the mailbox) in one write: 7.
SMTP on 587/25/26 waits for TCP, the greeting, ``EHLO``, ``STARTTLS``, TLS,
``EHLO`` again and ``AUTH PLAIN`` with an initial response: 7 too. The
login gate (one login at a time until one succeeds) costs a careful doctor
nothing here: the implicit-TLS IMAP preset's login is answered on its 4th
round trip, before any STARTTLS preset reaches its login on the 6th.
``diagnose`` floor: 7.

A reference careful client (``careful_client.careful_sync``) runs each sync case too,
over the same proxy: its round trips confirm the counts above, and its time
shows the floor is there to be reached on this machine.

Where the round trips go
------------------------
Inside TLS the proxy sees only record types. Unless ``--no-breakdown``, the
sync cases run once more over plain IMAP on the 143 stand-in
(``--security none``: the lab on loopback, where Dovecot takes clear-text
logins) at the largest RTT, where the proxy names the commands each round
trip waited for (command names only: never an argument). The same client
code runs over TLS, which adds exactly its handshake; the doctor's plain
presets are named from the main run.
"""

from __future__ import annotations

import argparse
import email.utils
import imaplib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_sync import ensure_lab, ensure_mailbox
from careful_client import Status, careful_sync, quote
from latency_proxy import LatencyProxy, Shape, Traffic, collapse

from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.scenarios import STANDS_FOR

PASSWORD_ENV = "BENCH_LATENCY_PASSWORD"  # noqa: S105 - a variable's name, not a password
README = Path(__file__).resolve().parents[1] / "README.md"
MARK_START, MARK_END = "<!-- bench_latency -->", "<!-- /bench_latency -->"
#: bob's folders in all (the lab's own INBOX, Sent, Drafts, Trash, spam, then projects),
#: and where the 10 new messages go: a folder in the middle of the list.
BOB_FOLDERS = 60
NEW_IN = "INBOX.project-30"
NEW_COUNT = 10


@dataclass(frozen=True)
class Case:
    """A measured job: which account, and the round trips a careful client needs for it."""

    name: str
    title: str
    user: str
    careful: int


CASES = {c.name: c for c in (
    Case("first", "first sync, {count:,} messages", "bench", 6),
    Case("resync60", "re-sync, nothing changed, {folders} folders", "bob", 5),
    Case("resync14", "re-sync, nothing changed, {folders} folders", "alice", 5),
    Case("new10", f"re-sync, {NEW_COUNT} new messages in one of {{folders}} folders", "bob", 6),
    Case("diagnose", "diagnose, 11 presets", "alice", 7),
)}


# --------------------------------------------------------------------------- the product


_CHILD = r"""
import json, sys, time
import mailhat_nb.cli as cli
import mailhat_nb.diagnose.doctor, mailhat_nb.sync.engine  # what the commands import on first use
t0 = time.perf_counter()
code = cli.main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": time.perf_counter() - t0, "code": code}, fh)
"""


def run_mailhat(args: list[str], password: str) -> dict[str, Any]:
    """``mailhat ARGS --password-env VAR --json`` in a fresh interpreter: times and its JSON."""
    with tempfile.NamedTemporaryFile(suffix=".json") as timing:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, timing.name, *args, "--password-env", PASSWORD_ENV,
             "--json"], env={**os.environ, PASSWORD_ENV: password},
            capture_output=True, text=True, timeout=900, check=False)
        wall = time.perf_counter() - start
        timed = json.loads(Path(timing.name).read_text() or "{}")
    if proc.returncode != 0:
        raise RuntimeError(f"mailhat {args[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {"seconds": timed["seconds"], "wall": wall, "out": json.loads(proc.stdout)}


def sync_args(info: LabInfo, user: str, port: int, store: Path,
              security: str = "ssl") -> list[str]:
    return ["sync", "--email", f"{user}@localhost", "--server", "localhost", "--port", str(port),
            "--security", security, "--ca-file", info.ca_file, "--store", str(store)]


def diagnose_args(info: LabInfo, presets: Path) -> list[str]:
    return ["diagnose", "--email", "alice@localhost", "--server", "localhost",
            "--presets", str(presets), "--ca-file", info.ca_file]


def proxied_presets(info: LabInfo, ports: dict[str, int], directory: Path) -> Path:
    """The lab presets file with every port replaced by the proxy's port in front of it."""
    service = {port: name for name, port in info.ports.items()}

    def swap(match: re.Match[str]) -> str:
        return f"port = {ports[service[int(match.group(1))]]}"

    path = directory / "presets-proxied.toml"
    path.write_text(re.sub(r"(?m)^port = (\d+)$", swap, Path(info.presets).read_text()))
    return path


# --------------------------------------------------------------------------- the lab


def lab_imap(lab: Lab, info: LabInfo, user: str) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context(cafile=info.ca_file)
    conn = imaplib.IMAP4_SSL("localhost", info.ports["imaps"], ssl_context=ctx)
    conn.login(f"{user}@localhost", lab.password(user))
    return conn


#: A LIST answer line up to the name: ``(\\HasNoChildren) "." ``.
_LIST_NAME = re.compile(rb'^\([^)]*\) (?:NIL|"(?:[^"\\]|\\.)*") ')


def folder_counts(lab: Lab, user: str) -> dict[str, int]:
    out = lab.doveadm("mailbox", "status", "-u", f"{user}@localhost", "messages",
                      "INBOX", "INBOX.*")
    counts = {}
    for line in out.splitlines():
        name, _, value = line.rpartition(" messages=")
        counts[name] = int(value)
    return counts


def append(conn: imaplib.IMAP4_SSL, user: str, folder: str, count: int, what: str) -> None:
    for i in range(count):
        msg = (f"From: Pat Sender <pat{i}@example.org>\r\nTo: {user}@localhost\r\n"
               f"Subject: {what} {i}\r\nMessage-ID: <latency-{time.time_ns()}-{i}@example.org>\r\n"
               f"Date: {email.utils.formatdate()}\r\n\r\nhello\r\n")
        typ, data = conn.append(quote(folder).decode(), "", imaplib.Time2Internaldate(time.time()),
                                msg.encode())
        assert typ == "OK", data


def ensure_bob(lab: Lab, info: LabInfo) -> None:
    """bob's 60 folders, three messages in each (made once, kept in a reused lab).

    Folders are counted as a client sees them (IMAP LIST): Dovecot lists its
    special-use folders (Sent, Drafts, Trash, spam) before it makes them.
    """
    conn = lab_imap(lab, info, "bob")
    try:
        typ, listed = conn.list()
        assert typ == "OK", listed
        names = [_LIST_NAME.sub(b"", line).strip(b'"').decode() for line in listed
                 if isinstance(line, bytes)]
        projects = (f"INBOX.project-{i:02d}" for i in range(1, 1000))
        create = [f for f in projects if f not in names][:max(0, BOB_FOLDERS - len(names))]
        if NEW_IN not in names and NEW_IN not in create:
            raise RuntimeError(f"bob@localhost has {len(names)} folders, none named {NEW_IN}")
        for folder in create:
            typ, data = conn.create(quote(folder).decode())
            assert typ == "OK", data
        counts = folder_counts(lab, "bob")
        for folder in [*names, *create]:
            if not counts.get(folder):
                append(conn, "bob", folder, 3, f"note in {folder}")
    finally:
        conn.logout()


def add_new_messages(lab: Lab, info: LabInfo) -> None:
    conn = lab_imap(lab, info, "bob")
    try:
        append(conn, "bob", NEW_IN, NEW_COUNT, "new message")
    finally:
        conn.logout()


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    case: str
    title: str
    rtt_ms: float
    rate_mbit: float
    seconds: float
    wall: float
    round_trips: int
    round_trips_total: int
    connections: int
    up: int
    down: int
    careful_round_trips: int
    floor: float
    ratio: float
    careful: dict[str, Any] | None
    folders: int
    #: Each connection's round trips, bytes and waits (the proxy's view).
    per_connection: list[dict[str, Any]]


class Bench:
    """The lab, the stores and the careful client's state, shared by every measurement."""

    def __init__(self, lab: Lab, info: LabInfo, work: Path, count: int) -> None:
        self.lab, self.info, self.work, self.count = lab, info, work, count
        self.known: dict[str, dict[str, Status]] = {}
        self.upstreams = {name: ("127.0.0.1", info.ports[name]) for name in STANDS_FOR}

    def title(self, case: Case) -> str:
        return case.title.format(count=self.count, folders=len(self.known.get(case.user, ())))

    def store(self, user: str) -> Path:
        return self.work / f"store-{user}"

    def prepare(self, users: set[str]) -> None:
        """First syncs on loopback: the stores the re-syncs start from, the careful state."""
        port = self.info.ports["imaps"]
        for user in sorted(users):
            run_mailhat(sync_args(self.info, user, port, self.store(user)),
                        self.lab.password(user))
            self.known[user], _ = careful_sync(port, self.info.ca_file, user,
                                               self.lab.password(user), None)
            print(f"  {user}@localhost: {len(self.known[user])} folders, "
                  f"{sum(s.messages for s in self.known[user].values())} messages, first-synced "
                  "on loopback", flush=True)

    def product(self, case: Case, proxy: LatencyProxy, security: str = "ssl",
                ) -> tuple[dict[str, Any], Traffic]:
        """Run the product for ``case`` through ``proxy``; its result and what crossed."""
        password = self.lab.password(case.user)
        port = proxy.ports["imaps" if security == "ssl" else "imap"]
        if case.name == "diagnose":
            presets = proxied_presets(self.info, proxy.ports, self.work)
            result = run_mailhat(diagnose_args(self.info, presets), password)
            codes = {r["preset"]: r["code"] for r in result["out"]["results"]}
            assert codes["hostgator-imap-ssl"] == "ok", codes
            return result, proxy.take()
        if case.name == "new10":
            add_new_messages(self.lab, self.info)
        store = self.store(case.user) if case.name != "first" else \
            Path(tempfile.mkdtemp(prefix="first-", dir=self.work))
        try:
            result = run_mailhat(sync_args(self.info, case.user, port, store, security), password)
        finally:
            if case.name == "first":
                shutil.rmtree(store, ignore_errors=True)
        out = result["out"]
        expected_new = {"first": self.count, "new10": NEW_COUNT}.get(case.name, 0)
        assert out["new"] == expected_new, out
        assert not out["failed"], out
        return result, proxy.take()

    def careful(self, case: Case, proxy: LatencyProxy) -> dict[str, Any] | None:
        if case.name == "diagnose":
            return None
        known = None if case.name == "first" else self.known[case.user]
        start = time.perf_counter()
        state, fetched = careful_sync(proxy.ports["imaps"], self.info.ca_file, case.user,
                                      self.lab.password(case.user), known)
        seconds = time.perf_counter() - start
        traffic = proxy.take()
        if case.name != "first":
            self.known[case.user] = state
        want = {"first": self.count, "new10": NEW_COUNT}.get(case.name, 0)
        assert fetched == want, (case.name, fetched, want)
        return {"seconds": seconds, "round_trips": traffic.round_trips, "up": traffic.up,
                "down": traffic.down, "waits": traffic.connections[0].waits}

    def measure(self, case: Case, proxy: LatencyProxy, shape: Shape) -> Row:
        result, traffic = self.product(case, proxy)
        careful = self.careful(case, proxy)
        assert shape.rate is not None
        floor = max(traffic.up, traffic.down) * 8 / shape.rate + case.careful * shape.rtt
        rts = traffic.slowest if case.name == "diagnose" else traffic.round_trips
        return Row(case.name, self.title(case), shape.rtt * 1000,
                   shape.rate / 1e6, result["seconds"], result["wall"], rts,
                   traffic.round_trips, len(traffic.connections), traffic.up, traffic.down,
                   case.careful, floor, result["seconds"] / floor, careful,
                   len(self.known.get(case.user, ())), [c.as_dict() for c in traffic.connections])

    def breakdown(self, cases: list[Case], shape: Shape) -> dict[str, Any]:
        """The sync cases over plain IMAP: the command names each round trip waited for."""
        out: dict[str, Any] = {}
        with LatencyProxy(self.upstreams, shape) as proxy:
            for case in cases:
                if case.name == "diagnose":
                    continue
                _, traffic = self.product(case, proxy, security="none")
                waits = [w for c in traffic.connections for w in c.waits]
                out[case.name] = {"round_trips": traffic.round_trips, "waits": waits,
                                  "summary": collapse(waits)}
        return out


# --------------------------------------------------------------------------- output


def _kb(n: int) -> str:
    return f"{n / 1e3:,.0f}" if n >= 10_000 else f"{n / 1e3:.1f}"


HEAD = (f"{'case':<46} {'RTT':>6} {'rate':>9} {'time':>8} {'wall':>7} {'RTs':>4} "
        f"{'KB up':>6} {'KB down':>8} {'floor (RTs)':>12} {'x floor':>8}  careful client")


def row_line(r: Row) -> str:
    careful = "" if r.careful is None else \
        f"{r.careful['seconds']:6.2f} s, {r.careful['round_trips']} RTs"
    return (f"{r.title:<46} {r.rtt_ms:>3.0f} ms {r.rate_mbit:>3.0f} Mbit/s {r.seconds:>6.2f} s "
            f"{r.wall:>5.1f} s {r.round_trips:>4} {_kb(r.up):>6} {_kb(r.down):>8} "
            f"{r.floor:>6.2f} s ({r.careful_round_trips}) {r.ratio:>7.1f}x  {careful}")


def growth(rows: list[Row]) -> dict[str, list[str]]:
    """How time grows with the distance, and with the number of folders.

    ``rtt``: the slope of time over RTT between the smallest and the largest
    RTT measured, in round trips (what the client waited, told by the clock
    alone, beside the proxy's count). ``folders``: what each folder beyond
    the 14 costs an unchanged re-sync.
    """
    by = {(r.case, r.rtt_ms, r.rate_mbit): r for r in rows}
    rtts = sorted({r.rtt_ms for r in rows})
    out: dict[str, list[str]] = {"rtt": [], "folders": []}
    for (case, rtt, rate), r in by.items():
        base = by.get((case, rtts[0], rate))
        if rtt == rtts[-1] and base is not None and rtt > rtts[0]:
            slope = (r.seconds - base.seconds) / ((rtt - rtts[0]) / 1000)
            out["rtt"].append(f"{r.title}, {rate:g} Mbit/s: time grows by {slope:.1f} RTT per "
                              f"RTT (the proxy counted {r.round_trips} round trips; a careful "
                              f"client needs {r.careful_round_trips})")
        small = by.get(("resync14", rtt, rate))
        if case == "resync60" and small is not None and r.folders > small.folders:
            each = (r.seconds - small.seconds) / (r.folders - small.folders)
            in_rtt = f" ({each / (rtt / 1000):.2f} RTT)" if rtt else ""
            out["folders"].append(f"unchanged re-sync at {rtt:g} ms, {rate:g} Mbit/s: "
                                  f"{each * 1000:.0f} ms per folder{in_rtt}")
    return out


def readme_block(rows: list[Row], breakdown: dict[str, Any],
                 diagnose: list[dict[str, Any]]) -> str:
    """The Markdown the README carries between the bench_latency markers."""
    cases = list(dict.fromkeys(r.case for r in rows))
    shapes = list(dict.fromkeys((r.rtt_ms, r.rate_mbit) for r in rows))
    by = {(r.case, r.rtt_ms, r.rate_mbit): r for r in rows}
    titles = {r.case: r.title for r in rows}
    lines = [
        "Through a proxy that adds the round-trip time and caps the rate each way "
        "(`benchmarks/bench_latency.py --readme`): time, the round trips the proxy counted, "
        "and the ratio to the floor, bytes / rate + the round trips a careful client needs × "
        f"RTT ({CASES['first'].careful} for a first sync, {CASES['resync60'].careful} for an "
        f"unchanged re-sync, {CASES['new10'].careful} with new messages, "
        f"{CASES['diagnose'].careful} for diagnose: argued in the script). A floor under "
        "0.1 s (no delay) gets no ratio.",
        "",
        "| RTT, rate | " + " | ".join(titles[c] for c in cases) + " |",
        "|---|" + "---|" * len(cases),
    ]
    for rtt, rate in shapes:
        cells = []
        for c in cases:
            r = by.get((c, rtt, rate))
            ratio = f": {r.ratio:.1f}x" if r is not None and r.floor >= 0.1 else ""
            cells.append("" if r is None else
                         f"{r.seconds:.2f} s, {r.round_trips} RT (floor {r.floor:.2f} s{ratio})")
        lines.append(f"| {rtt:.0f} ms, {rate:.0f} Mbit/s | " + " | ".join(cells) + " |")
    notes = [f"{titles.get(c, c)}: {b['round_trips']} — {b['summary']}"
             for c, b in breakdown.items()]
    if diagnose:
        worst = max(diagnose, key=lambda d: d["round_trips"])
        notes.append(f"diagnose: the connection that waited most, to the {worst['listener']} "
                     f"port, {worst['round_trips']}: {collapse(worst['waits'])}")
        per_port: dict[str, list[int]] = {}
        for conn in diagnose:
            per_port.setdefault(conn["listener"], []).append(conn["round_trips"])
        notes.append("diagnose, each preset's connection by port (a port two presets share "
                     "has two): " + ", ".join(f"{port} {' and '.join(map(str, sorted(rts)))}"
                                              for port, rts in per_port.items()))
    farthest = f"at {max(r.rtt_ms for r in rows):g} ms"
    notes += [line for line in growth(rows)["folders"] if farthest in line]
    if notes:
        lines += ["", f"Where the round trips go, {farthest} (the syncs run once more over "
                  "plain IMAP, where the proxy reads command names; TLS adds its handshake): "
                  "`X ×n` is n waits, `n X` n commands pipelined in one wait.", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def write_readme(path: Path, block: str) -> None:
    """Put ``block`` between the bench_latency markers, adding them under "## Numbers"."""
    text = path.read_text()
    marked = f"{MARK_START}\n{block}\n{MARK_END}"
    if MARK_START in text and MARK_END in text:
        start = text.index(MARK_START)
        end = text.index(MARK_END) + len(MARK_END)
        text = text[:start] + marked + text[end:]
    else:
        at = text.index("## Numbers")
        nxt = text.find("\n## ", at + 1)
        end = len(text.rstrip("\n")) if nxt < 0 else nxt
        text = text[:end].rstrip("\n") + "\n\n" + marked + "\n" + text[end:]
    path.write_text(text if text.endswith("\n") else text + "\n")


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtt", type=float, nargs="+", default=[0, 50, 150], metavar="MS",
                    help="round-trip times to measure at, in ms (default: 0 50 150)")
    ap.add_argument("--rate", type=float, nargs="+", default=[20, 50], metavar="MBIT",
                    help="rates each way, in Mbit/s (default: 20 50)")
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--count", type=int, default=20_000, help="messages of the first sync")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-breakdown", action="store_true",
                    help="skip the plain-IMAP pass that names what each round trip waited for")
    ap.add_argument("--keep-lab", action="store_true", help="leave a lab we started running")
    ap.add_argument("--json-out", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--readme", action="store_true",
                    help=f"rewrite the {MARK_START} block of README.md with these results")
    args = ap.parse_args()
    began = time.perf_counter()
    cases = [CASES[name] for name in args.cases]

    env_root = os.environ.get("MAILHAT_LAB_DIR")
    # Short, under /tmp: Dovecot's socket paths live under the lab's root.
    root = env_root or tempfile.mkdtemp(prefix="mhlat-", dir="/tmp")
    lab, started = ensure_lab(root)
    info = lab.info()
    work = Path(tempfile.mkdtemp(prefix="mhlat-work-"))
    loadavg = os.getloadavg()
    rows: list[Row] = []
    breakdown: dict[str, Any] = {}
    diagnose_conns: list[dict[str, Any]] = []
    try:
        print(f"lab {lab.paths.root}; {os.cpu_count()} CPUs, load {loadavg[0]:.2f}", flush=True)
        users = {c.user for c in cases if c.name != "diagnose"}
        if "bench" in users:
            counts, made = ensure_mailbox(lab, args.count, args.seed)
            assert sum(counts.values()) == args.count, counts
            how = "reused" if made is None else f"generated in {made:.1f} s"
            print(f"  bench@localhost: {args.count:,} messages in {len(counts)} folders ({how})")
            users.discard("bench")
        if "bob" in users:
            ensure_bob(lab, info)
        bench = Bench(lab, info, work, args.count)
        bench.prepare(users)
        for rtt in args.rtt:
            for rate in args.rate:
                shape = Shape(rtt / 1000, rate * 1e6)
                print(f"\n{shape}\n{HEAD}", flush=True)
                with LatencyProxy(bench.upstreams, shape) as proxy:
                    for case in cases:
                        rows.append(bench.measure(case, proxy, shape))
                        print(row_line(rows[-1]), flush=True)
                        if case.name == "diagnose" and rtt == max(args.rtt) \
                                and rate == min(args.rate):
                            diagnose_conns = rows[-1].per_connection
        if not args.no_breakdown:
            shape = Shape(max(args.rtt) / 1000, min(args.rate) * 1e6)
            print(f"\nwhere the round trips go: plain IMAP at {shape}", flush=True)
            breakdown = bench.breakdown(cases, shape)
            for name, b in breakdown.items():
                print(f"  {bench.title(CASES[name])}: {b['round_trips']}: "
                      f"{b['summary']}")
        print("\n" + HEAD + "\n" + "-" * len(HEAD))
        for row in rows:
            print(row_line(row))
        for kind, lines in growth(rows).items():
            if lines:
                print(f"\ngrowth with {'the RTT' if kind == 'rtt' else 'the folders'}:")
                print("\n".join(f"  {line}" for line in lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started and not args.keep_lab:
            lab.down()
            if not env_root:
                shutil.rmtree(root, ignore_errors=True)
    results = {"cpus": os.cpu_count(), "loadavg_start": loadavg, "loadavg_end": os.getloadavg(),
               "count": args.count, "seconds": time.perf_counter() - began,
               "careful_round_trips": {c.name: c.careful for c in cases},
               "rows": [asdict(r) for r in rows], "breakdown": breakdown,
               "growth": growth(rows),
               "diagnose_connections": diagnose_conns}
    print(f"\n{time.perf_counter() - began:.0f} s in all; load average "
          f"{results['loadavg_end'][0]:.2f} at the end")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    if args.readme:
        write_readme(README, readme_block(rows, breakdown, diagnose_conns))
        print(f"README.md: {MARK_START} block rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
