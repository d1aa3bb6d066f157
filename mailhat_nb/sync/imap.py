r"""The IMAP side of a sync: one session, and the one place foreign errors become ours.

:class:`ImapSource` logs in with imapclient and answers the questions the
sync engine asks: which folders exist (LIST, modified UTF-7 names decoded,
special-use flags turned into roles), what each holds (STATUS), which UIDs
a folder has now (ESEARCH, else SEARCH), which flags changed since a
modification sequence (CONDSTORE ``CHANGEDSINCE``), and the header blocks of
new messages (the bulk FETCH of :mod:`mailhat_nb.sync.fetch`, on the same
connection). Folders are only ever EXAMINEd (read-only) and bodies only
``BODY.PEEK``ed, so a sync never sets ``\Seen`` or any other flag.

Every call into imapclient, imaplib, ``ssl`` or ``socket`` goes through
:func:`translate_errors`, so callers only ever see :mod:`mailhat_nb.errors`:
:class:`~mailhat_nb.errors.ConnectionLost` for what a retry may cure,
:class:`~mailhat_nb.errors.AuthFailed` for a refused login, and
:class:`~mailhat_nb.errors.MailServerError` for the rest. Messages pass
through :func:`mailhat_nb.secrets.redact`: a password never leaves here, and
through :func:`server_text`: the server's words, never Python's bytes reprs.

Connecting is told apart from a dropped session: :meth:`ImapSource.open`
says which step failed (TCP, TLS handshake, greeting) and what that usually
means (a closed or filtered port, TLS against a plain port or the reverse,
another protocol on the port), within :data:`CONNECT_TIMEOUT` seconds, and
the engine retries only a connection that had worked (:class:`ConnectFailed`).

Two imapclient habits are worked around here: ``fetch("1:*")`` raises
``ValueError: invalid literal for int()`` in imapclient 4.0.1 and 4.1.0 (it
filters its result through ``int()`` of the message set *after* the whole
answer was read), so FETCH never goes through imapclient; and imapclient
turns INTERNALDATE into naive local times unless ``normalise_times`` is False,
which it is set to.
"""

from __future__ import annotations

import ast
import contextlib
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mailhat_nb.checks import check_username, split_email
from mailhat_nb.errors import (
    AuthFailed,
    ConnectionLost,
    MailServerError,
    PlaintextRefused,
    UsageError,
)
from mailhat_nb.secrets import Secret, redact
from mailhat_nb.sync import fetch
from mailhat_nb.sync.borrowed import imaplib_of

if TYPE_CHECKING:
    from imapclient import IMAPClient

Security = Literal["ssl", "starttls", "none"]
DEFAULT_PORTS: dict[str, int] = {"ssl": 993, "starttls": 143, "none": 143}
#: Seconds to wait for the TCP connection, the TLS handshake and the greeting
#: (each). The doctor's default too: a server that has not answered in 10 s
#: on a working connection is not going to, and a user waiting on a wrong
#: port or a firewall should hear so in seconds, not minutes.
CONNECT_TIMEOUT = 10.0
_NOT_SELECTABLE = frozenset({"\\noselect", "\\nonexistent"})


def _folder_status(answer: Mapping[Any, Any], count_key: str) -> FolderStatus:
    """A STATUS or SELECT answer as a :class:`FolderStatus`; ``count_key`` holds the count."""
    got = {_text(k).upper(): v for k, v in answer.items()}
    modseq = got.get("HIGHESTMODSEQ")
    return FolderStatus(
        messages=int(got.get(count_key, 0)), uidnext=int(got.get("UIDNEXT", 0)),
        uidvalidity=int(got.get("UIDVALIDITY", 0)),
        highestmodseq=int(modseq) if modseq is not None else None,
    )


@dataclass(frozen=True)
class ImapSettings:
    """Where and as whom to log in (never the password: that is a :class:`Secret`).

    ``username`` defaults to ``email``; ``port`` to 993 for ``ssl`` and 143
    otherwise; ``ca_file`` adds a private CA to the system's trust store.
    ``connect_timeout`` bounds each step of connecting (TCP, TLS, greeting:
    see :data:`CONNECT_TIMEOUT`); ``timeout`` each read once connected,
    longer because a big FETCH may take the server a while to start.
    """

    email: str
    host: str
    port: int | None = None
    security: Security = "ssl"
    username: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0
    connect_timeout: float = CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        if self.security not in DEFAULT_PORTS:
            raise UsageError(f"security must be ssl, starttls or none, not {self.security!r}")
        if not self.email or not self.host:
            raise UsageError("an email address and a server name are needed")
        if not (self.timeout > 0 and self.connect_timeout > 0):
            raise UsageError("timeouts must be positive numbers of seconds")
        # The doctor's rules for the same fields (a pasted space dropped, two @,
        # a line break refused): what one command accepts, the other does too.
        object.__setattr__(self, "email", split_email(self.email)[0])
        object.__setattr__(self, "username", check_username(self.username or "") or None)

    @property
    def login(self) -> str:
        """The login name: ``username`` or else the email address."""
        return self.username or self.email

    @property
    def account(self) -> str:
        """The store's name for this account: the email address, lower-cased."""
        return self.email.lower()

    @property
    def effective_port(self) -> int:
        """``port`` or the default for ``security``."""
        return self.port or DEFAULT_PORTS[self.security]


@dataclass(frozen=True)
class FolderInfo:
    """One LIST entry: decoded name, raw flags and whether it can be examined.

    The folder's role is not decided here: :func:`mailhat_nb.sync.folders.folder_role`
    is the one rule (flags first, then the name), applied by the engine.
    """

    name: str
    delimiter: str | None
    flags: tuple[str, ...]
    selectable: bool


@dataclass(frozen=True)
class FolderStatus:
    """STATUS (or EXAMINE) of a folder; ``highestmodseq`` is None without CONDSTORE."""

    messages: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None


@dataclass
class Capabilities:
    """What the server offers that the sync cares about."""

    raw: frozenset[str] = field(default_factory=frozenset)

    @property
    def condstore(self) -> bool:  # noqa: D102 - the name says it
        return "CONDSTORE" in self.raw or "QRESYNC" in self.raw

    @property
    def esearch(self) -> bool:  # noqa: D102 - the name says it
        return "ESEARCH" in self.raw

    @property
    def gmail(self) -> bool:
        """Gmail's extensions (X-GM-EXT-1): labels, message and thread ids."""
        return "X-GM-EXT-1" in self.raw


# --------------------------------------------------------------------------- errors


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
    except (AuthFailed, ConnectionLost, MailServerError, UsageError):
        raise
    except ice.LoginError as exc:
        raise AuthFailed(f"{what}: the server rejected the login ({text(exc)})") from exc
    except ssl.SSLCertVerificationError as exc:
        raise MailServerError(
            f"{what}: the server's certificate is not trusted ({exc.verify_message}); "
            "pass the CA with --ca-file if it is a private one"
        ) from exc
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
    names = set()
    tb = exc.__traceback__
    while tb is not None:
        names.add(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    if "create_connection" in names:
        return "tcp"
    if "do_handshake" in names:
        return "tls"
    return "greeting"


def connect_error(exc: BaseException, settings: ImapSettings,
                  secrets: Sequence[Secret] = ()) -> MailServerError:
    """Translate a failure to connect (before LOGIN) into a message that says what to change.

    Retryable failures (refused, timed out, closed) stay
    :class:`~mailhat_nb.errors.ConnectionLost`, because during a sync they
    are what a server restart looks like; the engine decides whether to
    retry (only when a connection worked before). Failures no retry can
    cure (DNS, TLS against a plain port, another protocol, an untrusted
    certificate) are :class:`~mailhat_nb.errors.MailServerError`.
    """
    from imapclient import exceptions as ice

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
        return MailServerError(
            f"{where}: the server's certificate is not trusted ({exc.verify_message}); "
            "pass the CA with --ca-file if it is a private one")
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
        if exc.reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST",
                          "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
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


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


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


# --------------------------------------------------------------------------- session


class ImapSource:
    """The IMAP source of a sync: one logged-in connection (use as a context manager).

    Named for its place in the sync (sources -> rows -> store), beside the
    offline sources; the doctor's protocol probe is
    :class:`mailhat_nb.diagnose.imap.ImapSession`.

    Parameters
    ----------
    settings:
        Server, port, security and login.
    password:
        Revealed only to imapclient's LOGIN.
    """

    def __init__(self, settings: ImapSettings, password: Secret) -> None:
        self.settings = settings
        self._password = password
        self._client: IMAPClient | None = None
        self._wire: fetch.Wire | None = None
        self.capabilities = Capabilities()
        self.selected: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def _where(self) -> str:
        s = self.settings
        return f"{s.host}:{s.effective_port} ({s.security})"

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.settings.ca_file:
            try:
                ctx.load_verify_locations(cafile=self.settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"cannot read the CA file {self.settings.ca_file}: {exc}") \
                    from exc
        return ctx

    def open(self) -> ImapSource:
        """Connect, secure, log in, read capabilities, enable CONDSTORE.

        Raises
        ------
        ConnectionLost
            Connecting failed in a way a later retry may cure (refused, timed
            out, closed); the message names the step and the likely cause.
        AuthFailed
            The server refused the login.
        MailServerError
            Anything else (DNS, TLS against a plain port, another protocol,
            an untrusted certificate). Whatever fails, the socket is closed.
        """
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> ImapSource:
        from imapclient import IMAPClient, SocketTimeout

        s = self.settings
        timeout = SocketTimeout(connect=s.connect_timeout, read=s.timeout)
        ctx = self._ssl_context()
        try:
            client = IMAPClient(s.host, port=s.effective_port, ssl=s.security == "ssl",
                                ssl_context=ctx if s.security == "ssl" else None,
                                timeout=timeout)
        except Exception as exc:
            raise connect_error(exc, s, [self._password]) from exc
        self._client = client
        client.normalise_times = False  # tz-aware INTERNALDATEs, never naive local
        if s.security == "starttls":
            with translate_errors(f"starting TLS with {self._where()}", [self._password]):
                client.starttls(ctx)
        with translate_errors(f"logging in to {self._where()} as {s.login}", [self._password]):
            self._login(client)
        with translate_errors(f"reading the capabilities of {self._where()}"):
            caps = frozenset(_text(c).upper() for c in client.capabilities())
            self.capabilities = Capabilities(caps)
            if self.capabilities.condstore and "ENABLE" in caps:
                client.enable("CONDSTORE")
            self._wire = fetch.Wire(imaplib_of(client))
        return self

    def _login(self, client: IMAPClient) -> None:
        """LOGIN, or AUTHENTICATE PLAIN for a password that is not ASCII.

        LOGIN's arguments are ASCII only (imaplib raises UnicodeEncodeError);
        SASL PLAIN carries UTF-8 (RFC 4616), which is how such passwords work
        with Dovecot and most servers.
        """
        login, password = self.settings.login, self._password.reveal()
        caps = {_text(c).upper() for c in client.capabilities()}
        refuse_plaintext(caps, encrypted=self.settings.security != "none", where=self._where())
        if password.isascii() and login.isascii():
            client.login(login, password)
            return
        if "AUTH=PLAIN" not in caps:
            raise AuthFailed(
                f"the password or login for {login} has non-ASCII characters, and "
                f"{self._where()} offers no AUTHENTICATE PLAIN to send them (plain LOGIN is "
                "ASCII only): change the password to ASCII, or use another server")
        client.plain_login(login, password)

    def close(self) -> None:
        """Log out (best effort: the connection may already be gone)."""
        client, self._client, self._wire = self._client, None, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def __enter__(self) -> ImapSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> IMAPClient:
        """The imapclient session (raises when not connected)."""
        if self._client is None:
            raise ConnectionLost("not connected")
        return self._client

    @property
    def wire(self) -> fetch.Wire:
        """Raw commands on this connection; unusable after an abandoned command."""
        if self._wire is None:
            raise ConnectionLost("not connected")
        if not self._wire.clean:
            raise ConnectionLost("a previous command was abandoned mid-answer")
        return self._wire

    # ------------------------------------------------------------------ folders

    def folders(self) -> list[FolderInfo]:
        """Every folder from LIST, names decoded from modified UTF-7."""
        with translate_errors(f"listing folders on {self._where()}"):
            listed = self.client.list_folders()
        out = []
        for flags_raw, delim, name in listed:
            flags = tuple(_text(f) for f in flags_raw)
            lower = {f.lower() for f in flags}
            out.append(FolderInfo(
                name=_text(name), delimiter=_text(delim) if delim else None, flags=flags,
                selectable=not (lower & _NOT_SELECTABLE),
            ))
        return out

    def status(self, folder: str) -> FolderStatus:
        """STATUS MESSAGES UIDNEXT UIDVALIDITY (HIGHESTMODSEQ with CONDSTORE)."""
        what = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if self.capabilities.condstore:
            what.append("HIGHESTMODSEQ")
        with translate_errors(f"STATUS of {folder!r}"):
            return _folder_status(self.client.folder_status(folder, what), "MESSAGES")

    def examine(self, folder: str) -> FolderStatus:
        """EXAMINE (read-only SELECT): nothing we do can change a flag."""
        with translate_errors(f"examining {folder!r}"):
            answer = self.client.select_folder(folder, readonly=True)
        self.selected = folder
        return _folder_status(answer, "EXISTS")

    # ------------------------------------------------------------------ messages

    def uids(self) -> list[int]:
        """Every UID in the examined folder, sorted."""
        with translate_errors(f"listing the UIDs of {self.selected!r}"):
            if self.capabilities.esearch:
                return fetch.esearch_uids(self.wire)
            return fetch.search_uids(self.wire)

    def changed_flags(self, up_to: int, since: int | None) -> list[fetch.FetchedMessage]:
        """FLAGS (and Gmail labels) of messages ``1:up_to`` changed after modseq ``since``.

        Without CONDSTORE (or without a previous modseq) every message's flags
        are fetched: the only way such a server tells flag changes.
        """
        if up_to < 1:
            return []
        items = b"(UID FLAGS" + (b" X-GM-LABELS" if self.capabilities.gmail else b"") + b")"
        modifiers = b""
        if since is not None and self.capabilities.condstore:
            modifiers = b"(CHANGEDSINCE %d)" % since
        out: list[fetch.FetchedMessage] = []
        with translate_errors(f"fetching flag changes in {self.selected!r}"):
            for _, got in fetch.fetch_ranges(self.wire, [(1, up_to)], items, modifiers):
                out.extend(got)
        return out

    def fetch_headers(self, ranges: Sequence[tuple[int, int]], fields: Sequence[str],
                      ) -> Iterator[tuple[tuple[int, int], list[fetch.FetchedMessage]]]:
        """Header blocks for UID ``ranges``, one list per range, in order (pipelined)."""
        items = fetch.fetch_items(fields, gmail=self.capabilities.gmail)
        what = f"fetching headers from {self.selected!r}"
        with translate_errors(what):
            chunks = fetch.fetch_ranges(self.wire, ranges, items)
        while True:
            with translate_errors(what):
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
            yield chunk
