"""The README's numbers table, written from what the benchmark scripts measured.

(Not ``numbers.py``: a script's directory comes first on ``sys.path``, and
numpy imports the standard library's ``numbers``.)

Usage::

    .venv/bin/python benchmarks/readme_table.py [--results benchmarks/results] [--check]

Reads the JSON each benchmark writes with ``--json`` (``make bench`` runs
them all into ``benchmarks/results/``) and rewrites the table between the
``numbers`` markers of README.md. ``--check`` only compares, and fails when
the README says something the results do not (``tests/test_packaging.py``
runs it): the numbers in the README are the measured ones, never typed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- numbers: benchmarks/readme_table.py writes them from benchmarks/results -->"
END = "<!-- numbers end -->"


def _load(results: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    return data


def table(results: Path) -> str:
    """The Markdown table (with its heading line) for the results in ``results``."""
    diag = _load(results, "diagnose")
    sync = _load(results, "sync")
    parse = _load(results, "parse")
    contacts = _load(results, "contacts")
    disco = _load(results, "discovery")

    first = min(sync["first_sync_inline"]["seconds"], sync["first_sync_worker"]["seconds"])
    bulk = sync["imaplib bulk FETCH + email parser"]
    dove = sync["doveadm fetch"]
    one_by_one = sync.get("imaplib one FETCH per message + email")
    vs = [f"{first / bulk:.2f}x the imaplib + `email` baseline ({bulk:.1f} s)"]
    if one_by_one:
        vs.append(f"{first / one_by_one:.2f}x one FETCH per message ({one_by_one:.1f} s)")
    vs.append(f"{first / dove:.2f}x `doveadm fetch` ({dove:.2f} s)")
    peak = max(sync["first_sync_inline"]["tree_peak_mb"], sync["first_sync_worker"]["tree_peak_mb"])
    seq, conc = diag["sequential"], diag["concurrent"]
    rows = [
        (f"doctor sweep, {diag['presets']} presets, {diag['stalled']} silent ports, "
         f"{diag['timeout']:g} s timeout",
         f"{conc:.2f} s concurrent vs {seq:.2f} s one after another ({seq / conc:.1f}x)",
         "`benchmarks/bench_diagnose.py`"),
        (f"first sync of {sync['count']:,} messages over IMAPS (fetch, parse, store)",
         f"{first:.2f} s: " + ", ".join(vs), "`benchmarks/bench_sync.py`"),
        ("re-sync unchanged / 100 new messages",
         f"{sync['resync']['seconds']:.2f} s / {sync['new100']['seconds']:.2f} s (a server "
         "with CONDSTORE, as Dovecot; without it every re-sync fetches all flags)", "same"),
        (f"{sync['frame']['rows']:,}-row frame / peak RSS of sync + parse worker",
         f"{sync['frame']['frame_mb']:.1f} MB / {peak:.0f} MB", "same"),
        ("header parsing",
         f"{parse['ours_us']:.1f} µs/message, "
         f"{parse['compat32_fields_us'] / parse['ours_us']:.1f}x faster than stdlib compat32 "
         "reading the same fields", "`benchmarks/bench_parse.py`"),
        (f"discovery on the lab (`{disco['email']}`)",
         f"{disco['concurrent'] * 1000:.0f} ms concurrent vs {disco['sequential'] * 1000:.0f} ms "
         f"one question after another ({disco['sequential'] / disco['concurrent']:.1f}x); "
         "bound 500 ms", "`benchmarks/bench_discovery.py`"),
        (f"discovery + sweep, autoconfig host hanging, {disco['timeout']:g} s timeout",
         f"{disco['whole']:.2f} s: the sweep alone {disco['sweep']:.2f} s plus "
         f"{'less' if disco['whole'] <= disco['sweep'] + disco['timeout'] else 'more'} than "
         f"one timeout (bound {disco['sweep'] + disco['timeout']:.2f} s)", "same"),
        (f"contacts + every chart, {contacts['rows']:,} rows",
         f"{contacts['seconds']:.2f} s, peak RSS {contacts['peak_rss_mib']:.0f} MiB",
         "`benchmarks/bench_contacts.py`"),
    ]
    load = max(sync["loadavg_start"][0], sync["loadavg_end"][0], parse["loadavg"][0],
               contacts["loadavg"][0])
    lines = [f"Measured on a {sync['cpus']}-CPU machine with a load average up to {load:.1f} "
             "(`make bench` runs the scripts and writes this table; on a busy machine every "
             "time grows, and a ratio moves when the load changes between its two runs):",
             "", "| what | result | command |", "|---|---|---|"]
    rows.append(("the same from the store, per engine (pandas, DuckDB, Spark), 1M / 3M / 10M "
                 "rows in 20 accounts", "run by hand: its stores take minutes to build",
                 "`benchmarks/bench_engines.py`"))
    lines += [f"| {what} | {result} | {command} |" for what, result, command in rows]
    return "\n".join(lines)


def rewrite(readme: str, new_table: str) -> str:
    """``readme`` with the text between the markers replaced by ``new_table``."""
    head, found, rest = readme.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise SystemExit(f"README.md lacks the markers {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n{new_table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = ap.parse_args(argv)
    readme = args.readme.read_text(encoding="utf-8")
    wanted = rewrite(readme, table(args.results))
    if args.check:
        if wanted != readme:
            print("README.md's numbers differ from benchmarks/results: run "
                  "`.venv/bin/python benchmarks/readme_table.py`", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
