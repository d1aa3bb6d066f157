"""Benchmark: discovery on the lab's world, concurrent vs the same lookups one after another.

1. Discovery alone for ``info@bakery.example`` (the HostGator-style customer),
   against a baseline in the same run: the same questions (MX, six SRV
   names, mail.<domain>, SPF/DMARC/DKIM, autoconfig's four URLs, reverse
   DNS, SMTP banner, certificate) asked one after another.
2. How the cost grows: 1, 3 and 10 discoveries of different customers, one
   after another.
3. Discovery plus the full sweep, no server name given, for
   ``a@slow.example``, whose autoconfig host never answers: it must end
   within the sweep's own time (the same sweep with the server name typed)
   plus one timeout.

Usage::

    .venv/bin/python benchmarks/bench_discovery.py [--timeout 3] [--rounds 5] [--json out.json]

Uses the lab in $MAILHAT_LAB_DIR (default /tmp/mailhat-lab), starting it
(and stopping it again) when it is not running. Needs root, like the lab.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from mailhat_nb.diagnose import Account, diagnose
from mailhat_nb.diagnose.dns import Resolver
from mailhat_nb.discovery import autoconfig, discover, health, probes
from mailhat_nb.discovery.run import SRV_SERVICES, chain_context
from mailhat_nb.errors import DnsError
from mailhat_nb.lab import Lab
from mailhat_nb.lab.world import SHARED_NAME

CUSTOMERS = ["info@bakery.example", "x@florist.example", "office@tea.example",
             "hello@cafe.example", "b@bigcorp.example"]


def median_time(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_after_another(email: str, resolver: Resolver, ca_file: str, timeout: float) -> None:
    """The baseline: discovery's questions, each waiting for the one before."""
    domain = email.partition("@")[2]
    context = chain_context(ca_file, None)  # the same (cached) context discovery uses

    def ask(fn: Callable[[], object]) -> object:
        try:
            return fn()
        except DnsError:
            return None

    mx = ask(lambda: resolver.mx(domain)) or []
    for service in SRV_SERVICES:
        ask(lambda s=service: resolver.srv(f"{s}.{domain}"))
    health.facts(resolver, domain)
    autoconfig.fetch(email, domain, resolver, context, time.monotonic() + timeout)
    hosts = [h for _, h in mx] + [f"mail.{domain}"]  # type: ignore[union-attr]
    for host in hosts:
        found = ask(lambda h=host: resolver.addresses(h))
        for address in getattr(found, "addresses", []):
            ask(lambda a=address: resolver.ptr(a))
            probes.smtp_banner(address, 25, timeout)
            probes.certificate(address, 993, host, context, timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    lab = Lab()
    started = not lab.is_running()
    info = lab.up() if started else lab.info()
    try:
        resolver = Resolver(info.dns_server, lifetime=args.timeout)
        email = "info@bakery.example"
        found = discover(email, resolver, info.ca_file, args.timeout)
        assert found.recommended is not None
        assert found.recommended.host == SHARED_NAME
        concurrent = median_time(
            lambda: discover(email, resolver, info.ca_file, args.timeout), args.rounds)
        sequential = median_time(
            lambda: one_after_another(email, resolver, info.ca_file, args.timeout), args.rounds)
        print(f"discovery alone ({email}), median of {args.rounds}: {concurrent * 1000:.0f} ms "
              f"concurrent vs {sequential * 1000:.0f} ms one after another "
              f"({sequential / concurrent:.1f}x); bound 500 ms: "
              f"{'met' if concurrent < 0.5 else 'MISSED'}")
        base = None
        for count in (1, 3, 10):
            emails = [CUSTOMERS[i % len(CUSTOMERS)] for i in range(count)]
            took = median_time(lambda e=emails: [discover(x, resolver, info.ca_file,
                                                          args.timeout) for x in e], 3)
            base = base or took
            print(f"  {count:>2} discoveries one after another: {took * 1000:.0f} ms "
                  f"({took / base:.1f}x the cost of one)")
        account = Account.from_input("a@slow.example", "not-a-real-password",
                                     server=SHARED_NAME)
        sweep = median_time(lambda: diagnose(account, presets="hostgator",
                                             ca_file=info.ca_file, timeout=args.timeout,
                                             dns_server=resolver), 3)
        blind = Account.from_input("a@slow.example", "not-a-real-password")
        whole = median_time(lambda: diagnose(blind, presets="hostgator",
                                             ca_file=info.ca_file, timeout=args.timeout,
                                             dns_server=resolver), 3)
        bound = sweep + args.timeout
        print(f"discovery + sweep with a hanging autoconfig host (a@slow.example, timeout "
              f"{args.timeout:g} s): {whole:.2f} s; the sweep alone {sweep:.2f} s; bound "
              f"{bound:.2f} s: {'met' if whole <= bound else 'MISSED'}")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "email": email, "concurrent": concurrent, "sequential": sequential,
                "timeout": args.timeout, "sweep": sweep, "whole": whole}, indent=2))
    finally:
        if started:
            lab.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
