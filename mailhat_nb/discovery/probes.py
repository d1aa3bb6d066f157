"""What a mail server says about itself, without a password: banner, certificate, open ports.

Each function connects to an address the run's resolver returned, bounded
by its own timeout, sends nothing but a greeting's worth (``QUIT``), and
returns facts or None; it never raises for what a server does.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from typing import Any

from mailhat_nb.diagnose.certificate import covers, describe, unverified_context

#: "220 gator4321.hostgator.com ESMTP Exim 4.96 ..." -> the host name.
_BANNER_NAME = re.compile(r"^220[ -]([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)\b")


def knock(address: str, port: int, timeout: float) -> str:
    """``open``, ``refused``, ``timeout`` or ``error``: what a TCP connect did."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError:
        return "error"


def banner_name(line: str) -> str | None:
    """The host name an SMTP greeting gives, if it gives one.

    >>> banner_name("220 gator4321.hostgator.com ESMTP Exim 4.96"), banner_name("220 ready")
    ('gator4321.hostgator.com', None)
    """
    match = _BANNER_NAME.match(line.strip())
    return match.group(1).lower() if match else None


def smtp_banner(address: str, port: int, timeout: float) -> str | None:
    """The first line an SMTP server at ``address:port`` greets with."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            with sock.makefile("rb") as reader:
                data = reader.readline(2048)
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
    except OSError:
        return None
    line = data.decode("utf-8", "replace").strip()
    return line or None


def certificate(address: str, port: int, host: str, trusted: ssl.SSLContext,
                timeout: float) -> dict[str, Any] | None:
    """The certificate served on an implicit-TLS port, judged.

    ``trusted`` verifies the chain (not the name: the name is judged per
    candidate with :func:`valid_for`). Returns :func:`describe`'s facts plus
    ``trusted`` (the chain verified) and ``port``; None when no TLS answered.
    """
    try:
        der = _handshake(address, port, host, trusted, timeout)
        chain_ok = True
    except ssl.SSLCertVerificationError:
        # Read it anyway, to say what it covers; nothing but a handshake is sent.
        chain_ok = False
        try:
            der = _handshake(address, port, host, unverified_context(), timeout)
        except (OSError, ValueError):
            return None
    except (OSError, ValueError):
        return None
    if der is None:
        return None
    return describe(der, host) | {"trusted": chain_ok, "port": port}


def _handshake(address: str, port: int, host: str, context: ssl.SSLContext,
               timeout: float) -> bytes | None:
    with socket.create_connection((address, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.getpeercert(binary_form=True)


def valid_for(cert: dict[str, Any] | None, host: str) -> bool:
    """True when ``cert`` (from :func:`certificate`) is trusted, in date and covers ``host``."""
    return bool(cert and cert.get("trusted") and not cert.get("expired")
                and covers(cert.get("names", []), host))
