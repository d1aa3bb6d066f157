"""The bulk-FETCH fast path: the lexer on hand-written server answers, and the
fast path against imapclient on the real lab mailbox."""

from __future__ import annotations

import datetime as dt
import io
import ssl

import imapclient
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhat_nb.errors import MailServerError, ServerMisbehaved
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.sync import fetch, wire
from mailhat_nb.sync import uids as uid_sets
from mailhat_nb.sync.borrowed import TESTED_IMAPCLIENT, imaplib_of
from mailhat_nb.sync.parse import FETCH_HEADER_FIELDS


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read, like a socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(self._step, len(buf), len(self._data) - self._pos)
        buf[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def reader(data: bytes, step: int = 7) -> fetch.ResponseReader:
    return fetch.ResponseReader(io.BufferedReader(Trickle(data, step), buffer_size=16))


class FakeImap:
    """Just enough of imaplib.IMAP4 for :class:`wire.Wire`, with a scripted server."""

    def __init__(self, answer: bytes, step: int = 13) -> None:
        self.file = io.BufferedReader(Trickle(answer, step), buffer_size=64)
        self.sent: list[bytes] = []
        self.tagged_commands: dict[bytes, None] = {}
        self._n = 0

    def _new_tag(self) -> bytes:
        self._n += 1
        tag = b"T%d" % self._n
        self.tagged_commands[tag] = None
        return tag

    def send(self, data: bytes) -> None:
        self.sent.append(data)


HEADER = b"Subject: hi {5}\r\nFrom: a@b\r\n\r\n"


def test_reader_takes_literals_whole_even_when_they_look_like_protocol() -> None:
    data = (b"* 1 FETCH (UID 7 BODY[HEADER.FIELDS (SUBJECT)] {%d}\r\n" % len(HEADER)
            + HEADER + b")\r\n* 2 EXISTS\r\nT1 OK done\r\n")
    for step in (1, 3, 7, 64, 4096):
        r = reader(data, step)
        first = r.next()
        assert first == [b"* 1 FETCH (UID 7 BODY[HEADER.FIELDS (SUBJECT)] {%d}" % len(HEADER),
                         HEADER, b")"]
        assert r.next() == [b"* 2 EXISTS"]
        assert r.next() == [b"T1 OK done"]


def test_reader_raises_when_the_server_hangs_up_mid_literal() -> None:
    r = reader(b"* 1 FETCH (UID 1 BODY[] {100}\r\nshort", 5)
    with pytest.raises(ConnectionResetError):
        r.next()


def test_tokens_handle_quoting_nil_nesting_and_literals() -> None:
    parts = [b'* 3 FETCH (UID 9 FLAGS (\\Seen $Junk) X-GM-LABELS ("a \\"q\\"" {3}', b"b c",
             b' NIL) INTERNALDATE "01-Jan-2021 00:00:00 +0000" BODY[HEADER] NIL)']
    toks = fetch.tokens(parts)
    assert toks[:3] == [b"*", b"3", b"FETCH"]
    items = toks[3]
    assert items[:4] == [b"UID", b"9", b"FLAGS", [b"\\Seen", b"$Junk"]]
    assert items[5] == [b'a "q"', b"b c", None]
    assert items[-2:] == [b"BODY[HEADER]", None]


def test_fast_and_general_paths_agree() -> None:
    parts = [b'* 5 FETCH (UID 42 FLAGS (\\Seen \\Recent) INTERNALDATE "03-Feb-2022 10:11:12 -0500" '
             b"RFC822.SIZE 1234 MODSEQ (77) BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}" % len(HEADER),
             HEADER, b")"]
    fast = reader(b"\r\n".join([parts[0], parts[1] + parts[2]]) + b"\r\n").next_fetch()
    assert isinstance(fast, fetch.FetchedMessage)
    general = fetch.parse_fetch([parts[0].replace(b"MODSEQ", b"X-ODD 1 MODSEQ"), *parts[1:]])
    assert general is not None  # an item it does not know is passed over
    for msg in (fast, general):
        assert msg.uid == 42
        assert msg.flags == ("\\Seen",)  # \Recent is a session property, never stored
        assert msg.size == 1234
        assert msg.modseq == 77
        assert msg.header == HEADER
        assert msg.internaldate == dt.datetime(2022, 2, 3, 15, 11, 12, tzinfo=dt.UTC)


def test_gmail_fetch_answer_keeps_labels_and_ids() -> None:
    parts = [b'* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334866 '
             b'X-GM-LABELS (\\Inbox \\Sent "Project &AMQ-" {6}', b"odd)la",
             b') UID 301 FLAGS (\\Seen) INTERNALDATE "10-Mar-2023 08:00:00 +0000" '
             b"RFC822.SIZE 99 BODY[HEADER.FIELDS (FROM)] {10}", b"From: x\r\n\r\n", b")"]
    msg = fetch.parse_fetch(parts)
    assert msg is not None
    assert msg.uid == 301
    assert msg.gm_msgid == 1278455344230334866
    assert msg.gm_thrid == 1278455344230334865
    assert msg.gm_labels == ("\\Inbox", "\\Sent", "Project Ä", "odd)la")
    assert msg.header == b"From: x\r\n\r\n"


def test_non_fetch_and_uidless_answers_are_not_messages() -> None:
    assert fetch.parse_fetch([b"* 3 EXISTS"]) is None
    assert fetch.parse_fetch([b"* 3 FETCH (FLAGS (\\Seen))"]) is None


@pytest.mark.parametrize(("raw", "expected"), [
    (b"01-Jan-2021 22:51:25 +0000", dt.datetime(2021, 1, 1, 22, 51, 25, tzinfo=dt.UTC)),
    (b" 9-Dec-1999 23:59:59 +0130", dt.datetime(1999, 12, 9, 22, 29, 59, tzinfo=dt.UTC)),
    (b"garbage", None),
])
def test_internaldate(raw: bytes, expected: dt.datetime | None) -> None:
    got = fetch.parse_internaldate(raw)
    assert got == expected
    if got is not None:
        assert got.tzinfo is not None  # never naive (imapclient's default would be)


@given(st.lists(st.integers(1, 400), unique=True).map(sorted))
def test_sequence_sets_round_trip(uids: list[int]) -> None:
    text = uid_sets.sequence_set(uids)
    assert uid_sets.parse_sequence_set(text) == uids
    assert len(text) <= max(1, len(uids)) * 4


@given(st.lists(st.integers(1, 10_000), unique=True, min_size=1).map(sorted),
       st.integers(1, 50))
def test_chunk_ranges_cover_every_uid_once(uids: list[int], size: int) -> None:
    ranges = uid_sets.chunk_ranges(uids, size)
    seen = [u for u in uids for lo, hi in ranges if lo <= u <= hi]
    assert seen == uids
    assert all(sum(lo <= u <= hi for u in uids) <= size for lo, hi in ranges)


def _msg(seq: int, uid: int, header: bytes = b"From: x\r\n\r\n") -> bytes:
    return (b'* %d FETCH (UID %d FLAGS () INTERNALDATE "01-Jan-2021 00:00:00 +0000" '
            b"RFC822.SIZE 10 BODY[HEADER.FIELDS (FROM)] {%d}\r\n%s)\r\n"
            % (seq, uid, len(header), header))


def test_pipelined_answers_are_sorted_by_uid_and_handed_back_in_order() -> None:
    # Dovecot runs pipelined FETCHes concurrently: answers interleave, and here
    # the second completes first. A stray "* n FETCH" for a UID outside every
    # range (n:* returning the last message) is nobody's.
    answer = (_msg(1, 1) + _msg(3, 10) + _msg(2, 2) + b"* 4 EXISTS\r\n" + _msg(4, 11)
              + _msg(9, 99) + b"T2 OK b\r\nT1 OK a\r\n")
    imap = FakeImap(answer)
    line = wire.Wire(imap)
    first = wire.Fetch(1, 5, b"(UID)", group="f", weight=5)
    second = wire.Fetch(10, None, b"(UID)", group="f", weight=3)
    line.submit(first, second)
    assert list(line.results()) == [first, second]
    assert [m.uid for m in first.result] == [1, 2]
    assert [m.uid for m in second.result] == [10, 11, 99]
    assert imap.sent == [b"T1 UID FETCH 1:5 (UID)\r\nT2 UID FETCH 10:* (UID)\r\n"]  # one write
    assert line.clean
    assert imap.tagged_commands == {}


def test_the_window_holds_back_what_would_overflow_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "WINDOW", 5)
    imap = FakeImap(_msg(1, 1) + b"T1 OK\r\n" + _msg(2, 6) + b"T2 OK\r\n")
    line = wire.Wire(imap)
    line.submit(wire.Fetch(1, 5, b"(UID)", group="f", weight=5),
                wire.Fetch(6, 10, b"(UID)", group="f", weight=5))
    got = list(line.results())
    assert [[m.uid for m in c.result] for c in got if isinstance(c, wire.Fetch)] == [[1], [6]]
    assert imap.sent == [b"T1 UID FETCH 1:5 (UID)\r\n", b"T2 UID FETCH 6:10 (UID)\r\n"]


def test_a_folders_answers_never_mix_with_the_next_folders() -> None:
    # Both folders have a UID 1: only the order of the replies tells whose it is.
    answer = (b"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 4] ok\r\n"
              b"T1 OK [READ-ONLY] done\r\n" + _msg(1, 1, b"From: a\r\n\r\n")
              + b"T2 OK\r\n* 5 EXISTS\r\n* OK [UIDVALIDITY 8] ok\r\n"
              b"* OK [HIGHESTMODSEQ 12] ok\r\nT3 OK [READ-ONLY] done\r\n"
              + _msg(1, 1, b"From: b\r\n\r\n") + b"T4 OK\r\n")
    line = wire.Wire(FakeImap(answer))
    a, b = wire.Examine("A", "A"), wire.Examine("B", "B")
    fa = wire.Fetch(1, None, b"(UID)", group="A", weight=3)
    fb = wire.Fetch(1, None, b"(UID)", group="B", weight=5)
    line.submit(a, fa, b, fb)
    assert list(line.results()) == [a, fa, b, fb]
    assert a.result == wire.FolderStatus(3, 4, 7, None)
    assert b.result == wire.FolderStatus(5, 0, 8, 12)
    assert [m.header for m in fa.result] == [b"From: a\r\n\r\n"]
    assert [m.header for m in fb.result] == [b"From: b\r\n\r\n"]


def test_a_tagged_no_fails_that_command_only_and_bye_is_a_dropped_connection() -> None:
    imap = FakeImap(b'T1 NO [SERVERBUG] oops\r\n* STATUS "INBOX.a b" (MESSAGES 2 UIDNEXT 3)\r\n'
                    b"T2 OK\r\n")
    line = wire.Wire(imap)
    search, status = wire.Search("f", esearch=False), wire.Status("INBOX.a b", ("MESSAGES",))
    line.run(search, status)
    assert (search.status, search.ok) == ("NO", False)
    assert isinstance(search.failure(), MailServerError)
    assert "oops" in str(search.failure())
    assert status.result == wire.FolderStatus(2, 3, 0, None)
    assert b'STATUS "INBOX.a b" (MESSAGES)' in imap.sent[0]
    line = wire.Wire(FakeImap(b"* BYE shutting down\r\n"))
    with pytest.raises(ConnectionResetError):
        line.run(wire.Command(b"NOOP"))
    assert not line.clean


def test_esearch_answer_is_expanded_and_taken_by_its_tag_only() -> None:
    line = wire.Wire(FakeImap(b'* ESEARCH (TAG "X9") UID ALL 5\r\n'
                              b'* ESEARCH (TAG "T1") UID ALL 1:3,7,9:10\r\nT1 OK\r\n'))
    search = wire.Search("f", esearch=True)
    line.run(search)
    assert search.result == [1, 2, 3, 7, 9, 10]
    line = wire.Wire(FakeImap(b'* ESEARCH (TAG "T1") UID\r\nT1 OK\r\n'))
    search = wire.Search("f", esearch=True)
    line.run(search)
    assert search.result == []


def test_list_status_reads_names_flags_and_counts() -> None:
    answer = (b'* LIST (\\HasChildren) "." INBOX\r\n* STATUS INBOX (MESSAGES 71 UIDNEXT 72 '
              b'UIDVALIDITY 5 HIGHESTMODSEQ 9)\r\n* LIST (\\HasNoChildren \\Sent) "." '
              b'"INBOX.Entw&APw-rfe"\r\n* STATUS "INBOX.Entw&APw-rfe" (MESSAGES 0 UIDNEXT 1 '
              b'UIDVALIDITY 6 HIGHESTMODSEQ 1)\r\n* LIST (\\Noselect) "." {7}\r\nArchive\r\n'
              b"T1 OK done\r\n")
    imap = FakeImap(answer)
    listing = wire.ListFolders(("MESSAGES", "UIDNEXT"), special_use=True)
    wire.Wire(imap).run(listing)
    assert imap.sent == [b'T1 LIST "" "*" RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UIDNEXT))'
                         b"\r\n"]
    assert listing.folders == [
        wire.FolderInfo("INBOX", ".", ("\\HasChildren",), True),
        wire.FolderInfo("INBOX.Entwürfe", ".", ("\\HasNoChildren", "\\Sent"), True),
        wire.FolderInfo("Archive", ".", ("\\Noselect",), False)]
    assert listing.statuses == {"INBOX": wire.FolderStatus(71, 72, 5, 9),
                                "INBOX.Entwürfe": wire.FolderStatus(0, 1, 6, 1)}
    assert wire.mailbox('a"b\\c ü') == b'"a\\"b\\\\c &APw-"'


# --------------------------------------------------------------------------- against the lab


@pytest.fixture
def alice(lab: Lab, lab_info: LabInfo) -> imapclient.IMAPClient:
    ctx = ssl.create_default_context(cafile=lab_info.ca_file)
    client = imapclient.IMAPClient("localhost", port=lab_info.ports["imaps"], ssl_context=ctx)
    client.login("alice@localhost", lab.password("alice"))
    yield client
    client.logout()


@pytest.mark.lab
def test_fast_path_matches_imapclient_on_the_demo_mailbox(alice: imapclient.IMAPClient) -> None:
    alice.normalise_times = False
    for folder in ("INBOX", "INBOX.Sent", "INBOX.deleted_items"):
        alice.select_folder(folder, readonly=True)
        uids = alice.search("ALL")
        section = f"BODY.PEEK[HEADER.FIELDS ({' '.join(FETCH_HEADER_FIELDS)})]"
        # imapclient needs an explicit UID list: fetch("1:*") raises in 4.0.1 / 4.1.0.
        theirs = alice.fetch(uids, ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", section])
        line = wire.Wire(imaplib_of(alice))
        fetches = [wire.Fetch(lo, hi, fetch.fetch_items(FETCH_HEADER_FIELDS), group=folder,
                              weight=50) for lo, hi in uid_sets.chunk_ranges(uids, 50)]
        line.run(wire.Examine(folder, folder), *fetches)
        ours = [m for f in fetches for m in f.result]
        assert line.clean
        assert [m.uid for m in ours] == sorted(theirs)
        body_key = next(k for k in theirs[uids[0]] if k.startswith(b"BODY[HEADER"))
        for m in ours:
            t = theirs[m.uid]
            assert m.header == t[body_key]
            assert m.size == t[b"RFC822.SIZE"]
            assert m.internaldate == t[b"INTERNALDATE"]
            assert set(m.flags) == {f.decode() for f in t[b"FLAGS"]} - {"\\Recent"}
        # imapclient is still usable after the fast path borrowed its connection
        assert alice.folder_status(folder, ["MESSAGES"])[b"MESSAGES"] == len(ours)


@pytest.mark.lab
def test_imapclient_range_fetch_bug_is_still_there(alice: imapclient.IMAPClient) -> None:
    # Pinned: when imapclient fixes fetch("1:*"), the comment in imap.py can go.
    alice.select_folder("INBOX", readonly=True)
    with pytest.raises(ValueError, match="invalid literal for int"):
        alice.fetch("1:*", ["UID"])
    # ... and its default turns INTERNALDATE into naive local time.
    got = alice.fetch(alice.search("ALL")[:1], ["INTERNALDATE"])
    assert next(iter(got.values()))[b"INTERNALDATE"].tzinfo is None


def test_the_installed_imapclient_is_one_the_fast_path_was_tested_with() -> None:
    # The fast path borrows imapclient's private connection (sync/borrowed.py):
    # a release outside the tested range must be looked at before it is allowed.
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    assert version("imapclient") in SpecifierSet(TESTED_IMAPCLIENT)
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert f"imapclient{TESTED_IMAPCLIENT}" in project["project"]["dependencies"]


def test_an_imapclient_without_what_the_fast_path_borrows_is_said_plainly() -> None:
    class Changed:
        _imap = object()  # a future release's connection, without _new_tag & co.

    with pytest.raises(MailServerError, match=r"install imapclient>="):
        imaplib_of(Changed())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bounds


class Endless(io.RawIOBase):
    """A server that streams ``chunk`` for ever; counts what was read of it."""

    def __init__(self, head: bytes, chunk: bytes = b"x" * 4096) -> None:
        self.head, self.chunk, self.given = head, chunk, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.head or self.chunk
        self.head = b""
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        self.given += n
        return n


def test_a_literal_past_its_bound_is_refused_before_a_byte_of_it_is_read() -> None:
    stream = Endless(b"* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2021 00:00:00 +0000\" "
                     b"RFC822.SIZE 10 BODY[HEADER.FIELDS (FROM)] {4294967296}\r\n")
    r = fetch.ResponseReader(io.BufferedReader(stream, buffer_size=1 << 16))
    r.max_literal = 4 << 20
    with pytest.raises(ServerMisbehaved, match="a literal of 4,294,967,296 bytes, more than"):
        r.next_fetch()
    assert stream.given < 1 << 20  # the 4 GB were announced, never read
    r = fetch.ResponseReader(io.BufferedReader(Endless(b"* CAPABILITY {100}\r\n")))
    r.max_literal = 0
    with pytest.raises(ServerMisbehaved, match="a literal of 100 bytes where none belongs"):
        r.next()


def test_a_line_without_end_is_refused_at_its_bound() -> None:
    for read in ("next", "next_fetch"):
        stream = Endless(b"* CAPABILITY IMAP4rev1 ")
        r = fetch.ResponseReader(io.BufferedReader(stream))
        with pytest.raises(ServerMisbehaved, match="a line of more than 65,536 bytes"):
            getattr(r, read)()
        assert stream.given < 65_536 + fetch.READ_SIZE + 4096


def test_an_answer_too_long_in_all_is_refused() -> None:
    # Short literals one after the other, each within its bound, without end.
    r = fetch.ResponseReader(io.BufferedReader(Endless(b"* 1 FETCH (", b"X {10}\r\n0123456789")))
    with pytest.raises(ServerMisbehaved, match="an answer of more than"):
        r.next()


def test_the_wire_bounds_what_each_command_may_bring() -> None:
    # A login's answer holds no literal; a header FETCH a few MB; a classic
    # SEARCH a line as long as the folder's UIDs.
    line = wire.Wire(FakeImap(b"* CAPABILITY {5}\r\nIMAP4\r\nT1 OK\r\n"))
    with pytest.raises(ServerMisbehaved, match="where none belongs"):
        line.run(wire.Authenticate("a@b", "pw"))
    assert not line.clean
    header = b"From: " + b"x" * 300_000 + b"\r\n\r\n"
    answer = _msg(1, 1, header) + b"T1 OK\r\n"
    fetched = wire.Fetch(1, None, b"(UID)", group="f", weight=1)
    wire.Wire(FakeImap(answer, step=4096)).run(fetched)
    assert fetched.result[0].header == header
    uids = b" ".join(b"%d" % u for u in range(1, 30_001))
    search = wire.Search("f", esearch=False, count=30_000)
    wire.Wire(FakeImap(b"* SEARCH " + uids + b"\r\nT1 OK\r\n", step=4096)).run(search)
    assert search.result == list(range(1, 30_001))
    status = wire.Status("INBOX", ("MESSAGES",))  # a short answer: a short bound
    with pytest.raises(ServerMisbehaved, match="a line of more than"):
        wire.Wire(FakeImap(b"* SEARCH " + uids + b"\r\nT1 OK\r\n", step=4096)).run(status)


def test_a_line_that_answers_nothing_sent_is_refused() -> None:
    for answer in (b"T7 OK you never asked\r\n", b"\x16\x03\x01 garbage\r\n",
                   b"HTTP/1.1 400 Bad Request\r\n"):
        with pytest.raises(ServerMisbehaved, match="no answer to anything sent"):
            wire.Wire(FakeImap(answer)).run(wire.Command(b"NOOP"))


def test_a_fetch_range_keeps_one_message_per_uid_of_its_range() -> None:
    # A server repeating the same message does not grow what the range holds.
    answer = b"".join(_msg(1, 5) for _ in range(500)) + _msg(2, 99) + b"T1 OK\r\n"
    fetched = wire.Fetch(1, 10, b"(UID)", group="f", weight=10)
    wire.Wire(FakeImap(answer, step=4096)).run(fetched)
    assert [m.uid for m in fetched.result] == [5]
