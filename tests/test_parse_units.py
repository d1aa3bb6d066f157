"""Unit tests of the header parser, its helpers and their documented choices."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailhat_nb.sync.parse import FETCH_HEADER_FIELDS, parse_columns, parse_headers, rfc2047
from mailhat_nb.sync.parse.addrparse import parse_addresses, parse_mailboxes
from mailhat_nb.sync.parse.dates import parse_asctime, parse_date

BLOCK = (
    b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    b'From: "Doe, Jane" <Jane.Doe@Example.COM>\r\n'
    b"To: bob@example.com, Carol <carol@example.com>,\r\n"
    b"\t=?utf-8?q?J=C3=B6rg?= <joerg@example.de>\r\n"
    b"Cc: undisclosed-recipients:;\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus\r\n  Berlin\r\n"
    b"Message-ID: <abc.123@mail.example.com>\r\n"
    b"In-Reply-To: <parent@example.com> (Jane's message)\r\n"
    b"References: <root@example.com>\r\n <parent@example.com>\r\n"
    b"Delivered-To: Bob@Example.com\r\n"
    b"Delivered-To: bob.alias@example.com\r\n"
    b"List-Id: Team list <Team.Example.COM>\r\n"
    b"\r\n"
    b"From: not a header, the body\r\n"
)


def test_a_typical_block() -> None:
    row = parse_headers(BLOCK)
    assert row == {
        "message_id": "abc.123@mail.example.com",
        "date": datetime(2003, 7, 1, 8, 52, 37, tzinfo=UTC),
        "date_source": "header",
        "date_offset_min": 120,
        "from_addr": "jane.doe@example.com",
        "from_name": "Doe, Jane",
        "to_addrs": ["bob@example.com", "carol@example.com", "joerg@example.de"],
        "cc_addrs": [],
        "delivered_to": ["bob@example.com", "bob.alias@example.com"],
        "subject": "Grüße aus  Berlin",  # unfolding removes CRLF only (RFC 5322 2.2.3)
        "subject_raw": None,
        "in_reply_to": "parent@example.com",
        "references": ["root@example.com", "parent@example.com"],
        "list_id": "team.example.com",
        "labels": [],
        "gm_thrid": None,
        "defects": [],
    }


def test_lf_only_and_whole_message_and_mbox_from_line() -> None:
    lf = BLOCK.replace(b"\r\n", b"\n")
    assert parse_headers(lf) == parse_headers(BLOCK)
    mboxed = b"From jane@example.com Tue Jul  1 10:52:37 2003\n" + lf
    assert parse_headers(mboxed) == parse_headers(BLOCK)


def test_header_names_are_case_insensitive_and_first_occurrence_wins() -> None:
    row = parse_headers(
        b"SUBJECT: one\r\nsubject: two\r\nDATE: Tue, 1 Jul 2003 10:52:37 +0000\r\n"
        b"date: Wed, 2 Jul 2003 10:52:37 +0000\r\nTO: a@x\r\nto: b@x\r\n\r\n"
    )
    assert row["subject"] == "one"
    assert row["date"] == datetime(2003, 7, 1, 10, 52, 37, tzinfo=UTC)
    assert row["to_addrs"] == ["a@x", "b@x"]  # every To header counts
    assert "date_multiple" in row["defects"]


def test_missing_everything_is_flagged_not_raised() -> None:
    row = parse_headers(b"X-Nothing: here\r\n\r\n")
    assert row["defects"] == ["date_missing", "from_missing", "message_id_missing"]
    assert row["date"] is None
    assert row["date_source"] == "none"
    assert row["subject"] is None
    assert row["from_addr"] is None
    assert row["from_name"] is None


def test_internaldate_fallback_and_naive_internaldate() -> None:
    aware = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    row = parse_headers(b"Date: garbage\r\n\r\n", internaldate=aware)
    assert row["date"] == aware
    assert row["date"].tzinfo is UTC
    assert row["date_source"] == "internaldate"
    assert row["date_offset_min"] is None
    assert "date_unparseable" in row["defects"]
    naive = datetime(2024, 5, 6, 7, 8, 9)
    row = parse_headers(b"Subject: x\r\n\r\n", internaldate=naive)
    assert row["date"] == naive.replace(tzinfo=UTC)  # naive INTERNALDATE is taken as UTC
    # a good Date header wins over INTERNALDATE
    row = parse_headers(b"Date: Tue, 1 Jul 2003 10:52:37 +0000\r\n\r\n", internaldate=aware)
    assert row["date_source"] == "header"
    assert row["date"].year == 2003


@pytest.mark.parametrize(
    ("value", "utc", "offset", "defects"),
    [
        ("Tue, 1 Jul 2003 10:52:37 +0200", datetime(2003, 7, 1, 8, 52, 37), 120, ()),
        ("1 Jul 2003 10:52:37 -0530", datetime(2003, 7, 1, 16, 22, 37), -330, ()),
        ("Wed, 14 Nov 2001 15:34:17 -0800 (PST)", datetime(2001, 11, 14, 23, 34, 17), -480, ()),
        ("Tue, 22 Jan 2002 14:35:28 UT", datetime(2002, 1, 22, 14, 35, 28), 0, ()),
        ("Wed, 17 Nov 2010 15:02:19 EST", datetime(2010, 11, 17, 20, 2, 19), -300, ()),
        ("Mon, 09 Feb 04 23:17:44 GMT", datetime(2004, 2, 9, 23, 17, 44), 0, ()),
        ("Tue, 8 Oct 91 10:25:36 EDT", datetime(1991, 10, 8, 14, 25, 36), -240, ()),
        ("Wed, 25 Sep 2002 08:00:22 -0000", datetime(2002, 9, 25, 8, 0, 22), None, ()),
        ("Thu, 5 Sep 2002 02:00:11", datetime(2002, 9, 5, 2, 0, 11), None, ("date_tz_unknown",)),
        ("Tue, 12 Oct 2010 16:21:05 H0500", datetime(2010, 10, 12, 16, 21, 5), None,
         ("date_tz_unknown",)),
        ("Thu, 29 Aug 2002 15:36:58 +-0500", datetime(2002, 8, 29, 20, 36, 58), -300,
         ("date_nonstandard",)),
        ("Wed, 29 May 2002 16:54:6 +0300", datetime(2002, 5, 29, 13, 54, 6), 180, ()),
        ("Wed, 20 Sep 1995 00:19:00 (EDT) -0400", datetime(1995, 9, 20, 4, 19), -240, ()),
        ("Thu, 16 Jun 2016 00:41:19 (UTC)", datetime(2016, 6, 16, 0, 41, 19), 0, ()),
        ("27 Jun 01 3:36:25 PM", datetime(2001, 6, 27, 15, 36, 25), None,
         ("date_nonstandard", "date_tz_unknown")),
        ("Sun, 25 Aug 0102 10:36:36 -1000", datetime(2002, 8, 25, 20, 36, 36), -600,
         ("date_nonstandard",)),
        ("Wed, 28 Dec 0001 08:45:27 -0800 (PST)", datetime(2001, 12, 28, 16, 45, 27), -480,
         ("date_nonstandard",)),
        ("2002/09/14 Sat 02:29:32 CDT", datetime(2002, 9, 14, 7, 29, 32), -300,
         ("date_nonstandard",)),
        ("2024-03-01T12:00:00+01:00", datetime(2024, 3, 1, 11), 60, ("date_nonstandard",)),
        ("Mon Jan 21 10:00:00 2002", datetime(2002, 1, 21, 10), None,
         ("date_tz_unknown", "date_nonstandard")),
        ("Sat, 1 Jul 2023 12:00:00 CEST", datetime(2023, 7, 1, 10), 120, ("date_nonstandard",)),
        ("Fri, 31 Dec 1999 23:59:60 +0000", datetime(2000, 1, 1), 0, ()),  # leap second
        ("Fri, 31 Dec 1999 24:00:00 +0000", datetime(2000, 1, 1), 0, ()),
        ("Mon, 30 Jun 3609 15:33:50 +0600", None, None, ("date_out_of_range",)),
        ("Pn, 29 paX 2007 21:13:00 +0100", None, None, ("date_unparseable",)),
        ("Wed, 15 Dec 2010    59:10 -0500", None, None, ("date_unparseable",)),
        ("Fri, 30 Feb 2001 10:00:00 +0000", None, None, ("date_unparseable",)),
        ("", None, None, ("date_unparseable",)),
    ],
)  # fmt: skip
def test_date_forms(
    value: str, utc: datetime | None, offset: int | None, defects: tuple[str, ...]
) -> None:
    got, off, found = parse_date(value)
    assert got == (utc.replace(tzinfo=UTC) if utc else None)
    assert off == offset
    assert set(found) == set(defects)


def test_asctime_of_mbox_from_lines() -> None:
    assert parse_asctime("From MAILER-DAEMON Fri Jul  8 12:08:34 2011") == datetime(
        2011, 7, 8, 12, 8, 34, tzinfo=UTC
    )
    takeout = "From 1711123456789012345@xxx Wed Sep 02 12:34:56 +0200 2020"
    assert parse_asctime(takeout) == datetime(2020, 9, 2, 10, 34, 56, tzinfo=UTC)
    assert parse_asctime("From the desk of the editor") is None


@pytest.mark.parametrize(
    ("value", "expected", "clean"),
    [
        ("a@x.com", [("", "a@x.com")], True),
        ("A@X.com, b@y.org,", [("", "a@x.com"), ("", "b@y.org")], True),
        ('"Dean, Clint" <Clint.Dean@enron.com>', [("Dean, Clint", "clint.dean@enron.com")], True),
        ("Jane Doe <jane@x>, <bob@y>", [("Jane Doe", "jane@x"), ("", "bob@y")], True),
        ("l..day@enron.com", [("", "l..day@enron.com")], True),
        ("legal <.hall@enron.com>", [("legal", ".hall@enron.com")], True),
        ("undisclosed-recipients:;", [], True),
        ("team: a@x, B <b@y>;, c@z", [("", "a@x"), ("B", "b@y"), ("", "c@z")], True),
        ("a@x (Alice A.)", [("Alice A.", "a@x")], True),
        (r'"J. \"Jay\" Doe" <j@x>', [('J. "Jay" Doe', "j@x")], True),
        ("Dean, Clint <c@x>", [("Dean, Clint", "c@x")], True),  # unquoted comma: joined
        ("<'quoted@x'>", [("", "quoted@x")], False),
        ("Mary <@relay.tld:mary@example.net>", [("Mary", "mary@example.net")], True),
        ("<Undisclosed-Recipient:;@host.org>", [], False),
        ("tim@x.com concierge@x.com", [("", "tim@x.com"), ("", "concierge@x.com")], False),
        ("Big Bug bb@bug.com", [("Big Bug", "bb@bug.com")], False),
        ("jdoe@test   . example", [("", "jdoe@test.example")], True),
        ("pete(his account)@silly.test(his host)", [("his account his host", "pete@silly.test")],
         True),
        ("root", [("", "root")], False),
        ("John Smith", [], False),
        ("<>", [], False),
        ("", [], True),
        ('"unterminated <a@x>', [("unterminated", "a@x")], False),  # the quote is dropped
        ("a@x,,b@y", [("", "a@x"), ("", "b@y")], True),
    ],
)  # fmt: skip
def test_address_lists(value: str, expected: list[tuple[str, str]], clean: bool) -> None:
    got, ok = parse_mailboxes(value)
    assert got == expected
    assert ok == clean
    addrs, ok2 = parse_addresses(value)
    assert addrs == [a for _, a in expected]
    assert ok2 == clean


def test_from_name_is_decoded_and_from_without_address_keeps_the_name() -> None:
    row = parse_headers(b"From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n\r\n")
    assert row["from_name"] == "André Pirard"
    assert row["from_addr"] == "pirard@vm1.ulg.ac.be"
    row = parse_headers(b"From: Jane Doe\r\n\r\n")
    assert row["from_addr"] is None
    assert row["from_name"] == "Jane Doe"
    assert "from_unparseable" in row["defects"]
    row = parse_headers(b"From: a@x, b@y\r\n\r\n")
    assert row["from_addr"] == "a@x"
    assert "from_multiple" in row["defects"]


@pytest.mark.parametrize(
    ("value", "text", "status"),
    [
        ("plain", "plain", rfc2047.OK),
        ("=?utf-8?q?caf=C3=A9?=", "café", rfc2047.OK),
        ("=?UTF-8?B?Y2Fmw6k=?=", "café", rfc2047.OK),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab", rfc2047.OK),  # blank between words dropped
        ("=?utf-8?q?a?=  x  =?utf-8?q?b?=", "a  x  b", rfc2047.OK),
        ("=?utf-8?b?w6k=?==?utf-8?b?w6k=?=", "éé", rfc2047.OK),
        ("=?utf-8?q?=C3?= =?utf-8?q?=A9?=", "é", rfc2047.OK),  # é split across two words
        ("=?iso-8859-1?q?=85?=", "…", rfc2047.OK),  # latin-1 label, cp1252 byte (WHATWG)
        ("=?utf-8*en?q?lang?=", "lang", rfc2047.OK),  # RFC 2231 language tag
        ("=?x-unknown?q?caf=C3=A9?=", "café", rfc2047.UNKNOWN_CHARSET),
        ("=?NONE?B?VEVTVA=?=", "TEST", rfc2047.UNKNOWN_CHARSET | rfc2047.BROKEN),
        ("=?utf-8?q?bad=FF?=", "bad\ufffd", rfc2047.BROKEN),
        ("=?base64?q?x?=", "x", rfc2047.UNKNOWN_CHARSET),  # a bytes codec is no charset
        ("=?utf-8?q?no end", "=?utf-8?q?no end", rfc2047.OK),
    ],
)
def test_encoded_words(value: str, text: str, status: int) -> None:
    assert rfc2047.decode_words(value) == (text, status)


def test_subject_fallbacks_keep_the_raw_value() -> None:
    row = parse_headers(b"Subject: =?x-unknown?q?caf=E9?=\r\n\r\n")
    assert row["subject"] == "café"  # not UTF-8, so cp1252
    assert row["subject_raw"] == "=?x-unknown?q?caf=E9?="
    assert {"charset_unknown", "subject_undecodable"} <= set(row["defects"])
    row = parse_headers("Subject: Grüße\r\n\r\n".encode())  # RFC 6532 raw UTF-8
    assert row["subject"] == "Grüße"
    assert row["subject_raw"] is None
    assert row["defects"] == [
        "date_missing",
        "from_missing",
        "header_not_ascii",
        "message_id_missing",
    ]
    row = parse_headers(
        b"Content-Type: text/plain; charset=koi8-r\r\nSubject: \xf0\xd2\xc9\xd7\xc5\xd4\r\n\r\n"
    )
    assert row["subject"] == "Привет"  # the body's charset is the best guess
    assert row["subject_raw"] == "\\xf0\\xd2\\xc9\\xd7\\xc5\\xd4"
    # the byte 0xA0 is half of a UTF-8 "à": no str.strip() may eat it
    row = parse_headers("Subject: voilà\r\n\r\n".encode())
    assert row["subject"] == "voilà"


def test_message_ids() -> None:
    def mid(value: bytes) -> tuple[str | None, list[str]]:
        row = parse_headers(b"Message-ID: " + value + b"\r\n\r\n")
        return row["message_id"], [d for d in row["defects"] if d.startswith("message_id")]

    assert mid(b"<a.b@c>") == ("a.b@c", [])
    assert mid(b"<a.b@c> (added by postmaster)") == ("a.b@c", [])
    assert mid(b"a.b@c") == ("a.b@c", ["message_id_nonstandard"])
    assert mid(b"<1234   @   local(blah)  .machine .example>") == (
        "1234@local.machine.example",
        ["message_id_nonstandard"],
    )
    assert mid(b"<xxxx>") == ("xxxx", ["message_id_nonstandard"])
    assert mid(b"<>") == (None, ["message_id_missing"])
    assert mid(b"") == (None, ["message_id_missing"])
    row = parse_headers(b"References: a@b <c@d>\r\nIn-Reply-To: bare@id\r\n\r\n")
    assert row["references"] == ["c@d"]
    assert row["in_reply_to"] == "bare@id"
    row = parse_headers(b"References: a@b c@d\r\n\r\n")
    assert row["references"] == ["a@b", "c@d"]


def test_gmail_takeout_headers() -> None:
    row = parse_headers(
        b'X-GM-THRID: 1234567890123456789\r\nX-Gmail-Labels: Inbox,"Work, 2024",Opened,'
        b"=?UTF-8?Q?Gesch=C3=A4ft?=\r\n\r\n"
    )
    assert row["gm_thrid"] == 1234567890123456789
    assert row["labels"] == ["Inbox", "Work, 2024", "Opened", "Geschäft"]


def test_parse_columns_aligns_internaldates_and_restores_gc() -> None:
    import gc

    when = [datetime(2020, 1, 1, tzinfo=UTC), None]
    columns = parse_columns([b"Subject: a\r\n\r\n", b"Subject: b\r\n\r\n"], internaldates=when)
    assert list(columns["date"]) == when
    assert list(columns["subject"]) == ["a", "b"]
    assert gc.isenabled()
    with pytest.raises(TypeError):
        parse_columns([b"x"], internaldates=5)  # type: ignore[arg-type]
    assert gc.isenabled()


def test_fetch_fields_cover_what_the_parser_reads() -> None:
    assert {"DATE", "FROM", "TO", "CC", "SUBJECT", "MESSAGE-ID", "IN-REPLY-TO", "REFERENCES",
            "DELIVERED-TO", "LIST-ID"} <= set(FETCH_HEADER_FIELDS)  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        '"Steve Wang" <s@x.com>, Jim  Meyn <j@x.com>,\td@x.com, ' * 3000 + "x y",
        "a " * 50_000 + "<",
        '"' * 20_000,
        "(" * 20_000,
        "<" * 20_000 + "@",
        "=?utf-8?q?" * 10_000,
    ],
    ids=["long-list-failing-late", "words", "quotes", "parens", "angles", "half-words"],
)
def test_pathological_values_stay_linear(value: str) -> None:
    block = f"To: {value}\r\nFrom: {value}\r\nSubject: {value}\r\n\r\n".encode()
    start = time.perf_counter()
    row = parse_headers(block)
    assert time.perf_counter() - start < 2.0  # the regex fast path once took 2^n here
    assert "parse_error" not in row["defects"]


def test_an_obsolete_from_header_is_not_an_mbox_line() -> None:
    # RFC 2822 A.6.3 allows "From  :" (blanks before the colon); the first line of
    # the message is then a header, not an mbox envelope to skip.
    row = parse_headers(b"From  : John Doe <jdoe@machine.example>\r\nSubject: hi\r\n\r\n")
    assert row["from_addr"] == "jdoe@machine.example"
    assert row["from_name"] == "John Doe"
    row = parse_headers(
        b"From jdoe@machine.example Fri Nov 21 09:55:06 1997\r\nSubject: hi\r\n\r\n"
    )
    assert row["from_addr"] is None
    assert row["subject"] == "hi"
