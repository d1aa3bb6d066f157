"""From what happened to a diagnosis code: the one place foreign errors become codes.

:func:`classify_error` takes any exception a probe step raised (the wire's
own errors, ``socket.gaierror``, ``OSError`` ...) plus the step it happened in,
and returns ``(code, detail)``. The reply classifiers read what a server said
to a login. All are pure functions, unit-tested without a server.
"""

from __future__ import annotations

import errno
import re
import socket

from mailhat_nb.diagnose.certificate import classify_verify
from mailhat_nb.diagnose.dns import classify_dns
from mailhat_nb.diagnose.wire import (
    CLOSED,
    NotTLS,
    PeerClosed,
    ReadTimeout,
    TLSHandshakeError,
    printable,
)
from mailhat_nb.errors import MailServerError, ServerMisbehaved


class Diagnosed(MailServerError):
    """A probe step ended with a diagnosis.

    Raised inside a step by protocol code that knows what went wrong; the
    step recorder stores ``code``, ``detail`` and ``status`` and stops the
    probe. ``detail`` is the doctor's own words; any server text quoted in it
    after the credentials went out has passed
    :meth:`~mailhat_nb.diagnose.session.Session.said` (withheld whole if it
    echoes the password), so the probe shows a detail as it is.
    """

    def __init__(self, code: str, detail: str, status: str = "fail") -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


_PROTOCOL_OF_GREETING = (
    ("* OK", "IMAP"), ("* PREAUTH", "IMAP"), ("* BYE", "IMAP"), ("+OK", "POP3"),
    ("-ERR", "POP3"), ("220", "SMTP"), ("554", "SMTP"), ("421", "SMTP"), ("HTTP/", "HTTP"),
    ("SSH-", "SSH"), ("<", "HTML/XML"),
)


def greeting_protocol(line: str) -> str | None:
    """Which protocol a greeting line belongs to, if we can tell.

    >>> greeting_protocol("+OK Dovecot ready."), greeting_protocol("220 mx ESMTP")
    ('POP3', 'SMTP')
    """
    return next((name for prefix, name in _PROTOCOL_OF_GREETING
                 if line.upper().startswith(prefix.upper())), None)


def article(name: str) -> str:
    """``name`` with its indefinite article, as it is said aloud.

    Only protocol names reach it; all but POP3 (said "pop") are spelt out
    and start with a vowel sound.

    >>> article("IMAP"), article("SMTP"), article("POP3"), article("HTTP")
    ('an IMAP', 'an SMTP', 'a POP3', 'an HTTP')
    """
    return f"{'a' if name == 'POP3' else 'an'} {name}"


def wrong_protocol(line: str, expected: str) -> Diagnosed:
    """Build the ``wrong_protocol`` diagnosis for greeting ``line``."""
    seen = greeting_protocol(line)
    what = f"{article(seen)} server" if seen else "something else"
    return Diagnosed("wrong_protocol", f"expected {article(expected)} greeting, got {what}: "
                     f"{line[:120]!r}")


#: Response codes a server puts in its answer to a login, and the cause each
#: one names: POP3's (RFC 2449 section 8, RFC 3206) and IMAP's (RFC 5530).
#: They are the server's own words, so they decide before any wording.
RESPONSE_CODES: dict[str, str] = {
    # the account itself is barred: expired, suspended, "call the admin"
    "EXPIRED": "account_locked", "CONTACTADMIN": "account_locked",
    # no password on this connection
    "PRIVACYREQUIRED": "plaintext_auth_disabled",
    # not now: too soon after the last login, too many sessions
    "LOGIN-DELAY": "login_delayed", "LIMIT": "login_delayed",
    # the mailbox is locked by another session
    "IN-USE": "mailbox_unavailable", "INUSE": "mailbox_unavailable",
    # the server failed on its side, for a while or for good
    "SYS/TEMP": "server_unavailable", "SYS/PERM": "server_unavailable",
    "UNAVAILABLE": "server_unavailable", "SERVERBUG": "server_unavailable",
}
#: Response codes that say "the credentials": they outrank words such as "try
#: again later", but not a refusal of clear text, which Dovecot words under
#: ``[AUTH]`` ("-ERR [AUTH] Plaintext authentication disallowed ...").
CREDENTIAL_CODES = frozenset({"AUTH", "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED"})
_RESPONSE_CODE = re.compile(r"\[([A-Z][A-Z0-9/-]*)[\] ]", re.IGNORECASE)
#: Words of a refusal to take a password without encryption, for servers that
#: give no response code (Courier: "-ERR TLS required to log in.").
_PLAINTEXT_WORDS = ("plaintext authentication disallowed", "encryption required",
                    "must issue a starttls", "tls required", "starttls required",
                    "requires encryption", "must use tls", "starttls first",
                    "only available under a layer")
_TEMPORARY_WORDS = ("temporary", "temporarily", "try again")
#: How the detail of a POP3 login whose USER the server refused begins: the
#: server judged the username itself, before any password (Cyrus: "-ERR
#: [AUTH] Invalid user"). The verdict reads it (:mod:`.verdict`).
USER_REFUSED = "USER rejected"


def response_code(text: str) -> str | None:
    """The first response code in a reply (``[LOGIN-DELAY]``, ``[AUTHENTICATIONFAILED]``).

    >>> response_code("-ERR [LOGIN-DELAY] Logins must be at least 1 minute apart")
    'LOGIN-DELAY'
    >>> response_code("M001 NO [UNAVAILABLE] Try later"), response_code("-ERR Login failed.")
    ('UNAVAILABLE', None)
    """
    m = _RESPONSE_CODE.search(text)
    return m.group(1).upper() if m else None


def classify_auth_reply(text: str) -> str:
    """Code for a rejected login, from the server's response code first, then its words.

    Only a response code that says the credentials were judged, or no code
    and no words that say otherwise, is ``auth_failed``: a server that
    says "not now" (``[LOGIN-DELAY]``, ``[SYS/TEMP]``) did not judge the
    password, and the agent must not have it reset.

    >>> classify_auth_reply("NO [AUTHENTICATIONFAILED] Authentication failed.")
    'auth_failed'
    >>> classify_auth_reply("-ERR [LOGIN-DELAY] Logins must be at least 1 minute apart")
    'login_delayed'
    >>> classify_auth_reply("-ERR Plaintext authentication disallowed on non-secure connections")
    'plaintext_auth_disabled'
    >>> classify_auth_reply("-ERR [SYS/PERM] Unable to open maildrop")
    'server_unavailable'
    """
    given = response_code(text) or ""
    if given in RESPONSE_CODES:
        return RESPONSE_CODES[given]
    t = text.lower()
    if any(p in t for p in _PLAINTEXT_WORDS):
        return "plaintext_auth_disabled"
    if given not in CREDENTIAL_CODES and any(p in t for p in _TEMPORARY_WORDS):
        return "server_unavailable"
    return "auth_failed"


def classify_smtp_auth(code: int, text: str) -> str:
    """Code for an SMTP AUTH reply that is not 235.

    >>> classify_smtp_auth(535, "5.7.8 Authentication failed")
    'auth_failed'
    >>> classify_smtp_auth(538, "5.7.11 Encryption required for requested authentication")
    'plaintext_auth_disabled'
    """
    if code in (530, 538) or "encryption" in text.lower():
        by_text = classify_auth_reply(text)
        return by_text if by_text != "auth_failed" else "plaintext_auth_disabled"
    if code == 504:
        return "smtp_auth_unavailable"
    if 400 <= code < 500:
        return "server_unavailable"  # RFC 4954: 454 temporary failure, 432 transition
    return classify_auth_reply(text) if code != 535 else "auth_failed"


def starttls_refused(reply: str, temporary: bool = False) -> Diagnosed:
    """``starttls_failed`` for a STARTTLS the server offered and then refused.

    Offered (it is in the capabilities) and refused is the server's fault, not
    a missing feature (``starttls_unavailable``): its words are kept. A
    temporary refusal (SMTP ``454 TLS currently unavailable``) says so.
    """
    when = "unavailable now" if temporary else "refused"
    return Diagnosed("starttls_failed", f"STARTTLS is offered, but {when}: the server "
                     f"answered {reply[:160]!r}")


#: OpenSSL reasons that mean the other side does not speak TLS at all.
NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL",
                              "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


def _tls_failing(text: str) -> bool:
    """True when plain text a server sent instead of TLS says its TLS failed.

    A plain port answers a TLS handshake with its greeting (``* OK``,
    ``+OK``, ``220``, which may well list STARTTLS): the port is not a TLS
    port. A server that tried TLS and failed says so in words, and they are
    no greeting (Dovecot: ``* BYE [UNAVAILABLE] TLS initialization failed.``).

    >>> _tls_failing("* BYE [UNAVAILABLE] TLS initialization failed.")
    True
    >>> _tls_failing("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready"), _tls_failing("220 mx ESMTP")
    (False, False)
    """
    upper = text.upper()
    greeting = upper.startswith(("* OK", "* PREAUTH", "+OK", "220"))
    return not greeting and ("TLS" in upper or "SSL" in upper)


def _classify_tls(exc: NotTLS | TLSHandshakeError, security: str) -> tuple[str, str]:
    """Code for a TLS handshake that failed, from what the server said and did."""
    said = printable(exc.said) if exc.said else ""
    if isinstance(exc, TLSHandshakeError) and exc.verify_code is not None:
        return classify_verify(exc.verify_code, exc.reason), f"certificate: {exc}"
    after_starttls = security == "starttls"
    if after_starttls and said:
        # It agreed to switch, then said why it could not (and hung up or sent no TLS).
        return ("starttls_failed", f"STARTTLS is offered and was accepted, then the server "
                f"said {said!r} instead of starting TLS")
    if isinstance(exc, NotTLS):
        if _tls_failing(said):
            return ("tls_handshake_failed", "the server answered the TLS handshake with an "
                    f"error in plain text: {said!r}")
        return ("plain_on_tls_port",
                f"the server answered the TLS handshake in plain text: {said!r}")
    if exc.reason in NOT_TLS_REASONS and not after_starttls:
        return "plain_on_tls_port", f"TLS handshake failed ({exc.reason}): not a TLS port"
    if exc.reason == CLOSED:
        what = "the server hung up in the middle of the TLS handshake"
    else:
        what = f"the server broke off the TLS handshake ({exc.reason or exc})"
    if after_starttls:
        what = f"STARTTLS is offered and was accepted, then {what}"
    return "tls_handshake_failed", what


def classify_error(exc: BaseException, step: str, security: str = "none") -> tuple[str, str]:
    """``(code, detail)`` for an exception raised in probe step ``step``.

    The one boundary where foreign errors become diagnosis codes. The detail is
    built from the exception, so callers must scrub it (the transcript does)
    before it leaves the probe. ``security`` is the preset's: a handshake that
    fails after STARTTLS was accepted is the server's fault, never "plain text
    on a TLS port".
    """
    if isinstance(exc, Diagnosed):
        return exc.code, exc.detail
    if isinstance(exc, ServerMisbehaved):
        return "server_misbehaved", f"{exc}; the doctor stopped listening"
    if isinstance(exc, (NotTLS, TLSHandshakeError)):
        return _classify_tls(exc, security)
    if isinstance(exc, ReadTimeout):
        if step == "greeting" and exc.partial:
            return ("wrong_protocol",
                    f"the server sent {printable(exc.partial)!r} and no complete greeting")
        if step == "handshake" and security == "starttls":
            return ("starttls_failed", "STARTTLS is offered and was accepted, then the server "
                    "did not answer the TLS handshake")
        if step in ("greeting", "tls", "handshake") and not exc.partial:
            what = "send a greeting" if step == "greeting" else "answer the TLS handshake"
            return "no_greeting", f"the connection opened but the server did not {what}"
        return "unknown", f"the server stopped answering during {step}"
    if isinstance(exc, PeerClosed):
        said = f" after sending {printable(exc.partial)!r}" if exc.partial else ""
        return "server_disconnected", f"{exc} during {step}{said}"
    if isinstance(exc, socket.gaierror):
        return classify_dns(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused", "connection refused"
    if isinstance(exc, TimeoutError):
        return ("connect_timeout", "no answer to the connection attempt") if step == "tcp" else (
            "unknown", f"timed out during {step}")
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "connect_timeout", f"network unreachable: {exc.strerror}"
        return "unknown", f"{type(exc).__name__}: {exc.strerror or exc}"
    return "unknown", f"{type(exc).__name__}: {exc}"
