"""Benchmark: a full HostGator sweep against the lab, concurrent vs one after another.

Two presets are pointed at ports that swallow the connection (one silent
after the TCP handshake, one that drops SYNs), as a customer's firewall or a
hung service would. Concurrently the sweep should take about one timeout;
one after another, the sum of the stalls.

Usage::

    .venv/bin/python benchmarks/bench_diagnose.py [--timeout 5] [--rounds 3] [--json out.json]

Uses the lab in $MAILHAT_LAB_DIR (default /tmp/mailhat-lab), starting it
(and stopping it again) when it is not running. Needs root, like the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from mailhat_nb.diagnose import Account, diagnose, load_presets
from mailhat_nb.lab import Lab, LabInfo

STALLED = {"hostgator-smtp-none-26": "silent", "pop3-none-110": "blackhole"}


def write_presets(info: LabInfo, directory: Path) -> Path:
    """The lab's HostGator presets, with two of them pointed at misbehaving ports."""
    lines = []
    for p in load_presets(info.presets):
        port = info.ports[STALLED[p.id]] if p.id in STALLED else p.port
        lines += ["[[preset]]", f'id = "{p.id}"', f'label = "{p.label}"',
                  f'protocol = "{p.protocol}"', f'host = "{p.host}"', f"port = {port}",
                  f'security = "{p.security}"', f"stands_for = {p.std_port}", ""]
    path = directory / "bench-presets.toml"
    path.write_text("\n".join(lines))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    lab = Lab()
    started = not lab.is_running()
    info = lab.up() if started else lab.info()
    try:
        if info.scenario != "normal":
            info = lab.set_scenario("normal")
        account = Account.from_input(info.email("alice"), lab.password("alice"),
                                     server=info.server)
        with tempfile.TemporaryDirectory() as tmp:
            presets = write_presets(info, Path(tmp))
            times: dict[str, list[float]] = {"concurrent": [], "sequential": []}
            for _ in range(args.rounds):
                for mode in times:
                    start = time.monotonic()
                    report = diagnose(account, presets=str(presets), ca_file=info.ca_file,
                                      timeout=args.timeout, concurrent=(mode == "concurrent"))
                    times[mode].append(time.monotonic() - start)
                    codes = {r.preset.id: r.code for r in report.results}
                    assert codes["hostgator-smtp-none-26"] == "no_greeting", codes
                    assert codes["pop3-none-110"] == "connect_timeout", codes
                    assert codes["hostgator-imap-ssl"] == "ok", codes
        conc = statistics.median(times["concurrent"])
        seq = statistics.median(times["sequential"])
        print(f"{len(report.results)} presets, 2 stalled ports (silent + blackhole), "
              f"timeout {args.timeout:g} s, median of {args.rounds} rounds")
        print(f"  concurrent:         {conc:6.2f} s   (all: "
              + ", ".join(f"{t:.2f}" for t in times["concurrent"]) + ")")
        print(f"  one after another:  {seq:6.2f} s   (all: "
              + ", ".join(f"{t:.2f}" for t in times["sequential"]) + ")")
        print(f"  ratio (sequential / concurrent): {seq / conc:.1f}x; concurrent overhead "
              f"over one timeout: {conc - args.timeout:+.2f} s")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "presets": len(report.results), "stalled": len(STALLED),
                "timeout": args.timeout, "rounds": args.rounds, "cpus": os.cpu_count(),
                "concurrent": conc, "sequential": seq}, indent=2))
    finally:
        if started:
            lab.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
