"""The analysis engines at scale: pandas vs DuckDB vs Spark, wall time and peak memory.

For each store size (default 1M, 3M and 10M rows in 20 accounts, made by
``synthetic_store.py`` and kept in ``--stores DIR`` for the next run), one
fresh process per engine does the whole job of ``mailhat contacts`` plus every
chart of the correspondence notebook: the team's self table, the team's
contacts with their owners (so the per-account counts too), the top-contacts
chart, monthly volume of the five busiest and its chart, the weekday x hour
heatmap, the response-time histogram and chart, data health and its chart.
Charts are rendered to PNG.

Measured per run: wall time, and the peak RSS of the whole process tree
(the run's process and anything it starts, such as Spark's JVM), polled
from /proc every 20 ms; the system's load average is printed beside each
figure, because the machine is shared.

Targets (issue 13): 10M rows with DuckDB in < 20 s and < 1.5 GB; at 1M,
DuckDB within 1.5x of pandas' time in a third of its memory; time and memory
growing no faster than the rows. Spark: local mode on the Enron store, wall
time and the share spent starting Spark.

Run: ``.venv/bin/python benchmarks/bench_engines.py [--sizes 1000000 3000000 10000000]
[--pandas-up-to 1000000] [--spark-enron] [--stores /tmp/mailhat-bench-stores]``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
POLL_S = 0.02


def _tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def measure(args: list[str]) -> dict[str, Any]:
    """Run this script as a child with ``args``; its JSON result plus wall and peak tree RSS."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen([sys.executable, __file__, *args], stdout=out)
        peak = 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(child.pid))
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
        if child.returncode != 0:
            raise SystemExit(f"run {args} failed with exit code {child.returncode}")
        out.seek(0)
        result: dict[str, Any] = json.loads(out.read().decode().strip().splitlines()[-1])
    result.update(wall_s=wall, peak_mib=peak / 2**20, load=load,
                  load_after=os.getloadavg()[0])
    return result


def _png(fig: Any) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return len(buf.getvalue())


def run_engine(engine: str, store: Path, spark_master: str, memory: str,
               out: Path | None) -> dict[str, Any]:
    """The measured job, in this (child) process; prints one JSON line."""
    from mailhat_nb.analysis import charts

    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    if engine == "pandas":
        from mailhat_nb import contacts as ca
        from mailhat_nb.analysis.load import read_messages

        frame = read_messages(store)
        steps["read"] = time.perf_counter() - t0
        me = ca.own_addresses(frame)          # team_identity on a store of several accounts
        uniq = ca.team_messages(frame)
        people = ca.team_contacts(uniq, me, by_account=ca.contacts_by_account(uniq, me))
        chosen = list(people["contact"].head(5))
        vol = ca.volume(uniq, me, "M", contacts=chosen)
        act = ca.activity(uniq)
        # On the raw frame, as the engines do: it also finds a reply that cites
        # the re-issued Message-ID of a copy the duplicate rule set aside.
        hist = ca.response_histogram(ca.response_times(frame, me))
        health = ca.data_health(frame)
    else:
        from mailhat_nb.analysis.engines.run import Analysis, Backend

        backend: Backend
        if engine == "spark":
            from mailhat_nb.analysis.engines.spark import SparkBackend, spark_session

            backend = SparkBackend(spark_session(spark_master))
        else:
            from mailhat_nb.analysis.engines import stored_rows
            from mailhat_nb.analysis.engines.duck import DuckBackend, memory_for

            backend = DuckBackend(memory_limit=memory_for(stored_rows(store))
                                  if memory == "auto" else memory)
        steps["start"] = time.perf_counter() - t0
        with Analysis(backend, store) as analysis:
            me = analysis.own_addresses()
            people = analysis.team_contacts()
            chosen = list(people["contact"].head(5))
            vol = analysis.volume(chosen, "M")
            act = analysis.activity()
            hist = analysis.response_histogram()
            health = analysis.data_health()
    steps["analysis"] = time.perf_counter() - t0 - sum(steps.values())
    if out is not None:   # for the row-by-row comparison, outside the timed work
        people.to_parquet(out / f"{engine}-contacts.parquet")
        hist.to_parquet(out / f"{engine}-histogram.parquet")
        health.to_parquet(out / f"{engine}-health.parquet")
    t1 = time.perf_counter()
    for fig in (charts.top_contacts_chart(people, 15), charts.volume_chart(vol, names=people),
                charts.activity_heatmap(act), charts.response_time_chart(hist),
                charts.data_health_chart(health)):
        _png(fig)
    steps["charts"] = time.perf_counter() - t1
    return {"engine": engine, "contacts": len(people), "self": len(me),
            "replies": int(hist["replies"].sum()), "folders": len(health),
            "rows": int(health["rows"].sum()), "steps": steps,
            "total_s": time.perf_counter() - t0}


def ensure_store(stores: Path, rows: int, accounts: int) -> Path:
    store = stores / f"rows{rows}-accounts{accounts}"
    if not (store / ".complete").exists():
        if store.exists():
            raise SystemExit(f"{store} is incomplete: remove it")
        start = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "synthetic_store.py"), "--rows", str(rows),
                        "--accounts", str(accounts), "--store", str(store)], check=True)
        (store / ".complete").write_text(f"{time.perf_counter() - start:.1f}\n")
    return store


def enron_store(stores: Path) -> Path:
    from mailhat_nb.lab.mailboxes import corpus_root
    from mailhat_nb.sync.importer import import_source

    store = stores / "enron"
    if not (store / ".complete").exists():
        for person in ("cuilla-m", "dean-c", "delainey-d"):
            import_source("maildir", corpus_root() / "enron" / person, store, account=person)
        (store / ".complete").write_text("")
    return store


def _line(r: dict[str, Any]) -> str:
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in r["steps"].items())
    return (f"{r['engine']:<7} {r['wall_s']:7.1f}s wall  {r['peak_mib']:7.0f} MiB peak  "
            f"(load {r['load']:.1f} -> {r['load_after']:.1f}; {steps}; {r['contacts']:,} "
            f"contacts, {r['replies']:,} replies timed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*",
                        default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--pandas-up-to", type=int, default=1_000_000,
                        help="also run pandas on stores up to this many rows")
    parser.add_argument("--spark-enron", action="store_true",
                        help="Spark in local mode on the Enron store (start-up share)")
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--duckdb-memory", default="auto",
                        help="DuckDB's memory_limit (it spills beyond it); auto: by the "
                             "store's rows, as `mailhat contacts` does")
    parser.add_argument("--stores", type=Path,
                        default=Path(tempfile.gettempdir()) / "mailhat-bench-stores")
    parser.add_argument("--run", choices=["pandas", "duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_engine(args.run, args.store, args.spark_master,
                                    args.duckdb_memory, args.out)))
        return

    print(f"{os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.1f}; "
          f"DuckDB memory_limit {args.duckdb_memory}")
    duck: dict[int, dict[str, Any]] = {}
    ok = True
    frames = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    for rows in args.sizes:
        store = ensure_store(args.stores, rows, args.accounts)
        print(f"-- {rows:,} rows in {args.accounts} accounts ({store})")
        duck[rows] = r = measure(["--run", "duckdb", "--store", str(store),
                                  "--duckdb-memory", args.duckdb_memory, "--out", str(frames)])
        print("  " + _line(r))
        if rows >= 10_000_000:
            met = r["wall_s"] < 20 and r["peak_mib"] < 1536
            ok &= met
            print(f"  10M target (< 20 s, < 1.5 GB): {'met' if met else 'NOT met'}")
        if rows <= args.pandas_up_to:
            p = measure(["--run", "pandas", "--store", str(store), "--out", str(frames)])
            print("  " + _line(p))
            ratio_t = r["wall_s"] / p["wall_s"]
            ratio_m = r["peak_mib"] / p["peak_mib"]
            met = ratio_t <= 1.5 and ratio_m <= 1 / 3
            print(f"  DuckDB / pandas: {ratio_t:.2f}x the time, {ratio_m:.2f}x the memory "
                  f"(target <= 1.5x, <= 0.33x): {'met' if met else 'NOT met'}")
            for name in ("contacts", "histogram", "health"):
                pd.testing.assert_frame_equal(pd.read_parquet(frames / f"duckdb-{name}.parquet"),
                                              pd.read_parquet(frames / f"pandas-{name}.parquet"))
            print(f"  same rows: the team's {r['contacts']:,} contacts (with owners), the "
                  f"reply-time histogram, data health of {r['folders']} folders")
    sizes = sorted(duck)
    for small, big in itertools.pairwise(sizes):
        f = big / small
        t = duck[big]["wall_s"] / duck[small]["wall_s"]
        m = duck[big]["peak_mib"] / duck[small]["peak_mib"]
        print(f"growth {small:,} -> {big:,} rows ({f:.1f}x): time {t:.2f}x, memory {m:.2f}x "
              f"({'no faster than the rows' if t <= f * 1.1 and m <= f * 1.1 else 'FASTER'})")
    if args.spark_enron:
        store = enron_store(args.stores)
        s = measure(["--run", "spark", "--store", str(store),
                     "--spark-master", args.spark_master])
        d = measure(["--run", "duckdb", "--store", str(store),
                     "--duckdb-memory", args.duckdb_memory])
        print("-- Enron store (3 mailboxes), Spark local mode vs DuckDB")
        print("  " + _line(s))
        print("  " + _line(d))
        print(f"  Spark start-up: {s['steps']['start']:.1f}s of {s['wall_s']:.1f}s wall "
              f"({s['steps']['start'] / s['wall_s']:.0%})")
    shutil.rmtree(frames, ignore_errors=True)
    print("PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
