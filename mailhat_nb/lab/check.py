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
    (STARTTLS offered, then refused, or its handshake broken off), or
    ``broken`` (something else; ``detail`` says what). ``cert_sha256`` is the
    certificate served, over implicit TLS or after STARTTLS.
    """

    service: str
    host: str
    port: int
    behaviour: str
    detail: str = ""
    cert_sha256: str = ""


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


def _line(reader: BinaryIO) -> str:
    return reader.readline(4096).decode("latin-1").rstrip("\r\n")


#: Most lines a check reads of one reply: a server sending more is broken.
_MAX_LINES = 200


def _tagged_reply(reader: BinaryIO, tag: str) -> list[str]:
    """The lines of one IMAP response, up to its tagged line."""
    lines = [_line(reader)]
    while lines[-1] and not lines[-1].startswith(tag + " ") and len(lines) < _MAX_LINES:
        lines.append(_line(reader))
    return lines


def _pop3_list(reader: BinaryIO) -> list[str]:
    """The lines of one POP3 reply, multi-line (``CAPA``) up to its ``.`` when it is +OK."""
    lines = [_line(reader)]
    while (lines[0].startswith("+OK") and lines[-1] not in (".", "")
           and len(lines) < _MAX_LINES):
        lines.append(_line(reader))
    return lines


#: Per protocol: how to ask for capabilities, STARTTLS, and the reply that agrees.
_STARTTLS = {
    "smtp": (b"EHLO mailhat-lab-check\r\n", b"STARTTLS\r\n", "220"),
    "imap": (b"C1 CAPABILITY\r\n", b"S1 STARTTLS\r\n", "S1 OK"),
    "pop3": (b"CAPA\r\n", b"STLS\r\n", "+OK"),
}


def _reply(protocol: str, reader: BinaryIO, tag: str, listing: bool = False) -> list[str]:
    """One reply; ``listing``: a POP3 multi-line one (``CAPA``)."""
    if protocol == "smtp":
        return _smtp_reply(reader)
    if protocol == "imap":
        return _tagged_reply(reader, tag)
    return _pop3_list(reader) if listing else [_line(reader)]


def _starttls(service: str, protocol: str, host: str, port: int, sock: socket.socket,
              timeout: float) -> PortCheck:
    """Greeting, capabilities, and STARTTLS where offered: what came of it."""
    sock.settimeout(timeout)
    ask_caps, ask_tls, agreed = _STARTTLS[protocol]
    with sock.makefile("rb") as reader:
        try:
            greeting = _smtp_reply(reader) if protocol == "smtp" else [_line(reader)]
        except TimeoutError:
            return PortCheck(service, host, port, "silent")
        if not greeting[0].encode("latin-1").startswith(GREETING_PREFIX[protocol]):
            return PortCheck(service, host, port, "broken", greeting[0][:80])
        sock.sendall(ask_caps)
        lines = _reply(protocol, reader, "C1", listing=True)
        caps = " ".join(ln[4:] if protocol == "smtp" else ln for ln in lines).upper().split()
        if "STARTTLS" not in caps and "STLS" not in caps:
            return PortCheck(service, host, port, "greets", greeting[0])
        sock.sendall(ask_tls)
        said = _reply(protocol, reader, "S1")[-1]
    if not said.startswith(agreed):
        return PortCheck(service, host, port, "starttls_fails", said)
    try:
        with _unverified().wrap_socket(sock, server_hostname=host) as tls:
            return PortCheck(service, host, port, "greets", greeting[0], _fingerprint(tls))
    except (ssl.SSLError, ConnectionError) as exc:
        return PortCheck(service, host, port, "starttls_fails", f"{said}, then {exc}")


def knock(service: str, protocol: str, host: str, port: int, tls: bool,
          timeout: float = 1.0, starttls: bool = False) -> PortCheck:
    """Connect to ``host:port`` and classify what happens within ``timeout``.

    ``starttls`` (a plain port) also says whether STARTTLS works, and with
    which certificate.
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
        if starttls:
            return _starttls(service, protocol, host, port, raw, timeout)
        if tls:
            try:
                sock = _unverified().wrap_socket(raw, server_hostname=host)
            except TimeoutError:
                return PortCheck(service, host, port, "silent")
            except (ssl.SSLError, ConnectionError) as exc:
                return PortCheck(service, host, port, "tls_fails", str(exc))
            fingerprint = _fingerprint(sock)
        sock.settimeout(timeout)
        try:
            data = sock.recv(512)
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
