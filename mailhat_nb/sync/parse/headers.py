r"""Fast, defensive parsing of message header blocks into ``messages`` rows.

A sync fetches a header block per message, a hundred thousand for a
mailbox. Read with the stdlib ``email`` package (compat32 plus
getaddresses / decode_header / parsedate, or policy.default's header
objects), parsing alone would take longer than the server needs to send
everything. This module reads only the fields the ``messages`` frame
needs, several times faster, with one regex pass over the block, fast paths for
plain ASCII values and simple address lists, and remembered results for
the values a mailbox repeats (senders, recipients, subjects); the rare
hard cases (encoded words, quoted names, groups, 8-bit bytes, odd dates)
go to the careful helpers in :mod:`.rfc2047`, :mod:`.addrparse` and
:mod:`.dates`. Run ``benchmarks/bench_parse.py`` for the numbers.

API
---
``parse_headers(raw, *, internaldate=None) -> dict``
    One message. ``raw`` is the header block (an IMAP
    ``BODY.PEEK[HEADER.FIELDS (...)]`` answer) or a whole message: parsing
    stops at the first blank line; a leading mbox ``From_`` line is ignored.
``parse_columns(blocks, internaldates=None) -> dict[str, Sequence]``
    Many messages, column by column (what the sync turns into Arrow arrays).
``FETCH_HEADER_FIELDS``
    The header names to ask an IMAP server for.
``PARSE_DEFECTS``
    Every defect string a row can carry.

Row keys (the parsed columns of :mod:`mailhat_nb.sync.schema`)
-------------------------------------------------------------
``message_id``
    str without the angle brackets (``abc@host``), or None. Brackets are
    stripped everywhere (``in_reply_to``, ``references`` too) so the columns
    compare directly, and because some senders omit them.
``date``, ``date_source``, ``date_offset_min``
    tz-aware UTC ``datetime`` from the Date header (``"header"``), else from
    ``internaldate`` (``"internaldate"``), else None (``"none"``). The offset
    is the sender's, in minutes east of UTC, from the Date header only
    (None when it has no usable zone, or the date came from INTERNALDATE).
``from_addr``, ``from_name``
    First From mailbox: address lower-cased (None when missing), display
    name RFC 2047-decoded ("" when there is none, None when no From at all).
``to_addrs``, ``cc_addrs``, ``delivered_to``
    lists of lower-cased addresses, in header order, all occurrences of the
    header concatenated; groups contribute their members, empty groups
    (``undisclosed-recipients:;``) nothing.
``subject``, ``subject_raw``
    Decoded subject (None when missing); ``subject_raw`` is the undecoded
    value only when decoding had to guess or repair (else None). 8-bit
    bytes that were not valid UTF-8 appear in it as ``\xNN``.
``in_reply_to``, ``references``
    First message id of In-Reply-To (or None) and all ids of References.
``list_id``
    The id inside ``List-Id: Name <id>``, lower-cased, or None.
``labels``, ``gm_thrid``
    Gmail's ``X-Gmail-Labels`` (list) and ``X-GM-THRID`` (int) headers, which
    a Google Takeout mbox carries; ``[]`` / None elsewhere.
``defects``
    Sorted list of :data:`PARSE_DEFECTS` strings; ``[]`` for a clean message.

Nothing here raises on bad input: a malformed message is a row with defects.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from mailhat_nb.sync.memory import gc_paused
from mailhat_nb.sync.parse import rfc2047
from mailhat_nb.sync.parse.addrparse import parse_addresses, parse_mailboxes
from mailhat_nb.sync.parse.dates import DATE_DEFECTS, parse_date
from mailhat_nb.sync.schema import LIST, STORE_COLUMNS

#: Header fields to FETCH over IMAP (``BODY.PEEK[HEADER.FIELDS (...)]``).
#: Content-Type is optional: it only serves as a charset hint for raw 8-bit
#: headers; leaving it out saves ~60 bytes a message.
FETCH_HEADER_FIELDS: Final = (
    "DATE", "FROM", "TO", "CC", "SUBJECT", "MESSAGE-ID", "IN-REPLY-TO",
    "REFERENCES", "DELIVERED-TO", "LIST-ID", "CONTENT-TYPE",
)  # fmt: skip

#: Every defect string :func:`parse_headers` can emit (stable names).
PARSE_DEFECTS: Final = (
    "parse_error",  # an internal error (a bug): empty row, date from INTERNALDATE only
    "header_not_ascii",  # raw 8-bit bytes in a parsed header (decoded as UTF-8 or guessed)
    "subject_undecodable",  # encoded words / bytes had to be repaired or guessed
    "charset_unknown",  # an encoded word names a charset Python does not know
    "from_missing",
    "from_unparseable",
    "from_multiple",  # several From headers or mailboxes: the first is used
    "from_name_undecodable",
    "address_unparseable",  # part of To/Cc/Delivered-To/From could not be read as an address
    "date_missing",
    "date_multiple",  # several Date headers: the first is used
    *DATE_DEFECTS,
    "message_id_missing",
    "message_id_nonstandard",  # no <...>, several ids, no local@domain, repaired syntax
)

#: The keys of a parsed row (columns of :mod:`mailhat_nb.sync.schema`), in the
#: order :func:`_parse` returns their values: a new key goes here and there.
PARSE_KEYS: Final = (
    "message_id", "date", "date_source", "date_offset_min", "from_addr", "from_name",
    "to_addrs", "cc_addrs", "delivered_to", "subject", "subject_raw", "in_reply_to",
    "references", "list_id", "labels", "gm_thrid", "defects",
)  # fmt: skip


_FIELDS_RE: Final = re.compile(
    r"^(date|from|to|cc|subject|message-id|in-reply-to|references|delivered-to|list-id"
    r"|x-gmail-labels|x-gm-thrid)[ \t]*:(.*(?:\r?\n[ \t].*)*)",
    re.M | re.I,
)
_WS: Final = " \t\r\n"
_MSGID_RE: Final = re.compile(r"<\s*+([^<>\s]++)\s*+>")
_BARE_ADDR_RE: Final = re.compile(r"\s*<?[^\s<>@,;:]+@[^\s<>@,;:]+>?\s*$")
_LOOSE_ID_RE: Final = re.compile(r"<([^<>]*)>")
_COMMENT_RE: Final = re.compile(r"\([^()]*\)")
_FROM_HEADER_RE: Final = re.compile(rb"From[ \t]*:")
_CHARSET_RE: Final = re.compile(
    rb"(?im)^content-type:[^\n]*(?:\n[ \t][^\n]*)*?charset\s*=\s*\"?([A-Za-z0-9_.:+-]+)"
)


def _header_block(raw: bytes) -> bytes:
    """The bytes before the first blank line, without a leading ``From_`` line."""
    end = raw.find(b"\n\n")
    end2 = raw.find(b"\n\r\n")
    if end2 >= 0 and (end < 0 or end2 < end):
        end = end2
    head = raw if end < 0 else raw[: end + 1]
    if head.startswith(b"From ") and _FROM_HEADER_RE.match(head) is None:
        # an mbox envelope line, not the obsolete header form "From  : Jane <j@x>"
        nl = head.find(b"\n")
        head = head[nl + 1 :] if nl >= 0 else b""
    return head


def _decode_8bit(value: str, hint: str | None) -> tuple[str, bool]:
    """Re-decode a latin-1-decoded value that holds 8-bit bytes.

    UTF-8 first (RFC 6532, and what most 8-bit headers are today), then the
    message's own Content-Type charset, then cp1252. Returns the text and
    whether it was a guess.
    """
    data = value.encode("latin-1")
    with contextlib.suppress(UnicodeDecodeError):
        return data.decode("utf-8"), False
    codec = rfc2047.codec_for(hint) if hint else None
    if codec is not None:
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode(codec), True
    return data.decode("cp1252", "replace"), True


def _raw_repr(value: str) -> str:
    """A lossless printable form of a latin-1-decoded raw value."""
    if value.isascii():
        return value
    return value.encode("latin-1").decode("ascii", "backslashreplace")


def _ids(value: str) -> tuple[list[str], bool]:
    """Message ids in a Message-ID / In-Reply-To / References value.

    Returns the ids (brackets stripped) and whether they were written
    cleanly. Obsolete syntax (``<1234 @ local(blah) .machine>``) is repaired by
    dropping comments and whitespace; bare ``id@host`` tokens are accepted.
    """
    ids = _MSGID_RE.findall(value)
    if ids:
        return ids, True
    loose = []
    for inner in _LOOSE_ID_RE.findall(value):
        words = _COMMENT_RE.sub(" ", inner).split()
        if words:
            # "<id@host\n (junk) by relay>": the first word; "<1234 @ local .machine>": all
            first = words[0]
            loose.append(first if 0 < first.find("@") < len(first) - 1 else "".join(words))
    if loose:
        return loose, False
    return [t.strip("<>,;") for t in value.split() if "@" in t.strip("<>,;")], False


def _first_id(value: str) -> str | None:
    ids, _ = _ids(value)
    return ids[0] if ids else None


def _to_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _labels(value: str) -> list[str]:
    text, _ = rfc2047.decode_words(value)
    try:
        fields = next(csv.reader([text], skipinitialspace=True))
    except (csv.Error, StopIteration):
        fields = text.split(",")
    return [f.strip() for f in fields if f.strip()]


# --------------------------------------------------------------------------- memoised fields
#
# A mailbox repeats itself: the same correspondents in From, the same few
# addresses in To / Cc / Delivered-To, thread subjects. The functions below
# are pure functions of one header value, so their results are remembered
# (bounded LRU, results immutable). Values longer than MEMO_MAX_LEN (huge
# recipient lists) are parsed every time, which bounds the memory to a few
# MB. ``benchmarks/bench_parse.py`` measures what it saves.

#: Distinct values remembered per field.
FIELD_CACHE_SIZE: Final = 4096
#: Longer values are not remembered.
MEMO_MAX_LEN: Final = 512


@lru_cache(maxsize=FIELD_CACHE_SIZE)
def _from_fields(value: str) -> tuple[str | None, str | None, tuple[str, ...], bool]:
    """A From value -> ``(addr, name, defects, has_mailbox)``.

    ``from_multiple`` for *several From headers* is the caller's (it depends
    on the message, not on this value).
    """
    defects: list[str] = []
    from_addr: str | None = None
    boxes, clean = parse_mailboxes(value)
    if boxes:
        from_name, from_addr = boxes[0]
        if "=?" in from_name:
            from_name, st = rfc2047.decode_words(from_name)
            if st:
                defects.append("from_name_undecodable")
                if st & rfc2047.UNKNOWN_CHARSET:
                    defects.append("charset_unknown")
        if "@" not in from_addr:
            defects.append("from_unparseable")
        if len(boxes) > 1:
            defects.append("from_multiple")
    else:
        # No address at all; keep what looks like a name ("=?UTF-16?B?...?= test").
        from_name, _ = rfc2047.decode_words(value.strip(' "'))
        defects.append("from_unparseable")
    if not clean and "from_unparseable" not in defects:
        defects.append("address_unparseable")
    return from_addr, from_name, tuple(defects), bool(boxes)


@lru_cache(maxsize=FIELD_CACHE_SIZE)
def _addresses(value: str) -> tuple[tuple[str, ...], bool]:
    """:func:`~.addrparse.parse_addresses`, remembered (a tuple: shared, so immutable)."""
    addrs, clean = parse_addresses(value)
    return tuple(addrs), clean


@lru_cache(maxsize=FIELD_CACHE_SIZE)
def _subject_fields(value: str, hint: str | None) -> tuple[str, str | None, tuple[str, ...]]:
    """A Subject holding 8-bit bytes or encoded words -> ``(subject, raw, defects)``.

    ``hint`` is the Content-Type charset, used for 8-bit bytes only.
    """
    defects: list[str] = []
    subject = value
    status = 0
    if not value.isascii():
        subject, guessed = _decode_8bit(value, hint)
        defects.append("header_not_ascii")
        if guessed:
            status = rfc2047.BROKEN
    if "=?" in subject:
        subject, st = rfc2047.decode_words(subject)
        subject = subject.strip()  # blanks inside the encoded words, at either end
        status |= st
    subject_raw: str | None = None
    if status:
        subject_raw = _raw_repr(value)
        defects.append("subject_undecodable")
        if status & rfc2047.UNKNOWN_CHARSET:
            defects.append("charset_unknown")
    return subject, subject_raw, tuple(defects)


def clear_field_memo() -> None:
    """Forget the remembered field values (for benchmarks: a cold start, as a new worker)."""
    for memo in (_from_fields, _addresses, _subject_fields):
        memo.cache_clear()


def parse_headers(raw: bytes, *, internaldate: datetime | None = None) -> dict[str, Any]:
    """Parse one header block into a ``messages`` row (the parse fields).

    Parameters
    ----------
    raw
        Header block or whole message, bytes as received.
    internaldate
        The server's INTERNALDATE (or a file's mtime); used for ``date`` when
        the Date header is missing or unusable. A naive value is taken as UTC.

    Returns
    -------
    dict
        The keys described in the module docstring. Never raises for any
        ``bytes`` input: unexpected failures become the ``parse_error`` defect.
    """
    return dict(zip(PARSE_KEYS, _values(raw, internaldate), strict=True))


def _values(raw: bytes, internaldate: datetime | None) -> tuple[Any, ...]:
    """One row's values in :data:`PARSE_KEYS` order; never raises."""
    try:
        return _parse(raw, internaldate)
    except Exception:  # a malformed message is a flagged row, never a crash
        return _empty_values(internaldate, ["parse_error"])


def _empty_values(internaldate: datetime | None, defects: list[str]) -> tuple[Any, ...]:
    date = None
    source = "none"
    if isinstance(internaldate, datetime):
        with contextlib.suppress(ValueError, OverflowError):
            date, source = _to_utc(internaldate), "internaldate"
    given = {"date": date, "date_source": source, "defects": defects}
    return tuple(given.get(key, [] if STORE_COLUMNS[key] == LIST else None)
                 for key in PARSE_KEYS)


def _parse(raw: bytes, internaldate: datetime | None) -> tuple[Any, ...]:
    head = _header_block(raw)
    text = head.decode("latin-1")
    eight_bit = not text.isascii()
    hint: str | None = None
    if eight_bit:
        cm = _CHARSET_RE.search(head)
        hint = cm.group(1).decode("ascii") if cm else None

    defects: list[str] = []
    date_v: str | None = None
    from_v: str | None = None
    subject_v: str | None = None
    mid_v: str | None = None
    irt_v: str | None = None
    refs_v: str | None = None
    list_v: str | None = None
    labels_v: str | None = None
    thrid_v: str | None = None
    to_vs: list[str] = []
    cc_vs: list[str] = []
    dt_vs: list[str] = []
    n_date = n_from = 0

    for name, value in _FIELDS_RE.findall(text):
        key = name.lower()
        if "\n" in value:
            value = value.replace("\r\n", "").replace("\n", "")
        value = value.strip(_WS)  # ASCII only: "\xa0" may be half of a UTF-8 character
        if eight_bit and key != "subject" and not value.isascii():
            # (the subject is decoded below, where its raw value can be kept)
            value, _ = _decode_8bit(value, hint)
            defects.append("header_not_ascii")
        if key == "to":
            to_vs.append(value)
        elif key == "cc":
            cc_vs.append(value)
        elif key == "date":
            n_date += 1
            if date_v is None:
                date_v = value
        elif key == "from":
            n_from += 1
            if from_v is None:
                from_v = value
        elif key == "subject":
            if subject_v is None:
                subject_v = value
        elif key == "message-id":
            if mid_v is None:
                mid_v = value
        elif key == "delivered-to":
            # Only a bare address is a mailbox the message was delivered to;
            # Gmail also writes "mailing list x@y" and "moderator for x@y".
            if _BARE_ADDR_RE.match(value):
                dt_vs.append(value)
        elif key == "in-reply-to":
            if irt_v is None:
                irt_v = value
        elif key == "references":
            if refs_v is None:
                refs_v = value
        elif key == "list-id":
            if list_v is None:
                list_v = value
        elif key == "x-gmail-labels":
            labels_v = value
        elif key == "x-gm-thrid":
            thrid_v = value

    # --- date
    date: datetime | None = None
    offset: int | None = None
    source = "none"
    if date_v is not None:
        if n_date > 1:
            defects.append("date_multiple")
        date, offset, ddef = parse_date(date_v)
        defects.extend(ddef)
        if date is not None:
            source = "header"
    else:
        defects.append("date_missing")
    if date is None and internaldate is not None:
        date, source = _to_utc(internaldate), "internaldate"

    # --- from
    from_addr: str | None = None
    from_name: str | None = None
    if from_v is None:
        defects.append("from_missing")
    else:
        from_addr, from_name, from_defects, has_box = (
            _from_fields if len(from_v) <= MEMO_MAX_LEN else _from_fields.__wrapped__)(from_v)
        defects.extend(from_defects)
        if has_box and n_from > 1:
            defects.append("from_multiple")  # (duplicates are dropped below)

    # --- recipients
    to_addrs: list[str] = []
    cc_addrs: list[str] = []
    delivered: list[str] = []
    bad_addr = False
    for values, target in ((to_vs, to_addrs), (cc_vs, cc_addrs), (dt_vs, delivered)):
        for value in values:
            addrs, clean = (_addresses(value) if len(value) <= MEMO_MAX_LEN
                            else parse_addresses(value))
            target.extend(addrs)
            if not clean:
                bad_addr = True
    if bad_addr and "address_unparseable" not in defects:
        defects.append("address_unparseable")

    # --- subject
    subject = subject_v
    subject_raw: str | None = None
    if subject_v is not None:
        plain = subject_v.isascii()
        if not plain or "=?" in subject_v:
            # the hint only matters for 8-bit bytes: leaving it out of an ASCII
            # subject's key lets every message share the cached decode
            subject, subject_raw, subject_defects = (
                _subject_fields if len(subject_v) <= MEMO_MAX_LEN
                else _subject_fields.__wrapped__)(subject_v, None if plain else hint)
            defects.extend(subject_defects)

    # --- ids
    message_id: str | None = None
    if not mid_v:
        defects.append("message_id_missing")
    else:
        ids, clean_ids = _ids(mid_v)
        if not ids:
            # "<>", or a token without "@": keep a bare token, it may still match
            bare = mid_v.split()[0].strip("<>")
            ids, clean_ids = ([bare] if bare else []), False
        if ids:
            message_id = ids[0]
            at = message_id.find("@")
            if not clean_ids or len(ids) > 1 or mid_v[0] != "<" or not 0 < at < len(message_id) - 1:
                defects.append("message_id_nonstandard")
        else:
            defects.append("message_id_missing")
    in_reply_to = _first_id(irt_v) if irt_v else None
    references: list[str] = _ids(refs_v)[0] if refs_v else []
    list_id: str | None = None
    if list_v:
        m = _MSGID_RE.search(list_v)
        list_id = (m.group(1) if m else list_v).lower() or None

    labels = _labels(labels_v) if labels_v else []
    gm_thrid: int | None = None
    if thrid_v:
        with contextlib.suppress(ValueError):
            gm_thrid = int(thrid_v)

    if len(defects) > 1:
        defects = sorted(set(defects))
    return (
        message_id, date, source, offset, from_addr, from_name, to_addrs, cc_addrs, delivered,
        subject, subject_raw, in_reply_to, references, list_id, labels, gm_thrid, defects,
    )  # fmt: skip


def parse_columns(
    blocks: Sequence[bytes], internaldates: Sequence[datetime | None] | None = None
) -> dict[str, Sequence[Any]]:
    """Many header blocks, column by column: ``{key: values}`` for every :data:`PARSE_KEYS`.

    ``internaldates`` aligned with ``blocks``. What the sync's Arrow
    conversion wants: each message is parsed into a tuple and the tuples are
    transposed once with ``zip`` (in C), no row dict per message and no
    per-column Python loop afterwards. The cyclic garbage collector is
    paused meanwhile (:func:`~mailhat_nb.sync.memory.gc_paused`): parsing
    allocates many small containers and no reference cycles.
    """
    with gc_paused():
        if internaldates is None:
            values = [_values(b, None) for b in blocks]
        else:
            values = [_values(b, d) for b, d in zip(blocks, internaldates, strict=True)]
        if not values:
            return {key: [] for key in PARSE_KEYS}
        return dict(zip(PARSE_KEYS, zip(*values, strict=True), strict=True))
