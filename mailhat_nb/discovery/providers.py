"""Which provider handles a domain's mail, from its MX hosts: data in ``providers.toml``.

A provider is recognised by the suffix of its MX host names (Google's are
``*.google.com``), or, for shared hosting, by the server's own names: the
MX of a HostGator customer is ``mail.<their domain>``, and only the reverse
DNS, the SMTP banner or the certificate of that host says
``gator4321.hostgator.com``. A domain whose MX is itself or
``mail.<domain>`` on a server of no known provider is "other cPanel
hosting" (``cpanel``), the usual shape of a small host's customer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from mailhat_nb.discovery.model import ProviderMatch


@dataclass(frozen=True)
class Provider:
    """One entry of ``providers.toml``."""

    id: str
    name: str
    mx: tuple[str, ...]
    server: tuple[str, ...]
    presets: str
    advice: str
    imap: str = ""


@cache
def providers() -> tuple[Provider, ...]:
    """Every provider of the packaged data, in file order."""
    text = (resources.files("mailhat_nb.discovery") / "providers.toml").read_text("utf-8")
    return tuple(Provider(id=p["id"], name=p["name"], mx=tuple(p.get("mx", [])),
                          server=tuple(p.get("server", [])), presets=p.get("presets", ""),
                          advice=p.get("advice", ""), imap=p.get("imap", ""))
                 for p in tomllib.loads(text)["provider"])


def by_id(provider_id: str) -> Provider | None:
    """The provider with ``provider_id``."""
    return next((p for p in providers() if p.id == provider_id), None)


def _under(host: str, suffixes: tuple[str, ...]) -> str | None:
    host = host.lower().rstrip(".")
    return next((s for s in suffixes if host == s or host.endswith("." + s)), None)


def _match(provider: Provider, evidence: str) -> ProviderMatch:
    return ProviderMatch(provider.id, provider.name, evidence, provider.presets,
                         provider.advice, provider.imap)


def detect(domain: str, mx_hosts: list[str], server_names: dict[str, str],
           by_pattern: bool = True) -> ProviderMatch | None:
    """The provider behind ``domain``'s mail, or None.

    Parameters
    ----------
    mx_hosts:
        The MX hosts, most preferred first.
    server_names:
        Names the mail server gave itself -> where that was seen (``"reverse
        DNS of 192.0.2.1"``, ``"SMTP banner"`` ...).
    by_pattern:
        False when the domain's own host is known not to be its mail server
        (``mail_host_elsewhere``): the cPanel pattern then proves nothing.

    >>> detect("a.example", ["aspmx.l.google.com"], {}).id
    'google'
    >>> detect("a.example", ["mail.a.example"], {"gator1.hostgator.com": "reverse DNS"}).id
    'hostgator'
    """
    for host in mx_hosts:
        for provider in providers():
            if _under(host, provider.mx):
                return _match(provider, f"MX {host}")
    for name, seen in server_names.items():
        for provider in providers():
            if _under(name, provider.server):
                return _match(provider, f"the mail server is {name} ({seen})")
    own = {domain, f"mail.{domain}"}
    if by_pattern and mx_hosts and mx_hosts[0] in own:
        cpanel = by_id("cpanel")
        if cpanel is not None:
            names = ", ".join(server_names) or "no name of its own"
            return _match(cpanel, f"MX {mx_hosts[0]} is the domain's own host, as cPanel "
                          f"sets it up (the server: {names})")
    return None
