"""The sync's one contact with what imapclient and imaplib keep private.

imapclient opens and secures the connection (and logs in where the server
offers no ``SASL-IR``); after that the sync writes and reads its own
commands on the same socket (:mod:`mailhat_nb.sync.wire`). That takes a few
things neither library makes public, touched here and nowhere else:

* ``IMAPClient._create_IMAP4`` builds the :class:`imaplib.IMAP4` underneath:
  :func:`connect` gives it a subclass (:class:`_Guarded`) that takes the
  capabilities from the greeting's ``[CAPABILITY ...]`` instead of asking
  again (imaplib always sends ``CAPABILITY`` after the greeting: a round trip
  for what the server already said), through ``IMAP4._get_capabilities``,
  and whose ``_create_socket`` connects to an address chosen beforehand
  (``--dns-server``) while TLS still checks the server's name;
* ``IMAPClient._imap`` (that connection), ``IMAP4._new_tag()`` (the next tag,
  registered in ``IMAP4.tagged_commands`` so that imaplib never reuses it)
  and ``IMAP4.file`` (the buffered reader of the socket).

:data:`TESTED_IMAPCLIENT` names the imapclient releases this was tested with
(``pyproject.toml`` pins the same range, and a test checks the installed
release against both); a release that moves these attributes gets a clear
error from :func:`imaplib_of`, never a wrong answer.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from mailhat_nb.errors import MailServerError
from mailhat_nb.sync.fetch import misbehaved, printable

if TYPE_CHECKING:
    from imapclient import IMAPClient, SocketTimeout

#: The imapclient releases the borrowing was tested with (a pip specifier).
TESTED_IMAPCLIENT = ">=4.1.0,<4.2"
#: Longest line imaplib may read here: a greeting, CAPABILITY, a LOGIN answer.
LOGIN_LINE = 64 * 1024


class ImaplibLike(Protocol):
    """The part of :class:`imaplib.IMAP4` the sync's own commands use."""

    file: BinaryIO
    capabilities: tuple[str, ...]

    def send(self, data: bytes) -> None: ...  # noqa: D102 - imaplib's
    def _new_tag(self) -> bytes: ...


class _Guarded(imaplib.IMAP4):
    """imaplib, bounded and told to believe the greeting (a mix-in before imapclient's classes).

    RFC 3501 7.1 lets a server list its capabilities in the greeting's
    response code, and every server this project met does; only when it did
    not, or after STARTTLS (where what was said in clear no longer counts,
    RFC 3501 6.2.1), is ``CAPABILITY`` asked.

    imaplib reads the greeting, CAPABILITY, STARTTLS and a LOGIN's answer,
    each to its end whatever its size (a literal of whatever length the
    server announces, lines up to 1 MB). Here a line is at most
    :data:`LOGIN_LINE` bytes, no literal is taken (none belongs before the
    login is answered), and after the greeting a line that is not an IMAP
    response is refused: :class:`~mailhat_nb.errors.ServerMisbehaved`.
    """

    _greeted = False

    def readline(self) -> bytes:
        line = self.file.readline(LOGIN_LINE + 1)
        if not isinstance(line, bytes):
            return b""
        if len(line) > LOGIN_LINE:
            raise misbehaved(f"a line of more than {LOGIN_LINE:,} bytes with no end")
        prefix: Any = self.tagpre  # bytes at run time, whatever the stub says
        tagged = isinstance(prefix, bytes) and line.startswith(prefix)
        if self._greeted and line and not (line.startswith((b"* ", b"+")) or tagged):
            raise misbehaved(f"a line that is not IMAP: {printable(line)}")
        return line

    def read(self, size: int) -> bytes:
        raise misbehaved(f"a literal of {size:,} bytes where none belongs (before the "
                               "login was answered)")

    def _get_capabilities(self) -> None:
        said: Any = self.untagged_responses.pop("CAPABILITY", None)
        first, self._greeted = not self._greeted, True
        if first and said and isinstance(said[-1], bytes):
            self.capabilities = tuple(said[-1].decode("ascii", "replace").upper().split())
            return
        super()._get_capabilities()  # type: ignore[misc] # imaplib's own, not in its stub


def connect(host: str, port: int, *, ssl_context: ssl.SSLContext | None,
            timeout: SocketTimeout, address: str | None = None) -> IMAPClient:
    """An imapclient session on ``host:port``, greeted (implicit TLS when ``ssl_context``).

    ``address``: connect there instead of where the system's resolver puts
    ``host`` (``--dns-server``: the address that nameserver gave). Whatever
    proves identity keeps the *name*: TLS's SNI and the certificate check,
    implicit and after STARTTLS, are made against ``host``, so a certificate
    valid only for the address, or for another name, is refused as without it.

    Raises what imapclient and imaplib raise (``OSError``, ``ssl.SSLError``,
    ``imaplib.IMAP4.error``): the caller translates it.
    """
    from imapclient import IMAPClient, imap4, tls

    where = address or host

    class Plain(_Guarded, imap4.IMAP4WithTimeout):  # type: ignore[misc] # untyped base
        def _create_socket(self, timeout: float | None = None) -> socket.socket:
            return socket.create_connection(
                (where, self.port), self._timeout if timeout is None else timeout)

    class TLS(_Guarded, tls.IMAP4_TLS):  # type: ignore[misc] # untyped base
        def _create_socket(self, timeout: float | None = None) -> socket.socket:
            sock = socket.create_connection(
                (where, self.port), self._timeout if timeout is None else timeout)
            wrapped: socket.socket = tls.wrap_socket(sock, self.ssl_context, self.host)
            return wrapped

    class Client(IMAPClient):  # type: ignore[misc] # untyped base
        def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's name
            made: Any = TLS if self.ssl else Plain  # their own __init__s, untyped
            args = (self.ssl_context,) if self.ssl else ()
            imap: imaplib.IMAP4 = made(self.host, self.port, *args, self._timeout.connect)
            return imap

    client: IMAPClient = Client(host, port=port, ssl=ssl_context is not None,
                                ssl_context=ssl_context, timeout=timeout)
    return client


def imaplib_of(client: IMAPClient) -> ImaplibLike:
    """The :class:`imaplib.IMAP4` under an imapclient session.

    Raises
    ------
    MailServerError
        When the installed imapclient no longer has what the sync borrows.
    """
    imap: Any = getattr(client, "_imap", None)
    if imap is None or not all(hasattr(imap, name) for name in
                               ("file", "send", "_new_tag", "tagged_commands",
                                "capabilities")):
        import imapclient

        raise MailServerError(
            f"imapclient {imapclient.__version__} no longer offers what the sync borrows "
            f"from it; install imapclient{TESTED_IMAPCLIENT}")
    return cast("ImaplibLike", imap)  # checked above, attribute by attribute


class Borrowed:
    """An imaplib connection used for the sync's own commands: tags, writes, the reader."""

    def __init__(self, imap: ImaplibLike) -> None:
        self._imap = imap
        #: the buffered reader of the socket
        self.stream = imap.file

    def tag(self) -> bytes:
        """A fresh tag of imaplib's (registered, so imaplib never hands it out again)."""
        return self._imap._new_tag()

    def write(self, data: bytes) -> None:
        """Send ``data`` as it is (whole command lines, CRLF included) in one write."""
        self._imap.send(data)

    def done(self, tag: bytes) -> None:
        """Forget ``tag`` in imaplib's books (``_new_tag`` registered it there)."""
        tagged = getattr(self._imap, "tagged_commands", None)
        if isinstance(tagged, dict):
            tagged.pop(tag, None)
