"""A line-oriented connection with TLS we drive ourselves, and its errors.

Why not ``imaplib``/``poplib``/``smtplib``: the doctor must bound every wait,
see the very first bytes a server sends (a plain-text greeting where a TLS
handshake was expected is ``plain_on_tls_port``, not a generic SSL error), try
a TLS handshake on a port that stayed silent (``tls_on_plain_port``), and
record every line, redacted, as it crosses. So :class:`Channel` owns the
socket, runs TLS through :class:`ssl.MemoryBIO` (we read the raw bytes before
OpenSSL does), and keeps one deadline per operation.

This module is the boundary where foreign errors (``OSError``,
``ssl.SSLError``) become the package's own::

    MailServerError
    ├── ConnectionLost
    │   ├── ReadTimeout        nothing arrived before the deadline
    │   ├── PeerClosed         the server closed or reset the connection
    │   └── NotTLS             the server answered a TLS handshake in plain text
    ├── ServerMisbehaved       it sent what no mail server sends (see the bounds below)
    └── TLSHandshakeError      the handshake failed: a certificate (``verify_code``), an
                               alert, or the server hanging up during it (``CLOSED``)
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

from mailhat_nb.diagnose.transcript import Transcript
from mailhat_nb.errors import ConnectionLost, MailServerError, ServerMisbehaved

#: Longest line a server may send: a greeting, a capability list or a LIST
#: line is a few hundred bytes.
MAX_LINE = 64 * 1024
#: Most a server may send on one connection: the largest answer a probe asks
#: for is the folder list of a big account.
MAX_SESSION_BYTES = 8 * 1024 * 1024
#: Most lines a server may send on one connection.
MAX_SESSION_LINES = 100_000


class ReadTimeout(ConnectionLost):
    """Nothing (or no complete line) arrived before the deadline."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


class PeerClosed(ConnectionLost):
    """The server closed or reset the connection."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


class NotTLS(ConnectionLost):
    """We started TLS and the server's first bytes were not a TLS record.

    ``data`` is what it sent instead; ``said`` adds any plain text it sent
    after agreeing to STARTTLS and before the handshake (its own words on
    why TLS failed, when it gives them).
    """

    def __init__(self, data: bytes, early: bytes = b"") -> None:
        super().__init__("the server answered the TLS handshake in plain text")
        self.data = data
        self.said = early + data


#: :attr:`TLSHandshakeError.reason` when the server hung up during the handshake.
CLOSED = "CLOSED"


class TLSHandshakeError(MailServerError):
    """The TLS handshake failed.

    Attributes
    ----------
    verify_code:
        OpenSSL's X509 verification code for a certificate failure, else None.
    reason:
        OpenSSL's reason string (``CERTIFICATE_VERIFY_FAILED``, ``WRONG_VERSION_NUMBER``,
        ``TLSV1_ALERT_INTERNAL_ERROR`` ...), or :data:`CLOSED` when the server
        closed or reset the connection in the middle of it.
    said:
        Plain text the server sent after agreeing to STARTTLS and before the
        handshake (its words on what failed, when it gives them).
    """

    def __init__(self, message: str, verify_code: int | None = None, reason: str = "",
                 said: bytes = b"") -> None:
        super().__init__(message)
        self.verify_code = verify_code
        self.reason = reason
        self.said = said


def looks_like_tls(data: bytes) -> bool:
    """Tell whether ``data`` starts like a TLS record (handshake, alert, ...).

    >>> looks_like_tls(bytes([0x16, 0x03, 0x03])), looks_like_tls(b"* OK ready")
    (True, False)
    """
    return bool(data) and data[0] in (0x14, 0x15, 0x16, 0x17) and (
        len(data) < 2 or data[1] == 0x03)


def printable(data: bytes, limit: int = 200) -> str:
    """Bytes as a transcript-safe string: text when it is text, else a hex preview."""
    text = data[:limit].decode("utf-8", errors="replace")
    if looks_like_tls(data) or sum(not (c.isprintable() or c in "\r\n\t") for c in text) > 2:
        return f"<{len(data)} binary bytes: {data[:16].hex(' ')}>"
    return text.rstrip("\r\n")


class Channel:
    """One TCP connection, plain or TLS, that reads and writes lines with deadlines.

    Parameters
    ----------
    sock:
        A connected socket (the channel closes it).
    transcript:
        Where every line goes, redacted.
    timeout:
        Seconds each read or write may take unless a call says otherwise.
    """

    def __init__(self, sock: socket.socket, transcript: Transcript, timeout: float) -> None:
        self.sock = sock
        self.transcript = transcript
        self.timeout = timeout
        self.tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._buf = bytearray()
        self._received = 0
        self._lines = 0

    # ----------------------------------------------------------------- raw I/O

    def deadline(self, timeout: float | None = None) -> float:
        """When a wait that starts now must end: ``timeout`` (default the channel's) from now.

        A reader of a whole reply (several lines, literals) takes one deadline
        and passes it to each read, so the reply, not each line, is bounded.
        """
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReadTimeout("timed out waiting for the server", bytes(self._buf))
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise ReadTimeout("timed out waiting for the server", bytes(self._buf)) from None
        except ConnectionResetError as exc:
            raise PeerClosed("the server reset the connection", bytes(self._buf)) from exc
        except OSError as exc:
            raise PeerClosed(f"connection error: {exc.strerror or exc}", bytes(self._buf)) from exc
        if not data:
            raise PeerClosed("the server closed the connection", bytes(self._buf))
        self._received += len(data)
        if self._received > MAX_SESSION_BYTES:
            raise ServerMisbehaved(f"the server sent more than {MAX_SESSION_BYTES // 2**20} MB "
                                   "on one connection, more than any answer the doctor asks for")
        return data

    def _flush(self) -> None:
        if pending := self._out.read():
            self._sendall(pending)

    def _sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise ReadTimeout("timed out sending to the server") from None
        except OSError as exc:
            raise PeerClosed(f"sending failed: {exc.strerror or exc}") from exc

    def _fill(self, deadline: float) -> None:
        """Read at least one more byte of application data into the buffer."""
        if self.tls is None:
            self._buf += self._recv(deadline)
            return
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._in.write(self._recv(deadline))
                continue
            except ssl.SSLZeroReturnError:
                raise PeerClosed("the server closed the TLS session", bytes(self._buf)) from None
            except ssl.SSLError as exc:
                raise PeerClosed(f"TLS error: {exc.reason or exc}", bytes(self._buf)) from exc
            if not data:
                raise PeerClosed("the server closed the TLS session", bytes(self._buf))
            self._buf += data
            return

    # ------------------------------------------------------------------- lines

    def read_line(self, timeout: float | None = None, record: bool = True,
                  until: float | None = None) -> str:
        """One line from the server, without CRLF, decoded leniently as UTF-8.

        Waits until ``until`` (a :meth:`deadline`), else ``timeout`` from now.

        Raises
        ------
        ServerMisbehaved
            For a line longer than :data:`MAX_LINE`, or more lines than
            :data:`MAX_SESSION_LINES` on the connection.
        """
        deadline = self.deadline(timeout) if until is None else until
        while (end := self._buf.find(b"\n")) < 0 and len(self._buf) <= MAX_LINE:
            self._fill(deadline)
        if not 0 <= end <= MAX_LINE:
            raise ServerMisbehaved(f"the server sent a line of more than {MAX_LINE // 1024} KB: "
                                   f"{printable(bytes(self._buf[:60]), 60)!r}...")
        self._lines += 1
        if self._lines > MAX_SESSION_LINES:
            raise ServerMisbehaved(f"the server sent more than {MAX_SESSION_LINES:,} lines on "
                                   "one connection")
        raw = bytes(self._buf[:end])
        del self._buf[:end + 1]
        line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        if record:
            self.transcript.server(line)
        return line

    def read_exact(self, size: int, until: float | None = None) -> bytes:
        """Exactly ``size`` bytes (an IMAP literal); not recorded.

        The caller bounds ``size`` (see :mod:`mailhat_nb.diagnose.imap`); the
        connection's byte budget bounds it again.
        """
        deadline = self.deadline() if until is None else until
        while len(self._buf) < size:
            self._fill(deadline)
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def pending(self) -> bytes:
        """Bytes received but not yet consumed as lines."""
        return bytes(self._buf)

    def send_line(self, text: str, secret: bool = False, shown: str | None = None) -> None:
        """Send ``text`` + CRLF, recording it redacted (see :class:`Transcript`)."""
        self.transcript.client(text, secret=secret, shown=shown)
        self.send_bytes(text.encode("utf-8") + b"\r\n")

    def send_lines(self, texts: list[str]) -> None:
        """Send several lines in one write (pipelined), each recorded as :meth:`send_line` does.

        Every line passes the transcript's redactor; none is marked secret, so
        a credential command among them is still masked, and so is every
        line after it until the server answers (the redactor's SASL rule).
        """
        for text in texts:
            self.transcript.client(text)
        self.send_bytes(b"".join(text.encode("utf-8") + b"\r\n" for text in texts))

    def send_bytes(self, data: bytes) -> None:
        """Send raw bytes (the caller records them)."""
        if self.tls is None:
            self._sendall(data)
            return
        self.tls.write(data)
        self._flush()

    # --------------------------------------------------------------------- TLS

    def start_tls(self, context: ssl.SSLContext, server_hostname: str,
                  timeout: float | None = None) -> None:
        """Run a TLS handshake over the connection (implicit TLS or after STARTTLS).

        Raises
        ------
        NotTLS
            The server's first bytes were not TLS (it speaks plain text here).
        TLSHandshakeError
            The handshake failed: certificate problems carry ``verify_code``,
            a server that hung up in the middle of it :data:`CLOSED`.
        ReadTimeout
            The server never answered the handshake.
        """
        early = bytes(self._buf)
        if early:
            # Bytes sent after "begin TLS" and before the handshake are a
            # protocol violation (or an injection attempt): never act on them.
            # They are kept only as the server's words, should TLS then fail.
            self.transcript.note(f"discarded {len(early)} bytes sent before the handshake: "
                                 f"{printable(early)!r}")
            self._buf.clear()
        deadline = self.deadline(timeout)
        obj = context.wrap_bio(self._in, self._out, server_side=False,
                               server_hostname=server_hostname)
        first = True
        while True:
            try:
                obj.do_handshake()
                self._flush()
                break
            except ssl.SSLWantReadError:
                self._flush()
                try:
                    data = self._recv(deadline)
                except PeerClosed as exc:
                    raise TLSHandshakeError(f"{exc} during the TLS handshake", None, CLOSED,
                                            early) from exc
                if first and not looks_like_tls(data):
                    raise NotTLS(data, early) from None
                first = False
                self._in.write(data)
            except ssl.SSLCertVerificationError as exc:
                raise TLSHandshakeError(exc.verify_message or str(exc), exc.verify_code,
                                        exc.reason or "", early) from exc
            except ssl.SSLError as exc:
                raise TLSHandshakeError(str(exc.reason or exc), None, exc.reason or "",
                                        early) from exc
        self.tls = obj
        self.transcript.note(f"TLS established: {obj.version()}, {(obj.cipher() or ('?',))[0]}")

    def peer_certificate(self) -> bytes | None:
        """Return the server's certificate (DER) once TLS is up."""
        return self.tls.getpeercert(binary_form=True) if self.tls is not None else None

    def close(self) -> None:
        """Close the socket; never raises.

        Bytes that already arrived and were not read are taken off first,
        without waiting: a socket closed with unread data sends a reset, and
        the server would then lose a goodbye it had not read yet. At most
        :data:`MAX_LINE` bytes are drained, whatever the server streams.
        """
        with contextlib.suppress(OSError):
            self.sock.setblocking(False)
            drained = 0
            while drained <= MAX_LINE and (data := self.sock.recv(MAX_LINE)):
                drained += len(data)
        with contextlib.suppress(OSError):
            self.sock.close()
