"""Outgoing mail health: SPF, DMARC and DKIM, as advice beside the SMTP verdict.

None of this stops a CRM from connecting; it decides whether the mail the
CRM sends is delivered or lands in spam. So it is said as notes, never as a
failure: does the domain's SPF authorise the address of the SMTP server the
verdict recommends; is there a DMARC record and with what policy; is there
a DKIM key at cPanel's usual selector (``default._domainkey``).

SPF is evaluated for what matters here (``ip4``/``ip6``, ``a``, ``mx``,
``include``, ``redirect``, ``all``; RFC 7208's limit of 10 lookups), through
the run's resolver, so the lab's DNS is what is read.
"""

from __future__ import annotations

import ipaddress

from mailhat_nb.diagnose.dns import Resolver
from mailhat_nb.discovery.model import DnsFacts
from mailhat_nb.errors import DnsError

MAX_LOOKUPS = 10


def _record(resolver: Resolver, name: str, prefix: str) -> str | None:
    try:
        found = [t for t in resolver.txt(name) if t.lower().startswith(prefix)]
    except DnsError:
        return None
    return found[0] if found else None


def facts(resolver: Resolver, domain: str) -> DnsFacts:
    """The domain's SPF, DMARC and default DKIM records (MX is filled by discovery)."""
    try:
        dkim: bool | None = any("p=" in t for t in resolver.txt(f"default._domainkey.{domain}"))
    except DnsError as exc:
        dkim = False if exc.code in ("dns_not_found", "dns_no_record") else None
    return DnsFacts(spf=_record(resolver, domain, "v=spf1"),
                    dmarc=_record(resolver, f"_dmarc.{domain}", "v=dmarc1"), dkim_default=dkim)


def dmarc_policy(record: str | None) -> str | None:
    """The ``p=`` of a DMARC record.

    >>> dmarc_policy("v=DMARC1; p=quarantine; rua=mailto:a@b.example")
    'quarantine'
    """
    for part in (record or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "p":
            return value.strip().lower()
    return None


def spf_authorises(resolver: Resolver, domain: str, address: str,
                   record: str | None = None, budget: list[int] | None = None) -> bool | None:
    """Whether ``domain``'s SPF lets ``address`` send; None when it cannot be told.

    A ``+all`` or a matching mechanism with qualifier ``+`` is a yes; ``-all``,
    ``~all``, ``?all`` or the end of the record without a match is a no.
    """
    budget = budget if budget is not None else [MAX_LOOKUPS]
    if record is None:
        record = _record(resolver, domain, "v=spf1")
        if record is None:
            return None
    ip = ipaddress.ip_address(address)
    redirect = None
    for term in record.split()[1:]:
        qualifier = term[0] if term[0] in "+-~?" else "+"
        mech = term.lstrip("+-~?")
        name, _, arg = mech.partition(":")
        name = name.lower()
        if name.startswith("redirect="):
            redirect = mech.split("=", 1)[1]
            continue
        hit = _matches(resolver, domain, name, arg, ip, budget)
        if hit is None:
            return None
        if hit:
            return qualifier == "+"
    if redirect:
        budget[0] -= 1
        return None if budget[0] < 0 else spf_authorises(resolver, redirect, address, None, budget)
    return False


def _matches(resolver: Resolver, domain: str, name: str, arg: str,
             ip: ipaddress.IPv4Address | ipaddress.IPv6Address, budget: list[int]) -> bool | None:
    if name == "all":
        return True
    if name in ("ip4", "ip6"):
        try:
            return ip in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    if name not in ("a", "mx", "include"):
        return False  # ptr, exists, exp: not evaluated, never a match
    budget[0] -= 1
    if budget[0] < 0:
        return None
    target, _, cidr = (arg or domain).partition("/")
    try:
        if name == "include":
            return bool(spf_authorises(resolver, target, str(ip), None, budget))
        hosts = [h for _, h in resolver.mx(target)] if name == "mx" else [target]
        addresses = [a for h in hosts for a in resolver.addresses(h).addresses]
    except DnsError:
        return False
    prefix = int(cidr) if cidr.isdigit() else None
    return any(ip in ipaddress.ip_network(f"{a}/{prefix}" if prefix is not None else a,
                                          strict=False) for a in addresses)


def notes(found: DnsFacts, domain: str, smtp_host: str | None, smtp_address: str | None,
          resolver: Resolver) -> list[str]:
    """Sentences for the agent about the domain's outgoing mail (advice only)."""
    out: list[str] = []
    if found.spf is None:
        out.append(f"SPF: {domain} publishes no SPF record: receivers cannot tell its real "
                   "senders from forgeries; add one that names the mail server.")
    elif smtp_address:
        allowed = spf_authorises(resolver, domain, smtp_address, found.spf)
        if allowed is False:
            out.append(f"SPF: {domain}'s SPF ({found.spf}) does not authorise {smtp_host} "
                       f"({smtp_address}): mail the CRM sends through it may land in spam; "
                       "add the server (e.g. +a +mx or ip4:) to the record.")
        elif allowed:
            out.append(f"SPF: {domain}'s SPF authorises {smtp_host} ({smtp_address}).")
    policy = dmarc_policy(found.dmarc)
    if found.dmarc is None:
        out.append(f"DMARC: {domain} has no DMARC record (_dmarc.{domain}); many receivers "
                   "now expect one (p=none is a start).")
    else:
        out.append(f"DMARC: policy {policy or 'unreadable'} ({found.dmarc}).")
    if found.dkim_default is False:
        out.append(f"DKIM: no key at default._domainkey.{domain} (cPanel's selector): turn on "
                   "DKIM in cPanel (Email Deliverability) if mail goes to spam.")
    elif found.dkim_default:
        out.append("DKIM: a key is published at default._domainkey.")
    return out
