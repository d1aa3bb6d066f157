"""Date header parsing: RFC 5322 fast path, lenient fallbacks, flagged repairs.

:func:`parse_date` turns the value of a ``Date:`` header (or an mbox ``From_``
line's date) into a tz-aware UTC :class:`~datetime.datetime` plus the
sender's UTC offset in minutes, because the analysis needs both: the instant
(to order and bin messages) and the offset (to show the sender's local time
of day). It never raises; what it could not read cleanly comes back as short
defect strings.

Why not :func:`email.utils.parsedate_to_datetime`: it is several times slower, raises on
garbage, returns naive datetimes for unknown zones, and gets real-world dates
wrong that are easy to get right: ``Sun, 25 Aug 0102 ...`` (a ``tm_year``
printed as-is, i.e. 2002), ``+-0500``, ``3:36:25 PM``, ``2002/09/14 Sat
02:29:32 CDT``, asctime (``Mon Jan 21 10:00:00 2002``, mbox ``From_`` lines).

Rules (each repair is flagged, so nothing is silently invented):

- two-digit years: 00-49 -> 20xx, 50-99 -> 19xx (RFC 5322 4.3); three-digit
  years and zero-padded ``0102`` get 1900 added (RFC 5322 4.3, and the
  ``tm_year`` bug) and ``date_nonstandard``;
- ``-0000``, no zone, or a zone name we cannot place (``H0500``, ``IST``):
  the time is taken as UTC, the offset is ``None``, ``date_tz_unknown``;
- the US zone names of RFC 5322 are exact; a few unambiguous non-RFC names
  (``CET``, ``JST`` ...) are accepted with ``date_nonstandard``;
- a year outside 1900-2100 is ``date_out_of_range`` and no date (the caller
  falls back to INTERNALDATE): ``Mon, 30 Jun 3609`` is garbage, not the future;
- an hour/minute/second out of range, an unknown month, or no match at all:
  ``date_unparseable``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

#: Defect strings this module can return (stable; part of the frame contract).
DATE_DEFECTS: Final = (
    "date_unparseable",
    "date_out_of_range",
    "date_tz_unknown",
    "date_nonstandard",
)

_MONTHS: Final[dict[str, int]] = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}

#: RFC 5322 4.3 zone names (obsolete but exact).
_RFC_ZONES: Final[dict[str, int]] = {
    "ut": 0, "utc": 0, "gmt": 0, "z": 0,
    "est": -300, "edt": -240, "cst": -360, "cdt": -300,
    "mst": -420, "mdt": -360, "pst": -480, "pdt": -420,
}  # fmt: skip

#: Zone names seen in real mail that are not RFC 5322 but mean one thing.
#: (IST, BST, CST-as-China and the military letters are ambiguous: left out.)
_EXTRA_ZONES: Final[dict[str, int]] = {
    "cet": 60, "cest": 120, "met": 60, "mest": 120, "mez": 60, "mesz": 120,
    "eet": 120, "eest": 180, "wet": 0, "west": 60, "jst": 540, "kst": 540,
    "hkt": 480, "sgt": 480, "hst": -600, "akst": -540, "akdt": -480,
    "aest": 600, "aedt": 660, "nzst": 720, "nzdt": 780,
}  # fmt: skip

_ZONE = r"(?:([+-]{1,2})\s?(\d\d):?(\d\d)(?!\d)|\(?([A-Za-z]{1,5})\)?(?![A-Za-z]))"

# "Tue, 1 Jul 2003 10:52:37 +0200" and its common relatives: optional weekday
# (any word, comma optional), dashes as separators, long month names, one-digit
# seconds, fractions, AM/PM.
_RFC_RE: Final = re.compile(
    r"\s*(?:[A-Za-z]+\.?\s*,?\s*)?"
    r"(\d{1,2})[\s-]*([A-Za-z]{3})[A-Za-z]*\.?[\s-]*(\d{2,4})"
    r"[\s,]+(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?(?:\.\d+)?"
    r"\s*([AaPp][Mm](?![A-Za-z]))?"
    r"\s*" + _ZONE + "?"
)
# "2002/09/14 Sat 02:29:32 CDT", "2002-09-14T02:29:32+02:00"
_ISO_RE: Final = re.compile(
    r"\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:\s*[A-Za-z]{3},?)?[\sT]+"
    r"(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?"
    r"\s*([AaPp][Mm](?![A-Za-z]))?"
    r"\s*" + _ZONE + "?"
)
# asctime / mbox From_: "Mon Jan 21 10:00:00 2002", "Wed Sep 02 12:34:56 +0000 2020"
_ASCTIME_RE: Final = re.compile(
    r"\s*(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})[A-Za-z]*\s+(\d{1,2})\s+"
    r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s+"
    r"(?:" + _ZONE + r"\s+)?(\d{4})(?!\d)"
)
_COMMENT_RE: Final = re.compile(r"\([^()]*\)")
# "Tue, 1 Jul 2003 10:52:37 +0200 (CEST)": strict, for the fast path only.
_FAST_RE: Final = re.compile(
    r"(?:[A-Z][a-z]{2}, )?(\d\d?) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS_CANON: Final[dict[str, int]] = {m.capitalize(): i for m, i in _MONTHS.items()}

_NO_DEFECTS: Final[tuple[str, ...]] = ()
_TZ_UNKNOWN: Final = ("date_tz_unknown",)
_UNPARSEABLE: Final = (None, None, ("date_unparseable",))

DateResult = tuple[datetime | None, int | None, tuple[str, ...]]


def _zone_offset(
    sign: str | None, hh: str | None, mm: str | None, name: str | None
) -> tuple[int | None, tuple[str, ...]]:
    """Minutes east of UTC for a zone match, or ``None`` when unknown."""
    if hh is not None and mm is not None and sign is not None:
        minutes = int(hh) * 60 + int(mm)
        if int(mm) > 59 or minutes >= 24 * 60:
            return None, _TZ_UNKNOWN
        nonstandard = len(sign) != 1
        if sign[-1] == "-":
            if minutes == 0 and not nonstandard:
                return None, _NO_DEFECTS  # "-0000": RFC 5322 says "no zone information"
            minutes = -minutes
        return minutes, (("date_nonstandard",) if nonstandard else _NO_DEFECTS)
    if name is not None:
        key = name.lower()
        off = _RFC_ZONES.get(key)
        if off is not None:
            return off, _NO_DEFECTS
        off = _EXTRA_ZONES.get(key)
        if off is not None:
            return off, ("date_nonstandard",)
    return None, _TZ_UNKNOWN


def _build(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    ampm: str | None,
    offset: int | None,
    defects: tuple[str, ...],
) -> DateResult:
    if ampm is not None:
        if hour > 12 or hour == 0:
            return _UNPARSEABLE
        hour = hour % 12 + (12 if ampm[0] in "Pp" else 0)
        defects = (*defects, "date_nonstandard")
    if hour > 24 or minute > 59 or second > 60:  # 24:00 and leap seconds roll over
        return _UNPARSEABLE
    if not 1900 <= year <= 2100:
        return None, None, ("date_out_of_range",)
    try:
        base = datetime(year, month, day, tzinfo=UTC)
    except ValueError:  # 30 Feb, day 0
        return _UNPARSEABLE
    shift = hour * 3600 + minute * 60 + second - (offset or 0) * 60
    if defects and len(defects) > 1:
        defects = tuple(dict.fromkeys(defects))
    return base + timedelta(0, shift), offset, defects


def _year(token: str) -> tuple[int, bool]:
    """Full year from a 2/3/4-digit token, and whether it needed a repair."""
    y = int(token)
    n = len(token)
    if n == 2:
        return (y + 2000 if y < 50 else y + 1900), False
    if n == 4 and token[0] == "0" and y < 100:  # "0001": a 2-digit year zero-padded
        return (y + 2000 if y < 50 else y + 1900), True
    if n == 3 or (n == 4 and token[0] == "0"):
        return y + 1900, True
    return y, False


def parse_date(value: str | None) -> DateResult:
    """Parse a Date header value.

    Parameters
    ----------
    value
        The unfolded header value (``None`` or blank gives ``date_unparseable``;
        deciding between "missing" and "unparseable" is the caller's job,
        since only it knows whether the header was there).

    Returns
    -------
    (utc, offset_min, defects)
        ``utc``: tz-aware UTC datetime or ``None``; ``offset_min``: the
        sender's offset east of UTC in minutes, ``None`` when unknown;
        ``defects``: tuple of strings from :data:`DATE_DEFECTS`.
    """
    if not value:
        return _UNPARSEABLE
    m = _FAST_RE.match(value)
    if m is not None:
        # The canonical form of nearly every Date header: no branches, no repairs.
        day, mon, year, hh, mi, ss, sign, oh, om = m.groups()
        month = _MONTHS_CANON.get(mon)
        if (
            month is not None
            and hh < "24" and mi < "60" and ss < "60" and oh < "24" and om < "60"
            and (sign == "+" or oh != "00" or om != "00")  # "-0000": the slow path says "no zone"
            and "1900" <= year <= "2100"
        ):  # fmt: skip
            offset = int(oh) * 60 + int(om)
            if sign == "-":
                offset = -offset
            try:
                base = datetime(int(year), month, int(day), tzinfo=UTC)
            except ValueError:
                return _UNPARSEABLE
            shift = int(hh) * 3600 + int(mi) * 60 + int(ss) - offset * 60
            return base + timedelta(0, shift), offset, _NO_DEFECTS
    try:
        return _parse(value)
    except (ValueError, OverflowError, TypeError):  # defensive: never raise
        return _UNPARSEABLE


def _parse(value: str) -> DateResult:
    m = _RFC_RE.match(value)
    if "(" in value and (m is None or (m.group(8) is None and m.group(11) is None)):
        # Comments where RFC 5322 allows CFWS ("09(comment):55", "00:19:00 (EDT)
        # -0400"): drop them and retry. Only then: "-0800 (PST)" needs no retry.
        m2 = _RFC_RE.match(_COMMENT_RE.sub(" ", value))
        if m2 is not None:
            m = m2
    if m is not None:
        month = _MONTHS.get(m.group(2).lower())
        if month is None:
            return _UNPARSEABLE
        year, repaired = _year(m.group(3))
        offset, defects = _zone_offset(m.group(8), m.group(9), m.group(10), m.group(11))
        if repaired:
            defects = (*defects, "date_nonstandard")
        return _build(
            year, month, int(m.group(1)), int(m.group(4)), int(m.group(5)),
            int(m.group(6) or 0), m.group(7), offset, defects,
        )  # fmt: skip
    m = _ISO_RE.match(value)
    if m is not None:
        offset, defects = _zone_offset(m.group(8), m.group(9), m.group(10), m.group(11))
        return _build(
            int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
            int(m.group(5)), int(m.group(6) or 0), m.group(7), offset,
            (*defects, "date_nonstandard"),
        )  # fmt: skip
    m = _ASCTIME_RE.match(value)
    return _UNPARSEABLE if m is None else _asctime(m, ("date_nonstandard",))


def _asctime(m: re.Match[str], defects: tuple[str, ...]) -> DateResult:
    """The date of an :data:`_ASCTIME_RE` match, ``defects`` added to its zone's."""
    month = _MONTHS.get(m.group(1).lower())
    if month is None:
        return _UNPARSEABLE
    offset, zone_defects = _zone_offset(m.group(6), m.group(7), m.group(8), m.group(9))
    return _build(
        int(m.group(10)), month, int(m.group(2)), int(m.group(3)), int(m.group(4)),
        int(m.group(5) or 0), None, offset, (*zone_defects, *defects),
    )  # fmt: skip


def parse_asctime(value: str) -> datetime | None:
    """UTC datetime of an mbox ``From_`` line date (asctime, zone optional).

    ``From_`` lines written without a zone are in the writer's local time,
    which is unknowable; taking them as UTC is off by hours at most, and
    only matters when the message has no usable Date header.
    """
    try:
        m = _ASCTIME_RE.search(value)
        return None if m is None else _asctime(m, _NO_DEFECTS)[0]
    except (ValueError, OverflowError):
        return None
