"""An IMAP client that connects where the run's DNS says, and checks the name.

With ``--dns-server``, a sync must reach the address that nameserver gives
for the server name, not the one the system's resolver would: the lab's DNS
(or a company's) is then really what is used. imapclient connects by name;
:class:`ResolvedIMAPClient` connects to an address chosen beforehand while
everything that proves identity keeps the *name*: TLS's SNI and the
certificate check (implicit TLS and STARTTLS alike) are made against
``host``, so a certificate valid only for the address, or for another name,
is refused as it would be without ``--dns-server``.
"""

from __future__ import annotations

import socket
from typing import Any

from imapclient import IMAPClient, imap4, tls


class _TLSAt(tls.IMAP4_TLS):  # type: ignore[misc]  # imapclient ships no types
    """Implicit TLS to ``address``, SNI and certificate on ``host``."""

    def __init__(self, address: str, host: str, port: int, ssl_context: Any,
                 timeout: float | None) -> None:
        self._address = address
        super().__init__(host, port, ssl_context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = socket.create_connection((self._address, self.port),
                                        timeout=self._timeout if timeout is None else timeout)
        wrapped: socket.socket = tls.wrap_socket(sock, self.ssl_context, self.host)
        return wrapped


class _PlainAt(imap4.IMAP4WithTimeout):  # type: ignore[misc]  # same
    """A plain connection to ``address`` (STARTTLS then checks ``host``)."""

    def __init__(self, address: str, host: str, port: int, timeout: float | None) -> None:
        self._address = address
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return socket.create_connection((self._address, self.port),
                                        self._timeout if timeout is None else timeout)


class ResolvedIMAPClient(IMAPClient):  # type: ignore[misc]  # imapclient ships no types
    """:class:`imapclient.IMAPClient` connecting to ``address`` for ``host``."""

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        self._address = address
        super().__init__(host, **kwargs)

    def _create_IMAP4(self) -> Any:  # noqa: N802 - imapclient's hook
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TLSAt(self._address, self.host, self.port, self.ssl_context,
                          connect_timeout)
        return _PlainAt(self._address, self.host, self.port, connect_timeout)
