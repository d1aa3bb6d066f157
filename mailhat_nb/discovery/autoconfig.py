"""Mozilla autoconfig: the settings a domain publishes about itself.

Thunderbird's order (comm-central, mail/components/accountcreation): the
ISP's own ``autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=...``,
then ``<domain>/.well-known/autoconfig/mail/config-v1.1.xml``; HTTPS first,
then HTTP. The file is the ISPDB's ``clientConfig`` v1.1.

The XML comes from a server we do not control: it is parsed with defusedxml
(no DTDs, no entities, so no "billion laughs" or external-entity tricks) and
read at most :data:`MAX_BYTES`. Connections go to the addresses the run's
resolver returned, with SNI and certificate checks on the name (HTTPS); a
certificate that is not valid for the name makes the HTTPS answer count for
nothing, as a browser would.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import quote

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from mailhat_nb.diagnose.dns import Resolver
from mailhat_nb.discovery.model import Setting
from mailhat_nb.errors import DnsError, MailhatError

MAX_BYTES = 256 * 1024
_SECURITY = {"SSL": "ssl", "STARTTLS": "starttls", "PLAIN": "none"}
_PROTOCOLS = {"imap": "imap", "pop3": "pop3", "smtp": "smtp"}


@dataclass(frozen=True)
class Fetched:
    """One autoconfig answer that parsed, and where it came from."""

    url: str
    settings: list[Setting]


class NotAutoconfig(MailhatError):
    """The document is not a usable clientConfig (or is hostile)."""


def urls(email: str, domain: str) -> list[tuple[str, str, str]]:
    """``(scheme, host, path)`` in the order to try them."""
    address = quote(email, safe="@")
    paths = [(f"autoconfig.{domain}", f"/mail/config-v1.1.xml?emailaddress={address}"),
             (domain, "/.well-known/autoconfig/mail/config-v1.1.xml")]
    return [(scheme, host, path) for host, path in paths for scheme in ("https", "http")]


def parse(xml: bytes | str, email: str, source: str = "autoconfig") -> list[Setting]:
    """Settings from a clientConfig document.

    ``%EMAILADDRESS%``-style placeholders in host names are filled; servers
    of other protocols (Exchange ...) are skipped.

    Raises
    ------
    NotAutoconfig
        Not XML, not a clientConfig, or a document using DTDs or entities.
    """
    local, _, domain = email.partition("@")
    try:
        root = ElementTree.fromstring(xml, forbid_dtd=True, forbid_entities=True,
                                      forbid_external=True)
    except (DefusedXmlException, ElementTree.ParseError) as exc:
        raise NotAutoconfig(f"not a usable autoconfig document: {exc}") from exc
    if root.tag != "clientConfig":
        raise NotAutoconfig(f"not a clientConfig document (root element {root.tag!r})")
    out: list[Setting] = []
    for tag in ("incomingServer", "outgoingServer"):
        for server in root.iter(tag):
            protocol = _PROTOCOLS.get((server.get("type") or "").lower())
            host = (server.findtext("hostname") or "").strip()
            host = (host.replace("%EMAILDOMAIN%", domain).replace("%EMAILLOCALPART%", local)
                    .lower().rstrip("."))
            port_text = (server.findtext("port") or "").strip()
            security = _SECURITY.get((server.findtext("socketType") or "").strip().upper())
            if not protocol or not host or not port_text.isdigit() or security is None:
                continue
            if not 0 < int(port_text) < 65536 or any(c.isspace() for c in host):
                continue
            out.append(Setting(protocol, host, int(port_text), security, source))
    if not out:
        raise NotAutoconfig("the autoconfig document names no IMAP, POP3 or SMTP server")
    return out


def fetch(email: str, domain: str, resolver: Resolver, context: ssl.SSLContext,
          deadline: float) -> tuple[Fetched | None, list[str]]:
    """Try each URL in order until one yields settings, before ``deadline``.

    Returns
    -------
    fetched, notes:
        The first answer that parsed (None when none did) and what happened
        on the way, one sentence per URL tried.
    """
    notes: list[str] = []
    for scheme, host, path in urls(email, domain):
        url = f"{scheme}://{host}{path}"
        if time.monotonic() >= deadline:
            notes.append(f"{url}: not tried, out of time")
            break
        try:
            body = _get(scheme, host, path, resolver, context, deadline)
            return Fetched(url, parse(body, email, "autoconfig")), notes
        except DnsError as exc:
            notes.append(f"{url}: {exc}")
            if exc.code == "dns_not_found":
                # Both schemes share the name: the next URL is the next name.
                continue
        except (OSError, http.client.HTTPException, NotAutoconfig, ssl.SSLError) as exc:
            notes.append(f"{url}: {_reason(exc)}")
    return None, notes


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def _get(scheme: str, host: str, path: str, resolver: Resolver, context: ssl.SSLContext,
         deadline: float) -> bytes:
    """GET over a connection to ``host``'s resolved address; the body, size-capped."""
    addresses = resolver.addresses(host).addresses
    port = 443 if scheme == "https" else 80
    remaining = max(0.05, deadline - time.monotonic())
    sock = socket.create_connection((addresses[0], port), timeout=remaining)
    try:
        if scheme == "https":
            sock = context.wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPConnection(host, port, timeout=remaining)
        conn.sock = sock
        conn.request("GET", path, headers={"Host": host, "Accept": "text/xml",
                                           "User-Agent": "mailhat discover"})
        response = conn.getresponse()
        if response.status != 200:
            raise http.client.HTTPException(f"HTTP {response.status} {response.reason}")
        return response.read(MAX_BYTES)
    finally:
        sock.close()
