"""Discovery: from an email address to the server name an agent should type.

Every source runs at once (Thunderbird's account setup does the same) and
the whole discovery is bounded by one ``timeout``: a source still busy then
(an autoconfig server that never answers) is left behind and said so, it
never stretches the run. Two waves: the DNS of the domain (MX, SRV,
``mail.<domain>``, SPF/DMARC/DKIM) and the autoconfig fetch start at once;
as soon as the DNS names hosts, each address they resolve to is asked what
it calls itself (reverse DNS, the SMTP banner on 25, the certificate on 993,
else 465), and whether web ports answer where mail ports do not (a domain
whose DNS moved to a web proxy).

No password is involved anywhere: nothing here has one.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from mailhat_nb.diagnose.certificate import verified_context
from mailhat_nb.diagnose.dns import Resolver, Srv
from mailhat_nb.discovery import autoconfig, health, probes, providers
from mailhat_nb.discovery.model import Candidate, Discovery, Problem, Setting
from mailhat_nb.discovery.rank import rank
from mailhat_nb.errors import DnsError, UsageError

DEFAULT_TIMEOUT = 5.0
#: RFC 6186 services: name -> (protocol, security).
SRV_SERVICES = {
    "_imaps._tcp": ("imap", "ssl"), "_imap._tcp": ("imap", "starttls"),
    "_submissions._tcp": ("smtp", "ssl"), "_submission._tcp": ("smtp", "starttls"),
    "_pop3s._tcp": ("pop3", "ssl"), "_pop3._tcp": ("pop3", "starttls"),
}
#: Implicit-TLS ports whose certificate names the server, in the order tried.
TLS_PORTS = (993, 465)
#: Evidence the domain itself publishes: only its hosts' addresses are asked
#: their names (a name a server gives itself is checked, not chased further).
PUBLISHED = frozenset({"srv", "autoconfig", "mx", "convention"})


@dataclass
class _Run:
    """The state of one discovery while its sources report."""

    found: Discovery
    resolver: Resolver
    context: ssl.SSLContext
    deadline: float
    pool: ThreadPoolExecutor
    pending: dict[Future[Any], Callable[[Any], None]] = field(default_factory=dict)
    hosts: dict[str, Candidate] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    questioned: set[str] = field(default_factory=set)
    by_address: dict[str, list[str]] = field(default_factory=dict)
    certs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    late: dict[Future[Any], str] = field(default_factory=dict)

    def remaining(self, share: float = 0.9) -> float:
        """Seconds a connection may take: a share of what is left, at least a little."""
        return max(0.05, (self.deadline - time.monotonic()) * share)

    def submit(self, what: str, fn: Callable[..., Any], done: Callable[[Any], None],
               *args: Any) -> None:
        future = self.pool.submit(fn, *args)
        self.pending[future] = done
        self.late[future] = what

    def candidate(self, host: str, kind: str, detail: str) -> Candidate:
        """The candidate for ``host`` (new ones get resolved), with this evidence added."""
        host = host.lower().rstrip(".")
        cand = self.hosts.setdefault(host, Candidate(host))
        cand.add(kind, detail)
        if kind in PUBLISHED and cand.resolves:
            for address in cand.addresses:
                self.ask_address(address, host)
        if host not in self.asked:
            self.asked.add(host)
            self.submit(f"resolving {host}", self._addresses, partial(self.resolved, host), host)
        return cand

    def _addresses(self, host: str) -> list[str] | DnsError:
        try:
            return self.resolver.addresses(host).addresses
        except DnsError as exc:
            return exc

    def resolved(self, host: str, result: list[str] | DnsError) -> None:
        cand = self.hosts[host]
        if isinstance(result, DnsError):
            cand.resolves = False
            if host == f"mail.{self.found.domain}":
                self.found.problems.append(Problem(result.code, str(result), host))
            return
        cand.resolves = True
        cand.addresses = result
        if host == f"mail.{self.found.domain}":
            # Does the customer's usual name still lead to a mail server?
            self.submit(f"web ports of {result[0]}", self._web_ports,
                        lambda state: self.web_checked(host, result[0], state), result[0])
        for address in result:
            self.by_address.setdefault(address, []).append(host)
            if address in self.certs:
                cand.certificate = cand.certificate or self.certs[address]
            if cand.kinds() & PUBLISHED:
                self.ask_address(address, host)

    def ask_address(self, address: str, host: str) -> None:
        """Ask the server at ``address`` its names: PTR, banner, certificate (once)."""
        if address in self.questioned:
            return
        self.questioned.add(address)
        self.submit(f"reverse DNS of {address}", self._ptr,
                    lambda names: self.named(address, "ptr", names,
                                             f"reverse DNS of {address}, the address of {host}"),
                    address)
        self.submit(f"SMTP banner of {address}", probes.smtp_banner,
                    lambda line: self.bannered(address, line), address, 25, self.remaining())
        self.submit(f"certificate of {address}", self._certificate,
                    lambda cert: self.certified(address, cert), address, host)

    def _ptr(self, address: str) -> list[str]:
        try:
            return self.resolver.ptr(address)
        except DnsError:
            return []

    def _certificate(self, address: str, host: str) -> dict[str, Any] | None:
        for port in TLS_PORTS:
            cert = probes.certificate(address, port, host, self.context, self.remaining(0.8))
            if cert is not None:
                return cert
        return None

    def _web_ports(self, address: str) -> dict[int, str]:
        timeout = min(2.0, self.remaining(0.5))
        return {port: probes.knock(address, port, timeout) for port in (993, 443, 80)}

    def named(self, address: str, kind: str, names: list[str], where: str) -> None:
        for name in names:
            self.candidate(name, kind, where)

    def bannered(self, address: str, line: str | None) -> None:
        name = probes.banner_name(line) if line else None
        if name and line:
            self.candidate(name, "banner", f"the SMTP banner on port 25 of {address} "
                           f"({line[:80]!r})")

    def certified(self, address: str, cert: dict[str, Any] | None) -> None:
        self.certs[address] = cert
        if cert is None:
            return
        for host in self.by_address.get(address, []):
            self.hosts[host].certificate = cert
        where = f"the certificate on port {cert['port']} of {address} names it"
        for name in cert.get("names", []):
            if not name.startswith("*.") and any(c.isalpha() for c in name):
                self.candidate(name, "certificate", where).certificate = cert

    def web_checked(self, host: str, address: str, state: dict[int, str]) -> None:
        web = [p for p in (443, 80) if state[p] == "open"]
        if state[993] in ("timeout", "refused") and web:
            self.found.problems.append(Problem(
                "mail_host_elsewhere", subject=host, detail=
                f"{host} resolves to {address}, where the web ports "
                f"({', '.join(map(str, web))}) answer but the mail port 993 "
                f"{'times out' if state[993] == 'timeout' else 'is closed'}: "
                f"{host} points at a web server or proxy, not at the mail server (the domain's "
                "DNS moved, or the record is proxied)"))

    def wait(self) -> None:
        """Run callbacks as sources finish, until all are done or the deadline passes."""
        while self.pending:
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            done, _ = wait(list(self.pending), timeout=left, return_when=FIRST_COMPLETED)
            for future in done:
                callback = self.pending.pop(future)
                self.late.pop(future, None)
                callback(future.result())
        for what in sorted(set(self.late.values())):
            self.found.notes.append(f"not finished within the timeout: {what}")


def discover(email: str, resolver: Resolver | str | None = None,
             ca_file: str | Path | None = None, timeout: float = DEFAULT_TIMEOUT) -> Discovery:
    """Find the mail server of ``email`` and the evidence for it.

    Parameters
    ----------
    resolver:
        A :class:`Resolver`, ``IP[:PORT]`` of a nameserver, or None for the
        system's.
    ca_file:
        Extra CA certificates to trust when judging certificates.
    timeout:
        Seconds the whole discovery may take.

    Raises
    ------
    UsageError
        For an address without a domain, or an unusable CA file.
    """
    start = time.monotonic()
    local, at, domain = email.strip().rpartition("@")
    domain = domain.lower().rstrip(".")
    if not at or not local or not domain or any(c.isspace() for c in domain):
        raise UsageError(f"{email!r} is not an email address (name@domain)")
    if not isinstance(resolver, Resolver):
        resolver = Resolver(resolver, lifetime=timeout)
    context = chain_context(str(ca_file) if ca_file else None, _stamp(ca_file))
    found = Discovery(email=email.strip(), domain=domain)
    pool = ThreadPoolExecutor(max_workers=24, thread_name_prefix="discover")
    run = _Run(found, resolver, context, start + timeout, pool)
    try:
        _first_wave(run, email.strip(), domain)
        run.wait()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    _conclude(run)
    found.elapsed_ms = (time.monotonic() - start) * 1000
    return found


@lru_cache(maxsize=8)
def chain_context(ca_file: str | None, stamp: tuple[int, int] | None) -> ssl.SSLContext:
    """A context verifying certificate chains, not names (judged per candidate).

    Loading the system's CA store takes longer than a whole discovery on a
    fast network, so the context is made once per CA file (``stamp``: its
    modification time and size, so a new file is read again) and shared:
    it is never changed after this.

    Raises
    ------
    UsageError
        For an unusable CA file.
    """
    context = verified_context(ca_file)
    context.check_hostname = False  # names are judged per candidate (probes.valid_for)
    return context


def _stamp(ca_file: str | Path | None) -> tuple[int, int] | None:
    try:
        info = os.stat(ca_file) if ca_file else None
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size) if info else None


def _first_wave(run: _Run, email: str, domain: str) -> None:
    run.submit("MX records", _lookup(run.resolver.mx, domain), lambda r: _mx(run, r))
    for service, (protocol, security) in SRV_SERVICES.items():
        run.submit(f"SRV {service}.{domain}", _lookup(run.resolver.srv, f"{service}.{domain}"),
                   partial(_srv, run, service, protocol, security))
    run.candidate(f"mail.{domain}", "convention",
                  f"mail.{domain}, the usual name of a domain's mail server")
    run.submit("autoconfig", autoconfig.fetch, lambda r: _autoconfig(run, r), email, domain,
               run.resolver, run.context, run.deadline - 0.05)
    run.submit("SPF, DMARC and DKIM records", health.facts, lambda facts: _facts(run, facts),
               run.resolver, domain)


def _lookup(fn: Callable[[str], Any], name: str) -> Callable[[], Any]:
    def call() -> Any:
        try:
            return fn(name)
        except DnsError as exc:
            return exc
    return call


def _mx(run: _Run, result: list[tuple[int, str]] | DnsError) -> None:
    found = run.found
    if isinstance(result, DnsError):
        if result.code == "dns_no_record":
            found.notes.append(f"{found.domain} has no MX record: mail for it goes to the "
                               "domain's own address")
        else:
            found.problems.insert(0, Problem(result.code, str(result), found.domain))
        return
    found.dns.mx = [host for _, host in result if host]
    for preference, host in result:
        if host:
            run.candidate(host, "mx", f"MX of {found.domain} (preference {preference})")


def _srv(run: _Run, service: str, protocol: str, security: str,
         result: list[Srv] | DnsError) -> None:
    if isinstance(result, DnsError):
        return
    for record in result:
        name = f"{service}.{run.found.domain}"
        if record.target in ("", "."):
            run.found.notes.append(f"{name}: the domain says {protocol.upper()} "
                                   f"({security}) is not offered")
            continue
        run.candidate(record.target, "srv", f"{name} → {record.target}:{record.port}")
        run.found.settings.append(Setting(protocol, record.target, record.port, security, "srv"))


def _autoconfig(run: _Run, result: tuple[autoconfig.Fetched | None, list[str]]) -> None:
    fetched, notes = result
    if fetched is None:
        run.found.notes.append(f"autoconfig: none found ({len(notes)} URLs tried; last: "
                               f"{notes[-1] if notes else 'none'})")
        return
    for setting in fetched.settings:
        run.found.settings.append(setting)
        run.candidate(setting.host, "autoconfig",
                      f"{fetched.url}: {setting.protocol} {setting.port} {setting.security}")


def _facts(run: _Run, facts: Any) -> None:
    mx = run.found.dns.mx
    run.found.dns = facts
    run.found.dns.mx = mx or facts.mx


def _conclude(run: _Run) -> None:
    """Rank, detect the provider, add the concluded settings."""
    found = run.found
    server_names: dict[str, str] = {}
    for cand in run.hosts.values():
        for source in cand.sources:
            if source.kind in ("ptr", "banner") or (
                    source.kind == "certificate" and probes.valid_for(cand.certificate, cand.host)):
                server_names.setdefault(cand.host, f"{source.kind}: {source.detail}")
    moved = found.problem("mail_host_elsewhere") is not None
    found.provider = providers.detect(found.domain, found.dns.mx, server_names,
                                      by_pattern=not moved)
    if found.provider is not None and found.provider.imap:
        imap = found.provider.imap
        cand = run.hosts.setdefault(imap, Candidate(imap))
        cand.add("mx", f"the MX reveals {found.provider.name} ({found.provider.evidence}), "
                 f"whose IMAP server is {imap}")
        cand.vouched = True
        if cand.resolves is None:
            try:
                cand.addresses = run.resolver.addresses(imap).addresses
                cand.resolves = True
            except DnsError:
                cand.resolves = False
        found.settings.append(Setting("imap", imap, 993, "ssl", "provider"))
    # The domain's own failure says it all: its mail.<domain> failing the same way is noise.
    domain_codes = {p.code for p in found.problems if p.subject == found.domain}
    found.problems = [p for p in found.problems if not (
        p.code in domain_codes and p.subject == f"mail.{found.domain}")]
    found.candidates = rank(list(run.hosts.values()))
    best = found.recommended
    if best is not None and not any(s.host == best.host for s in found.settings):
        # The port whose certificate proved the name is a setting in itself.
        port = (best.certificate or {}).get("port")
        protocol = {993: "imap", 465: "smtp"}.get(port or 0)
        if protocol and port:
            found.settings.append(Setting(protocol, best.host, port, "ssl", "certificate"))
