r"""The sync's own IMAP commands: written together, answered in any order, delivered in order.

imapclient waits for each command's answer before it sends the next, and a
customer's server is far: a re-sync of 60 folders spent 60 round trips on
STATUS alone. Here commands are *pipelined* (RFC 3501 5.5): every
command that is ready goes out in one write, and the answers are read as
they come. :class:`Wire` does three things:

writing
    :meth:`Wire.submit` queues commands; before each read, every queued
    command that fits the window goes out in one write. The window bounds
    the messages asked for but not yet handed over (:attr:`Command.weight`),
    which bounds memory, and is wide enough to keep a link's
    bandwidth-delay product busy (:data:`WINDOW`).
routing
    An untagged response belongs to no tag. It is offered to the commands
    still answering, oldest first, and taken by the first whose kind it is:
    a FETCH by the fetch whose UID range holds it, a STATUS by the STATUS
    (or LIST) of that mailbox, an ESEARCH by its tag, the mailbox data
    (EXISTS, UIDVALIDITY, ...) by an EXAMINE only while it is the oldest
    command answering. Commands carry a *group* (the folder whose EXAMINE
    they follow); only the group of the oldest command answering, and
    commands of no group, are offered anything. That is sound because a
    server runs a command that changes the selected mailbox only after the
    commands before it completed (RFC 3501 5.5), so a folder's answers never
    mix with the next folder's.
delivering
    :meth:`Wire.results` hands completed commands back strictly in the
    order they were sent, whatever order the server completed them in; a
    caller that stores each answer when it is handed over therefore never
    stores one before the answers sent ahead of it, and never one that was
    not completely received (a command is complete at its tagged reply).

bounding
    Each command says how long a line and a literal its answer may bring
    (no literal at all in a login's, a few MB for a header block, a line
    that grows with the folder for a classic SEARCH); the reader takes no
    more than the widest bound of the commands answering, and a line that
    answers nothing sent is refused too
    (:class:`~mailhat_nb.errors.ServerMisbehaved`). A FETCH range keeps one
    message per UID of its range, so it never holds more than its chunk.

A tagged ``NO`` or ``BAD`` fails that command only (:attr:`Command.status`):
the caller decides what it means. A command abandoned half-way (an error
while reading) leaves the connection unusable: :attr:`Wire.clean` turns
False. Foreign errors (``OSError``, ``ssl.SSLError``) pass through
untranslated: :mod:`mailhat_nb.sync.imap` translates them at its one
boundary. The connection is imapclient's, borrowed through
:mod:`mailhat_nb.sync.borrowed`, the one place that touches what the
libraries keep private.

Commands are logged at DEBUG on this module's logger, a login's secret
replaced by ``***`` at the source.
"""

from __future__ import annotations

import base64
import logging
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mailhat_nb.errors import CommandFailed
from mailhat_nb.sync.borrowed import Borrowed, ImaplibLike
from mailhat_nb.sync.fetch import (
    MAX_LINE,
    MAX_LITERAL,
    FetchedMessage,
    ResponseReader,
    misbehaved,
    parse_fetch,
    printable,
    tokens,
)
from mailhat_nb.sync.uids import parse_sequence_set

LOG = logging.getLogger(__name__)

#: The longest header block taken (the header fields a sync asks for; a few
#: MB at most, where a real message's are a few KB).
MAX_HEADER = 4 << 20
#: Messages asked for and not yet handed over, at most (see :class:`Wire`).
#: Two chunks of the engine's: about 6 MB of header fields, far more than a
#: bandwidth-delay product (50 Mbit/s at 150 ms is under 1 MB), and small
#: enough to hold while the parser catches up.
WINDOW = 10_000

_CODE = re.compile(rb"\[([A-Z-]+)(?: ([^\]]*))?\]", re.IGNORECASE)


# --------------------------------------------------------------------------- data


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


_NOT_SELECTABLE = frozenset({"\\noselect", "\\nonexistent"})


def mailbox(name: str) -> bytes:
    """A folder name as a command argument: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    from imapclient.imap_utf7 import encode

    raw = bytes(encode(name))
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _name(value: Any) -> str:
    """A folder name from a response (modified UTF-7) as text."""
    from imapclient.imap_utf7 import decode

    return str(decode(value)) if isinstance(value, bytes) else str(value)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(items: Any) -> dict[str, int]:
    """``(MESSAGES 3 UIDNEXT 4)`` -> ``{"MESSAGES": 3, "UIDNEXT": 4}`` (numbers only)."""
    if not isinstance(items, list):
        return {}
    return {key.decode("ascii", "replace").upper(): int(value)
            for key, value in zip(items[::2], items[1::2], strict=False)
            if isinstance(key, bytes) and isinstance(value, bytes) and value.isdigit()}


def _status(got: dict[str, int], count_key: str = "MESSAGES") -> FolderStatus:
    return FolderStatus(messages=got.get(count_key, 0), uidnext=got.get("UIDNEXT", 0),
                        uidvalidity=got.get("UIDVALIDITY", 0),
                        highestmodseq=got.get("HIGHESTMODSEQ"))


# --------------------------------------------------------------------------- responses


class Untagged:
    """One untagged response: its pieces, its kind, its tokens (parsed when asked)."""

    __slots__ = ("_toks", "kind", "number", "parts")

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        words = parts[0].split(b" ", 3)
        second = words[1] if len(words) > 1 else b""
        #: ``EXISTS``, ``FETCH``, ``STATUS``, ``OK`` ... (upper case)
        self.kind = (words[2] if second.isdigit() and len(words) > 2 else second).upper()
        #: the number before the kind (``* 12 EXISTS``), else None
        self.number = int(second) if second.isdigit() else None
        self._toks: list[Any] | None = None

    @property
    def toks(self) -> list[Any]:
        """The response as tokens (see :func:`mailhat_nb.sync.fetch.tokens`)."""
        if self._toks is None:
            self._toks = tokens(self.parts)
        return self._toks

    def codes(self) -> dict[str, str]:
        """Response codes (``[UIDVALIDITY 3]``) of a status response, upper-cased keys."""
        return {m.group(1).decode("ascii").upper(): _text(m.group(2) or b"")
                for m in _CODE.finditer(self.parts[0])}


# --------------------------------------------------------------------------- commands


class Command:
    """One command: its text, whose it is, how much it may bring, and how it ended.

    Parameters
    ----------
    text:
        The command without tag and CRLF.
    group:
        The folder (any object) whose EXAMINE this command follows; None for
        commands outside a folder (LIST, STATUS, ENABLE).
    weight:
        Messages the answer may carry (see :data:`WINDOW`).
    shown:
        What the log shows instead of ``text`` (a login's secret masked).
    """

    #: the longest line and literal its answer may bring (see :class:`ResponseReader`)
    line_bound = MAX_LINE
    literal_bound = MAX_LITERAL

    def __init__(self, text: bytes, *, group: object = None, weight: int = 0,
                 shown: bytes | None = None) -> None:
        self.text = text
        self.group = group
        self.weight = weight
        self.shown = shown if shown is not None else text
        self.tag = b""
        #: ``OK``, ``NO`` or ``BAD`` once complete, else ""
        self.status = ""
        #: the text of the tagged reply
        self.said = ""

    @property
    def verb(self) -> str:
        """The command's name, for messages (``UID FETCH``, ``EXAMINE``)."""
        words = self.text.split(b" ", 2)
        verb = b" ".join(words[:2]) if words[0].upper() == b"UID" else words[0]
        return verb.decode("ascii", "replace").upper()

    @property
    def ok(self) -> bool:  # noqa: D102 - the name says it
        return self.status == "OK"

    def failure(self) -> CommandFailed:
        """The error of a command that did not end OK."""
        return CommandFailed(self.verb, self.status or "no answer", self.said)

    def take(self, response: Untagged, oldest: bool) -> bool:
        """Claim an untagged response as part of this command's answer."""
        return False

    def take_message(self, message: FetchedMessage) -> bool:
        """Claim a FETCH response."""
        return False

    def complete(self, status: str, said: str) -> None:
        """The tagged reply arrived."""
        self.status, self.said = status, said


def capability_names(words: Iterable[Any]) -> frozenset[str]:
    """Capability names as a set, upper-cased (bytes from the wire or imapclient's)."""
    return frozenset(_text(w).upper() for w in words)


class Capability(Command):
    """``CAPABILITY``, for a server that did not say them with its login answer.

    Also the base of a command whose answer may list them unasked. No literal
    belongs in such an answer.
    """

    literal_bound = 0

    def __init__(self, text: bytes = b"CAPABILITY", shown: bytes | None = None) -> None:
        super().__init__(text, shown=shown)
        self.capabilities: frozenset[str] | None = None

    def take(self, response: Untagged, oldest: bool) -> bool:  # noqa: D102 - see Command
        if response.kind == b"CAPABILITY":
            self.capabilities = capability_names(response.parts[0].split()[2:])
            return True
        return False


class Authenticate(Capability):
    """``AUTHENTICATE PLAIN`` with the initial response (RFC 4959, SASL-IR): one round trip.

    The answer usually lists the capabilities after login
    (``OK [CAPABILITY ...]``), which saves asking for them.
    """

    def __init__(self, login: str, password: str) -> None:
        payload = base64.b64encode(f"\0{login}\0{password}".encode())
        super().__init__(b"AUTHENTICATE PLAIN " + payload, shown=b"AUTHENTICATE PLAIN ***")

    def complete(self, status: str, said: str) -> None:  # noqa: D102 - see Command
        super().complete(status, said)
        code = re.match(r"\[CAPABILITY ([^\]]*)\]", said, re.IGNORECASE)
        if code:
            self.capabilities = capability_names(code.group(1).split())


class ListFolders(Command):
    r"""``LIST "" "*"``; with ``status`` (RFC 5819 LIST-STATUS) every folder's STATUS too.

    The return options ask for what a plain LIST shows (``\\HasChildren``,
    the special-use flags), so a folder's flags read the same either way.
    """

    def __init__(self, status: tuple[str, ...] = (), special_use: bool = False) -> None:
        text = b'LIST "" "*"'
        if status:
            options = [b"CHILDREN"] + ([b"SPECIAL-USE"] if special_use else [])
            options.append(b"STATUS (" + " ".join(status).encode("ascii") + b")")
            text += b" RETURN (" + b" ".join(options) + b")"
        super().__init__(text)
        self.with_status = bool(status)
        self.folders: list[FolderInfo] = []
        self.statuses: dict[str, FolderStatus] = {}

    def take(self, response: Untagged, oldest: bool) -> bool:  # noqa: D102 - see Command
        if response.kind == b"LIST":
            toks = response.toks  # [*, LIST, (flags), delimiter, name, ...]
            if len(toks) < 5 or not isinstance(toks[2], list):
                return True
            flags = tuple(_text(f) for f in toks[2] if isinstance(f, bytes))
            self.folders.append(FolderInfo(
                name=_name(toks[4]), delimiter=_text(toks[3]) if toks[3] else None,
                flags=flags, selectable=not {f.lower() for f in flags} & _NOT_SELECTABLE))
            return True
        if response.kind == b"STATUS" and self.with_status:
            toks = response.toks
            if len(toks) >= 4:
                self.statuses[_name(toks[2])] = _status(_pairs(toks[3]))
            return True
        return False


class Status(Command):
    """``STATUS folder (...)`` of one folder."""

    def __init__(self, name: str, items: tuple[str, ...]) -> None:
        super().__init__(b"STATUS " + mailbox(name) + b" ("
                         + " ".join(items).encode("ascii") + b")")
        self.name = name
        self.result: FolderStatus | None = None

    def take(self, response: Untagged, oldest: bool) -> bool:  # noqa: D102 - see Command
        if response.kind != b"STATUS":
            return False
        toks = response.toks
        if len(toks) < 4 or _name(toks[2]) != self.name:
            return False
        self.result = _status(_pairs(toks[3]))
        return True


class Examine(Command):
    """``EXAMINE folder``: read-only, so nothing the sync does can change a flag."""

    def __init__(self, name: str, group: object) -> None:
        super().__init__(b"EXAMINE " + mailbox(name), group=group)
        self.name = name
        self._got: dict[str, int] = {}

    def take(self, response: Untagged, oldest: bool) -> bool:  # noqa: D102 - see Command
        if not oldest:
            return False  # the mailbox data of the folder examined before it
        if response.kind == b"EXISTS" and response.number is not None:
            self._got["EXISTS"] = response.number
            return True
        if response.kind in (b"OK", b"NO", b"BAD"):
            self._got.update((k, int(v)) for k, v in response.codes().items() if v.isdigit())
            return True
        return response.kind in (b"FLAGS", b"RECENT")

    @property
    def result(self) -> FolderStatus:
        """The folder's state as the EXAMINE found it (EXISTS for its count)."""
        return _status(self._got, "EXISTS")


class Search(Command):
    """``UID SEARCH ALL``: every UID in the examined folder (ESEARCH's compact form if offered)."""

    def __init__(self, group: object, esearch: bool, count: int = 0) -> None:
        text = b"UID SEARCH RETURN (ALL) ALL" if esearch else b"UID SEARCH ALL"
        # A classic answer lists every UID: some 7 bytes each, a header's hundred-odd.
        super().__init__(text, group=group, weight=0 if esearch else count // 100)
        if not esearch:  # one line listing every UID
            self.line_bound = MAX_LINE + 12 * count
        self.esearch = esearch
        self._uids: list[int] = []

    def take(self, response: Untagged, oldest: bool) -> bool:  # noqa: D102 - see Command
        if response.kind == b"ESEARCH" and self.esearch:
            toks = response.toks  # [*, ESEARCH, (TAG "x"), UID, ALL, set]
            correlator = toks[2] if len(toks) > 2 else None
            if not (isinstance(correlator, list) and correlator[1:2] == [self.tag]):
                return False
            items = toks[3:]
            for k, item in enumerate(items[:-1]):
                if isinstance(item, bytes) and item.upper() == b"ALL":
                    self._uids = parse_sequence_set(items[k + 1])
            return True
        if response.kind == b"SEARCH" and not self.esearch:
            self._uids += [int(w) for w in response.parts[0].split()[2:] if w.isdigit()]
            return True
        return False

    @property
    def result(self) -> list[int]:
        """The UIDs, sorted."""
        return sorted(set(self._uids))


class Fetch(Command):
    """``UID FETCH lo:hi items [modifiers]``; ``hi`` None is ``lo:*``.

    Messages outside the range are not this command's (``n:*`` answers with
    the highest message even when its UID is below ``n``; a server may
    send FETCH responses nobody asked for). With ``headers``, a message
    without its header block is not either (an unsolicited flag change).
    A message answered twice counts once.
    """

    def __init__(self, lo: int, hi: int | None, items: bytes, *, group: object,
                 weight: int, modifiers: bytes = b"", headers: bool = True) -> None:
        top = b"*" if hi is None else b"%d" % hi
        super().__init__(b"UID FETCH %d:%s %s" % (lo, top, items)
                         + (b" " + modifiers if modifiers else b""), group=group, weight=weight)
        if headers:
            self.literal_bound = MAX_HEADER
        self.lo, self.hi, self.headers = lo, hi, headers
        self._got: dict[int, FetchedMessage] = {}

    def take_message(self, message: FetchedMessage) -> bool:  # noqa: D102 - see Command
        if message.uid < self.lo or (self.hi is not None and message.uid > self.hi):
            return False
        if self.headers and message.header is None:
            return False
        self._got[message.uid] = message
        return True

    @property
    def result(self) -> list[FetchedMessage]:
        """The messages, by UID."""
        return [self._got[uid] for uid in sorted(self._got)]


# --------------------------------------------------------------------------- the wire


class Wire:
    """Pipelined commands on an open imaplib connection (see the module docstring)."""

    def __init__(self, imap: ImaplibLike) -> None:
        self._conn = Borrowed(imap)
        self._reader = ResponseReader(self._conn.stream)
        self.window = WINDOW
        self._queue: deque[Command] = deque()
        #: sent and not yet handed over, in the order sent
        self._sent: deque[Command] = deque()
        self._by_tag: dict[bytes, Command] = {}
        self._load = 0
        self._candidates: list[Command] | None = None
        #: capabilities the server announced unasked (an untagged CAPABILITY)
        self.announced: frozenset[str] | None = None

    @property
    def clean(self) -> bool:
        """True when no command is queued or answering."""
        return not (self._queue or self._by_tag)

    def submit(self, *commands: Command) -> None:
        """Queue ``commands``; they go out from :meth:`results`, in this order."""
        self._queue.extend(commands)

    def run(self, *commands: Command) -> None:
        """Send ``commands`` (and whatever is queued) and wait until all have completed."""
        self.submit(*commands)
        for _ in self.results():
            pass

    def send_and_forget(self, text: bytes) -> None:
        """Send one command whose answer nobody reads (``LOGOUT`` on the way out)."""
        tag = self._conn.tag()
        LOG.debug("> %s %s", tag.decode(), text.decode("ascii", "replace"))
        self._conn.write(tag + b" " + text + b"\r\n")

    def results(self) -> Iterator[Command]:
        """Completed commands, in the order sent, until none is queued or answering.

        The caller may :meth:`submit` more while iterating. A failed command
        (``NO``/``BAD``) is handed over like any other: see :attr:`Command.status`.

        Raises
        ------
        ConnectionResetError
            On ``* BYE`` or the end of the stream.
        """
        while self._queue or self._sent:
            self._write()
            while self._sent and self._sent[0].status:
                done = self._sent.popleft()
                self._load -= done.weight
                yield done
                self._write()
            if self._by_tag:
                self._read()

    def _write(self) -> None:
        """Send every queued command that fits the window, in one write."""
        lines = []
        while self._queue and (self._load == 0
                               or self._load + self._queue[0].weight <= self.window):
            cmd = self._queue.popleft()
            cmd.tag = self._conn.tag()
            self._by_tag[cmd.tag] = cmd
            self._sent.append(cmd)
            self._candidates = None
            self._load += cmd.weight
            lines.append(cmd.tag + b" " + cmd.text + b"\r\n")
            LOG.debug("> %s %s", cmd.tag.decode(), cmd.shown.decode("ascii", "replace"))
        if lines:
            self._conn.write(b"".join(lines))

    def _answering(self) -> list[Command]:
        """Commands that may take an untagged response now, oldest first (see the docstring).

        Kept until a command is sent or completes: a first sync routes every
        one of its messages through here.
        """
        if self._candidates is None:
            live = [c for c in self._sent if not c.status]
            current = live[0].group if live else None
            self._candidates = [c for c in live if c.group is None or c.group == current]
            # What is read next may be any of theirs: the widest of their bounds.
            self._reader.max_line = max((c.line_bound for c in live), default=MAX_LINE)
            self._reader.max_literal = max((c.literal_bound for c in live), default=0)
        return self._candidates

    def _read(self) -> None:
        self._answering()  # the bounds of what is asked
        got = self._reader.next_fetch()
        if isinstance(got, FetchedMessage):
            self._route_message(got)
            return
        head = got[0]
        if head[:2] == b"* ":
            response = Untagged(got)
            if response.kind == b"BYE":
                raise ConnectionResetError(
                    "the server said BYE: " + head[5:].decode("utf-8", "replace").strip())
            if response.kind == b"FETCH":
                message = parse_fetch(got)
                if message is not None:
                    self._route_message(message)
                return
            answering = self._answering()
            for cmd in answering:
                if cmd.take(response, oldest=cmd is answering[0]):
                    return
            if response.kind == b"CAPABILITY":
                self.announced = capability_names(head.split()[2:])
            return
        if head[:1] == b"+":
            # A continuation request: none of our commands asks for one (no
            # synchronizing literals; SASL-IR sends the login with the command).
            # A server that wants more of an AUTHENTICATE gets a cancel.
            self._conn.write(b"*\r\n")
            return
        tag, _, rest = head.partition(b" ")
        owner = self._by_tag.get(tag)
        status, _, said = rest.partition(b" ")
        if owner is None or status.upper() not in (b"OK", b"NO", b"BAD"):
            raise misbehaved(f"a line that is no answer to anything sent: {printable(head)}")
        del self._by_tag[tag]
        self._candidates = None
        self._conn.done(tag)
        owner.complete(status.decode("ascii", "replace").upper(), _text(said).strip())
        LOG.debug("< %s %s %s", tag.decode(), owner.status, owner.said[:200])

    def _route_message(self, message: FetchedMessage) -> None:
        for cmd in self._answering():
            if cmd.take_message(message):
                return
