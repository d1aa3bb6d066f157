"""Property-based tests (hypothesis) of the pure parsing functions.

The encoders used to build inputs are the stdlib's (``email.header.Header``,
``email.utils.formataddr`` / ``format_datetime``): independent of the code
under test, so a round trip checks our decoder against someone else's encoder.
"""

from __future__ import annotations

import email.header
import email.utils
import os
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailhat_nb.sync.parse import PARSE_DEFECTS, parse_headers, rfc2047
from mailhat_nb.sync.parse.addrparse import parse_addresses, parse_mailboxes
from mailhat_nb.sync.parse.dates import parse_date

# Modest by default (the suite must stay fast); MAILHAT_HYPOTHESIS_EXAMPLES=5000 digs deeper.
FAST = settings(
    max_examples=int(os.environ.get("MAILHAT_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HEADER_NAMES = [
    b"Date", b"From", b"To", b"Cc", b"Subject", b"Message-ID", b"In-Reply-To",
    b"References", b"Delivered-To", b"List-Id", b"X-Gmail-Labels", b"X-GM-THRID",
    b"Content-Type", b"Received", b"from", b"TO", b"From ", b" ",
]  # fmt: skip
NASTY = [b"=?", b"?=", b"<", b">", b'"', b"(", b")", b",", b";", b":", b"@", b"\\", b"\r\n",
         b"\n", b"\r\n ", b"\t", b"\xff", b"\xc3\xa9", b"\x00", b"=?utf-8?q?", b"=?x?b?",
         b"+0000", b"-", b"0102", b"Mon, 1 Jan 2001 "]  # fmt: skip

header_bytes = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES),
        st.lists(st.one_of(st.sampled_from(NASTY), st.binary(max_size=12)), max_size=12),
    ),
    max_size=10,
).map(lambda hs: b"".join(n + b": " + b"".join(v) + b"\r\n" for n, v in hs) + b"\r\n")


def check_row(row: dict[str, object]) -> None:
    assert "parse_error" not in row["defects"]  # type: ignore[operator]
    assert set(row["defects"]) <= set(PARSE_DEFECTS)  # type: ignore[arg-type]
    for key in ("to_addrs", "cc_addrs", "delivered_to", "references", "labels"):
        value = row[key]
        assert isinstance(value, list)
        assert all(isinstance(v, str) for v in value)
    for key in ("message_id", "from_addr", "from_name", "subject", "subject_raw",
                "in_reply_to", "list_id"):  # fmt: skip
        assert row[key] is None or isinstance(row[key], str)
    date = row["date"]
    assert date is None or (isinstance(date, datetime) and date.tzinfo is UTC)
    assert row["date_source"] in ("header", "internaldate", "none")


@FAST
@given(st.binary(max_size=600))
@example(b"From \n")
@example(b"\r\n\r\n")
@example(b"Subject: =?\xff?q?x?=\r\n\r\n")
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    check_row(parse_headers(raw))


@FAST
@given(header_bytes, st.none() | st.datetimes(timezones=st.just(UTC)))
def test_header_shaped_garbage_never_raises(raw: bytes, when: datetime | None) -> None:
    row = parse_headers(raw, internaldate=when)
    check_row(row)
    if when is not None:
        assert row["date"] is not None  # INTERNALDATE always backs a bad Date


# --------------------------------------------------------------------------- RFC 2047

latin1_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    min_size=1,
    max_size=60,
)
any_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60)


@FAST
@given(any_text, st.sampled_from(["utf-8", "utf-16", "gb18030"]))
def test_rfc2047_round_trip_unicode(text: str, charset: str) -> None:
    encoded = email.header.Header(text, charset).encode()  # folded, several words
    decoded, status = rfc2047.decode_words(encoded.replace("\n", "").replace("\r", ""))
    assert decoded == text
    assert status == rfc2047.OK


@FAST
@given(latin1_text, st.sampled_from(["iso-8859-1", "windows-1252"]), st.sampled_from("qb"))
def test_rfc2047_round_trip_latin1(text: str, charset: str, enc: str) -> None:
    data = text.encode("latin-1" if charset == "iso-8859-1" else "cp1252", "replace")
    if charset == "iso-8859-1" and any(0x80 <= b <= 0x9F for b in data):
        return  # C1 controls under a latin-1 label are read as cp1252 on purpose
    if enc == "b":
        import base64

        word = f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    else:
        word = (
            f"=?{charset}?Q?"
            + "".join(
                chr(b) if chr(b).isascii() and chr(b).isalnum() else f"={b:02X}" for b in data
            )
            + "?="
        )
    assert rfc2047.decode_words(word) == (
        data.decode("cp1252" if charset != "iso-8859-1" else "latin-1"),
        rfc2047.OK,
    )


@FAST
@given(any_text)
def test_rfc2047_through_a_whole_subject_header(text: str) -> None:
    folded = email.header.Header(text.strip() or "x", "utf-8", header_name="Subject").encode(
        linesep="\r\n"
    )
    row = parse_headers(b"Subject: " + folded.encode("ascii") + b"\r\n\r\n")
    assert row["subject"] == (text.strip() or "x").strip()
    assert row["subject_raw"] is None
    assert row["defects"] == [
        "date_missing",
        "from_missing",
        "message_id_missing",
    ]


@FAST
@given(st.text(max_size=80))
def test_decode_words_is_identity_without_encoded_words(text: str) -> None:
    if "=?" in text:
        return
    assert rfc2047.decode_words(text) == (text, rfc2047.OK)


# --------------------------------------------------------------------------- addresses

atom = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&*+-/=?^_`{|}~",
               min_size=1, max_size=10)  # fmt: skip
addr_spec = st.builds(
    lambda local, labels: local + "@" + ".".join(labels),
    st.lists(atom, min_size=1, max_size=3).map(".".join),
    st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8),
             min_size=1, max_size=3),
)  # fmt: skip
display_name = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                       max_size=20).map(lambda s: " ".join(s.split()))  # fmt: skip


@FAST
@given(st.lists(st.tuples(display_name, addr_spec), max_size=8), st.booleans())
def test_address_lists_round_trip(boxes: list[tuple[str, str]], fold: bool) -> None:
    value = ", ".join(email.utils.formataddr((n, a), charset="utf-8") for n, a in boxes)
    if fold:
        value = value.replace(", ", ",\r\n\t")
    row = parse_headers(
        b"To: "
        + value.encode("ascii")
        + b"\r\nFrom: "
        + (value.split(",")[0].encode("ascii") if boxes else b"x@y")
        + b"\r\n\r\n"
    )
    assert row["to_addrs"] == [a.lower() for _, a in boxes]
    assert "address_unparseable" not in row["defects"]
    got, clean = parse_mailboxes(value.replace("\r\n", ""))
    assert clean
    names = [rfc2047.decode_words(n)[0] for n, _ in got]
    assert names == [n for n, _ in boxes]
    assert [a for _, a in got] == [a.lower() for _, a in boxes]
    # the independent reader agrees on the addresses
    assert [a.lower() for _, a in email.utils.getaddresses([value])] == [a for _, a in got] or (
        not boxes
    )


@FAST
@given(st.lists(addr_spec, min_size=1, max_size=6), st.sampled_from([",", ", ", " ,\t", ",  "]))
def test_bare_lists_and_groups(addrs: list[str], sep: str) -> None:
    assert parse_addresses(sep.join(addrs)) == ([a.lower() for a in addrs], True)
    group = "team: " + sep.join(addrs) + ";"
    assert parse_addresses(group) == ([a.lower() for a in addrs], True)
    assert parse_addresses("undisclosed-recipients:;" + sep + addrs[0]) == ([addrs[0].lower()],
                                                                           True)  # fmt: skip


@FAST
@given(st.text(max_size=200))
def test_address_parsing_never_raises(value: str) -> None:
    boxes, _ = parse_mailboxes(value)
    assert all(isinstance(n, str) and isinstance(a, str) and a for n, a in boxes)
    assert [a for _, a in boxes] == parse_addresses(value)[0]


# --------------------------------------------------------------------------- folding


@FAST
@given(st.lists(st.text("abcdefghij ,.:!?-", min_size=1, max_size=12), min_size=1, max_size=8),
       st.data())  # fmt: skip
def test_folding_only_removes_the_line_breaks(words: list[str], data: st.DataObject) -> None:
    value = " ".join(w.strip() or "w" for w in words)
    folded = ""
    for ch in value:
        if ch == " " and data.draw(st.booleans()):
            folded += "\r\n"  # fold before a blank, which stays (RFC 5322 2.2.3)
        folded += ch
    a = parse_headers(f"Subject: {value}\r\nTo: a@x,\r\n b@y\r\n\r\n".encode())
    b = parse_headers(f"Subject: {folded}\r\nTo: a@x,\r\n b@y\r\n\r\n".encode())
    assert a == b
    assert a["subject"] == value.strip(" ")
    lf = parse_headers(f"Subject: {folded}\r\nTo: a@x,\r\n b@y\r\n\r\n".replace("\r\n", "\n")
                       .encode())  # fmt: skip
    assert lf == a


# --------------------------------------------------------------------------- dates

offsets = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: q * 15)
instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 30),
                        timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))  # fmt: skip


@FAST
@given(instants, offsets, st.sampled_from(["", " (PST)", " (GMT+1)"]), st.booleans())
def test_dates_with_offsets_round_trip(
    when: datetime, offset: int, comment: str, weekday: bool
) -> None:
    local = when.astimezone(timezone(timedelta(minutes=offset)))
    text = email.utils.format_datetime(local) + comment
    if not weekday:
        text = text[5:]
    utc, off, defects = parse_date(text)
    assert utc == when
    assert utc is not None
    assert utc.tzinfo is UTC
    if offset == 0 and text.split(" ")[-1 if not comment else -2] == "-0000":
        assert off is None
    else:
        assert off == offset
    assert defects == ()
    assert email.utils.parsedate_to_datetime(text) == utc  # the independent reader agrees


@FAST
@given(st.text(max_size=60))
def test_dates_never_raise(text: str) -> None:
    utc, off, defects = parse_date(text)
    assert (utc is None) == bool({"date_unparseable", "date_out_of_range"} & set(defects))
    assert utc is None or utc.tzinfo is UTC
    assert off is None or -24 * 60 < off < 24 * 60
