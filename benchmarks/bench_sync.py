"""Sync benchmark: our IMAP sync against the server and the obvious clients, in one run.

Usage::

    .venv/bin/python benchmarks/bench_sync.py [--count 100000] [--seed 1] [--lab /tmp/mhs-bench]
                                              [--skip-slow] [--json out.json]

Starts (or reuses) a private lab in ``--lab``, fills bench@localhost with the
generated mailbox (reused when it already holds ``--count`` messages from
``--seed``), warms Dovecot's cache once, then measures over IMAPS on loopback:

* ``doveadm fetch`` of the header fields (what the server alone needs);
* the raw answer bytes crossing the socket (the floor for any client);
* imaplib, one bulk FETCH per folder + the stdlib ``email`` parser;
* imaplib, one FETCH per message + the stdlib ``email`` parser;
* imapclient with HEADER.FIELDS (UID lists in chunks: ``fetch("1:*")`` is
  broken in imapclient 4.x), and imapclient ENVELOPE (not with --skip-slow);
* our first sync (fetch, parse, store), parsing in-process and in one worker
  process (the default, ``workers=None``, uses one worker below 4 CPUs);
* our re-sync of the unchanged mailbox; then 100 new messages;
* the memory of the 100k-row frame, and peak RSS of every sync.

Our syncs run in fresh subprocesses, so their times include imports and
their RSS is theirs alone; "in-process" times start at the first line of
the subprocess (after the interpreter started), "wall" times include it.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import email.utils
import imaplib
import json
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailhat_nb.lab import Lab
from mailhat_nb.lab.generate import generate_into_lab
from mailhat_nb.sync.parse import FETCH_HEADER_FIELDS

USER = "bench"
LOGIN = "bench@localhost"
FIELDS = " ".join(FETCH_HEADER_FIELDS)
ITEMS = f"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({FIELDS})])"


# --------------------------------------------------------------------------- lab


def ensure_lab(root: str) -> tuple[Lab, bool]:
    lab = Lab(root)
    if lab.is_running():
        return lab, False
    Path(root).mkdir(parents=True, exist_ok=True)
    Path(root).chmod(0o755)
    lab.up()
    return lab, True


def ensure_mailbox(lab: Lab, count: int, seed: int) -> tuple[dict[str, int], float | None]:
    marker = lab.paths.root / "bench-generated.json"
    counts = server_counts(lab)
    if marker.exists():
        made = json.loads(marker.read_text())
        if made.get("count") == count and made.get("seed") == seed \
                and sum(counts.values()) == count:
            return counts, None
    start = time.perf_counter()
    generate_into_lab(lab, USER, count, seed)
    elapsed = time.perf_counter() - start
    marker.write_text(json.dumps({"count": count, "seed": seed}))
    return server_counts(lab), elapsed


def server_counts(lab: Lab) -> dict[str, int]:
    out = lab.doveadm("mailbox", "status", "-u", LOGIN, "messages", "INBOX", "INBOX.*")
    counts = {}
    for line in out.splitlines():
        name, _, value = line.rpartition(" messages=")
        if int(value):
            counts[name] = int(value)
    return counts


def imap_connect(lab: Lab) -> imaplib.IMAP4_SSL:
    info = lab.info()
    ctx = ssl.create_default_context(cafile=info.ca_file)
    conn = imaplib.IMAP4_SSL("localhost", info.ports["imaps"], ssl_context=ctx)
    conn.login(LOGIN, lab.password(USER))
    return conn


# --------------------------------------------------------------------------- baselines


def doveadm_fetch(lab: Lab) -> float:
    fields = "uid flags date.received size.virtual " + " ".join(
        f"hdr.{f.lower()}" for f in FETCH_HEADER_FIELDS)
    cmd = ["doveadm", "-c", str(lab.paths.dovecot_conf), "fetch", "-u", LOGIN, fields, "all"]
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _over_folders(lab: Lab, folders: list[str],
                  per_folder: Callable[[imaplib.IMAP4_SSL], int]) -> tuple[float, int]:
    """Time ``per_folder`` on each folder, selected read-only; returns (seconds, its sum)."""
    conn = imap_connect(lab)
    count = 0
    start = time.perf_counter()
    for folder in folders:
        conn.select(folder, readonly=True)
        count += per_folder(conn)
    elapsed = time.perf_counter() - start
    conn.logout()
    return elapsed, count


def raw_bytes(lab: Lab, folders: list[str]) -> tuple[float, int]:
    """The FETCH answers read off the socket and thrown away: a client's floor."""

    def drain(conn: imaplib.IMAP4_SSL) -> int:
        tag = conn._new_tag()
        conn.send(tag + b" UID FETCH 1:* " + ITEMS.encode() + b"\r\n")
        end = tag + b" OK"
        total, tail = 0, b""
        while True:
            data = conn.file.read1(1 << 20)
            total += len(data)
            tail = (tail + data)[-4096:]
            if end in tail and tail.endswith(b"\r\n"):
                break
        conn.tagged_commands.pop(tag, None)
        return total

    return _over_folders(lab, folders, drain)


def _email_fields(header: bytes) -> dict[str, Any]:
    """What an obvious client extracts with the stdlib parser."""
    msg = email.message_from_bytes(header, policy=email.policy.default)
    out: dict[str, Any] = {}
    try:
        out["date"] = email.utils.parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        out["date"] = None
    for name in ("From", "To", "Cc", "Delivered-To"):
        value = msg[name]
        try:
            out[name] = [a.addr_spec.lower() for a in value.addresses] if value else []
        except (AttributeError, ValueError, IndexError):
            out[name] = []
    for name in ("Subject", "Message-ID", "In-Reply-To", "References", "List-Id"):
        out[name] = str(msg[name]) if msg[name] is not None else None
    return out


def _parse_answers(data: list[Any]) -> int:
    parsed = 0
    for item in data:
        if isinstance(item, tuple):
            _email_fields(item[1])
            parsed += 1
    return parsed


def imaplib_bulk(lab: Lab, folders: list[str]) -> tuple[float, int]:
    return _over_folders(lab, folders,
                         lambda conn: _parse_answers(conn.uid("FETCH", "1:*", ITEMS)[1]))


def imaplib_one_by_one(lab: Lab, folders: list[str]) -> tuple[float, int]:
    def each(conn: imaplib.IMAP4_SSL) -> int:
        _typ, data = conn.uid("SEARCH", "ALL")
        return sum(_parse_answers(conn.uid("FETCH", uid, ITEMS)[1]) for uid in data[0].split())

    return _over_folders(lab, folders, each)


def imapclient_fetch(lab: Lab, folders: list[str], items: list[str]) -> tuple[float, int]:
    import imapclient

    info = lab.info()
    ctx = ssl.create_default_context(cafile=info.ca_file)
    client = imapclient.IMAPClient("localhost", port=info.ports["imaps"], ssl_context=ctx)
    client.login(LOGIN, lab.password(USER))
    client.normalise_times = False
    got = 0
    start = time.perf_counter()
    for folder in folders:
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        for i in range(0, len(uids), 5000):  # 64 KB command line limit; "1:*" raises
            got += len(client.fetch(uids[i:i + 5000], items))
    elapsed = time.perf_counter() - start
    client.logout()
    return elapsed, got


# --------------------------------------------------------------------------- our sync


_CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
from mailhat_nb.secrets import Secret
from mailhat_nb.sync.engine import sync_account
from mailhat_nb.sync.imap import ImapSettings
port, ca, store, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = ImapSettings("bench@localhost", "localhost", port=port, ca_file=ca)
summary = sync_account(s, Secret(os.environ["BENCH_PW"]), store,
                       workers=None if workers == "auto" else int(workers))
t1 = time.perf_counter()
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
# VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child would report its
# parent's size from before the exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": t1 - t0, "new": summary.new, "rows": summary.rows,
                  "rss_mb": hwm / 1024, "cpu_self": me.ru_utime + me.ru_stime,
                  "cpu_children": kids.ru_utime + kids.ru_stime}))
"""

_FRAME = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from mailhat_nb.analysis.load import read_messages
df = read_messages(sys.argv[1])
t1 = time.perf_counter()
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": t1 - t0, "rows": len(df),
                  "frame_mb": df.memory_usage(deep=True).sum() / 1e6, "rss_mb": hwm / 1024}))
"""


def _tree_rss_mb(pid: int) -> tuple[float, float]:
    """RSS now of process ``pid`` and, summed, of its descendants (from /proc).

    Descendants are found through ``/proc/<pid>/task/<tid>/children``, not by
    reading every ``/proc/<n>/stat``: a sweep of all of /proc costs ~1.7 ms
    of CPU, every 20 ms, on the same 2 CPUs the measured sync runs on (a
    kernel without those files gets the sweep).
    """
    def rss(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def children(p: int) -> list[int]:
        out: list[int] = []
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                try:
                    out.extend(map(int, Path(f"/proc/{p}/task/{task}/children")
                                   .read_text().split()))
                except FileNotFoundError:
                    if Path(f"/proc/{p}/task/{task}").exists():  # no CONFIG_PROC_CHILDREN
                        return swept(p)
                except OSError:
                    pass
        except OSError:
            pass
        return out

    def swept(p: int) -> list[int]:
        out = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == p:
                    out.append(int(entry))
        return out

    below, todo = 0.0, children(pid)
    while todo:
        p = todo.pop()
        below += rss(p)
        todo.extend(children(p))
    return rss(pid), below


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter, sampling the RSS of its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    peak_total = peak_kids = 0.0
    while proc.poll() is None:
        own, below = _tree_rss_mb(proc.pid)
        peak_total = max(peak_total, own + below)
        peak_kids = max(peak_kids, below)
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {stderr[-3000:]}")
    out: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    out["wall"] = wall
    out["tree_peak_mb"] = peak_total  # sampled every 20 ms: the sync plus its workers
    out["child_rss_mb"] = peak_kids
    return out


def our_sync(lab: Lab, store: Path, workers: str) -> dict[str, Any]:
    info = lab.info()
    return run_child(_CHILD, str(info.ports["imaps"]), info.ca_file, str(store), workers,
                     env={"BENCH_PW": lab.password(USER)})


def append_new(lab: Lab, n: int) -> None:
    conn = imap_connect(lab)
    for i in range(n):
        msg = (f"From: New Sender <new{i}@example.org>\r\nTo: {LOGIN}\r\n"
               f"Subject: new message {i}\r\nMessage-ID: <bench-new-{time.time_ns()}-{i}@x>\r\n"
               f"Date: {email.utils.formatdate()}\r\n\r\nhello\r\n")
        conn.append("INBOX", "", imaplib.Time2Internaldate(time.time()), msg.encode())
    conn.logout()


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lab", default="/tmp/mhs-bench")  # noqa: S108 - short: socket paths
    ap.add_argument("--skip-slow", action="store_true",
                    help="skip the one-FETCH-per-message and ENVELOPE baselines")
    ap.add_argument("--keep-lab", action="store_true", help="leave a lab we started running")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()

    lab, started = ensure_lab(args.lab)
    results: dict[str, Any] = {"count": args.count, "cpus": os.cpu_count(),
                               "loadavg_start": os.getloadavg()}
    work = Path(tempfile.mkdtemp(prefix="mhs-store-"))
    try:
        counts, gen_seconds = ensure_mailbox(lab, args.count, args.seed)
        folders = sorted(counts)
        total = sum(counts.values())
        how = "(reused)" if gen_seconds is None else f"(generated+indexed in {gen_seconds:.1f}s)"
        print(f"mailbox: {total} messages in {len(folders)} folders {how}")
        results["generate_seconds"] = gen_seconds
        cold = doveadm_fetch(lab)  # warms Dovecot's cache for everyone after it
        print(f"doveadm fetch (cold cache, warm-up): {cold:.2f}s")
        rows: list[tuple[str, float, str]] = []

        def record(name: str, seconds: float, note: str = "") -> None:
            rows.append((name, seconds, note))
            results[name] = seconds
            print(f"  {name:<44} {seconds:8.2f}s  {note}", flush=True)

        record("doveadm fetch", min(doveadm_fetch(lab) for _ in range(3)), "best of 3")
        secs, nbytes = raw_bytes(lab, folders)
        record("raw bytes over IMAPS", secs, f"{nbytes / 1e6:.0f} MB")
        secs, n = imaplib_bulk(lab, folders)
        assert n == total, (n, total)
        record("imaplib bulk FETCH + email parser", secs)
        secs, n = imapclient_fetch(lab, folders, ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE",
                                                  f"BODY.PEEK[HEADER.FIELDS ({FIELDS})]"])
        assert n == total, (n, total)
        record("imapclient HEADER.FIELDS (fetch only)", secs)
        if not args.skip_slow:
            secs, n = imapclient_fetch(lab, folders, ["UID", "ENVELOPE"])
            assert n == total, (n, total)
            record("imapclient ENVELOPE (fetch only)", secs)
            secs, n = imaplib_one_by_one(lab, folders)
            assert n == total, (n, total)
            record("imaplib one FETCH per message + email", secs)

        store0 = work / "inline"
        first0 = our_sync(lab, store0, "0")
        assert first0["rows"] == total, first0
        record("ours: first sync, parse in-process", first0["seconds"],
               f"wall {first0['wall']:.2f}s, CPU {first0['cpu_self']:.1f}s, "
               f"RSS {first0['rss_mb']:.0f} MB")
        store = work / "worker"
        first = our_sync(lab, store, "1")
        assert first["rows"] == total, first
        record("ours: first sync, one parse worker", first["seconds"],
               f"wall {first['wall']:.2f}s, CPU {first['cpu_self']:.1f}s + worker "
               f"{first['cpu_children']:.1f}s, RSS {first['rss_mb']:.0f} MB + worker "
               f"{first['child_rss_mb']:.0f} MB")
        results["first_sync_inline"] = first0
        results["first_sync_worker"] = first
        again = our_sync(lab, store, "auto")
        assert again["new"] == 0, again
        record("ours: re-sync unchanged", again["seconds"],
               f"wall {again['wall']:.2f}s incl. interpreter start; RSS {again['rss_mb']:.0f} MB")
        results["resync"] = again
        append_new(lab, 100)
        new = our_sync(lab, store, "auto")
        assert new["new"] == 100, new
        record("ours: 100 new messages", new["seconds"],
               f"wall {new['wall']:.2f}s; RSS {new['rss_mb']:.0f} MB")
        results["new100"] = new
        frame = run_child(_FRAME, str(store))
        assert frame["rows"] == total + 100, frame
        results["frame"] = frame
        print(f"  {'frame of ' + str(frame['rows']) + ' rows':<44} {frame['frame_mb']:8.1f} MB"
              f"  (read_messages {frame['seconds']:.2f}s, reader RSS {frame['rss_mb']:.0f} MB)")

        ours = min(first0["seconds"], first["seconds"])
        best = "in-process" if first0["seconds"] <= first["seconds"] else "one worker"
        print("\nratios (our first sync, best variant: " + best + f", {ours:.2f}s):")
        checks = [("vs imaplib bulk + email (target <= 0.4)",
                   ours / results["imaplib bulk FETCH + email parser"], 0.4)]
        if "imaplib one FETCH per message + email" in results:
            checks.append(("vs one FETCH per message (target <= 0.2)",
                           ours / results["imaplib one FETCH per message + email"], 0.2))
        checks.append(("vs doveadm fetch (goal <= 3)", ours / results["doveadm fetch"], 3.0))
        checks.append(("vs raw bytes over IMAPS", ours / results["raw bytes over IMAPS"], None))
        for name, ratio, target in checks:
            ok = "" if target is None else ("  ok" if ratio <= target else "  MISSED")
            print(f"  {name:<44} {ratio:6.2f}x{ok}")
        for name, value, limit in [
            ("re-sync unchanged, in-process (< 0.5 s)", again["seconds"], 0.5),
            ("100 new messages, in-process (< 1 s)", new["seconds"], 1.0),
            ("frame MB (< 80)", frame["frame_mb"], 80),
            ("peak RSS of the sync process, MB (< 300)", max(first0["rss_mb"], first["rss_mb"]),
             300),
            ("peak RSS sync + worker (sampled), MB (< 300)",
             max(first["tree_peak_mb"], first0["tree_peak_mb"]), 300),
        ]:
            print(f"  {name:<44} {value:8.2f}  {'ok' if value < limit else 'MISSED'}")
        results["ratios"] = {name: ratio for name, ratio, _ in checks}
        results["loadavg_end"] = os.getloadavg()
        own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nload average at start {results['loadavg_start'][0]:.2f}, "
              f"at end {results['loadavg_end'][0]:.2f} on {os.cpu_count()} CPUs; "
              f"benchmark process RSS {own_rss:.0f} MB")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started and not args.keep_lab:
            lab.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
