"""Wire checks of the lab's ports: does each behave as its scenario says.

Used by ``mailhat lab status`` (is every service answering?) and after every
``up``/``scenario`` (wait until the server really behaves as configured, e.g.
the new certificate is served). Deliberately independent of the doctor: the
lab checks itself with nothing but sockets and ssl.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass

GREETING_PREFIX = {"imap": b"* OK", "pop3": b"+OK", "smtp": b"220"}


@dataclass(frozen=True)
class PortCheck:
    """What one port did when we knocked.

    ``behaviour`` is one of ``greets``, ``silent`` (TCP open, no bytes),
    ``blackhole`` (handshake never completed), ``closed`` (refused),
    ``tls_fails`` (a TLS port whose handshake the server breaks off), or
    ``broken`` (something else; ``detail`` says what).
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


def knock(service: str, protocol: str, host: str, port: int, tls: bool,
          timeout: float = 1.0) -> PortCheck:
    """Connect to ``host:port`` and classify what happens within ``timeout``."""
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
        if tls:
            # The lab checks itself, broken certificates included: no verification.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                sock = ctx.wrap_socket(raw, server_hostname=host)
            except TimeoutError:
                return PortCheck(service, host, port, "silent")
            except (ssl.SSLError, ConnectionError) as exc:
                return PortCheck(service, host, port, "tls_fails", str(exc))
            der = sock.getpeercert(binary_form=True) or b""
            fingerprint = hashlib.sha256(der).hexdigest()
        try:
            data = _read_greeting(sock, timeout)
        except TimeoutError:
            return PortCheck(service, host, port, "silent", cert_sha256=fingerprint)
        if data.startswith(GREETING_PREFIX[protocol]):
            return PortCheck(service, host, port, "greets",
                             data.decode("latin-1").strip(), fingerprint)
        return PortCheck(service, host, port, "broken", repr(data[:80]), fingerprint)
    except OSError as exc:
        return PortCheck(service, host, port, "broken", str(exc), fingerprint)
    finally:
        raw.close()


#: How each protocol asks for STARTTLS: (command, the reply's start that agrees).
_STARTTLS = {"imap": (b"S1 STARTTLS\r\n", b"S1 OK"), "pop3": (b"STLS\r\n", b"+OK"),
             "smtp": (b"STARTTLS\r\n", b"220")}


def starttls(protocol: str, host: str, port: int, timeout: float = 1.0) -> str:
    """Ask a plain port for STARTTLS and try the handshake.

    Returns ``ok`` (TLS came up), ``fails`` (agreed, then the handshake
    failed on the server's side), ``refused`` (the server said no), or
    ``broken: ...`` when the conversation went otherwise.
    """
    command, agreed = _STARTTLS[protocol]
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            reader = raw.makefile("rb")
            reader.readline()  # the greeting
            if protocol == "smtp":
                raw.sendall(b"EHLO lab-check\r\n")
                while reader.readline()[3:4] == b"-":
                    pass
            raw.sendall(command)
            reply = reader.readline()
            while protocol == "imap" and reply.startswith(b"*"):
                reply = reader.readline()
            if not reply.startswith(agreed):
                return "refused"
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                ctx.wrap_socket(raw, server_hostname=host).close()
            except (ssl.SSLError, ConnectionError):
                return "fails"
            return "ok"
    except OSError as exc:
        return f"broken: {exc}"
