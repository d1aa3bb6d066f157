"""``mailhat discover``: find an address's mail server, with the evidence, no password.

Exit 0 when a host can be recommended, 1 when none can (the problems say
why), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json

from mailhat_nb.checks import check_given, check_timeout
from mailhat_nb.commands import add_dns_server
from mailhat_nb.diagnose.certificate import verified_context
from mailhat_nb.diagnose.dns import Resolver, parse_dns_server
from mailhat_nb.discovery import DEFAULT_TIMEOUT, Discovery, discover


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat discover``."""
    parser = sub.add_parser(
        "discover", help="find an address's mail server and say why (no password)",
        description="From the email address alone: SRV records, autoconfig, MX and its "
        "provider, mail.<domain>, reverse DNS, the SMTP banner and the certificate on "
        "993/465, all at once within one timeout; candidates ranked, each with its "
        "evidence. Sends no password anywhere. Exit 0 when a host is recommended, 1 when "
        "none is, 2 on bad usage.")
    parser.add_argument("--email", required=True, help="the customer's email address")
    add_dns_server(parser)
    parser.add_argument("--ca-file", metavar="PEM",
                        help="extra CA certificates to trust (corporate CA, the lab CA)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds the whole discovery may take (default "
                        f"{DEFAULT_TIMEOUT:g})")
    parser.add_argument("--json", action="store_true", help="print the discovery as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Discover, print, and return the exit code."""
    check_given(args.ca_file, "--ca-file", "give a PEM file of CA certificates, or leave "
                "--ca-file out")
    check_timeout(args.timeout, "--timeout")
    server = parse_dns_server(args.dns_server) if args.dns_server is not None else None
    verified_context(args.ca_file)
    found = discover(args.email, Resolver(server, lifetime=args.timeout), args.ca_file,
                     args.timeout)
    print(json.dumps(found.to_dict(), indent=2, ensure_ascii=False) if args.json
          else to_text(found))
    return 0 if found.recommended else 1


def to_text(found: Discovery) -> str:
    """The terminal view of a discovery."""
    out = [f"Discovery for {found.email} ({found.elapsed_ms / 1000:.2f} s)"]
    if found.provider:
        out.append(f"  provider: {found.provider.name} ({found.provider.evidence})")
    best = found.recommended
    out.append(f"  type this server name: {best.host}" if best else
               "  no server name can be recommended")
    out.append("")
    for c in found.candidates:
        mark = "✓" if c.recommended else "·"
        out.append(f"{mark} {c.why}")
        out += [f"      {s.kind}: {s.detail}" for s in c.sources]
    if found.settings:
        out += ["", "Settings found:"]
        out += [f"  {s.protocol.upper()} {s.host} port {s.port} {s.security} (from {s.source})"
                for s in found.settings]
    out += [f"✗ [{p.code}] {p.detail}" for p in found.problems]
    out += [f"  note: {n}" for n in found.notes]
    return "\n".join(out)
