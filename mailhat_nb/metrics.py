"""Correspondence metrics over a ``messages`` frame: who, how much, when.

Everything here is vectorised pandas/numpy (group-bys on integer address
codes, no Python loop per row), so a mailbox of a million messages answers
in about a second; the benchmark ``benchmarks/bench_contacts.py`` pins that.

Counting rules (``DESIGN.md``)
------------------------------
* **One message, one count.** The ``messages`` frame has one row per message
  *per folder*; the same message filed in several folders (Sent plus a
  Notes "All documents" view, two Sent folders...) counts once. Two rows are
  the same message when, within one account, they carry the **same
  Message-ID**, or the **same From, Date, Subject and recipients** (To and
  Cc as a set). The second half exists because exporters re-issue IDs: every
  copy of an Enron message has its own ``Message-ID``, so ID matching alone
  finds nothing there. The relation is applied transitively (copies matched
  by ID and copies matched by content end up in one group). Rows without a
  Message-ID, or without a Date, are never matched on that key.
  :func:`unique_messages` applies the rule and says how many rows each
  message stood for (``copies``).
* **Self is never a contact.** The account's own addresses (see
  :mod:`mailhat_nb.identity`) are given by the caller.
* ``sent``: messages from self with the contact in To or Cc (once per
  message, however often the address appears in it).
* ``received``: messages from the contact (whoever they were addressed to:
  a mailing list's posts count for the list's address).
* ``total = sent + received``; ``first`` / ``last``: the earliest and latest
  Date of a message that counted for the contact.

Whether a message is "from self" is decided here from ``from_addr`` and the
self addresses passed in, not from the frame's ``direction`` column, so that
an address the user adds to self takes effect without re-reading the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mailhat_nb.addresses import (
    IntArray,
    SelfAddrs,
    as_address_set,
    explode_codes_raw,
    explode_lists,
    factorize_addresses,
    recipient_pairs,
)
from mailhat_nb.errors import UsageError

Freq = Literal["D", "W", "M", "Y"]

#: ``date_source`` values that mean "from the message's own Date header".
#: Anything else (INTERNALDATE, a Received line, the file's mtime...) is a
#: fallback that data-health reports, because it can move a message by days.
HEADER_DATE_SOURCES = frozenset({"header", "date", "date_header"})

CONTACT_COLUMNS = ["contact", "name", "sent", "received", "total", "first", "last"]
VOLUME_COLUMNS = ["period", "contact", "sent", "received", "total"]
RESPONSE_COLUMNS = ["contact", "replier", "asked", "answered", "hours"]
HEALTH_COLUMNS = ["account", "folder", "rows", "server_count", "missing", "duplicates",
                  "date_fallbacks", "no_date", "suspect_dates", "defects", "top_defect",
                  "uidvalidity_values", "uidvalidity_events"]
#: Dates before this are placeholders, not mail (Enron's Notes export wrote
#: 1979-12-31 for unknown dates; broken clients write 1970 or year 0).
SUSPECT_BEFORE = pd.Timestamp("1990-01-01", tz="UTC")
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

_NAT = np.iinfo(np.int64).min
_FREQ_ALIASES: dict[str, Freq] = {
    "d": "D", "day": "D", "daily": "D",
    "w": "W", "week": "W", "weekly": "W", "w-mon": "W",
    "m": "M", "ms": "M", "me": "M", "month": "M", "monthly": "M",
    "y": "Y", "ys": "Y", "ye": "Y", "a": "Y", "year": "Y", "yearly": "Y",
}


# --------------------------------------------------------------------------- helpers


def _require(frame: pd.DataFrame, *columns: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(
            "the messages frame lacks column(s) " + ", ".join(missing)
            + " (see DESIGN.md, 'Frames')"
        )


def _dates_ns(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    """``date`` as int64 nanoseconds since the epoch (UTC); NaT as int64 min."""
    date = pd.to_datetime(frame["date"], utc=True)
    return date.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _to_utc(ns: npt.NDArray[np.int64]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")


def _codes(values: pd.Series | npt.NDArray[np.int64], *, na_unique: bool) -> IntArray:
    """Return dense codes for any column.

    Missing values get a code of their own each (``na_unique``), or a shared one.
    """
    if isinstance(values, np.ndarray):
        codes, _ = pd.factorize(values)
    else:
        codes, _ = pd.factorize(values, use_na_sentinel=na_unique)
    out = np.asarray(codes, dtype=np.int64)
    if na_unique:
        miss = out < 0
        if miss.any():
            out = out.copy()
            out[miss] = out.max(initial=-1) + 1 + np.arange(int(miss.sum()), dtype=np.int64)
    return out


def _combine(*codes: IntArray) -> IntArray:
    """One dense code per distinct tuple of non-negative code arrays."""
    key = codes[0]
    for nxt in codes[1:]:
        width = int(nxt.max(initial=0)) + 1
        key = np.asarray(pd.factorize(key * width + nxt)[0], dtype=np.int64)
    return key


def _splitmix64(x: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """Hash integer codes to well-mixed 64 bits, so order-free sums stay unique."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _recipient_set_key(
    n: int, positions: IntArray, codes: IntArray
) -> npt.NDArray[np.uint64]:
    """Per row, a hash of its recipient *set* (order and To/Cc placement ignored).

    ``positions`` come sorted from :func:`recipient_pairs`, so a segmented
    sum (``np.add.reduceat``) does it in one pass; 0 means "no recipients".
    """
    out = np.zeros(n, dtype=np.uint64)
    if len(positions) == 0:
        return out
    hashed = _splitmix64(codes)
    starts = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])
    with np.errstate(over="ignore"):
        out[positions[starts]] = np.add.reduceat(hashed, starts)
    return out


def _clean_ids(ids: pd.Series) -> pd.Series:
    """Message-IDs without blanks and angle brackets; empty -> missing.

    The sync stores IDs bare already; only rows that still carry ``<``,
    ``>`` or blanks are rewritten, with arrow kernels (RE2), so a clean
    million-row column is checked in milliseconds and not copied.
    """
    arr = _arrow_strings(ids)
    dirty = pc.match_substring_regex(arr, r"^\s|[<>]|\s$")
    if pc.any(dirty).as_py():
        fixed = pc.utf8_trim_whitespace(pc.utf8_trim(pc.utf8_trim_whitespace(arr), "<>"))
        arr = pc.if_else(dirty, fixed, arr)
    empty = pc.equal(arr, "")
    if pc.any(empty).as_py():
        arr = pc.if_else(empty, pa.scalar(None, pa.string()), arr)
    return pd.Series(arr, dtype="str")


def _message_ids(frame: pd.DataFrame) -> pd.Series:
    """Message-IDs of every row (positional index), cleaned."""
    if "message_id" not in frame.columns:
        return pd.Series(pd.NA, index=range(len(frame)), dtype="str")
    return _clean_ids(frame["message_id"])


def _arrow_strings(values: pd.Series) -> pa.ChunkedArray:
    """The column as arrow strings (zero-copy when it is arrow-backed already)."""
    arr = values.array
    if isinstance(values.dtype, (pd.StringDtype, pd.ArrowDtype)) and hasattr(
        arr, "__arrow_array__"
    ):
        out = arr.__arrow_array__()
    else:
        out = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    if isinstance(out, pa.ChunkedArray):
        return out.cast(pa.string()) if out.type != pa.string() else out
    return pa.chunked_array([out.cast(pa.string())])


def _account_codes(frame: pd.DataFrame) -> IntArray:
    if "account" not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64)
    return _codes(frame["account"], na_unique=False) + 1


# --------------------------------------------------------------------------- de-duplication


def _first_positions(key: IntArray) -> IntArray:
    """Row of the first occurrence of each code of a ``pd.factorize`` result.

    ``factorize`` numbers codes in order of first appearance, so a row is a
    first occurrence exactly when its code exceeds every code before it.
    """
    if len(key) == 0:
        return key
    running = np.maximum.accumulate(key)
    return np.flatnonzero(np.r_[True, key[1:] > running[:-1]])


def _content_key(parts: list[IntArray]) -> IntArray:
    """One dense code per distinct tuple of ``parts`` (equal-length int arrays).

    The tuple is hashed to 64 bits and the hashes factorized once, which is
    several times faster than pairing codes column by column. Then every row
    is compared with the first row of its code, column by column: if any
    differs (a hash collision, odds ~1e-8 at a million messages) the exact
    pairwise method is used instead, so the result never depends on luck.
    """
    h = np.zeros(len(parts[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in parts:
            h = _splitmix64((h ^ part.astype(np.uint64)).view(np.int64))
    key = np.asarray(pd.factorize(h.view(np.int64))[0], dtype=np.int64)
    first = _first_positions(key)[key]
    if all(np.array_equal(part, part[first]) for part in parts):
        return key
    return _combine(*(_codes(p, na_unique=False) for p in parts))


def duplicate_groups(messages: pd.DataFrame) -> IntArray:
    """Label each row with its message: rows with the same label are one message.

    The rule (``DESIGN.md``): within an account, the same Message-ID, or the
    same From, Date, Subject and set of To+Cc recipients; applied
    transitively. Labels are row positions of a group member (the smallest),
    so they are stable for a given frame order.

    Why both keys: Message-ID is the standard identity of a message, but
    exporters re-issue IDs (each Enron copy has its own), while the content
    key catches those copies; a Message-ID match also unites copies whose
    Date was re-written by a server. Recipient sets are compared through an
    order-free 64-bit hash of their addresses (To/Cc placement and order do
    not matter); everything else is compared exactly.
    """
    _require(messages, "from_addr", "date")
    n = len(messages)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    account = _account_codes(messages)
    one_account = bool(account.min() == account.max())
    id_codes = _codes(_message_ids(messages), na_unique=True)
    by_id = id_codes if one_account else _content_key([account, id_codes])

    from_codes, _ = factorize_addresses(messages["from_addr"])
    dates = _dates_ns(messages)
    subject = (
        _codes(messages["subject"], na_unique=False)
        if "subject" in messages.columns
        else np.zeros(n, dtype=np.int64)
    )
    pos, rcodes, _ = recipient_pairs(messages)
    rkey = _recipient_set_key(n, pos, rcodes).view(np.int64)
    # A missing Date never matches: give each such row a value of its own.
    no_date = dates == _NAT
    dates = np.where(no_date, np.arange(n, dtype=np.int64), dates)
    by_content = _content_key([account, from_codes, dates, subject, rkey,
                               no_date.astype(np.int64)])

    # Connected components by label propagation: each pass gives every row
    # the smallest label of its ID group, then of its content group. Real
    # mail converges in two or three passes.
    label = np.arange(n, dtype=np.int64)
    while True:
        before = label
        for key in (by_id, by_content):
            smallest = np.full(int(key.max()) + 1, n, dtype=np.int64)
            np.minimum.at(smallest, key, label)
            label = smallest[key]
        if np.array_equal(label, before):
            return label


def _preference(messages: pd.DataFrame) -> IntArray:
    """0 for the copy we would rather keep (its Date came from the header)."""
    if "date_source" not in messages.columns:
        return np.zeros(len(messages), dtype=np.int64)
    src = messages["date_source"].astype("str").str.lower()
    return (~src.isin(HEADER_DATE_SOURCES).to_numpy(dtype=bool)).astype(np.int64)


def _dedupe(messages: pd.DataFrame) -> tuple[IntArray, IntArray, IntArray]:
    """``(labels, kept row positions in frame order, copies per kept row)``."""
    labels = duplicate_groups(messages)
    if len(labels) == 0:
        empty = np.empty(0, dtype=np.int64)
        return labels, empty, empty
    order = np.lexsort((np.arange(len(labels)), _preference(messages), labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    keep = order[starts]
    counts = np.diff(np.r_[starts, len(order)]).astype(np.int64)
    by_pos = np.argsort(keep, kind="stable")
    return labels, keep[by_pos], counts[by_pos]


def unique_messages(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per message: the duplicate-copy rule applied (see module docstring).

    The kept row of each group is the first in frame order whose Date came
    from the header (``date_source``), else the first; a ``copies`` column
    says how many rows (folders) the message stood for. Metrics recognise the
    ``copies`` column and do not de-duplicate twice, so a notebook can
    de-duplicate once and pass the result to every metric.

    Parameters
    ----------
    messages
        A ``messages`` frame (``DESIGN.md``), any number of folders/accounts.

    Returns
    -------
    pandas.DataFrame
        The kept rows, in their original order and index, plus ``copies``.
    """
    if "copies" in messages.columns:
        return messages
    _, keep, counts = _dedupe(messages)
    out = take_rows(messages, keep)
    out["copies"] = counts
    return out


def take_rows(frame: pd.DataFrame, positions: IntArray) -> pd.DataFrame:
    """Return ``frame.iloc[positions]``, column by column.

    Measured on a million rows with pyarrow list columns, taking each
    column's array directly is several times faster than ``DataFrame.iloc``,
    which goes through the block manager's generic path.
    """
    data = {col: frame[col].array.take(positions) for col in frame.columns}
    out = pd.DataFrame(data, index=frame.index.take(positions), copy=False)
    out.attrs = dict(frame.attrs)
    return out


# --------------------------------------------------------------------------- prepared view


@dataclass(frozen=True)
class _Prepared:
    """The unique messages as integer arrays, shared by every metric."""

    frame: pd.DataFrame           # unique messages, positional
    dates: npt.NDArray[np.int64]  # ns since epoch, _NAT when missing
    from_codes: IntArray          # into `uniques`, -1 when missing
    from_self: npt.NDArray[np.bool_]
    rcpt_pos: IntArray            # row positions (sorted)
    rcpt_codes: IntArray          # into `uniques`
    uniques: pd.Index             # every address seen, normalised
    is_self: npt.NDArray[np.bool_]  # per code

    @property
    def received(self) -> tuple[IntArray, IntArray]:
        """(row positions, contact codes) of messages from a contact."""
        rows = np.flatnonzero(~self.from_self & (self.from_codes >= 0))
        return rows, self.from_codes[rows]

    @property
    def sent(self) -> tuple[IntArray, IntArray]:
        """(row positions, contact codes) of self -> contact recipient pairs."""
        keep = self.from_self[self.rcpt_pos] & ~self.is_self[self.rcpt_codes]
        return self.rcpt_pos[keep], self.rcpt_codes[keep]


_PREPARED_COLUMNS = ("account", "from_addr", "from_name", "date", "date_offset_min",
                     "to_addrs", "cc_addrs")


def _prepare(messages: pd.DataFrame, self_addrs: SelfAddrs) -> _Prepared:
    _require(messages, "from_addr", "date")
    me = as_address_set(self_addrs)
    if "copies" in messages.columns:
        uniq = messages
    else:
        # De-duplicate, but copy only the columns the metrics read: a
        # one-call ``contacts(raw_frame)`` should not duplicate every column.
        _, keep, counts = _dedupe(messages)
        wanted = [c for c in _PREPARED_COLUMNS if c in messages.columns]
        uniq = take_rows(messages[wanted], keep).assign(copies=counts)
    from_codes, from_uniques = factorize_addresses(uniq["from_addr"])
    rpos, rcodes, r_uniques = recipient_pairs(uniq)
    uniques = from_uniques.append(r_uniques).unique()
    remap_from = np.append(uniques.get_indexer(from_uniques).astype(np.int64), -1)
    remap_rcpt = uniques.get_indexer(r_uniques).astype(np.int64)
    from_codes = remap_from[from_codes]
    rcodes = remap_rcpt[rcodes] if len(rcodes) else rcodes
    is_self = np.asarray(uniques.isin(list(me)), dtype=bool)
    from_self = np.where(from_codes >= 0, np.append(is_self, False)[from_codes], False)
    return _Prepared(
        frame=uniq, dates=_dates_ns(uniq), from_codes=from_codes, from_self=from_self,
        rcpt_pos=rpos, rcpt_codes=rcodes, uniques=uniques, is_self=is_self,
    )


def _names(prep: _Prepared) -> pd.Series:
    """Display name per address code: the most frequent non-empty From name.

    Only senders have names in the frame (recipients are bare addresses), so
    a contact we only ever wrote to has none, and a chart shows its address.
    A "name" that is just the address again is no name. Counted on integer
    (address, name) pairs; strings are only touched once per distinct value.
    """
    if "from_name" not in prep.frame.columns:
        return pd.Series([], dtype="str")
    name_codes, raw_names = pd.factorize(prep.frame["from_name"], use_na_sentinel=True)
    name_codes = np.asarray(name_codes, dtype=np.int64)
    clean = pd.Series(np.asarray(raw_names, dtype=object), dtype="str")
    clean = clean.str.strip().str.strip("'\"").str.strip()
    usable = np.append((clean.notna() & (clean != "")).to_numpy(dtype=bool), False)
    ok = (prep.from_codes >= 0) & usable[name_codes]
    width = max(len(raw_names), 1)
    pair, count = np.unique(prep.from_codes[ok] * width + name_codes[ok], return_counts=True)
    addr_code, name_code = pair // width, pair % width
    names = clean.to_numpy(dtype=object)[name_code]
    addrs = prep.uniques.take(addr_code)
    differs = pd.Series(names, dtype="str").str.lower().to_numpy() != addrs.str.lower()
    addr_code, names, count = addr_code[differs], names[differs], count[differs]
    best = np.lexsort((-count, addr_code))  # per address, the most used name first
    addr_code, names = addr_code[best], names[best]
    first = np.r_[True, addr_code[1:] != addr_code[:-1]] if len(addr_code) else []
    return pd.Series(names[first], index=addr_code[first], dtype="str")


# --------------------------------------------------------------------------- contacts


def contacts(messages: pd.DataFrame, self_addrs: SelfAddrs) -> pd.DataFrame:
    """Volume per contact: ``contact, name, sent, received, total, first, last``.

    Parameters
    ----------
    messages
        A ``messages`` frame; de-duplicated here unless it already carries
        ``copies`` (from :func:`unique_messages`).
    self_addrs
        The account's own addresses (a list, or the table from
        :func:`mailhat_nb.identity.own_addresses`). They never appear as
        contacts, and decide which messages count as ``sent``.

    Returns
    -------
    pandas.DataFrame
        One row per contact address (lower-cased), most active first
        (``total``, then ``received``, then address). ``name`` is the contact's
        most used display name, missing when they never wrote; ``first`` and
        ``last`` are tz-aware UTC.
    """
    prep = _prepare(messages, self_addrs)
    u = len(prep.uniques)
    r_rows, r_codes = prep.received
    s_rows, s_codes = prep.sent
    sent = np.bincount(s_codes, minlength=u)
    received = np.bincount(r_codes, minlength=u)
    codes = np.concatenate([s_codes, r_codes])
    dates = prep.dates[np.concatenate([s_rows, r_rows])]
    valid = dates != _NAT
    first = np.full(u, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(u, _NAT, dtype=np.int64)
    np.minimum.at(first, codes[valid], dates[valid])
    np.maximum.at(last, codes[valid], dates[valid])
    first[first == np.iinfo(np.int64).max] = _NAT
    keep = np.flatnonzero((sent + received > 0) & ~prep.is_self)
    names = _names(prep)
    out = pd.DataFrame({
        "contact": pd.Series(prep.uniques.take(keep), dtype="str"),
        "name": pd.Series(names.reindex(keep).to_numpy(), dtype="str"),
        "sent": sent[keep].astype(np.int64),
        "received": received[keep].astype(np.int64),
    })
    out["total"] = out["sent"] + out["received"]
    out["first"] = _to_utc(first[keep])
    out["last"] = _to_utc(last[keep])
    out = out.sort_values(
        ["total", "received", "contact"], ascending=[False, False, True], kind="stable"
    )
    return out.reset_index(drop=True)[CONTACT_COLUMNS]


def top_contacts(contacts_frame: pd.DataFrame, n: int = 10) -> list[str]:
    """Return the ``n`` most active contact addresses of a :func:`contacts` frame."""
    ranked = contacts_frame.sort_values(
        ["total", "received", "contact"], ascending=[False, False, True], kind="stable"
    )
    return [str(c) for c in ranked["contact"].head(n)]


# --------------------------------------------------------------------------- over time


def _freq(freq: str) -> Freq:
    try:
        return _FREQ_ALIASES[freq.lower()]
    except KeyError:
        raise UsageError(
            f"unknown period {freq!r}: use 'D' (day), 'W' (week), 'M' (month) or 'Y' (year)"
        ) from None


def period_start(dates_ns: npt.NDArray[np.int64], freq: str) -> npt.NDArray[np.int64]:
    """Start of the UTC day/week (Monday)/month/year of each date, as ns.

    Done with numpy's calendar units rather than ``Period`` objects: a
    million dates in milliseconds.
    """
    f = _freq(freq)
    missing = dates_ns == _NAT
    dt = dates_ns.view("datetime64[ns]")
    if f == "D":
        out = dt.astype("datetime64[D]")
    elif f == "W":
        days = dt.astype("datetime64[D]").view(np.int64)
        out = (days - (days + 3) % 7).view("datetime64[D]")  # 1970-01-01 was a Thursday
    elif f == "M":
        out = dt.astype("datetime64[M]")
    else:
        out = dt.astype("datetime64[Y]")
    res = out.astype("datetime64[ns]").view(np.int64).copy()
    res[missing] = _NAT
    return res


def volume(
    messages: pd.DataFrame,
    self_addrs: SelfAddrs,
    freq: str = "M",
    *,
    contacts: Sequence[str] | None = None,
    top: int | None = None,
) -> pd.DataFrame:
    """Volume per contact per period: ``period, contact, sent, received, total``.

    Parameters
    ----------
    messages, self_addrs
        As for :func:`contacts` (same counting rules).
    freq
        ``"D"``, ``"W"`` (weeks start on Monday), ``"M"`` or ``"Y"``; periods
        are UTC calendar periods.
    contacts
        Only these addresses (case-insensitive).
    top
        Only the ``top`` most active contacts (by :func:`contacts` order);
        ignored when ``contacts`` is given.

    Returns
    -------
    pandas.DataFrame
        Long format, one row per (period, contact) with at least one message;
        ``period`` is the tz-aware UTC start of the period. Periods with no
        message are absent (a chart fills them with 0).
    """
    prep = _prepare(messages, self_addrs)
    r_rows, r_codes = prep.received
    s_rows, s_codes = prep.sent
    rows = np.concatenate([s_rows, r_rows])
    codes = np.concatenate([s_codes, r_codes])
    is_sent = np.r_[np.ones(len(s_rows), dtype=np.int64), np.zeros(len(r_rows), dtype=np.int64)]
    wanted: npt.NDArray[np.bool_] | None = None
    if contacts is not None:
        wanted = np.asarray(prep.uniques.isin(list(as_address_set(contacts))), dtype=bool)
    elif top is not None:
        totals = np.bincount(codes, minlength=len(prep.uniques))
        ranked = np.lexsort((np.arange(len(totals)), -totals))
        wanted = np.zeros(len(totals), dtype=bool)
        wanted[ranked[: max(top, 0)]] = True
        wanted &= totals > 0
    if wanted is not None:
        sel = wanted[codes]
        rows, codes, is_sent = rows[sel], codes[sel], is_sent[sel]
    periods = period_start(prep.dates[rows], freq)
    ok = periods != _NAT
    long = pd.DataFrame({"period": periods[ok], "code": codes[ok], "sent": is_sent[ok]})
    long["received"] = 1 - long["sent"]
    agg = long.groupby(["period", "code"], sort=True).sum()
    out = agg.reset_index()
    out["total"] = out["sent"] + out["received"]
    out["contact"] = pd.Series(prep.uniques.take(out["code"].to_numpy()), dtype="str")
    out["period"] = _to_utc(out["period"].to_numpy(dtype=np.int64))
    out = out[VOLUME_COLUMNS].astype({"sent": "int64", "received": "int64", "total": "int64"})
    out.attrs["freq"] = _freq(freq)  # lets a chart fill empty periods with 0
    return out


# --------------------------------------------------------------------------- response times


def _parent_ids(frame: pd.DataFrame, rows: IntArray) -> tuple[IntArray, pa.ChunkedArray]:
    """Return which of ``rows`` reply to something, and the Message-ID they reply to.

    In-Reply-To when present, else the last id of References (the direct
    parent, by RFC 5322's convention). Only rows that have a parent are
    returned (most mail does not), so nothing is built per message.

    Returns
    -------
    positions, ids
        Positions into ``rows`` and the cleaned parent ids, aligned.
    """
    every = len(rows) == len(frame)  # rows == all rows, in order: no copy needed

    def column(name: str) -> pd.Series:
        return frame[name] if every else frame[name].take(rows)

    parent_pos: list[IntArray] = []
    parent_val: list[pd.Series] = []
    has_irt = np.zeros(len(rows), dtype=bool)
    if "in_reply_to" in frame.columns:
        irt = _clean_ids(column("in_reply_to"))
        has_irt = irt.notna().to_numpy(dtype=bool)
        parent_pos.append(np.flatnonzero(has_irt))
        parent_val.append(irt[has_irt])
    if "references" in frame.columns:
        pos, vals = explode_lists(column("references"))
        if len(pos):
            last = np.flatnonzero(np.r_[pos[1:] != pos[:-1], True])
            pos, vals = pos[last], _clean_ids(vals.iloc[last])
            use = ~has_irt[pos] & vals.notna().to_numpy(dtype=bool)
            parent_pos.append(pos[use])
            parent_val.append(vals[use])
    if not parent_pos:
        return np.empty(0, dtype=np.int64), pa.chunked_array([], type=pa.string())
    positions = np.concatenate(parent_pos)
    values = pd.concat(parent_val, ignore_index=True)
    return positions, _arrow_strings(values)


def response_times(messages: pd.DataFrame, self_addrs: SelfAddrs) -> pd.DataFrame:
    """Every reply between self and a contact, with how long it took.

    A reply is joined to its original through ``In-Reply-To`` (else the last
    id of ``References``) against ``message_id``. Both directions count:
    self answering a contact (``replier == "self"``) and a contact answering
    self (``replier == "contact"``). Replies between two contacts, or from
    self to self, are not response times of anyone's correspondence with
    self and are left out; so are negative delays (clock skew, placeholder
    dates), which would otherwise drag medians down. Each message counts
    once (the duplicate rule); the join is on integer codes, no per-row loop.

    Parameters
    ----------
    messages
        The raw frame, or :func:`unique_messages` output (faster: no second
        de-duplication). The raw frame also resolves a reply that cites the
        re-issued Message-ID of a copy that de-duplication drops.
    self_addrs
        The account's own addresses.

    Returns
    -------
    pandas.DataFrame
        ``contact, replier, asked, answered, hours`` (``asked``/``answered``
        tz-aware UTC, ``hours`` float).
    """
    _require(messages, "from_addr", "date")
    n = len(messages)
    if "copies" in messages.columns:  # already one row per message
        labels = keep = np.arange(n, dtype=np.int64)
    else:
        labels, keep, _ = _dedupe(messages)
    me = as_address_set(self_addrs)
    from_codes, uniques = factorize_addresses(messages["from_addr"])
    is_self = np.append(np.asarray(uniques.isin(list(me)), dtype=bool), False)
    from_self = is_self[from_codes]
    dates = _dates_ns(messages)

    # Join each reply's parent id to the row carrying that Message-ID. The
    # hash tables are built over the distinct parent ids (replies are the
    # minority), then every row's id is probed: integer positions after that.
    reply_pos, parent_ids = _parent_ids(messages, keep)
    distinct = pc.unique(parent_ids)
    reply_to = np.asarray(pc.index_in(parent_ids, value_set=distinct).to_numpy(),
                          dtype=np.int64)
    ids = _arrow_strings(_message_ids(messages))
    id_is = np.asarray(pc.index_in(ids, value_set=distinct).fill_null(-1).to_numpy(),
                       dtype=np.int64)
    row_of = np.full(len(distinct) + 1, -1, dtype=np.int64)
    carriers = np.flatnonzero(id_is >= 0)
    row_of[id_is[carriers]] = carriers       # one ID, one message (the rule)
    parent_row = row_of[reply_to]
    found = parent_row >= 0
    reply = keep[reply_pos[found]]
    kept_row_of_label = np.full(n, -1, dtype=np.int64)
    kept_row_of_label[labels[keep]] = keep
    orig = kept_row_of_label[labels[parent_row[found]]]
    ok = (orig >= 0) & (orig != reply)
    reply, orig = reply[ok], orig[ok]

    rf, of = from_codes[reply], from_codes[orig]
    rself, oself = from_self[reply], from_self[orig]
    by_self = rself & ~oself & (of >= 0)
    by_contact = ~rself & oself & (rf >= 0)
    keep_pair = by_self | by_contact
    contact_code = np.where(by_self, of, rf)[keep_pair]
    asked = dates[orig[keep_pair]]
    answered = dates[reply[keep_pair]]
    replier = np.where(by_self[keep_pair], "self", "contact")
    valid = (asked != _NAT) & (answered != _NAT) & (answered >= asked)
    out = pd.DataFrame({
        "contact": pd.Series(uniques.take(contact_code[valid]), dtype="str"),
        "replier": pd.Series(replier[valid], dtype="str"),
        "asked": _to_utc(asked[valid]),
        "answered": _to_utc(answered[valid]),
    })
    out["hours"] = (answered[valid] - asked[valid]) / 3.6e12
    return out[RESPONSE_COLUMNS]


def response_medians(responses: pd.DataFrame) -> pd.DataFrame:
    """Median response time per contact, both directions.

    Parameters
    ----------
    responses
        What :func:`response_times` returns.

    Returns
    -------
    pandas.DataFrame
        ``contact, self_replies, self_median_hours, contact_replies,
        contact_median_hours``: how fast self answers the contact, and how
        fast the contact answers self (medians, because one reply a month
        late would swamp a mean). Sorted by the number of replies.
    """
    cols = ["contact", "self_replies", "self_median_hours",
            "contact_replies", "contact_median_hours"]
    if responses.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}).astype(
            {"contact": "str", "self_replies": "int64", "contact_replies": "int64"}
        )
    g = responses.groupby(["contact", "replier"])["hours"].agg(["size", "median"]).unstack()
    out = pd.DataFrame(index=g.index)
    for who in ("self", "contact"):
        size = g["size"][who] if who in g["size"].columns else 0
        med = g["median"][who] if who in g["median"].columns else np.nan
        out[f"{who}_replies"] = pd.Series(size, index=g.index).fillna(0).astype("int64")
        out[f"{who}_median_hours"] = pd.Series(med, index=g.index).astype("float64")
    out = out.reset_index()
    order = out["self_replies"] + out["contact_replies"]
    out = out.iloc[np.lexsort((out["contact"].to_numpy(), -order.to_numpy()))]
    return out.reset_index(drop=True)[cols]


# --------------------------------------------------------------------------- time of day


def activity(
    messages: pd.DataFrame,
    self_addrs: SelfAddrs = None,
    *,
    direction: Literal["sent", "received"] | None = None,
    clock: str = "sender",
) -> pd.DataFrame:
    """Messages by weekday and hour of day (a 7 x 24 table).

    Parameters
    ----------
    messages
        A ``messages`` frame (de-duplicated here unless it has ``copies``).
    self_addrs
        Needed only with ``direction``.
    direction
        ``"sent"`` (from self), ``"received"`` (from anyone else), or None for all.
    clock
        ``"sender"`` (default): each message's hour on its writer's clock,
        from the Date header's UTC offset (``date_offset_min``), because a
        reply at 23:00 UTC is a morning reply in Tokyo; rows without an offset
        fall back to UTC. ``"utc"``, or any IANA zone name
        (``"America/Chicago"``) to see one clock for everybody.

    Returns
    -------
    pandas.DataFrame
        Index ``Mon``..``Sun``, columns ``0``..``23``, counts of messages;
        ``attrs["clock"]`` names the clock used (for a chart's axis label).
    """
    uniq = unique_messages(messages)
    if direction is not None:
        if direction not in ("sent", "received"):
            raise UsageError("direction must be 'sent', 'received' or None")
        if self_addrs is None:
            raise UsageError("activity by direction needs the self addresses")
        prep = _prepare(uniq, self_addrs)
        keep = prep.from_self if direction == "sent" else ~prep.from_self
        uniq = uniq.iloc[np.flatnonzero(keep)]
    ns = _dates_ns(uniq)
    valid = ns != _NAT
    if clock == "sender":
        offsets = (
            pd.to_numeric(uniq["date_offset_min"], errors="coerce")
            if "date_offset_min" in uniq.columns
            else pd.Series(np.nan, index=uniq.index)
        )
        clock_used = "sender's local time" if offsets.notna().any() else "UTC"
        local = ns + (offsets.fillna(0).to_numpy() * 60e9).astype(np.int64)
    elif clock.lower() == "utc":
        clock_used = "UTC"
        local = ns
    else:
        try:
            conv = _to_utc(ns).tz_convert(clock).tz_localize(None)
        except Exception as exc:  # zoneinfo raises several kinds
            raise UsageError(f"unknown time zone {clock!r}") from exc
        local = conv.to_numpy(dtype="datetime64[ns]").view(np.int64)
        clock_used = clock
    local = local[valid]
    days = local // (86_400 * 10**9)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    hour = (local // (3_600 * 10**9)) % 24
    counts = np.bincount(weekday * 24 + hour, minlength=7 * 24).reshape(7, 24)
    out = pd.DataFrame(counts.astype(np.int64), index=pd.Index(WEEKDAYS, name="weekday"),
                       columns=pd.Index(range(24), name="hour"))
    out.attrs["clock"] = clock_used
    out.attrs["direction"] = direction
    return out


# --------------------------------------------------------------------------- data health


FolderCounts = Mapping[str, int] | Mapping[tuple[str, str], int]


def _per_folder(table: pd.DataFrame, counts: FolderCounts | None) -> pd.Series:
    """Look each (account, folder) up in ``counts``: by the pair, else by folder.

    One lookup per folder, not per message.
    """
    if counts is None:
        return pd.Series(pd.NA, index=table.index, dtype="Int64")
    flat: dict[object, int] = dict(counts.items())
    vals = [
        flat.get((a, f), flat.get(f))
        for a, f in zip(table["account"], table["folder"], strict=True)
    ]
    return pd.Series(vals, index=table.index, dtype="Int64")


def _add_server_only_folders(table: pd.DataFrame, counts: FolderCounts | None) -> pd.DataFrame:
    """Add the folders the server counts but the store holds no row of.

    Those are the worst case (a folder that never synced), so they must show
    up with ``rows == 0`` rather than vanish. A bare folder name is only
    placed when the frame holds one account (else it is ambiguous).
    """
    if not counts:
        return table
    accounts = list(dict.fromkeys(table["account"]))
    have = set(zip(table["account"], table["folder"], strict=True))
    extra: list[tuple[str, str]] = []
    for key in counts:
        if isinstance(key, tuple):
            pair = (str(key[0]), str(key[1]))
        elif len(accounts) <= 1:
            pair = (accounts[0] if accounts else "", str(key))
        else:
            continue
        if pair not in have:
            extra.append(pair)
    if not extra:
        return table
    add = pd.DataFrame(extra, columns=["account", "folder"]).drop_duplicates()
    for col in table.columns:
        if col not in ("account", "folder"):
            add[col] = 0 if table[col].dtype.kind in "iu" else pd.NA
    return pd.concat([table, add], ignore_index=True).sort_values(
        ["account", "folder"], kind="stable", ignore_index=True
    )


def data_health(
    messages: pd.DataFrame,
    server_counts: FolderCounts | None = None,
    uidvalidity_events: pd.DataFrame | Mapping[str, int] | None = None,
    *,
    unique: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per folder: how complete and how clean the synced data is.

    Pass the raw frame (one row per message per folder), not the
    de-duplicated one: this is about what each folder holds.

    Parameters
    ----------
    messages
        A ``messages`` frame.
    server_counts
        Messages per folder according to the server (IMAP ``STATUS
        MESSAGES``), keyed by folder name or ``(account, folder)``. When
        given, ``missing`` says how many rows the store lacks (negative:
        rows the server no longer has, i.e. expunges not yet synced).
    uidvalidity_events
        UIDVALIDITY changes seen by the sync (the server renumbered a folder,
        so its rows were re-fetched): a frame with ``folder`` (and optionally
        ``account``) columns, one row per event, or a mapping folder -> count.
    unique
        :func:`unique_messages` of this same frame, if you have it: saves
        running the duplicate rule a second time (rows missing from it, or
        kept with ``copies > 1``, are the duplicates).

    Returns
    -------
    pandas.DataFrame
        ``account, folder, rows, server_count, missing, duplicates,
        date_fallbacks, no_date, suspect_dates, defects, top_defect,
        uidvalidity_values, uidvalidity_events``: ``duplicates`` counts rows
        whose message has another copy in the account (the same rule as
        :func:`unique_messages`), ``date_fallbacks`` rows whose date did not
        come from the Date header, ``suspect_dates`` dates before 1990 or in
        the future (placeholders that stretch every time axis),
        ``defects`` rows with any parse/decoding fallback, ``top_defect`` the
        most common one, ``uidvalidity_values`` distinct UIDVALIDITY values
        in the rows (more than one means a renumbering mixed into the store).
    """
    _require(messages, "folder")
    n = len(messages)
    # Group on integer codes: (account, folder) pairs are few, rows are many.
    acc_codes, acc_names = (
        pd.factorize(messages["account"], use_na_sentinel=False)
        if "account" in messages.columns
        else (np.zeros(n, dtype=np.int64), pd.Index([""]))
    )
    fol_codes, fol_names = pd.factorize(messages["folder"], use_na_sentinel=False)
    pair = np.asarray(acc_codes, dtype=np.int64) * max(len(fol_names), 1) + fol_codes
    group, first = np.unique(pair, return_index=True) if n else (pair, pair)
    g = np.searchsorted(group, pair)
    k = len(group)

    def per_group(flags: npt.NDArray[np.bool_] | IntArray) -> IntArray:
        return np.bincount(g, weights=flags, minlength=k).astype(np.int64)

    if unique is not None and messages.index.is_unique:
        pos = messages.index.get_indexer(unique.index)
        if (pos < 0).any():
            raise UsageError("`unique` is not unique_messages() of this frame")
        dup = np.ones(n, dtype=bool)
        dup[pos] = unique["copies"].to_numpy() > 1
    elif {"from_addr", "date"} <= set(messages.columns) and n:
        labels = duplicate_groups(messages)
        dup = np.bincount(labels, minlength=n)[labels] > 1
    else:
        dup = np.zeros(n, dtype=bool)
    if "date_source" in messages.columns:
        src_codes, sources = pd.factorize(messages["date_source"], use_na_sentinel=False)
        header = pd.Series(np.asarray(sources, dtype=object), dtype="str").str.lower()
        fallback = ~header.isin(HEADER_DATE_SOURCES).to_numpy(dtype=bool)[src_codes]
    else:
        fallback = np.zeros(n, dtype=bool)
    ns = _dates_ns(messages) if "date" in messages.columns else np.full(n, _NAT)
    no_date = ns == _NAT
    future = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)).value
    suspect = ~no_date & ((ns < SUSPECT_BEFORE.value) | (ns > future))
    has_defect = np.zeros(n, dtype=bool)
    top_defect: list[object] = [pd.NA] * k
    if "defects" in messages.columns:
        d_pos, d_codes, d_names = explode_codes_raw(messages["defects"])
        has_defect[d_pos] = True
        if len(d_pos):
            width = max(len(d_names), 1)
            combo, counts = np.unique(g[d_pos] * width + d_codes, return_counts=True)
            order = np.lexsort((-counts, combo // width))
            best_g, best_d = combo[order] // width, combo[order] % width
            head = np.r_[True, best_g[1:] != best_g[:-1]]
            for gi, di in zip(best_g[head], best_d[head], strict=True):  # once per folder
                top_defect[int(gi)] = str(d_names[int(di)])
    if "uidvalidity" in messages.columns:
        uv_codes, _ = pd.factorize(messages["uidvalidity"], use_na_sentinel=True)
        uv_ok = np.asarray(uv_codes) >= 0
        uv_pairs = np.unique(g[uv_ok] * (int(np.max(uv_codes, initial=0)) + 1)
                             + np.asarray(uv_codes)[uv_ok])
        uv_values = np.bincount(uv_pairs // (int(np.max(uv_codes, initial=0)) + 1),
                                minlength=k).astype(np.int64)
    else:
        uv_values = np.zeros(k, dtype=np.int64)
    out = pd.DataFrame({
        "account": pd.Series(np.asarray(acc_names, dtype=object)[acc_codes[first]]
                             if n else [], dtype="str").fillna(""),
        "folder": pd.Series(np.asarray(fol_names, dtype=object)[fol_codes[first]]
                            if n else [], dtype="str"),
        "rows": np.bincount(g, minlength=k).astype(np.int64),
        "duplicates": per_group(dup),
        "date_fallbacks": per_group(fallback),
        "no_date": per_group(no_date),
        "suspect_dates": per_group(suspect),
        "defects": per_group(has_defect),
        "top_defect": pd.Series(top_defect, dtype="str"),
        "uidvalidity_values": uv_values,
    })
    out = out.sort_values(["account", "folder"], kind="stable", ignore_index=True)
    out = _add_server_only_folders(out, server_counts)
    out["server_count"] = _per_folder(out, server_counts)
    out["missing"] = out["server_count"] - pd.Series(out["rows"], dtype="Int64")
    if isinstance(uidvalidity_events, pd.DataFrame):
        ev = uidvalidity_events
        if "account" in ev.columns:
            keyed = ev.groupby(["account", "folder"]).size().reset_index(name="n")
            events: dict[str, int] | dict[tuple[str, str], int] = {
                (str(a), str(f)): int(n)
                for a, f, n in zip(keyed["account"], keyed["folder"], keyed["n"], strict=True)
            }
        else:
            events = {str(f): int(n) for f, n in ev.groupby("folder").size().items()}
        out["uidvalidity_events"] = _per_folder(out, events).fillna(0)
    elif uidvalidity_events is not None:
        out["uidvalidity_events"] = _per_folder(out, uidvalidity_events).fillna(0)
    else:
        out["uidvalidity_events"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    cols = HEALTH_COLUMNS
    return out[cols]
