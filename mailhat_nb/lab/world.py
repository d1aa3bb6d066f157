"""The lab's small Internet: customer domains, a shared server, and their DNS.

A support agent's hardest case is not a broken server but a customer who
does not know its name. The world gives the lab what a real customer's
address leads to, on a loopback block of its own (``127.0.N.0/24``, one per
lab, so labs side by side never meet) where every service sits on its
*standard* port, as on the Internet:

=============  ==========================================================
``.10``        the shared server ``gator4321.hostgator.com`` (Dovecot, every
               mail port); its certificate covers that name, not the
               customers' ``mail.<domain>``; its PTR is that name
``.20``        where ``aspmx.l.google.com`` points (nothing listens)
``.30``        the lab's web host: autoconfig for ``cafe.example``
``.40``        a web proxy the DNS of ``moved.example`` now points at:
               80/443 answer, 993 drops the packets
``.41``        ``autoconfig.slow.example``: accepts and never answers
``.53``        the resolver (unbound): ``--dns-server 127.0.N.53``
``.54``        a nameserver that refuses (the lame delegation of ``broken.example``)
``.55``        a resolver that never answers (``dns_timeout``)
=============  ==========================================================

Customer domains, each a real pattern from tickets:

* ``bakery.example``: HostGator-style, MX ``mail.bakery.example``, a CNAME to
  the domain, which resolves to the shared server; SPF, DMARC and a DKIM key;
* ``florist.example``: on the same server, MX the domain itself, no
  ``mail.florist.example`` at all, SPF that does not name the server;
* ``tea.example``: publishes RFC 6186 SRV records;
* ``cafe.example``: serves Mozilla autoconfig (HTTPS and HTTP);
* ``slow.example``: on the shared server, its autoconfig host hangs;
* ``bigcorp.example``: MX at Google (Workspace);
* ``moved.example``: DNS moved to a proxy (``mail_host_elsewhere``);
* ``gone.example``: does not exist; ``broken.example``: its nameserver fails.

Zone data is written as zone files under ``<root>/dns/`` (see
:mod:`mailhat_nb.lab.dns`), web content under ``<root>/www/<host>/``.
"""

from __future__ import annotations

import json
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from mailhat_nb.errors import LabError
from mailhat_nb.lab import certs
from mailhat_nb.lab.layout import LabPaths
from mailhat_nb.lab.ports import bindable
from mailhat_nb.lab.procs import WEB_MODULE, spawn
from mailhat_nb.lab.scenarios import STANDS_FOR

#: Host part of each role in the world's /24.
SHARED, GOOGLE, WEB, PROXY, HANG, RESOLVER, LAME, SILENT_DNS = 10, 20, 30, 40, 41, 53, 54, 55
SHARED_NAME = "gator4321.hostgator.com"
#: The shared server's certificate: the lab's ``wrong-host`` one, which covers
#: gator4321.hostgator.com and *.hostgator.com, not the customers' mail.<domain>.
SHARED_CERT = "wrong-host"
#: Lab users at the customer domains (local part -> domain); their homes are
#: ``mail/<local part>``, so local parts are unique across the lab.
USERS: dict[str, str] = {
    "info": "bakery.example", "office": "tea.example", "hello": "cafe.example",
}
#: Every customer domain and what it shows (for docs, the walkthrough and tests).
DOMAINS: dict[str, str] = {
    "bakery.example": "HostGator-style: MX mail.<domain>, a CNAME to the shared server",
    "florist.example": "on the shared server; mail.<domain> does not exist",
    "tea.example": "publishes SRV records (RFC 6186)",
    "cafe.example": "serves autoconfig over HTTPS and HTTP",
    "slow.example": "on the shared server; its autoconfig host never answers",
    "bigcorp.example": "mail at Google Workspace (MX aspmx.l.google.com)",
    "moved.example": "DNS moved to a web proxy: 80/443 answer, 993 times out",
    "gone.example": "does not exist (NXDOMAIN)",
    "broken.example": "its nameserver refuses (SERVFAIL)",
}


@dataclass(frozen=True)
class World:
    """One lab's world: its /24 on loopback."""

    block: int

    def ip(self, host: int) -> str:
        """The address of role ``host`` (e.g. :data:`SHARED`)."""
        return f"127.0.{self.block}.{host}"

    @property
    def resolver(self) -> str:
        """What to pass as ``--dns-server``."""
        return self.ip(RESOLVER)

    @property
    def silent_resolver(self) -> str:
        """A resolver address that never answers."""
        return self.ip(SILENT_DNS)

    @property
    def reverse_zone(self) -> str:
        """The reverse zone of the block."""
        return f"{self.block}.0.127.in-addr.arpa."

    def tcp_ports(self) -> list[tuple[str, int]]:
        """Every TCP (address, port) the world's servers bind."""
        ports = [(self.ip(SHARED), p) for p in STANDS_FOR.values()]
        ports += [(self.ip(h), p) for h in (WEB, PROXY, HANG) for p in (80, 443)]
        ports += [(self.ip(PROXY), 993)]
        ports += [(self.ip(h), 53) for h in (RESOLVER, LAME)]
        return ports

    def udp_ports(self) -> list[tuple[str, int]]:
        """Every UDP (address, port) the world's servers bind."""
        return [(self.ip(h), 53) for h in (RESOLVER, LAME, SILENT_DNS)]

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> World | None:
        """The world ``lab.json`` records (see :meth:`to_dict`); None when there is none."""
        parts = data.get("resolver", "").split(".")
        if len(parts) != 4 or parts[:2] != ["127", "0"] or parts[3] != str(RESOLVER) \
                or not parts[2].isdigit() or not 0 < int(parts[2]) < 255:
            return None
        return cls(int(parts[2]))

    def to_dict(self) -> dict[str, str]:
        """What ``lab.json`` records of the world."""
        return {"resolver": self.resolver, "silent_resolver": self.silent_resolver,
                "shared_server": SHARED_NAME, "shared_address": self.ip(SHARED)}


def allocate(rng: random.Random | None = None) -> World:
    """Pick a /24 of 127.0.0.0/8 whose world ports are all free.

    Raises
    ------
    LabError
        When no block is free: something listens on the standard mail ports
        of every loopback address (a system mail server bound to all
        addresses does that).
    """
    rng = rng or random.Random()  # noqa: S311 - address choice, not security
    blocks = list(range(10, 250))
    rng.shuffle(blocks)
    for block in blocks[:40]:
        world = World(block)
        if all(bindable(socket.SOCK_STREAM, a, p) for a, p in world.tcp_ports()) and all(
                bindable(socket.SOCK_DGRAM, a, p) for a, p in world.udp_ports()):
            return world
    raise LabError("no loopback block 127.0.N.0/24 has the standard mail, web and DNS ports "
                   "free: is a system mail or DNS server listening on all addresses?")


# ------------------------------------------------------------------ zone data

_SOA = "@ IN SOA ns.lab. hostmaster.lab. 1 3600 600 86400 300"
_DKIM = ("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlabkeyforthe"
         "mailhatlabonlyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQAB")


def _zone(origin: str, records: list[str]) -> str:
    head = [f"$ORIGIN {origin}", "$TTL 300", _SOA, "@ IN NS ns.lab."]
    return "\n".join(head + records) + "\n"


def zones(world: World) -> dict[str, str]:
    """Zone name -> zone file text, for every zone the lab's resolver holds.

    The root zone is the lab's own, so no query ever leaves loopback: a name
    outside the world does not exist.
    """
    ip = world.ip
    shared = ip(SHARED)
    customers = {
        "bakery.example.": [
            f"@ IN A {shared}", "@ IN MX 0 mail", "mail IN CNAME @", "www IN CNAME @",
            f'@ IN TXT "v=spf1 +a +mx +ip4:{shared} ~all"',
            '_dmarc IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@bakery.example"',
            f'default._domainkey IN TXT "{_DKIM}"',
        ],
        "florist.example.": [
            f"@ IN A {shared}", "@ IN MX 0 @", "www IN CNAME @",
            '@ IN TXT "v=spf1 include:_spf.google.com ~all"',
        ],
        "tea.example.": [
            f"@ IN A {shared}", "@ IN MX 10 mail", f"mail IN A {shared}",
            f"_imaps._tcp IN SRV 0 1 993 {SHARED_NAME}.",
            "_imap._tcp IN SRV 0 0 0 .",
            f"_pop3s._tcp IN SRV 10 1 995 {SHARED_NAME}.",
            f"_submissions._tcp IN SRV 0 1 465 {SHARED_NAME}.",
            f"_submission._tcp IN SRV 5 1 587 {SHARED_NAME}.",
            f'@ IN TXT "v=spf1 ip4:{shared} -all"',
            '_dmarc IN TXT "v=DMARC1; p=reject"',
        ],
        "cafe.example.": [
            f"@ IN A {ip(WEB)}", "@ IN MX 10 mail", f"mail IN A {shared}",
            f"autoconfig IN A {ip(WEB)}", '@ IN TXT "v=spf1 a:mail.cafe.example ~all"',
        ],
        "slow.example.": [
            f"@ IN A {shared}", "@ IN MX 0 mail", f"mail IN A {shared}",
            f"autoconfig IN A {ip(HANG)}",
        ],
        "bigcorp.example.": [
            f"@ IN A {ip(WEB)}", "@ IN MX 1 aspmx.l.google.com.",
            "@ IN MX 5 alt1.aspmx.l.google.com.",
            '@ IN TXT "v=spf1 include:_spf.google.com ~all"',
            '_dmarc IN TXT "v=DMARC1; p=none"',
        ],
        "moved.example.": [
            f"@ IN A {ip(PROXY)}", "@ IN MX 0 mail", f"mail IN A {ip(PROXY)}",
            f"www IN A {ip(PROXY)}",
        ],
    }
    example = [f"{name} IN NS ns.lab." for name in customers]
    # The lame delegation: the parent points at a nameserver that refuses.
    example += ["broken IN NS ns1.broken", f"ns1.broken IN A {ip(LAME)}"]
    out = {
        ".": _zone(".", ["lab. IN NS ns.lab.", f"ns.lab. IN A {world.resolver}",
                         "com. IN NS ns.lab.", "example. IN NS ns.lab.",
                         "cdnproxy.example. IN NS ns.lab."]),
        "example.": _zone("example.", example),
        "hostgator.com.": _zone("hostgator.com.", [
            f"{SHARED_NAME}. IN A {shared}", f"@ IN A {ip(WEB)}",
        ]),
        "gmail.com.": _zone("gmail.com.", [f"imap IN A {ip(GOOGLE)}",
                                           f"smtp IN A {ip(GOOGLE)}"]),
        "google.com.": _zone("google.com.", [
            f"aspmx.l IN A {ip(GOOGLE)}", f"alt1.aspmx.l IN A {ip(GOOGLE)}",
            f'_spf IN TXT "v=spf1 ip4:{ip(GOOGLE)} ~all"',
        ]),
        world.reverse_zone: _zone(world.reverse_zone, [
            f"{SHARED} IN PTR {SHARED_NAME}.", f"{GOOGLE} IN PTR aspmx.l.google.com.",
            f"{WEB} IN PTR web30.hostgator.com.", f"{PROXY} IN PTR edge40.cdnproxy.example.",
            f"{RESOLVER} IN PTR ns.lab.",
        ]),
    }
    out |= {name: _zone(name, records) for name, records in customers.items()}
    return out


# ------------------------------------------------------------------ web content


def autoconfig_xml(domain: str) -> str:
    """The Mozilla autoconfig (clientConfig v1.1) ``cafe.example`` publishes."""
    servers = "".join(
        f"""    <{tag} type="{kind}">
      <hostname>{SHARED_NAME}</hostname>
      <port>{port}</port>
      <socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>password-cleartext</authentication>
    </{tag}>
""" for tag, kind, port in (("incomingServer", "imap", 993), ("incomingServer", "pop3", 995),
                            ("outgoingServer", "smtp", 465)))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{domain}">
    <domain>{domain}</domain>
    <displayName>Cafe mail (hosted on {SHARED_NAME})</displayName>
{servers}  </emailProvider>
</clientConfig>
"""


def write_www(www: Path) -> None:
    """Write the web hosts' files: ``www/<host>/<path>``."""
    xml = autoconfig_xml("cafe.example")
    files = {
        "autoconfig.cafe.example/mail/config-v1.1.xml": xml,
        "cafe.example/.well-known/autoconfig/mail/config-v1.1.xml": xml,
        "cafe.example/index.html": "<h1>Cafe</h1>\n",
        "moved.example/index.html": "<h1>moved.example, served through the proxy</h1>\n",
        "mail.moved.example/index.html": "<h1>moved.example, served through the proxy</h1>\n",
    }
    for rel, text in files.items():
        path = www / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# ------------------------------------------------------------------ the web process

def start_web(paths: LabPaths, world: World) -> int:
    """Write the world's web content and config, start the process; return its pid.

    Raises
    ------
    LabError
        When the process exits or does not come up in time.
    """
    www = paths.root / "www"
    write_www(www)
    sites = {WEB: ("web", ("autoconfig.cafe.example", "cafe.example")),
             PROXY: ("proxy", ("moved.example", "*.moved.example"))}
    config = {
        "www": str(www),
        "sites": [{"address": world.ip(host),
                   **{k: str(v) for k, v in vars(certs.issue(paths.tls, stem, names)).items()}}
                  for host, (stem, names) in sites.items()],
        "silent": [[world.ip(HANG), 80], [world.ip(HANG), 443]],
        "blackhole": [[world.ip(PROXY), 993]],
        "silent_udp": [[world.silent_resolver, 53]],
    }
    config_file = paths.root / "web.json"
    config_file.write_text(json.dumps(config, indent=1))
    cmd = [sys.executable, "-m", WEB_MODULE, "--config", str(config_file), "--pid-file",
           str(paths.web_pid)]
    return spawn(cmd, paths.web_pid, paths.log / "web.log", "the lab's web server")

