"""Wire checks of the lab's ports: does each behave as its scenario says.

Used by ``mailhat lab status`` (is every service answering?) and after every
``up``/``scenario`` (wait until the server really behaves as configured, e.g.
the new certificate is served, or STARTTLS now fails). Deliberately
independent of the doctor: the lab checks itself with nothing but sockets and
ssl.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass
from typing import BinaryIO

GREETING_PREFIX = {"imap": b"* OK", "pop3": b"+OK", "smtp": b"220"}


@dataclass(frozen=True)
class PortCheck:
    """What one port did when we knocked.

    ``behaviour`` is one of ``greets``, ``silent`` (TCP open, no bytes),
    ``blackhole`` (handshake never completed), ``closed`` (refused),
    ``tls_fails`` (the server broke off the TLS handshake), ``starttls_fails``
    (STARTTLS offered, then refused), or ``broken`` (something else;
    ``detail`` says what). ``cert_sha256`` is the certificate served, over
    implicit TLS or after STARTTLS.
    """

    service: str
    host: str
    port: int
    behaviour: str
    detail: str = ""
    cert_sha256: str = ""


def _read_greeting(sock: socket.socket | ssl.SSLSocket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    return sock.recv(512)


def _unverified() -> ssl.SSLContext:
    # The lab checks itself, broken certificates included: no verification.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _fingerprint(sock: ssl.SSLSocket) -> str:
    return hashlib.sha256(sock.getpeercert(binary_form=True) or b"").hexdigest()


def _smtp_reply(reader: BinaryIO) -> list[str]:
    """The lines of one (multi-line) SMTP reply."""
    lines: list[str] = []
    while not lines or (len(lines[-1]) >= 4 and lines[-1][3] == "-"):
        lines.append(reader.readline(1024).decode("latin-1").rstrip("\r\n"))
    return lines


def _smtp_starttls(service: str, host: str, port: int, sock: socket.socket,
                   timeout: float) -> PortCheck:
    """Greeting, EHLO, and STARTTLS where offered: what came of it."""
    sock.settimeout(timeout)
    with sock.makefile("rb") as reader:
        try:
            greeting = _smtp_reply(reader)
        except TimeoutError:
            return PortCheck(service, host, port, "silent")
        if not greeting[0].startswith("220"):
            return PortCheck(service, host, port, "broken", greeting[0][:80])
        sock.sendall(b"EHLO mailhat-lab-check\r\n")
        if "STARTTLS" not in (ln[4:].upper() for ln in _smtp_reply(reader)):
            return PortCheck(service, host, port, "greets", greeting[0])
        sock.sendall(b"STARTTLS\r\n")
        said = _smtp_reply(reader)
    if not said[-1].startswith("220"):
        return PortCheck(service, host, port, "starttls_fails", said[-1])
    with _unverified().wrap_socket(sock, server_hostname=host) as tls:
        return PortCheck(service, host, port, "greets", greeting[0], _fingerprint(tls))


def knock(service: str, protocol: str, host: str, port: int, tls: bool,
          timeout: float = 1.0, starttls: bool = False) -> PortCheck:
    """Connect to ``host:port`` and classify what happens within ``timeout``.

    ``starttls`` (SMTP only) also says whether STARTTLS works, and with which
    certificate.
    """
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return PortCheck(service, host, port, "closed")
    except TimeoutError:
        return PortCheck(service, host, port, "blackhole")
    except OSError as exc:
        return PortCheck(service, host, port, "broken", str(exc))
    fingerprint = ""
    try:
        sock: socket.socket | ssl.SSLSocket = raw
        if starttls and protocol == "smtp":
            return _smtp_starttls(service, host, port, raw, timeout)
        if tls:
            try:
                sock = _unverified().wrap_socket(raw, server_hostname=host)
            except TimeoutError:
                return PortCheck(service, host, port, "silent")
            except (ssl.SSLError, ConnectionError) as exc:
                return PortCheck(service, host, port, "tls_fails", str(exc))
            fingerprint = _fingerprint(sock)
        try:
            data = _read_greeting(sock, timeout)
        except TimeoutError:
            return PortCheck(service, host, port, "silent", cert_sha256=fingerprint)
        if data.startswith(GREETING_PREFIX[protocol]):
            return PortCheck(service, host, port, "greets",
                             data.decode("latin-1").splitlines()[0], fingerprint)
        return PortCheck(service, host, port, "broken", repr(data[:80]), fingerprint)
    except OSError as exc:
        return PortCheck(service, host, port, "broken", str(exc), fingerprint)
    finally:
        raw.close()
