r"""The fast path: bulk header FETCH on the socket, lexed with bytes operations.

Why this module exists: over IMAPS on loopback a server hands a whole
mailbox's header blocks across the socket many times faster than
imapclient's pure-Python response lexer turns them into objects
(``benchmarks/bench_sync.py`` measures both), and imaplib's own reader calls
``readline`` per line and concatenates. Here the answer is read in large
blocks and cut up with ``bytes.find`` and slicing: a literal ``{n}\r\n`` is
located once and taken as one slice. Only the few short text pieces around
each literal go through a regular expression.

This module reads and lexes; it writes nothing. :mod:`mailhat_nb.sync.wire`
writes the commands (pipelined, on the connection imapclient opened and
:mod:`mailhat_nb.sync.borrowed` lends) and routes what this module reads.
Foreign errors (``OSError``, ``ssl.SSLError``) pass through untranslated:
:mod:`mailhat_nb.sync.imap` translates them at its one boundary.

Two server limits shape the commands: Dovecot refuses command lines over
64 KB, so messages are always addressed by UID *ranges* (``a:b``), never long
UID lists; and ``UID FETCH n:*`` answers with the highest message even when
its UID is below ``n``, so results are filtered to the requested range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

from mailhat_nb.errors import ServerMisbehaved

#: Bytes asked of the socket per read; one TLS record is at most 16 KB, a plain
#: socket may return more.
READ_SIZE = 1 << 20

_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
     b"Nov", b"Dec"), start=1)}
_TOKEN = re.compile(
    rb"""[ ]*(?:
        (\()                                   # 1 open a list
      | (\))                                   # 2 close it
      | "((?:[^"\\]|\\.)*)"                    # 3 quoted string
      | \{(\d+)\+?\}\Z                         # 4 a literal follows this text piece
      | ([^ ()"\[\]{]+(?:\[[^\]]*\](?:<[0-9.]+>)?)?)  # 5 atom, number, BODY[...]<n>
      | (\[[^\]]*\])                           # 6 response code [...]
      | (\S)                                   # 7 anything else: one byte
    )""",
    re.X,
)
_UNQUOTE = re.compile(rb"\\(.)")


# --------------------------------------------------------------------------- reading


#: Longest text line taken by default: IMAP's are short (a FETCH's item list,
#: a LIST entry); only a classic SEARCH answer grows with the folder, and its
#: command says so (:attr:`ResponseReader.max_line`).
MAX_LINE = 64 * 1024
#: Longest literal taken by default (a mailbox name, a label sent as a literal).
MAX_LITERAL = 64 * 1024


def misbehaved(what: str) -> ServerMisbehaved:
    """The error for a server that sent ``what``: the sync's words, the same at every bound."""
    return ServerMisbehaved(f"the server sent something no mail server sends: {what}")


def printable(data: bytes, limit: int = 60) -> str:
    r"""The start of what a server sent, for a message: ASCII as it is, other bytes as ``\xNN``."""
    text = "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in data[:limit])
    return f"'{text}'" + ("..." if len(data) > limit else "")


class ResponseReader:
    """Cuts a byte stream into IMAP responses, each a list of pieces.

    A response is returned as ``[text, literal, text, literal, ..., text]``:
    the text pieces still hold their ``{n}`` markers and never their CRLF;
    literals are the raw bytes. A response without literals is ``[text]``.

    Every read is bounded: a text line by :attr:`max_line`, a literal by
    :attr:`max_literal` (checked when it is announced, before a byte of it
    is read: a server announcing 4 GB is refused at once, not read), a whole
    response by :attr:`max_answer`. Past a bound the reader raises
    :class:`~mailhat_nb.errors.ServerMisbehaved` and keeps nothing of it.
    The caller sets the bounds for what it asked (:mod:`mailhat_nb.sync.wire`).
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buf = b""
        self._pos = 0
        self.max_line = MAX_LINE
        self.max_literal = MAX_LITERAL
        #: the pieces of a response cut by a read, and where its scan stopped
        self._partial: tuple[list[bytes], int] | None = None

    @property
    def max_answer(self) -> int:
        """Bytes one response may hold: its literal and some lines around it."""
        return self.max_literal + 4 * self.max_line

    def _line_bound(self, buf: bytes, pos: int) -> None:
        """A line still without its end past :attr:`max_line` is no IMAP line."""
        if len(buf) - pos > self.max_line:
            raise misbehaved(f"a line of more than {self.max_line:,} bytes with no end")

    def _literal_bound(self, size: int) -> None:
        if size > self.max_literal:
            raise misbehaved(
                f"a literal of {size:,} bytes where none belongs" if not self.max_literal
                else f"a literal of {size:,} bytes, more than the {self.max_literal:,} that "
                     "belong there")

    def _fill(self, need: int = 0) -> None:
        """Read more: at least ``need`` bytes, else whatever one read gives."""
        rest = self._buf[self._pos:]
        self._pos = 0
        if need > 0:
            data = self._stream.read(need)
            if data is None or len(data) < need:
                raise ConnectionResetError("the server closed the connection mid-response")
        else:
            read1 = getattr(self._stream, "read1", None)
            data = read1(READ_SIZE) if read1 is not None else self._stream.read(1)
            if not data:
                raise ConnectionResetError("the server closed the connection")
        self._buf = rest + data

    def next(self) -> list[bytes]:
        """The next complete response (blocks until it has arrived)."""
        while True:
            parts = self._scan()
            if parts is not None:
                return parts

    def next_fetch(self) -> FetchedMessage | list[bytes]:
        """The next response, a usual FETCH answer already parsed.

        The fast path: a FETCH of the shape Dovecot (cPanel's server, and so
        HostGator's) answers a header sync with comes as a
        :class:`FetchedMessage` straight away, one regular expression match on
        the read buffer, no pieces, no tokens. A response not completely
        received yet is read to its end first; anything else is returned as
        pieces for the general path (:func:`parse_fetch`), which gives the
        same result.
        """
        while True:
            buf = self._buf
            pos = self._pos
            m = _DOVECOT_RESPONSE.match(buf, pos)
            if m is None:
                if buf.find(b"\r\n", pos) < 0:
                    self._line_bound(buf, pos)
                    self._fill()  # the first line is not all here yet: read, try again
                    continue
                return self.next()
            start = m.end()
            self._literal_bound(int(m.group(7)))
            end = start + int(m.group(7))
            if end + 3 > len(buf):
                self._fill(end + 3 - len(buf))  # the rest of the literal, and ")\r\n"
                continue
            if buf[end:end + 3] != b")\r\n":
                return self.next()
            self._pos = end + 3
            _, uid, flags, date, size, modseq, _ = m.groups()
            return FetchedMessage(
                uid=int(uid), flags=_flags_of(flags), internaldate=parse_internaldate(date),
                size=int(size), header=buf[start:end],
                modseq=int(modseq) if modseq else None)

    def _scan(self) -> list[bytes] | None:
        """The next response, or None after reading more (call again).

        A response cut by a read is not scanned again from its start: the
        pieces found so far and where the scan stopped are kept
        (``_partial``), so a long answer costs its length, not its square.
        The buffer never outgrows one read plus the unfinished response:
        _fill drops what was consumed before appending.
        """
        buf = self._buf
        first = self._pos
        parts, offset = self._partial if self._partial is not None else ([], 0)
        self._partial = None
        pos = first + offset
        while True:
            if pos - first > self.max_answer:
                raise misbehaved(f"an answer of more than {self.max_answer:,} bytes")
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                self._line_bound(buf, pos)
                self._partial = (parts, pos - first)
                self._fill()
                return None
            if eol - pos > self.max_line:
                self._line_bound(buf[:eol], pos)
            if eol > pos and buf[eol - 1] == 0x7D:  # "}": maybe a literal follows
                brace = buf.rfind(b"{", pos, eol)
                digits = buf[brace + 1:eol - 1] if brace >= 0 else b""
                if digits.endswith(b"+"):
                    digits = digits[:-1]
                if digits.isdigit():
                    self._literal_bound(int(digits))
                    lit_start = eol + 2
                    lit_end = lit_start + int(digits)
                    if lit_end > len(buf):
                        self._partial = (parts, pos - first)
                        self._fill(lit_end - len(buf))
                        return None
                    parts.append(buf[pos:eol])
                    parts.append(buf[lit_start:lit_end])
                    pos = lit_end
                    continue
            parts.append(buf[pos:eol])
            self._pos = eol + 2
            return parts


def tokens(parts: Sequence[bytes]) -> list[Any]:
    """Parse a response's pieces into nested lists.

    Atoms and numbers stay ``bytes``; quoted strings are unescaped ``bytes``;
    literals are ``bytes``; ``NIL`` is ``None``; parenthesised lists are
    ``list``. Enough of IMAP's grammar for FETCH, SEARCH, ESEARCH and STATUS.
    """
    root: list[Any] = []
    stack = [root]
    cur = root
    last = len(parts) - 1
    for i in range(0, len(parts), 2):
        text = parts[i]
        for m in _TOKEN.finditer(text):
            kind = m.lastindex
            if kind is None:
                continue
            if kind == 5:
                atom = m.group(5)
                cur.append(None if atom == b"NIL" else atom)
            elif kind == 1:
                new: list[Any] = []
                cur.append(new)
                stack.append(new)
                cur = new
            elif kind == 2:
                if len(stack) > 1:
                    stack.pop()
                    cur = stack[-1]
            elif kind == 3:
                value = m.group(3)
                cur.append(_UNQUOTE.sub(rb"\1", value) if b"\\" in value else value)
            elif kind == 4:
                if i < last:
                    cur.append(parts[i + 1])
            else:
                cur.append(m.group(kind))
    return root


# --------------------------------------------------------------------------- values


_TZ_CACHE: dict[bytes, timezone] = {}


def parse_internaldate(value: bytes) -> datetime | None:
    """``b"01-Jan-2021 22:51:25 +0000"`` -> a tz-aware datetime (None if garbage).

    Hand-rolled: ``strptime`` is slow, and this runs per message.
    """
    try:
        day = int(value[0:2])
        month = _MONTHS[value[3:6]]
        year = int(value[7:11])
        hour, minute, second = int(value[12:14]), int(value[15:17]), int(value[18:20])
        zone = value[21:26]
        tz = _TZ_CACHE.get(zone)
        if tz is None:
            sign = -1 if zone[:1] == b"-" else 1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
            _TZ_CACHE[zone] = tz
        return datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except (KeyError, ValueError, IndexError):
        return None


def _flags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(f.decode("utf-8", "replace") for f in value
                 if isinstance(f, bytes) and f != b"\\Recent")


def _labels(value: Any) -> tuple[str, ...]:
    from imapclient.imap_utf7 import decode as decode_utf7  # modified UTF-7 label names

    if not isinstance(value, list):
        return ()
    return tuple(decode_utf7(v) for v in value if isinstance(v, bytes))


@dataclass(slots=True)
class FetchedMessage:
    r"""One message's FETCH answer: what the store keeps besides the parsed header.

    ``flags`` never holds ``\Recent`` (a session property, not the message's).
    Gmail fields are None / empty elsewhere.
    """

    uid: int
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None
    size: int | None = None
    header: bytes | None = None
    modseq: int | None = None
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    gm_labels: tuple[str, ...] | None = None


def _as_int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bytes) and value.isdigit():
        return int(value)
    return None


_FLAG_CACHE: dict[bytes, tuple[str, ...]] = {}


# The exact shape Dovecot answers a header sync with, on the read buffer
# (ResponseReader.next_fetch): the first line up to its CRLF, the literal's
# length in group 7; no class may cross a line end.
_DOVECOT_RESPONSE = re.compile(
    rb'\* (\d+) FETCH \(UID (\d+) FLAGS \(([^()"{}\r\n]*)\) INTERNALDATE "([^"\r\n]*)" '
    rb"RFC822\.SIZE (\d+)(?: MODSEQ \((\d+)\))? BODY\[HEADER\.FIELDS \([^)\r\n]*\)\] "
    rb"\{(\d+)\}\r\n")


def _flags_of(raw: bytes) -> tuple[str, ...]:
    flags = _FLAG_CACHE.get(raw)
    if flags is None:
        flags = tuple(f.decode("utf-8", "replace") for f in raw.split() if f != b"\\Recent")
        if len(_FLAG_CACHE) < 4096:
            _FLAG_CACHE[raw] = flags
    return flags


def parse_fetch(parts: list[bytes]) -> FetchedMessage | None:
    """A FETCH response's pieces -> :class:`FetchedMessage` (None if not FETCH or no UID).

    The general path: any items, in any order (Gmail's, other servers'); the
    usual Dovecot answer never gets here (:meth:`ResponseReader.next_fetch`).
    """
    head = parts[0]
    if not head.startswith(b"* "):
        return None
    sp = head.find(b" ", 2)
    if head[sp:sp + 8].upper() != b" FETCH (":
        return None
    toks = tokens(parts)
    # toks: [b"*", b"<seq>", b"FETCH", [items...]]
    if len(toks) < 4 or not isinstance(toks[3], list):
        return None
    items = toks[3]
    msg = FetchedMessage(uid=0)
    for k in range(0, len(items) - 1, 2):
        name = items[k]
        value = items[k + 1]
        if not isinstance(name, bytes):
            continue
        key = name.upper()
        if key == b"UID":
            msg.uid = _as_int(value) or 0
        elif key == b"FLAGS":
            msg.flags = _flags(value)
        elif key == b"INTERNALDATE":
            msg.internaldate = parse_internaldate(value) if isinstance(value, bytes) else None
        elif key == b"RFC822.SIZE":
            msg.size = _as_int(value)
        elif key.startswith((b"BODY[HEADER", b"RFC822.HEADER", b"BODY[]")):
            msg.header = value if isinstance(value, bytes) else b""
        elif key == b"MODSEQ":
            msg.modseq = _as_int(value)
        elif key == b"X-GM-MSGID":
            msg.gm_msgid = _as_int(value)
        elif key == b"X-GM-THRID":
            msg.gm_thrid = _as_int(value)
        elif key == b"X-GM-LABELS":
            msg.gm_labels = _labels(value)
    return msg if msg.uid else None


def fetch_items(fields: Iterable[str], *, modseq: bool = False, gmail: bool = False) -> bytes:
    """The FETCH item list for a header sync."""
    items = b"UID FLAGS INTERNALDATE RFC822.SIZE"
    if modseq:
        items += b" MODSEQ"
    if gmail:
        items += b" X-GM-MSGID X-GM-THRID X-GM-LABELS"
    names = " ".join(fields).upper().encode("ascii")
    return b"(" + items + b" BODY.PEEK[HEADER.FIELDS (" + names + b")])"
