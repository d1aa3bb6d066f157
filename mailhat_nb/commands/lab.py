"""``mailhat lab up | down | status | scenario NAME | generate``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from mailhat_nb.lab import SCENARIOS, Lab
from mailhat_nb.lab.state import as_dict


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat lab`` and its actions."""
    parser = sub.add_parser(
        "lab", help="start, stop, inspect or switch the local lab mail server",
        description="A private Dovecot (IMAP, POP3) + Exim (SMTP) on 127.0.0.1 high ports "
        "with demo mailboxes and switchable fault scenarios. Its directory is $MAILHAT_LAB_DIR "
        "(default /tmp/mailhat-lab).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the lab (installs Dovecot/Exim if missing)")
    up.add_argument("--scenario", default="normal", choices=list(SCENARIOS))
    up.set_defaults(func=_up)
    actions.add_parser("down", help="stop what `up` started").set_defaults(func=_down)
    status = actions.add_parser("status", help="print ports and check each service answers")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)
    scen = actions.add_parser(
        "scenario", help="switch the running lab to a fault scenario",
        description="Scenarios: " + "; ".join(f"{s.name}: {s.title}" for s in SCENARIOS.values()),
    )
    scen.add_argument("name", choices=list(SCENARIOS))
    scen.set_defaults(func=_scenario)
    gen = actions.add_parser("generate", help="fill a lab user's mailbox with generated mail")
    gen.add_argument("--user", default="bench", help="lab user (default: bench)")
    gen.add_argument("--count", type=int, default=10_000, help="messages (default: 10000)")
    gen.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    gen.set_defaults(func=_generate)


def _up(args: argparse.Namespace) -> int:
    lab = Lab()
    start = time.monotonic()
    info = lab.up(scenario=args.scenario)
    print(f"lab up in {time.monotonic() - start:.1f}s: {info.root} (scenario {info.scenario})")
    print(f"  server   {info.server}   demo account {info.email('alice')}")
    print(f"  CA file  {info.ca_file}")
    print(f"  presets  {info.presets}")
    print(f"  DNS      {info.dns_server} (--dns-server): customer domains such as "
          f"info@bakery.example on {info.world['shared_server']}")
    print("  ports    " + "  ".join(f"{name}={port}" for name, port in info.ports.items()))
    return 0


def _down(args: argparse.Namespace) -> int:
    notes: list[str] = []

    def say(note: str) -> None:
        notes.append(note)
        print(f"lab down: {note}", file=sys.stderr)

    stopped = Lab().down(say=say)
    nothing = "nothing" + ("" if notes else " (was not running)")
    print("lab down: stopped " + (", ".join(stopped) if stopped else nothing))
    return 0


def _status(args: argparse.Namespace) -> int:
    lab = Lab()
    info = lab.info()
    checks = lab.checks(info)
    if args.json:
        print(json.dumps(as_dict(info, checks), indent=2, sort_keys=True))
        return 0
    scenario = SCENARIOS[info.scenario]
    expected = lab.expected(scenario)
    print(f"lab {info.root}: scenario {info.scenario} ({scenario.title}); "
          f"server {info.server}; CA {info.ca_file}; DNS {info.world.get('resolver', '-')}")
    print(f"{'service':<12} {'port':>6} {'stands for':>10}  {'behaviour':<10} check")
    healthy = True
    for c in checks:
        ok = c.behaviour == expected[c.service]
        healthy &= ok
        std = str(info.stands_for.get(c.service, "-"))
        print(f"{c.service:<12} {c.port:>6} {std:>10}  {c.behaviour:<10} "
              f"{'✓' if ok else '✗ expected ' + expected[c.service]}  {c.detail[:60]}")
    return 0 if healthy else 1


def _scenario(args: argparse.Namespace) -> int:
    info = Lab().set_scenario(args.name)
    scenario = SCENARIOS[info.scenario]
    print(f"scenario {scenario.name}: {scenario.title}. {scenario.story}")
    print(f"diagnose with --server {info.server}; the doctor should say: {scenario.expect}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from mailhat_nb.lab.generate import generate_into_lab

    start = time.monotonic()
    counts = generate_into_lab(Lab(), args.user, args.count, args.seed)
    total = sum(counts.values())
    print(f"generated {total} messages for {args.user}@localhost in "
          f"{time.monotonic() - start:.1f}s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
