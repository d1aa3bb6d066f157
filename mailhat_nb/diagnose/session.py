"""What every protocol session (IMAP, POP3, SMTP) offers the layered probe.

The probe (:mod:`mailhat_nb.diagnose.probe`) runs the layers in order and
records each; a session only speaks its protocol over a
:class:`~mailhat_nb.diagnose.wire.Channel` and raises
:class:`~mailhat_nb.diagnose.classify.Diagnosed` when the server's answer is
itself the diagnosis.
"""

from __future__ import annotations

import base64
import contextlib
from abc import ABC, abstractmethod

from mailhat_nb.diagnose.wire import Channel
from mailhat_nb.errors import MailhatError
from mailhat_nb.secrets import Secret


def sasl_plain(username: str, password: Secret) -> str:
    r"""Encode the SASL PLAIN payload (RFC 4616: UTF-8, ``\0user\0password``) in base64."""
    raw = f"\0{username}\0{password.reveal()}".encode()
    return base64.b64encode(raw).decode("ascii")


def b64(text: str) -> str:
    """UTF-8 base64, as AUTH LOGIN sends each field."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class Session(ABC):
    """A protocol conversation on one channel.

    Attributes
    ----------
    caps:
        Capabilities as last announced (upper-cased words).
    """

    protocol = ""

    def __init__(self, channel: Channel) -> None:
        self.chan = channel
        self.caps: set[str] = set()
        self.greeted = False

    @property
    def encrypted(self) -> bool:
        """True once the channel runs TLS."""
        return self.chan.tls is not None

    @abstractmethod
    def greeting(self, timeout: float) -> str:
        """Read and check the server's greeting; return a detail line."""

    @abstractmethod
    def capabilities(self) -> str:
        """Learn the capabilities (CAPABILITY, CAPA, EHLO); return a detail line.

        Asks the server unless it already listed them where they still hold
        (an IMAP greeting's ``[CAPABILITY ...]``, before any STARTTLS).
        """

    @abstractmethod
    def starttls(self) -> None:
        """Ask the server to begin TLS (the caller runs the handshake)."""

    @abstractmethod
    def plaintext_offer(self, username: str) -> str:
        """Judge, without sending the password, whether it would be taken unencrypted.

        Called instead of :meth:`authenticate` on an unencrypted connection
        (a ``security = "none"`` preset) unless the caller opted in to a real
        clear-text login: testing the login there would put the customer's
        password on the network in clear text, the very exposure the doctor
        warns about. Decides from the capabilities already read (and, for
        POP3, at most a ``USER`` command: the username is not a secret).

        Returns
        -------
        str
            How the server would take the password (for the step's detail).

        Raises
        ------
        Diagnosed
            ``plaintext_auth_disabled`` when the server refuses passwords on
            this connection, ``smtp_auth_unavailable`` when it offers no
            password login at all.
        """

    @abstractmethod
    def authenticate(self, username: str, password: Secret) -> str:
        """Log in once; return a detail line (how it was done)."""

    def mailbox(self) -> str | None:
        """Look into the mailbox after login; None when the protocol has none."""
        return None

    def _goodbye(self) -> None:
        """Send the protocol's polite ending, without waiting for its answer.

        POP3's and SMTP's is ``QUIT`` (IMAP's ``LOGOUT`` overrides this). Its
        answer tells the doctor nothing, and waiting for it would cost every
        probe a round trip: the connection is closed right after.
        """
        self.chan.send_line("QUIT")

    def close(self, polite: bool = True) -> None:
        """Say goodbye (when ``polite`` and greeted), then close; never raises."""
        if polite and self.greeted:
            with contextlib.suppress(MailhatError, OSError):
                self.chan.timeout = min(self.chan.timeout, 1.0)
                self._goodbye()
        self.chan.close()

    def said(self, text: str) -> str:
        """Server words quoted in a step detail, checked like a transcript line.

        See :meth:`~mailhat_nb.diagnose.transcript.Transcript.guard`: once
        the credentials are in use on this connection, a reply that echoes
        the password is withheld whole rather than quoted.
        """
        return self.chan.transcript.guard(text)

    def caps_detail(self) -> str:
        """Format the capabilities for a step's detail, sorted, shortened."""
        text = " ".join(sorted(self.caps))
        return text if len(text) <= 300 else text[:300] + " ..."
