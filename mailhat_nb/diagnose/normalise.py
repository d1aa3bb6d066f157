"""Turn what an agent typed or pasted into an :class:`Account` we can probe.

Agents paste from emails and web pages: a URL instead of a server name,
trailing spaces, a host with a port, a domain in Unicode (IDN), a username
without the domain. Anything we can repair is repaired and noted (the notes
travel into the report); anything we cannot is a :class:`UsageError` with a
message that says what to change. Never a traceback, never the password.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mailhat_nb.checks import check_text, check_username, split_email
from mailhat_nb.errors import UsageError
from mailhat_nb.secrets import Secret

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LABEL_CHARS = re.compile(r"^[a-z0-9-]+$")
MAX_LABEL = 63
MAX_HOST = 253


@dataclass(frozen=True)
class Account:
    """The account under diagnosis; the password stays inside a :class:`Secret`.

    Attributes
    ----------
    email:
        The address as given (stripped), e.g. ``alice@example.com``.
    username:
        What is sent to log in: the full address unless told otherwise.
    password:
        The password, revealed only at the protocol boundary.
    domain:
        The address's domain in ASCII (IDN A-labels), for ``mail.{domain}``.
    server:
        The server name (from the welcome email / cPanel), or None.
    notes:
        What was repaired or looks suspicious, for the report.
    """

    email: str
    username: str
    password: Secret = field(repr=False)
    domain: str
    server: str | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_input(cls, email: str, password: Secret | str, server: str | None = None,
                   username: str | None = None) -> Account:
        """Normalise form or CLI input; see :func:`normalise_account`."""
        return normalise_account(email, password, server, username)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: everything but the password."""
        return {"email": self.email, "username": self.username, "domain": self.domain,
                "server": self.server, "notes": list(self.notes)}


def idna_host(name: str, what: str) -> tuple[str, bool]:
    """``name`` as an ASCII host name; True when it was converted from Unicode.

    Raises
    ------
    UsageError
        When ``name`` cannot be a host name (bad characters, empty labels).
    """
    name = name.strip().rstrip(".").lower()
    if not name:
        raise UsageError(f"the {what} is empty")
    if is_ip(name):
        return name, False
    converted = False
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UsageError(f"the {what} {name!r} is not a valid international "
                             "domain name") from exc
        converted = True
    labels = name.split(".")
    if any(not label for label in labels):
        raise UsageError(f"the {what} {name!r} has an empty part between dots: check for a "
                         "doubled or leading dot (e.g. gator1234.hostgator.com)")
    long = next((label for label in labels if len(label) > MAX_LABEL
                 and _LABEL_CHARS.match(label)), None)
    if long is not None:
        raise UsageError(f"the {what} {name!r} is not a valid host name: a label (the part "
                         f"between dots) is {len(long)} characters long, and the most a label "
                         f"may have is {MAX_LABEL}")
    if not all(_LABEL.match(label) for label in labels):
        raise UsageError(
            f"the {what} {name!r} is not a valid host name: use letters, digits, hyphens "
            "and dots only (e.g. gator1234.hostgator.com)"
        )
    if len(name) > MAX_HOST:
        raise UsageError(f"the {what} is not a valid host name: it is {len(name)} characters "
                         f"long, and a host name may have at most {MAX_HOST}")
    return name, converted


def is_ip(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address (a host name it is not)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def normalise_server(raw: str | None) -> tuple[str | None, list[str]]:
    """Clean a pasted server name: URLs, ports, spaces, IDN.

    >>> normalise_server("https://Mail.Example.com/")
    ('mail.example.com', ['server: took the host name mail.example.com from the URL'])
    >>> normalise_server("[::1]")
    ('::1', [])
    """
    notes: list[str] = []
    if raw is None or not raw.strip():
        return None, notes
    check_text(raw, "server")
    text = raw.strip()
    if "://" in text:
        parts = urlsplit(text)
        if not parts.hostname:
            raise UsageError(f"the server {raw!r} is a URL without a host name")
        host = parts.hostname
        notes.append(f"server: took the host name {host} from the URL")
        text = host
    elif "/" in text:
        text = text.split("/", 1)[0]
        notes.append(f"server: dropped the path after {text}")
    if "@" in text:
        raise UsageError(
            f"the server {raw.strip()!r} looks like an email address: give the server name "
            "(e.g. gator1234.hostgator.com or mail.example.com)"
        )
    if any(c.isspace() for c in text):
        raise UsageError(f"the server {raw.strip()!r} contains spaces: give one host name")
    if text.startswith("[") and "]" in text:
        # An IPv6 literal as URLs and mail clients write it: "[::1]" or "[::1]:993".
        # The brackets are notation, not part of the address: resolving "[::1]"
        # fails (dns_not_found), so they go.
        inner, _, rest = text[1:].partition("]")
        if not is_ip(inner) or ":" not in inner:
            raise UsageError(f"the server {raw.strip()!r} is not a valid IPv6 address in "
                             "brackets")
        if rest.startswith(":") and rest[1:]:
            notes.append(f"server: ignored the port {rest[1:]}; every preset brings its own "
                         "port")
        elif rest:
            raise UsageError(f"the server {raw.strip()!r} has {rest!r} after the IPv6 address")
        text = inner
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        notes.append(f"server: ignored the port {port}; every preset brings its own port")
    host, converted = idna_host(text, "server")
    if converted:
        notes.append(f"server: converted the international name to {host}")
    return host, notes


def normalise_account(email: str, password: Secret | str, server: str | None = None,
                      username: str | None = None) -> Account:
    """Validate and repair the account fields.

    Raises
    ------
    UsageError
        Empty email or password, an address without ``@``, spaces inside the
        address, an invalid domain or server name. The message never contains
        the password.
    """
    secret = password if isinstance(password, Secret) else Secret(password or "")
    notes: list[str] = []
    email, local, domain_in = split_email(email or "")
    user = check_username(username or "")
    domain, converted = idna_host(domain_in, "email domain")
    if converted:
        notes.append(f"email: the domain is {domain} in DNS (converted from {domain_in})")
    server_host, server_notes = normalise_server(server)
    notes += server_notes
    if not user:
        user = f"{local}@{domain}" if converted else email
    if not secret:
        raise UsageError("the password is empty")
    if secret.padded:
        notes.append("password: starts or ends with a space (kept as typed; check for a "
                     "pasted trailing space)")
    if not secret.reveal().isascii():
        notes.append("password: contains non-ASCII characters; the doctor uses AUTHENTICATE "
                     "PLAIN (UTF-8) where the server offers it")
    return Account(email=email, username=user, password=secret, domain=domain,
                   server=server_host, notes=tuple(notes))
