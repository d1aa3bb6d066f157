"""DNS as a layer of its own: one resolver, configured once, failures named.

Everything the package asks of DNS (a probe's addresses, discovery's MX, SRV,
PTR and TXT records, a sync's server) goes through one :class:`Resolver`:
dnspython, pointed at the nameserver the caller chose (``--dns-server
IP[:PORT]``, e.g. the lab's) or, by default, the system's. Its exceptions
become :class:`~mailhat_nb.errors.DnsError` with a diagnosis code at one
boundary (:meth:`Resolver.query`):

=========================  =================
NXDOMAIN                   ``dns_not_found``
NoAnswer                   ``dns_no_record``
NoNameservers (SERVFAIL)   ``dns_servfail``
LifetimeTimeout            ``dns_timeout``
anything else              ``dns_failure``
=========================  =================

Addresses without ``--dns-server`` come from the system (``getaddrinfo``:
``/etc/hosts`` and ``localhost`` included), as every other program on the
machine would see them; with it, from that nameserver only, so the
connections go exactly where that DNS says.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.resolver
import dns.reversename

from mailhat_nb.errors import DnsError, UsageError

DEFAULT_LIFETIME = 5.0


@dataclass(frozen=True)
class Nameserver:
    """Where queries go: an IP address and a port."""

    address: str
    port: int = 53

    def __str__(self) -> str:
        return self.address if self.port == 53 else f"{self.address}:{self.port}"


def parse_dns_server(text: str) -> Nameserver:
    """Read ``--dns-server IP[:PORT]`` (``[v6]:PORT`` for IPv6).

    >>> parse_dns_server("127.0.9.53"), str(parse_dns_server("127.0.0.1:5353"))
    (Nameserver(address='127.0.9.53', port=53), '127.0.0.1:5353')

    Raises
    ------
    UsageError
        For anything that is not an IP address with an optional port.
    """
    raw = text.strip()
    host, port_text = raw, ""
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise UsageError(f"--dns-server {raw!r} is not an IP address: give the nameserver's "
                         "address, e.g. 192.0.2.53 or 127.0.0.1:5353") from None
    if not port_text:
        return Nameserver(address)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--dns-server {raw!r}: the port must be a number from 1 to 65535")
    return Nameserver(address, int(port_text))


@dataclass
class Addresses:
    """What a name resolves to, and through which CNAMEs."""

    name: str
    addresses: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """E.g. ``mail.a.example → a.example → 192.0.2.1``."""
        return " → ".join([self.name, *self.chain, ", ".join(self.addresses[:4])])


@dataclass(frozen=True)
class Srv:
    """One SRV record (RFC 2782); ``target`` "." means the service is not offered."""

    priority: int
    weight: int
    port: int
    target: str


def _text(name: Any) -> str:
    return str(name).rstrip(".").lower()


class Resolver:
    """The one DNS resolver of a run.

    Parameters
    ----------
    server:
        ``IP[:PORT]`` (or a :class:`Nameserver`) to send every query to;
        None for the system's configuration.
    lifetime:
        Seconds a whole lookup may take, retries included.
    """

    def __init__(self, server: str | Nameserver | None = None,
                 lifetime: float = DEFAULT_LIFETIME) -> None:
        self.server = parse_dns_server(server) if isinstance(server, str) else server
        self.lifetime = lifetime
        if self.server is None:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.exception.DNSException:  # no /etc/resolv.conf: nothing to ask
                self._resolver = dns.resolver.Resolver(configure=False)
        else:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [self.server.address]
            self._resolver.port = self.server.port
        self._resolver.lifetime = lifetime
        self._resolver.timeout = lifetime
        self._resolver.cache = dns.resolver.LRUCache()

    @property
    def system(self) -> bool:
        """True when the system's resolver configuration is used."""
        return self.server is None

    def describe(self) -> str:
        """Which nameserver answers, for step details."""
        return f"nameserver {self.server}" if self.server else "the system's resolver"

    # ------------------------------------------------------------- the boundary

    def query(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """One lookup; dnspython's exceptions become :class:`DnsError` here only.

        Raises
        ------
        DnsError
            With the code of the module table.
        """
        where = self.describe()
        try:
            return self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN as exc:
            raise DnsError("dns_not_found", f"{name} does not exist (NXDOMAIN from "
                           f"{where})") from exc
        except dns.resolver.NoAnswer as exc:
            raise DnsError("dns_no_record", f"{name} exists but has no {rdtype} record") \
                from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsError("dns_servfail", f"the nameservers failed to answer for {name} "
                           f"(SERVFAIL or refused, via {where}): the domain's DNS is broken "
                           "or its nameservers do not serve it") from exc
        except dns.resolver.LifetimeTimeout as exc:
            raise DnsError("dns_timeout", f"no answer for {name} from {where} within "
                           f"{self.lifetime:g} s") from exc
        except (dns.exception.DNSException, OSError, UnicodeError, ValueError) as exc:
            raise DnsError("dns_failure", f"looking up {name} failed: {exc}") from exc

    # ---------------------------------------------------------------- records

    def addresses(self, name: str) -> Addresses:
        """A and AAAA records of ``name``, following CNAMEs.

        An IP address is its own answer. Without a nameserver of its own the
        system resolver (``getaddrinfo``) answers.

        Raises
        ------
        DnsError
            When the name has no address (``dns_no_record`` when it exists
            without one).
        """
        name = name.strip().rstrip(".").lower()
        try:
            return Addresses(name, [str(ipaddress.ip_address(name))])
        except ValueError:
            pass
        if self.system:
            entries = system_lookup(name, None, self.lifetime)
            return Addresses(name, list(dict.fromkeys(e[4][0] for e in entries)))
        found = Addresses(name)
        errors: list[DnsError] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self.query(name, rdtype)
            except DnsError as exc:
                errors.append(exc)
                if exc.code == "dns_not_found":
                    raise
                continue
            found.addresses += [str(r) for r in answer]
            chain = [_text(rr[0].target) for rr in answer.chaining_result.cnames]
            found.chain = found.chain or chain
        if not found.addresses:
            worst = next((e for e in errors if e.code != "dns_no_record"), errors[0])
            if worst.code == "dns_no_record":
                raise DnsError("dns_no_record", f"{name} exists but has no address (A/AAAA) "
                               "record") from worst
            raise worst
        return found

    def sockaddrs(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """``getaddrinfo``-shaped entries for ``host``:``port`` from this resolver."""
        if self.system:
            return system_lookup(host, port, self.lifetime)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
                if ":" in address else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in self.addresses(host).addresses]

    def mx(self, domain: str) -> list[tuple[int, str]]:
        """MX records, lowest preference first; ``(0, "")`` is a null MX (RFC 7505)."""
        answer = self.query(domain, "MX")
        return sorted((r.preference, _text(r.exchange)) for r in answer)

    def ptr(self, address: str) -> list[str]:
        """Reverse DNS names of an IP address."""
        return sorted(_text(r.target) for r in self.query(
            dns.reversename.from_address(address).to_text(), "PTR"))

    def srv(self, name: str) -> list[Srv]:
        """SRV records, in priority order (then by weight, heaviest first)."""
        records = [Srv(r.priority, r.weight, r.port, _text(r.target))
                   for r in self.query(name, "SRV")]
        return sorted(records, key=lambda s: (s.priority, -s.weight, s.target))

    def txt(self, name: str) -> list[str]:
        """TXT records, each joined from its strings."""
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self.query(name, "TXT")]


def system_lookup(name: str, port: int | None, timeout: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` (``/etc/hosts``, ``localhost``...) within ``timeout``.

    The system's resolver has no deadline of its own, so it runs in a thread
    that is given up on.

    Raises
    ------
    DnsError
        ``dns_not_found``, ``dns_timeout`` or ``dns_failure``.
    """
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["addrs"] = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            box["error"] = exc

    worker = threading.Thread(target=work, daemon=True, name=f"dns-{name}")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DnsError("dns_timeout", f"{name}: the system's resolver did not answer within "
                       f"{timeout:g} s")
    exc = box.get("error")
    if isinstance(exc, socket.gaierror):
        code, text = classify_dns(exc)
        raise DnsError(code, f"{name}: {text}") from exc
    if exc is not None:
        raise DnsError("dns_failure", f"{name}: {exc}") from exc
    addrs: list[tuple[Any, ...]] = box["addrs"]
    return addrs


def classify_dns(exc: socket.gaierror) -> tuple[str, str]:
    """``dns_not_found`` for a name that does not exist, else ``dns_failure``.

    >>> classify_dns(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))[0]
    'dns_not_found'
    """
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return "dns_not_found", f"the name does not exist ({exc.strerror})"
    return "dns_failure", f"the lookup failed ({exc.strerror or exc})"


def resolves_to(resolver: Resolver, name: str) -> set[str]:
    """The addresses ``name`` resolves to; empty when it does not (``certificate.vet``'s lookup)."""
    try:
        return set(resolver.addresses(name).addresses)
    except DnsError:
        return set()
