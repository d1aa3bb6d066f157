"""The fast FETCH path's one contact with what imapclient and imaplib keep private.

imapclient opens, secures and authenticates the connection; between two of
its complete commands the sync borrows it (:mod:`mailhat_nb.sync.fetch`).
That takes three things neither library makes public: ``IMAPClient._imap``
(the :class:`imaplib.IMAP4` underneath), ``IMAP4._new_tag()`` (the next tag,
registered in ``IMAP4.tagged_commands`` so that imaplib never reuses it) and
``IMAP4.file`` (the buffered reader of the socket). They are touched here and
nowhere else. :data:`TESTED_IMAPCLIENT` names the imapclient releases this was
tested with (``pyproject.toml`` pins the same range, and a test checks the
installed release against both); a release that moves these attributes gets
a clear error from :func:`imaplib_of`, never a wrong answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from mailhat_nb.errors import MailServerError

if TYPE_CHECKING:
    from imapclient import IMAPClient

#: The imapclient releases the borrowing was tested with (a pip specifier).
TESTED_IMAPCLIENT = ">=4.1.0,<4.2"


class ImaplibLike(Protocol):
    """The part of :class:`imaplib.IMAP4` the fast path uses."""

    file: BinaryIO

    def send(self, data: bytes) -> None: ...  # noqa: D102 - imaplib's
    def _new_tag(self) -> bytes: ...


def imaplib_of(client: IMAPClient) -> ImaplibLike:
    """The :class:`imaplib.IMAP4` under an imapclient session.

    Raises
    ------
    MailServerError
        When the installed imapclient no longer has what the fast path borrows.
    """
    imap: Any = getattr(client, "_imap", None)
    if imap is None or not all(hasattr(imap, name) for name in
                               ("file", "send", "_new_tag", "tagged_commands")):
        import imapclient

        raise MailServerError(
            f"imapclient {imapclient.__version__} no longer offers what the sync's fast FETCH "
            f"path borrows from it; install imapclient{TESTED_IMAPCLIENT}")
    return cast("ImaplibLike", imap)  # checked above, attribute by attribute


class Borrowed:
    """An imaplib connection used for raw commands: tags it, reads it, hands the tags back."""

    def __init__(self, imap: ImaplibLike) -> None:
        self._imap = imap
        #: the buffered reader of the socket
        self.stream = imap.file

    def send(self, command: bytes) -> bytes:
        """Send ``command`` (without tag and CRLF) under a fresh tag of imaplib's; return it."""
        tag = self._imap._new_tag()
        self._imap.send(tag + b" " + command + b"\r\n")
        return tag

    def done(self, tag: bytes) -> None:
        """Forget ``tag`` in imaplib's books (``_new_tag`` registered it there)."""
        tagged = getattr(self._imap, "tagged_commands", None)
        if isinstance(tagged, dict):
            tagged.pop(tag, None)
