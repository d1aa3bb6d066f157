"""The one exception tree of mailhat_nb.

Every error the package raises on purpose derives from :class:`MailhatError`,
so a notebook or the CLI can catch one type and show a clean message instead
of a traceback. Foreign errors (``OSError``, ``ssl.SSLError``,
``imaplib.IMAP4.error``, ``pyarrow`` errors ...) are translated where they
cross into the package, with ``raise ... from exc`` so the cause stays
inspectable. Messages never contain a password: code that builds one from
user input must pass it through :func:`mailhat_nb.secrets.redact` first.

::

    MailhatError
    ├── UsageError            bad input from the user (argv, a form field, a presets file)
    │   └── PresetsError      a presets TOML file that does not parse or validate
    ├── LabError              the lab server could not be set up, started or switched
    │   └── LabNotRunning     a command needs the lab and it is not up
    ├── MailServerError       a server refused or broke off what we asked of it
    │   ├── AuthFailed        the server rejected the credentials
    │   ├── CommandFailed     a raw command of the sync's fast path got a tagged NO or BAD
    │   ├── ConnectFailed     a sync's first connection failed: a setting to fix
    │   ├── PlaintextRefused  the server refuses passwords without encryption: none was sent
    │   ├── ConnectionLost    the connection dropped; callers may retry
    │   └── ServerMisbehaved  the server sent what no mail server sends; no retry helps
    ├── DnsError              a DNS lookup failed (``code``: dns_not_found, dns_servfail ...)
    ├── NothingToImport       an import source holds no message
    ├── StoreError            the local Parquet store is unreadable or inconsistent
    ├── SyncError             a sync could not continue (after retries)
    └── KernelFailed          a kernel of the demo report died or timed out

The connection doctor's probe and discovery keep their own subclasses
beside the code that raises them, because they carry what that code needs
to name a diagnosis and never leave it as they are (each becomes a code or
a skipped source in the report): ``diagnose.wire`` (``ReadTimeout``,
``PeerClosed`` and ``NotTLS`` under ConnectionLost, ``TLSHandshakeError``
under MailServerError), ``diagnose.classify`` (``Diagnosed`` under
MailServerError) and ``discovery.autoconfig`` (``NotAutoconfig`` under
MailhatError: a document that is not a usable clientConfig).
"""

from __future__ import annotations


class MailhatError(Exception):
    """Root of every error raised on purpose by mailhat_nb."""


class UsageError(MailhatError):
    """The user gave input we cannot use; the message says what to change."""


class PresetsError(UsageError):
    """A presets file is not valid TOML or breaks the presets format."""


class LabError(MailhatError):
    """The lab (private Dovecot + Exim on loopback) failed."""


class LabNotRunning(LabError):
    """A lab command needs a running lab, and there is none."""


class MailServerError(MailhatError):
    """A mail server answered with an error or broke the protocol."""


class AuthFailed(MailServerError):
    """The server rejected the username or password."""


class ConnectionLost(MailServerError):
    """The connection dropped mid-conversation; safe to retry."""


class ServerMisbehaved(MailServerError):
    """The server sent something no mail server sends.

    An endless line, a literal larger than any answer could need (or one
    announced where none belongs, as in a reply to a login), a literal that
    never arrives, garbage instead of the protocol, more data than the
    conversation can hold. Raised by the readers that bound what a server
    may send, so that a hostile or broken server costs a bounded amount of
    memory and time; the message says what it sent.
    """


class StoreError(MailhatError):
    """The local store could not be read or written."""


class SyncError(MailhatError):
    """A sync stopped and could not resume within its retry budget."""


class ConnectFailed(MailServerError):
    """The first connection of a sync failed before the login completed.

    Raised by the sync engine instead of retrying: a connection that never
    worked is a setting to fix (server, port, security, CA), and retrying it
    with backoff only hides that for minutes. The message says what happened
    and points to the connection doctor, which tries every usual setting.
    """


class CommandFailed(MailServerError):
    """The server answered a raw command (the sync's fast path) with a tagged ``NO`` or ``BAD``."""

    def __init__(self, command: str, status: str, text: str) -> None:
        super().__init__(f"the server answered {command} with {status}: {text}")
        self.command, self.status, self.text = command, status, text


class PlaintextRefused(MailServerError):
    """The server refuses passwords on this unencrypted connection, so none was sent.

    It said so before the login (``LOGINDISABLED``, RFC 3501 6.2.3: a client
    must not send LOGIN then). Not :class:`AuthFailed`: no login was tried,
    and the password may well be right; the remedy is encryption.
    """


class KernelFailed(MailhatError):
    """A kernel of the demo report died or timed out; the message ends with what it printed."""


class DnsError(MailhatError):
    """A DNS lookup failed; ``code`` names how (a DESIGN.md diagnosis code).

    ``dns_not_found`` (the name does not exist), ``dns_no_record`` (it exists,
    without a record of that type), ``dns_servfail`` (the nameservers failed),
    ``dns_timeout`` (no answer in time), ``dns_failure`` (anything else).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NothingToImport(MailhatError):
    """The source holds no message: not an mbox, an empty file, an empty tree.

    An error, not an import of zero messages: ``mailhat import --mbox
    /etc/passwd`` "succeeding" would leave the user looking for mail that
    was never there. Nothing is written to the store.
    """


def reason(exc: BaseException) -> str:
    """What went wrong, in words: an OS error's text without ``[Errno N]`` and the path.

    The message around it already names the file; "[Errno 20] Not a
    directory: '/etc/passwd/store'" repeats it in a programmer's notation.
    """
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
