r"""The IMAP side of a sync: one session, its every foreign call translated.

:class:`ImapSource` connects with imapclient and answers the questions the
sync engine asks, in as few round trips as the server allows: which folders
exist and what each holds (LIST with RFC 5819's ``RETURN (STATUS ...)``,
else LIST and STATUS pipelined), and, for the folders that changed, the
commands the engine builds here (EXAMINE, ``UID SEARCH``, flag changes
since a modification sequence with CONDSTORE ``CHANGEDSINCE``, the header
blocks of new messages), all pipelined on the same connection by
:mod:`mailhat_nb.sync.wire`. Folders are only ever EXAMINEd (read-only) and
bodies only ``BODY.PEEK``ed, so a sync never sets ``\Seen`` or any other flag.

Logging in takes what the server already said: the capabilities in its
greeting decide how (``AUTHENTICATE PLAIN`` with SASL-IR in one round trip
where offered, else LOGIN, else AUTHENTICATE PLAIN for a password that is
not ASCII), the login's answer gives the capabilities after login, and a
server that refuses passwords in clear text is sent none
(:func:`~mailhat_nb.sync.imap_errors.refuse_plaintext`). imapclient keeps
what it does well (TCP, TLS, the greeting, STARTTLS, LOGIN); after the login
every command is the wire's, so imapclient's ``fetch("1:*")`` bug
(``ValueError: invalid literal for int()`` in 4.0.1 and 4.1.0, raised after
the whole answer was read) and its naive local INTERNALDATEs never meet the
sync.

Every call into imapclient, imaplib, ``ssl`` or ``socket`` goes through
:func:`~mailhat_nb.sync.imap_errors.translate_errors`, the one boundary where
foreign errors become :mod:`mailhat_nb.errors` (its module says which).
Messages pass through :func:`mailhat_nb.secrets.redact`: a password never
leaves here, and through :func:`~mailhat_nb.sync.imap_errors.server_text`:
the server's words, never Python's bytes reprs.

Connecting is told apart from a dropped session: :meth:`ImapSource.open`
says which step failed (TCP, TLS handshake, greeting) and what that usually
means (a closed or filtered port, TLS against a plain port or the reverse,
another protocol on the port), within :data:`CONNECT_TIMEOUT` seconds, and
the engine retries only a connection that had worked (:class:`ConnectFailed`).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mailhat_nb.checks import check_username, split_email
from mailhat_nb.diagnose.certificate import verified_context
from mailhat_nb.errors import (
    AuthFailed,
    ConnectionLost,
    DnsError,
    MailhatError,
    MailServerError,
    ServerMisbehaved,
    UsageError,
)
from mailhat_nb.secrets import Secret, redact
from mailhat_nb.sync import borrowed, fetch
from mailhat_nb.sync.imap_errors import (
    certificate_error,
    connect_error,
    refuse_plaintext,
    translate_errors,
)
from mailhat_nb.sync.wire import (
    Authenticate,
    Capability,
    Command,
    Fetch,
    FolderInfo,
    FolderStatus,
    ListFolders,
    Search,
    Status,
    Wire,
    capability_names,
)

if TYPE_CHECKING:
    from imapclient import IMAPClient

Security = Literal["ssl", "starttls", "none"]
DEFAULT_PORTS: dict[str, int] = {"ssl": 993, "starttls": 143, "none": 143}
#: Seconds to wait for the TCP connection, the TLS handshake and the greeting
#: (each). The doctor's default too: a server that has not answered in 10 s
#: on a working connection is not going to, and a user waiting on a wrong
#: port or a firewall should hear so in seconds, not minutes.
CONNECT_TIMEOUT = 10.0


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
    #: ``IP[:PORT]`` of the nameserver to look ``host`` up with (``--dns-server``);
    #: None: the system's resolver.
    dns_server: str | None = None

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

    @property
    def list_status(self) -> bool:
        """LIST ... RETURN (STATUS ...) (RFC 5819): every folder's state in one command."""
        return "LIST-STATUS" in self.raw

    @property
    def special_use(self) -> bool:
        """Special-use flags (RFC 6154), which LIST-EXTENDED returns only when asked."""
        return "SPECIAL-USE" in self.raw

    @property
    def enable(self) -> bool:
        """ENABLE (RFC 5161): CONDSTORE switched on once, for every EXAMINE after."""
        return "ENABLE" in self.raw


# --------------------------------------------------------------------------- login


LoginMethod = Literal["sasl-ir", "login", "plain"]


def login_method(caps: Set[str], *, encrypted: bool, ascii_only: bool,
                 where: str) -> LoginMethod:
    """How to send the password, from what the server said it takes (``caps``).

    ``sasl-ir``: ``AUTHENTICATE PLAIN`` with the initial response (RFC 4959),
    one round trip, UTF-8; ``login``: ``LOGIN``, one round trip, ASCII only;
    ``plain``: ``AUTHENTICATE PLAIN`` answering the server's challenge, two
    round trips, for a password that is not ASCII on a server without SASL-IR.

    Raises
    ------
    PlaintextRefused
        On an unencrypted connection whose server refuses passwords there
        (see :func:`refuse_plaintext`): nothing may be sent.
    AuthFailed
        When no mechanism the server offers can carry this login.
    """
    refuse_plaintext(caps, encrypted=encrypted, where=where)
    if "AUTH=PLAIN" in caps and "SASL-IR" in caps:
        return "sasl-ir"
    if ascii_only and "LOGINDISABLED" not in caps:
        return "login"
    if "AUTH=PLAIN" in caps:
        return "plain"
    if not ascii_only:
        raise AuthFailed(
            f"the password or login has non-ASCII characters, and {where} offers no "
            "AUTHENTICATE PLAIN to send them (plain LOGIN is ASCII only): change the password "
            "to ASCII, or use another server")
    raise AuthFailed(f"{where} lists LOGINDISABLED and no AUTHENTICATE PLAIN: it offers no "
                     "way to log in with a password")


@dataclass(frozen=True)
class Listing:
    """One folder as LIST showed it, with its STATUS (or why there is none)."""

    info: FolderInfo
    status: FolderStatus | None = None
    error: MailServerError | None = None


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
        Revealed only to the login.
    """

    def __init__(self, settings: ImapSettings, password: Secret) -> None:
        self.settings = settings
        self._password = password
        self._client: IMAPClient | None = None
        self._wire: Wire | None = None
        self._enabled = False
        self.capabilities = Capabilities()

    # ------------------------------------------------------------------ lifecycle

    def _where(self) -> str:
        s = self.settings
        return f"{s.host}:{s.effective_port} ({s.security})"

    def open(self) -> ImapSource:
        """Connect, secure, log in; the capabilities come from what the server said.

        Round trips: TCP, TLS, the greeting (its ``[CAPABILITY ...]`` decides
        how to log in), the login (whose answer lists the capabilities after
        login); STARTTLS adds its own, and ``CAPABILITY`` after it.

        Raises
        ------
        ConnectionLost
            Connecting failed in a way a later retry may cure (refused, timed
            out, closed); the message names the step and the likely cause.
        AuthFailed
            The server refused the login.
        PlaintextRefused
            ``--security none`` and the server refuses passwords without
            encryption: nothing was sent.
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
        from imapclient import SocketTimeout

        s = self.settings
        timeout = SocketTimeout(connect=s.connect_timeout, read=s.timeout)
        ctx = verified_context(s.ca_file)
        address: str | None = None
        try:
            address = self._address() if s.dns_server else None
            client = borrowed.connect(s.host, s.effective_port,
                                      ssl_context=ctx if s.security == "ssl" else None,
                                      timeout=timeout, address=address)
        except ServerMisbehaved as exc:
            raise ServerMisbehaved(f"connecting to {self._where()}: {exc}") from exc
        except MailhatError:
            raise
        except Exception as exc:
            raise connect_error(exc, s, [self._password], address) from exc
        self._client = client
        if s.security == "starttls":
            what = f"starting TLS with {self._where()}"
            with translate_errors(what, [self._password]):
                try:
                    client.starttls(ctx)
                except ssl.SSLCertVerificationError as exc:
                    raise certificate_error(exc, s, what, address) from exc
        imap = borrowed.imaplib_of(client)
        login, password = s.login, self._password.reveal()
        what = f"logging in to {self._where()} as {login}"
        method = login_method(frozenset(c.upper() for c in imap.capabilities),
                              encrypted=s.security != "none",
                              ascii_only=password.isascii() and login.isascii(),
                              where=self._where())
        after: frozenset[str] | None
        with translate_errors(what, [self._password]):
            if method == "sasl-ir":
                wire = Wire(imap)
                auth = Authenticate(login, password)
                wire.run(auth)
                if not auth.ok:
                    raise AuthFailed(f"{what}: the server rejected the login "
                                     f"({redact(auth.said, [self._password]) or auth.status})")
                after = auth.capabilities or wire.announced
            else:
                if method == "login":
                    client.login(login, password)
                else:
                    client.plain_login(login, password)
                after = capability_names(client.capabilities())
                wire = Wire(imap)
        self._wire = wire
        if not after:
            asked = Capability()
            with translate_errors(f"reading the capabilities of {self._where()}"):
                wire.run(asked)
            after = asked.capabilities or frozenset()
        self.capabilities = Capabilities(after)
        return self

    def _address(self) -> str:
        """The server's address from ``--dns-server`` (the name still checked by TLS).

        Raises
        ------
        MailServerError
            When that nameserver has no address for the server name.
        """
        from mailhat_nb.diagnose.dns import Resolver

        s = self.settings
        try:
            return Resolver(s.dns_server, lifetime=s.connect_timeout).addresses(
                s.host).addresses[0]
        except DnsError as exc:
            raise MailServerError(f"connecting to {self._where()}: {exc} [{exc.code}]") from exc

    def close(self) -> None:
        """Log out without waiting for the answer (the connection may already be gone)."""
        client, wire, self._client, self._wire = self._client, self._wire, None, None
        if client is None:
            return
        if wire is not None and wire.clean:
            with contextlib.suppress(Exception):
                wire.send_and_forget(b"LOGOUT")
        with contextlib.suppress(Exception):
            client.shutdown()

    def __enter__(self) -> ImapSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def wire(self) -> Wire:
        """The connection's commands; unusable after a command was abandoned mid-answer."""
        if self._wire is None:
            raise ConnectionLost("not connected")
        return self._wire

    # ------------------------------------------------------------------ commands

    def submit(self, *commands: Command) -> None:
        """Queue commands (built by the methods below); :meth:`results` sends them."""
        self.wire.submit(*commands)

    def results(self) -> Iterator[Command]:
        """Completed commands in the order submitted (see :meth:`Wire.results`).

        Raises
        ------
        ConnectionLost, MailServerError
            The connection dropped or broke (translated here, the one boundary).
        """
        answers = self.wire.results()
        while True:
            with translate_errors(f"reading answers from {self._where()}", [self._password]):
                done = next(answers, None)
            if done is None:
                return
            yield done

    def run(self, *commands: Command) -> None:
        """Submit ``commands`` and wait until they (and all queued) have completed."""
        self.submit(*commands)
        for _ in self.results():
            pass

    def folder_states(self, names: Iterable[str] = ()) -> list[Listing]:
        """Every folder from LIST, with the STATUS of each one that can be examined.

        One round trip where the server offers LIST-STATUS (RFC 5819): the
        LIST carries every STATUS. Elsewhere LIST and the STATUS of ``names``
        (the folders the caller expects) go in one write, and the STATUS of
        folders LIST showed beyond them in a second. ``ENABLE CONDSTORE``
        goes in the first write (once per session), so every EXAMINE after
        it reports HIGHESTMODSEQ.
        """
        caps = self.capabilities
        first: list[Command] = []
        if caps.condstore and caps.enable and not self._enabled:
            first.append(Command(b"ENABLE CONDSTORE"))
            self._enabled = True
        items: tuple[str, ...] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
        if caps.condstore:
            items += ("HIGHESTMODSEQ",)
        listing = ListFolders(items if caps.list_status else (), special_use=caps.special_use)
        asked = {} if caps.list_status else {name: Status(name, items)
                                             for name in dict.fromkeys(names)}
        self.run(*first, listing, *asked.values())
        if not listing.ok and caps.list_status:  # advertised, then refused: ask as elsewhere
            listing = ListFolders()
            self.run(listing)
        if not listing.ok:
            raise MailServerError(f"listing folders on {self._where()}: {listing.failure()}")
        statuses: dict[str, FolderStatus | MailServerError] = dict(listing.statuses)
        missing = [Status(f.name, items) for f in listing.folders
                   if f.selectable and f.name not in listing.statuses and f.name not in asked]
        self.run(*missing)
        for status in (*asked.values(), *missing):
            statuses[status.name] = status.result or status.failure()
        out = []
        for info in listing.folders:
            got = statuses.get(info.name) if info.selectable else None
            out.append(Listing(info, got, None) if not isinstance(got, MailServerError)
                       else Listing(info, None, MailServerError(f"STATUS of {info.name!r}: {got}")))
        return out

    def search(self, group: object, count: int) -> Search:
        """Every UID of the examined folder (``count``: about how many)."""
        return Search(group, self.capabilities.esearch, count)

    def flags(self, group: object, up_to: int, since: int | None) -> Fetch:
        """FLAGS (and Gmail labels) of UIDs ``1:up_to`` changed after modseq ``since``.

        Without CONDSTORE (or without a previous modseq) every message's flags
        come: the only way such a server tells flag changes.
        """
        items = b"(UID FLAGS" + (b" X-GM-LABELS" if self.capabilities.gmail else b"") + b")"
        modifiers = b""
        if since is not None and self.capabilities.condstore:
            modifiers = b"(CHANGEDSINCE %d)" % since
        # A flags-only answer is about a tenth of a header block's.
        return Fetch(1, up_to, items, group=group, weight=up_to // 10, modifiers=modifiers,
                     headers=False)

    def headers(self, group: object, lo: int, hi: int | None, expected: int,
                fields: Sequence[str]) -> Fetch:
        """Header blocks of UIDs ``lo:hi`` (``hi`` None: ``lo:*``), about ``expected`` of them."""
        items = fetch.fetch_items(fields, gmail=self.capabilities.gmail)
        return Fetch(lo, hi, items, group=group, weight=expected)
