r"""The IMAP side of a sync: one session, and the one place foreign errors become ours.

:class:`ImapSession` logs in with imapclient and answers the questions the
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
through :func:`mailhat_nb.secrets.redact`: a password never leaves here.

Two imapclient habits are worked around here: ``fetch("1:*")`` raises
``ValueError: invalid literal for int()`` in imapclient 4.0.1 and 4.1.0 (it
filters its result through ``int()`` of the message set *after* the whole
answer was read), so FETCH never goes through imapclient; and imapclient
turns INTERNALDATE into naive local times unless ``normalise_times`` is False,
which it is set to.
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mailhat_nb.errors import AuthFailed, ConnectionLost, MailServerError, UsageError
from mailhat_nb.secrets import Secret, redact
from mailhat_nb.sync import fetch

if TYPE_CHECKING:
    from imapclient import IMAPClient

Security = Literal["ssl", "starttls", "none"]
DEFAULT_PORTS: dict[str, int] = {"ssl": 993, "starttls": 143, "none": 143}

#: Special-use flags (RFC 6154, plus Gmail's \Important/\Starred) -> folder_role.
ROLES: dict[str, str] = {
    "\\sent": "sent", "\\drafts": "drafts", "\\trash": "trash", "\\junk": "junk",
    "\\all": "all", "\\archive": "archive", "\\flagged": "flagged",
    "\\important": "important", "\\allmail": "all", "\\spam": "junk", "\\starred": "flagged",
}  # fmt: skip
_NOT_SELECTABLE = frozenset({"\\noselect", "\\nonexistent"})


@dataclass(frozen=True)
class ImapSettings:
    """Where and as whom to log in (never the password: that is a :class:`Secret`).

    ``username`` defaults to ``email``; ``port`` to 993 for ``ssl`` and 143
    otherwise; ``ca_file`` adds a private CA to the system's trust store.
    """

    email: str
    host: str
    port: int | None = None
    security: Security = "ssl"
    username: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in DEFAULT_PORTS:
            raise UsageError(f"security must be ssl, starttls or none, not {self.security!r}")
        if not self.email or not self.host:
            raise UsageError("an email address and a server name are needed")

    @property
    def login(self) -> str:
        """The login name: ``username`` or else the email address."""
        return self.username or self.email

    @property
    def account(self) -> str:
        """The store's name for this account: the email address, lower-cased."""
        return self.email.strip().lower()

    @property
    def effective_port(self) -> int:
        """``port`` or the default for ``security``."""
        return self.port or DEFAULT_PORTS[self.security]


@dataclass(frozen=True)
class FolderInfo:
    """One LIST entry: decoded name, raw flags, role and whether it can be examined."""

    name: str
    delimiter: str | None
    flags: tuple[str, ...]
    role: str | None
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
    def esearch(self) -> bool:  # noqa: D102
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
        return redact(str(exc) or type(exc).__name__, secrets)

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


def _role(flags: Sequence[str], name: str) -> str | None:
    for flag in flags:
        role = ROLES.get(flag.lower())
        if role:
            return role
    if name.upper() == "INBOX":
        return "inbox"
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# --------------------------------------------------------------------------- session


class ImapSession:
    """One logged-in IMAP connection for a sync (use as a context manager).

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

    def open(self) -> ImapSession:
        """Connect, secure, log in, read capabilities, enable CONDSTORE."""
        from imapclient import IMAPClient, SocketTimeout

        s = self.settings
        timeout = SocketTimeout(connect=min(s.timeout, 15.0), read=s.timeout)
        with translate_errors(f"connecting to {self._where()}", [self._password]):
            ctx = self._ssl_context()
            client = IMAPClient(s.host, port=s.effective_port, ssl=s.security == "ssl",
                                ssl_context=ctx if s.security == "ssl" else None,
                                timeout=timeout)
            self._client = client
            client.normalise_times = False  # tz-aware INTERNALDATEs, never naive local
            if s.security == "starttls":
                client.starttls(ctx)
        with translate_errors(f"logging in to {self._where()} as {s.login}", [self._password]):
            self._login(client)
        with translate_errors(f"reading the capabilities of {self._where()}"):
            caps = frozenset(_text(c).upper() for c in client.capabilities())
            self.capabilities = Capabilities(caps)
            if self.capabilities.condstore and "ENABLE" in caps:
                client.enable("CONDSTORE")
            self._wire = fetch.Wire(client._imap)
        return self

    def _login(self, client: IMAPClient) -> None:
        """LOGIN, or AUTHENTICATE PLAIN for a password that is not ASCII.

        LOGIN's arguments are ASCII only (imaplib raises UnicodeEncodeError);
        SASL PLAIN carries UTF-8 (RFC 4616), which is how such passwords work
        with Dovecot and most servers.
        """
        login, password = self.settings.login, self._password.reveal()
        if password.isascii() and login.isascii():
            client.login(login, password)
            return
        caps = {_text(c).upper() for c in client.capabilities()}
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

    def __enter__(self) -> ImapSession:
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
                role=_role(flags, _text(name)), selectable=not (lower & _NOT_SELECTABLE),
            ))
        return out

    def status(self, folder: str) -> FolderStatus:
        """STATUS MESSAGES UIDNEXT UIDVALIDITY (HIGHESTMODSEQ with CONDSTORE)."""
        what = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if self.capabilities.condstore:
            what.append("HIGHESTMODSEQ")
        with translate_errors(f"STATUS of {folder!r}"):
            got = {_text(k).upper(): v for k, v in self.client.folder_status(folder, what).items()}
        return FolderStatus(
            messages=int(got.get("MESSAGES", 0)), uidnext=int(got.get("UIDNEXT", 0)),
            uidvalidity=int(got.get("UIDVALIDITY", 0)),
            highestmodseq=int(got["HIGHESTMODSEQ"]) if "HIGHESTMODSEQ" in got else None,
        )

    def examine(self, folder: str) -> FolderStatus:
        """EXAMINE (read-only SELECT): nothing we do can change a flag."""
        with translate_errors(f"examining {folder!r}"):
            got = {_text(k).upper(): v
                   for k, v in self.client.select_folder(folder, readonly=True).items()}
        self.selected = folder
        modseq = got.get("HIGHESTMODSEQ")
        return FolderStatus(
            messages=int(got.get("EXISTS", 0)), uidnext=int(got.get("UIDNEXT", 0)),
            uidvalidity=int(got.get("UIDVALIDITY", 0)),
            highestmodseq=int(modseq) if modseq is not None else None,
        )

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
