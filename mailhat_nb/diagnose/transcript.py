"""The transcript of a probe: every line sent and received, redacted at the source.

A transcript is pasted into tickets, so credentials must never reach it. Two
guards, in order:

1. :class:`Redactor` sees every client line before it is recorded and masks
   the arguments of ``LOGIN``, ``AUTHENTICATE``/``AUTH`` (and every
   continuation line of the SASL exchange that follows), ``PASS`` and
   ``APOP``. The protocol code additionally marks the lines it knows carry a
   secret (:meth:`Transcript.client` with ``secret=True``), so a literal or an
   unusual command cannot slip through. This is the only masking in place.
2. A catch-all for what a server may echo back: once this connection has
   taken out the credentials to send them, any server line (and any server
   text or foreign error quoted in a step detail, see
   :meth:`Transcript.guard`) that contains a known secret string (the
   password and its base64 forms, see :func:`secret_forms`) is withheld
   whole, as :data:`WITHHELD`.

Why the catch-all waits for the credentials and withholds whole lines: a
short or common-word password (``OK``, ``localhost``, ``a``) occurs by chance
in greetings, capabilities and the doctor's own notes. Masking every
occurrence in place ("``* *** [CAPABILITY``") both damaged those lines and
pointed at the password; a server cannot echo what it has not been sent, and
the doctor's own words (notes, details it builds) never contain it.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mailhat_nb.secrets import MASK

log = logging.getLogger("mailhat_nb.diagnose")

#: What replaces a server line or text that contained the password.
WITHHELD = "<withheld: it contained the password>"

_TAGGED_LOGIN = re.compile(r"^(?P<head>\S+\s+LOGIN\s+)(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_TAGGED_AUTH = re.compile(
    r"^(?P<head>\S+\s+AUTHENTICATE\s+\S+)(?P<rest>\s.*)?$", re.IGNORECASE | re.DOTALL
)
_BARE_AUTH = re.compile(r"^(?P<head>AUTH\s+\S+)(?P<rest>\s.*)?$", re.IGNORECASE | re.DOTALL)
_PASS = re.compile(r"^(?P<head>PASS)(?P<rest>\s.*)?$", re.IGNORECASE | re.DOTALL)
_APOP = re.compile(r"^(?P<head>APOP\s+\S+)(?P<rest>\s.*)?$", re.IGNORECASE | re.DOTALL)
_USER_ARG = re.compile(r'^(?:"(?:[^"\\]|\\.)*"|[^\s"{]+)(?=\s)')
#: Server lines that continue a SASL exchange (IMAP/POP3 ``+``, SMTP ``334``).
_CONTINUATION = re.compile(r"^(?:\+(?:\s|$)|334[\s-])")


def redact_login(line: str) -> str:
    """Mask the password of an IMAP ``LOGIN``, keeping the username when parseable.

    >>> redact_login('a1 LOGIN "bob@example.com" "hunter2"')
    'a1 LOGIN "bob@example.com" ***'
    """
    m = _TAGGED_LOGIN.match(line)
    if not m:
        return line
    user = _USER_ARG.match(m["rest"])
    kept = user.group(0) + " " if user else ""
    return f"{m['head']}{kept}{MASK}"


class Redactor:
    """Masks credentials in client lines; tracks SASL exchanges across lines.

    One per connection: after an ``AUTHENTICATE``/``AUTH`` command every client
    line is a credential payload until the server answers with something
    other than a continuation (``+`` or ``334``).
    """

    def __init__(self) -> None:
        self._in_sasl = False

    def client(self, line: str) -> str:
        """Return the form of client ``line`` that may be recorded."""
        if self._in_sasl:
            return MASK if line.strip() not in ("", "*") else line
        for pattern, starts_sasl in ((_TAGGED_AUTH, True), (_BARE_AUTH, True),
                                     (_PASS, False), (_APOP, False)):
            m = pattern.match(line)
            if m:
                self._in_sasl = starts_sasl
                return m["head"] + (" " + MASK if m["rest"] and m["rest"].strip() else "")
        if _TAGGED_LOGIN.match(line):
            return redact_login(line)
        return line

    def server(self, line: str) -> None:
        """Note a server line: anything but a continuation ends a SASL exchange."""
        if self._in_sasl and not _CONTINUATION.match(line):
            self._in_sasl = False


def secret_forms(username: str, password: str) -> list[str]:
    r"""List every form in which ``password`` could appear on the wire.

    The password itself, its UTF-8 base64 (AUTH LOGIN), and the SASL PLAIN
    payloads ``\0user\0pass`` and ``user\0user\0pass`` in base64.

    Never raises, even for text that is not valid Unicode (see
    :func:`_encodings`).
    """
    if not password:
        return []

    def b64(text: str) -> list[str]:
        return [base64.b64encode(raw).decode("ascii") for raw in _encodings(text)]

    forms = [password, *b64(password), *b64(f"\0{username}\0{password}"),
             *b64(f"{username}\0{username}\0{password}")]
    # Base64 of a longer payload can embed a shorter run; scrub longest first.
    return sorted(set(forms), key=len, reverse=True)


def _encodings(text: str) -> list[bytes]:
    """The UTF-8 bytes ``text`` goes out as, never an error.

    Passwords and logins are refused unless they are UTF-8 where they enter
    (:mod:`mailhat_nb.checks`); the ``surrogateescape`` fallback is a last
    line of defence, so a scrubber can never be what crashes.
    """
    try:
        return [text.encode("utf-8", "surrogateescape")]  # the bytes it stood for
    except UnicodeEncodeError:  # a surrogate no byte decodes to
        return [text.encode("utf-8", "surrogatepass")]


@dataclass(frozen=True)
class Line:
    """One transcript line.

    Attributes
    ----------
    ms:
        Milliseconds since the probe started.
    direction:
        ``C`` (client), ``S`` (server) or ``*`` (a note by the doctor).
    text:
        The line, already redacted, without CRLF.
    """

    ms: float
    direction: str
    text: str

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form of the line."""
        return {"ms": round(self.ms, 1), "dir": self.direction, "line": self.text}

    def __str__(self) -> str:
        return f"[{self.ms:8.1f} ms] {self.direction}: {self.text}"


class Transcript:
    """The redacted record of one probe's conversation (one connection).

    Parameters
    ----------
    secrets:
        Strings that must never be recorded (see :func:`secret_forms`).
    label:
        Prefix for the debug log lines (which carry the same redacted text).

    Attributes
    ----------
    credentials_sent:
        True once a line carrying credentials was sent on this connection
        (recorded masked): a login was attempted.
    checking:
        True from the moment the password is taken out to be sent
        (:meth:`arm`) or a credential line is recorded: from then on server
        text and foreign error text are checked for secrets.
    """

    MAX_LINE = 500
    #: Lines kept; a server that sends more (a huge LIST, or garbage) has the
    #: rest counted, not kept: a transcript goes into a ticket.
    MAX_LINES = 2000

    def __init__(self, secrets: Iterable[str] = (), label: str = "") -> None:
        self._start = time.monotonic()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._lines: list[Line] = []
        self._dropped = 0
        self._lock = threading.Lock()
        self.label = label
        self.redactor = Redactor()
        self.credentials_sent = False
        self._armed = False

    @property
    def checking(self) -> bool:  # noqa: D102 - documented with the class
        return self._armed or self.credentials_sent

    def arm(self) -> None:
        """Say the password is about to be used on this connection.

        Called before a login, so that an error raised while the password is
        being encoded or sent (its message may quote it) is checked too.
        """
        self._armed = True

    def withhold(self, text: str) -> str:
        """Return ``text``, or :data:`WITHHELD` when it contains a secret.

        Never masks in place: a mask inside a line shows where the password
        matched, which for a short password reveals it.
        """
        if any(secret in text for secret in self._secrets):
            return WITHHELD
        return text

    def guard(self, text: str) -> str:
        """Check server-supplied or foreign text (for a step detail) before it is shown.

        Before this connection used the credentials, neither the server nor an
        error can quote them, so ``text`` is returned as it is; from then on
        (:attr:`checking`) :meth:`withhold` applies.
        """
        return self.withhold(text) if self.checking else text

    def _add(self, direction: str, text: str) -> None:
        if direction == "S":
            text = self.guard(text)  # before shortening: a cut could split a secret
        if len(text) > self.MAX_LINE:
            text = text[: self.MAX_LINE] + f"... ({len(text)} chars)"
        line = Line((time.monotonic() - self._start) * 1000, direction, text)
        with self._lock:
            if len(self._lines) >= self.MAX_LINES:
                self._dropped += 1
                return
            self._lines.append(line)
        log.debug("%s %s: %s", self.label, direction, line.text)

    def client(self, text: str, secret: bool = False, shown: str | None = None) -> None:
        """Record a line we sent.

        ``secret`` lines are recorded as ``shown`` (default ``***``) whatever
        they contain; every other line passes through the :class:`Redactor`.
        Either way a line that carried credentials sets
        :attr:`credentials_sent`.
        """
        if secret:
            self.redactor.client(text)  # keep the SASL state in step
            if text:
                self.credentials_sent = True
            self._add("C", shown if shown is not None else MASK)
            return
        recorded = self.redactor.client(text)
        if recorded != text:
            self.credentials_sent = True
        self._add("C", recorded)

    def server(self, text: str) -> None:
        """Record a line the server sent (withheld whole if it echoes a secret)."""
        self.redactor.server(text)
        self._add("S", text)

    def note(self, text: str) -> None:
        """Record what the doctor did or concluded (its own words: never altered)."""
        self._add("*", text)

    def lines(self) -> list[Line]:
        """Return a copy of the lines so far (and a note of how many were not kept)."""
        with self._lock:
            kept = list(self._lines)
            dropped = self._dropped
        if dropped:
            kept.append(Line((time.monotonic() - self._start) * 1000, "*",
                             f"{dropped:,} more lines not kept (a transcript keeps its first "
                             f"{self.MAX_LINES:,})"))
        return kept

    def extend(self, other: Transcript) -> None:
        """Append another transcript's lines (e.g. a send test), re-timed to this one."""
        offset = (other._start - self._start) * 1000
        with self._lock:
            self._lines += [Line(ln.ms + offset, ln.direction, ln.text) for ln in other.lines()]
