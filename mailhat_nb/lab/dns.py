"""The lab's DNS: a private unbound resolving the world's zone files.

Why unbound (Debian ``unbound``): the product's ``--dns-server`` normally
names a *resolver* (the company's, the ISP's), and unbound is a real one.
It loads every zone of :func:`mailhat_nb.lab.world.zones` from zone files
(``auth-zone`` with ``for-upstream``), including the lab's own root zone, so
it resolves iteratively (CNAME chains across zones, referrals) without a
packet leaving loopback, and its failures are the real ones: ``broken.example``
is delegated to a nameserver that refuses (unbound's second address, with
``interface-action: refuse``), and unbound answers SERVFAIL, as resolvers do
for a lame delegation. Authoritative-only servers (nsd, knot) would answer
REFUSED for such a name; dnsmasq reads hosts-style data, not zone files.

Everything lives under ``<root>/dns/``; unbound runs in the foreground
(``unbound -d -c <root>/dns/unbound.conf``), its pid recorded in
``lab.json`` and stopped by ``lab down`` like Dovecot.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from mailhat_nb.errors import LabError
from mailhat_nb.lab import world as world_mod
from mailhat_nb.lab.layout import LabPaths
from mailhat_nb.lab.world import World

UNBOUND = "/usr/sbin/unbound"
START_TIMEOUT = 10.0


def _zone_file(directory: Path, zone: str) -> Path:
    return directory / ("root.zone" if zone == "." else f"{zone.rstrip('.')}.zone")


def write_config(paths: LabPaths, world: World) -> Path:
    """Write the zone files and ``unbound.conf``; return the config's path."""
    directory = paths.unbound_conf.parent
    directory.mkdir(exist_ok=True)
    zones = world_mod.zones(world)
    for zone, text in zones.items():
        _zone_file(directory, zone).write_text(text)
    lame = world.ip(world_mod.LAME)
    lines = [
        "# Written by `mailhat lab up`: the lab's resolver (see mailhat_nb/lab/dns.py).",
        "server:",
        f"  interface: {world.resolver}",
        f"  interface: {lame}",
        f"  interface-action: {lame} refuse",
        "  port: 53",
        "  do-ip6: no",
        "  num-threads: 1",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{directory}"',
        f'  logfile: "{paths.log / "unbound.log"}"',
        "  use-syslog: no",
        "  verbosity: 1",
        '  pidfile: ""',
        "  do-not-query-localhost: no",
        "  access-control: 127.0.0.0/8 allow",
        '  module-config: "iterator"',
        # Never the Internet's root servers: their hints name the lab's own.
        f'  root-hints: "{directory / "root.hints"}"',
        # The default local zone for 127.in-addr.arpa would hide the world's PTRs.
        '  local-zone: "127.in-addr.arpa." nodefault',
        "  cache-max-ttl: 5",
        "  cache-max-negative-ttl: 5",
    ]
    for zone in zones:
        lines += ["auth-zone:", f'  name: "{zone}"',
                  f'  zonefile: "{_zone_file(directory, zone)}"',
                  "  for-downstream: no", "  for-upstream: yes", "  fallback-enabled: no"]
    lines += ["remote-control:", "  control-enable: no"]
    (directory / "root.hints").write_text(f". IN NS ns.lab.\nns.lab. IN A {world.resolver}\n")
    paths.unbound_conf.write_text("\n".join(lines) + "\n")
    return paths.unbound_conf


def start(paths: LabPaths, world: World) -> int:
    """Start the lab's unbound and wait until it answers; return its pid.

    Raises
    ------
    LabError
        When unbound is missing, exits, or does not answer in time.
    """
    if not Path(UNBOUND).exists():
        raise LabError("the lab's DNS needs Debian's unbound (apt-get install unbound)")
    conf = write_config(paths, world)
    log = paths.log / "unbound-start.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([UNBOUND, "-d", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise LabError(f"unbound exited at start:\n{tail}")
        if answers(world.resolver):
            return proc.pid
        time.sleep(0.05)
    proc.kill()
    raise LabError(f"unbound did not answer on {world.resolver} within {START_TIMEOUT:.0f}s")


def answers(address: str, timeout: float = 0.3) -> bool:
    """True when the resolver at ``address`` answers a query for the shared server."""
    query = dns.message.make_query(world_mod.SHARED_NAME, "A")
    try:
        reply = dns.query.udp(query, address, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)
