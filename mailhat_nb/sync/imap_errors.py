"""Where the sync's foreign errors become ours: the one translation boundary.

Every call :mod:`mailhat_nb.sync.imap` makes into imapclient, imaplib,
``ssl`` or ``socket`` runs inside :func:`translate_errors`, so callers only
ever see :mod:`mailhat_nb.errors`: :class:`~mailhat_nb.errors.ConnectionLost`
for what a retry may cure, :class:`~mailhat_nb.errors.AuthFailed` for a
refused login, :class:`~mailhat_nb.errors.MailServerError` for the rest. A
first connection that fails is explained step by step (:func:`connect_error`,
:func:`certificate_error`); a server that refuses passwords in clear text is
sent none (:func:`refuse_plaintext`).
"""

from __future__ import annotations

import ast
import contextlib
import imaplib
import re
import socket
import ssl
import traceback
from collections.abc import Iterator, Sequence, Set
from typing import TYPE_CHECKING

from mailhat_nb.errors import (
    AuthFailed,
    ConnectionLost,
    MailServerError,
    PlaintextRefused,
    ServerMisbehaved,
    UsageError,
)
from mailhat_nb.secrets import Secret, redact
from mailhat_nb.sync import certnames

if TYPE_CHECKING:
    from mailhat_nb.sync.imap import ImapSettings


@contextlib.contextmanager
def translate_errors(what: str, secrets: Sequence[Secret] = ()) -> Iterator[None]:
    """The one boundary where foreign exceptions become :mod:`mailhat_nb.errors`.

    Parameters
    ----------
    what:
        What we were doing, for the message ("logging in to mail.example.com").
    secrets:
        Values to redact from any message built from a foreign error.
    """
    from imapclient import exceptions as ice

    def text(exc: BaseException) -> str:
        return redact(server_text(exc), secrets)

    try:
        yield
    except ServerMisbehaved as exc:  # the readers' words; what we were doing is said here
        raise ServerMisbehaved(f"{what}: {exc}") from exc
    except (AuthFailed, ConnectionLost, MailServerError, UsageError):
        raise
    except ice.LoginError as exc:
        raise AuthFailed(f"{what}: the server rejected the login ({text(exc)})") from exc
    except ssl.SSLCertVerificationError as exc:
        raise MailServerError(certnames.brief(exc, what)) from exc
    except socket.gaierror as exc:
        raise MailServerError(f"{what}: the server name does not resolve ({text(exc)})") \
            from exc
    except (imaplib.IMAP4.abort, ice.IMAPClientAbortError, ConnectionError, EOFError,
            TimeoutError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        raise ConnectionLost(f"{what}: the connection dropped ({text(exc)})") from exc
    except ssl.SSLError as exc:
        raise MailServerError(f"{what}: TLS failed ({text(exc)})") from exc
    except (imaplib.IMAP4.error, ice.IMAPClientError) as exc:
        raise MailServerError(f"{what}: the server refused ({text(exc)})") from exc
    except OSError as exc:
        raise ConnectionLost(f"{what}: network error ({text(exc)})") from exc
    except ValueError as exc:  # imapclient's parser on a response it cannot read
        raise MailServerError(f"{what}: unexpected answer from the server ({text(exc)})") \
            from exc


#: A Python bytes literal inside an error text (``b'...'`` or ``b"..."``), with
#: the brackets of a one-element list around it (imaplib's ``[b'...']``).
_BYTES_REPR = re.compile(r"""\[?\bb(['"])((?:\\.|(?!\1).)*)\1\]?""")


def server_text(exc: BaseException) -> str:
    """Return an error's text for a person: the server's words, not Python's bytes reprs.

    imaplib and imapclient put what the server said into their exceptions
    as bytes, so ``str(exc)`` reads ``b'[AUTHENTICATIONFAILED] Authentication
    failed.'`` or ``BAD [b'Error in IMAP command']``: the ``b'...'`` is an
    artefact of Python, and a support agent pasting it into a ticket should
    not have to explain it. Each bytes literal is decoded (UTF-8, bad bytes
    replaced); anything else is kept as it is.
    """
    if exc.args and len(exc.args) == 1 and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", "replace").strip() or type(exc).__name__
    text = str(exc) or type(exc).__name__

    def decode(match: re.Match[str]) -> str:
        try:
            value: bytes = ast.literal_eval(f"b{match.group(1)}{match.group(2)}{match.group(1)}")
        except (ValueError, SyntaxError):
            return match.group(0)
        return value.decode("utf-8", "replace")

    return _BYTES_REPR.sub(decode, text).strip()


def _failed_step(exc: BaseException) -> str:
    """Which step of connecting raised ``exc``: ``tcp``, ``tls`` or ``greeting``.

    A timeout looks the same whichever step it ends (``TimeoutError: timed
    out``), but the remedy differs: a TCP connect that never completes is a
    firewall or a wrong address, while a connection accepted and then silent
    is a port that waits for something else (TLS, or nothing at all). The
    step is read from where the exception was raised, i.e. the frames of its
    traceback: :func:`socket.create_connection` for TCP,
    ``SSLSocket.do_handshake`` for TLS, anything else (imaplib reading the
    greeting) for the greeting. Those stdlib names have not changed since
    Python 3.0; if one ever did, the answer would degrade to "greeting",
    whose message still names the port and the security used.
    """
    names = {frame.f_code.co_name for frame, _ in traceback.walk_tb(exc.__traceback__)}
    if "create_connection" in names:
        return "tcp"
    if "do_handshake" in names:
        return "tls"
    return "greeting"


def connect_error(exc: BaseException, settings: ImapSettings,
                  secrets: Sequence[Secret] = (), address: str | None = None) -> MailServerError:
    """Translate a failure to connect (before LOGIN) into a message that says what to change.

    Retryable failures (refused, timed out, closed) stay
    :class:`~mailhat_nb.errors.ConnectionLost`, because during a sync they
    are what a server restart looks like; the engine decides whether to
    retry (only when a connection worked before). Failures no retry can
    cure (DNS, TLS against a plain port, another protocol, an untrusted
    certificate) are :class:`~mailhat_nb.errors.MailServerError`. ``address``
    is where the connection went (``--dns-server``'s answer), if not the
    system's resolution of the host.
    """
    from imapclient import exceptions as ice

    from mailhat_nb.diagnose.classify import NOT_TLS_REASONS  # the doctor's wire: only on failure

    s = settings
    where = f"connecting to {s.host}:{s.effective_port} ({s.security})"
    wait = f"{s.connect_timeout:g} s"
    raw = redact(server_text(exc), secrets)
    plain_hint = ("; if this port expects TLS from the first byte (993 usually does), "
                  "use --security ssl") if s.security != "ssl" else ""
    if isinstance(exc, socket.gaierror):
        return MailServerError(f"{where}: the server name {s.host} does not resolve ({raw}); "
                               "check its spelling")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionLost(
            f"{where}: connection refused: nothing accepts connections on port "
            f"{s.effective_port} of {s.host} (a wrong port, or the server is down)")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return certificate_error(exc, settings, where, address)
    step = _failed_step(exc)
    if isinstance(exc, TimeoutError):
        if step == "tcp":
            return ConnectionLost(
                f"{where}: no answer within {wait}: the connection was never accepted (a "
                "firewall dropping the packets, or a wrong server name or port)")
        if step == "tls":
            return ConnectionLost(
                f"{where}: the server accepted the connection but did not answer the TLS "
                f"handshake within {wait} (a stuck server, or something other than a mail "
                "server holds the port)")
        return ConnectionLost(
            f"{where}: the server accepted the connection but sent no IMAP greeting within "
            f"{wait}{plain_hint or ' (a stuck server, or something else holds the port)'}")
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError,
                                                             ssl.SSLZeroReturnError)):
        if exc.reason in NOT_TLS_REASONS:
            return MailServerError(
                f"{where}: TLS failed: the port answered in plain text, so it does not use "
                "TLS from the first byte; use --security starttls (or none) on this port, "
                "or the TLS port (usually 993)")
        return MailServerError(f"{where}: TLS failed ({raw})")
    if step == "greeting" and isinstance(exc, (imaplib.IMAP4.error, ice.IMAPClientError)) \
            and not isinstance(exc, ice.LoginError):
        said = f" ({raw})" if raw not in ("", "None") else ""  # imaplib's error(None)
        return MailServerError(
            f"{where}: the server's greeting is not IMAP{said}: this port speaks another "
            "protocol (POP3 on 110/995, SMTP on 25/465/587?); use the IMAP port")
    if isinstance(exc, (ConnectionError, EOFError, ssl.SSLEOFError, ssl.SSLZeroReturnError,
                        imaplib.IMAP4.abort)):
        return ConnectionLost(f"{where}: the server closed the connection before the login "
                              f"({raw}){plain_hint}")
    if isinstance(exc, OSError):
        return ConnectionLost(f"{where}: network error ({raw})")
    return MailServerError(f"{where}: {raw}")


def certificate_error(exc: ssl.SSLCertVerificationError, settings: ImapSettings, where: str,
                      address: str | None = None) -> MailServerError:
    """A failed certificate check, with the advice its cause calls for (:mod:`.certnames`).

    ``--ca-file`` only for an untrusted issuer; for a certificate issued to
    another name, the name to use instead, once it leads to the same server.
    """
    s = settings
    return MailServerError(certnames.explain(
        exc, where, host=s.host, port=s.effective_port, starttls=s.security == "starttls",
        address=address, dns_server=s.dns_server, timeout=s.connect_timeout))


def refuse_plaintext(caps: Set[str], *, encrypted: bool, where: str) -> None:
    """Refuse to send a password the server said it refuses in clear text.

    A server that lists ``LOGINDISABLED`` on an unencrypted connection
    refuses passwords there (RFC 3501 6.2.3: the client must not send
    LOGIN), and one that lists it beside ``AUTH=PLAIN`` says the same of
    the mechanism that carries the password as it is. Sending it anyway
    would put the password on the wire for nothing, and the server's "no"
    would read like a wrong password: the sync sends nothing and says why.

    Raises
    ------
    PlaintextRefused
        ``caps`` (of the unencrypted connection) hold ``LOGINDISABLED``.
    """
    if not encrypted and "LOGINDISABLED" in caps:
        raise PlaintextRefused(
            f"{where}: this server refuses passwords without encryption: use ssl or starttls "
            "(it lists LOGINDISABLED on this connection; no password was sent)")

