"""Correspondence metrics over a ``messages`` frame: who, how much, when.

Per contact (:func:`contacts`), per contact and period (:func:`volume`),
response times (:func:`response_times`, :func:`response_medians`) and
weekday-by-hour activity (:func:`activity`). The duplicate rule lives in
:mod:`mailhat_nb.analysis.dedupe`, data health in :mod:`mailhat_nb.analysis.health`; notebooks
import all of them through :mod:`mailhat_nb.contacts`.

Everything here is vectorised pandas/numpy (group-bys on integer address
codes, no Python loop per row), so a mailbox of a million messages answers
interactively; ``benchmarks/bench_contacts.py`` measures it.

Counting rules (``DESIGN.md``)
------------------------------
* **One message, one count.** The same message filed in several folders
  counts once: same Message-ID, or same From, Date, Subject and recipients
  (the full rule, and why, in :mod:`mailhat_nb.analysis.dedupe`). Every metric
  de-duplicates unless the frame already carries ``copies`` (from
  :func:`~mailhat_nb.analysis.dedupe.unique_messages`).
* **Self is never a contact.** The account's own addresses (see
  :func:`mailhat_nb.analysis.identity.own_addresses`) are given by the caller.
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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mailhat_nb.analysis.addresses import (
    IntArray,
    SelfAddrs,
    as_address_set,
    explode_lists,
    factorize_addresses,
    recipient_pairs,
)
from mailhat_nb.analysis.dedupe import (
    NAT,
    arrow_strings,
    clean_ids,
    date_ns,
    dedupe_positions,
    first_last,
    message_ids,
    require_columns,
    sorted_codes,
    take_rows,
    to_utc,
    unique_messages,
)
from mailhat_nb.errors import UsageError

Freq = Literal["D", "W", "M", "Y"]

CONTACT_COLUMNS = ["contact", "name", "sent", "received", "total", "first", "last"]
VOLUME_COLUMNS = ["period", "contact", "sent", "received", "total"]
RESPONSE_COLUMNS = ["contact", "replier", "asked", "answered", "hours"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

_FREQ_ALIASES: dict[str, Freq] = {
    "d": "D", "day": "D", "daily": "D",
    "w": "W", "week": "W", "weekly": "W", "w-mon": "W",
    "m": "M", "ms": "M", "me": "M", "month": "M", "monthly": "M",
    "y": "Y", "ys": "Y", "ye": "Y", "a": "Y", "year": "Y", "yearly": "Y",
}


# --------------------------------------------------------------------------- prepared view


@dataclass(frozen=True)
class Prepared:
    """The unique messages as integer arrays, shared by every metric."""

    frame: pd.DataFrame           # unique messages, positional
    dates: npt.NDArray[np.int64]  # ns since epoch, NAT when missing
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


def prepare(messages: pd.DataFrame, self_addrs: SelfAddrs) -> Prepared:
    """The unique messages of ``messages`` as integer arrays, self marked.

    De-duplicates unless the frame carries ``copies`` already; the contacts,
    volume, activity and the team view (:mod:`mailhat_nb.analysis.team`)
    read the same arrays, so they count the same messages.
    """
    require_columns(messages, "from_addr", "date")
    me = as_address_set(self_addrs)
    if "copies" in messages.columns:
        uniq = messages
    else:
        # De-duplicate, but copy only the columns the metrics read: a
        # one-call ``contacts(raw_frame)`` should not duplicate every column.
        _, keep, counts = dedupe_positions(messages)
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
    return Prepared(
        frame=uniq, dates=date_ns(uniq), from_codes=from_codes, from_self=from_self,
        rcpt_pos=rpos, rcpt_codes=rcodes, uniques=uniques, is_self=is_self,
    )


def _names(prep: Prepared) -> pd.Series:
    """Display name per address code: the most frequent non-empty From name.

    Only senders have names in the frame (recipients are bare addresses), so
    a contact we only ever wrote to has none, and a chart shows its address.
    Names are cleaned first (blanks and quotes around them stripped); a
    "name" that is just the address again is no name; a tie goes to the
    smallest name by code point, so every engine picks the same one.
    Counted on integer (address, name) pairs; strings are only touched once
    per distinct value.
    """
    if "from_name" not in prep.frame.columns:
        return pd.Series([], dtype="str")
    raw_codes, raw_names = pd.factorize(prep.frame["from_name"], use_na_sentinel=True)
    clean = pd.Series(np.asarray(raw_names, dtype=object), dtype="str")
    clean = clean.str.strip().str.strip("'\"").str.strip()
    clean = clean.where(clean != "")
    # Codes numbered in sorted order of the cleaned names: the smallest code
    # of a tie is the smallest name.
    clean_codes, names_sorted = sorted_codes(clean)
    name_codes = np.append(clean_codes, -1)[np.asarray(raw_codes, dtype=np.int64)]
    ok = (prep.from_codes >= 0) & (name_codes >= 0)
    width = max(len(names_sorted), 1)
    pair, count = np.unique(prep.from_codes[ok] * width + name_codes[ok], return_counts=True)
    addr_code, name_code = pair // width, pair % width
    names = names_sorted.to_numpy(dtype=object)[name_code]
    addrs = prep.uniques.take(addr_code)
    differs = pd.Series(names, dtype="str").str.lower().to_numpy() != addrs.str.lower()
    addr_code, names, count = addr_code[differs], names[differs], count[differs]
    name_code = name_code[differs]
    best = np.lexsort((name_code, -count, addr_code))  # per address: most used, then smallest
    addr_code, names = addr_code[best], names[best]
    first = np.diff(addr_code, prepend=-1) != 0
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
        :func:`mailhat_nb.analysis.identity.own_addresses`). They never appear as
        contacts, and decide which messages count as ``sent``.

    Returns
    -------
    pandas.DataFrame
        One row per contact address (lower-cased), most active first
        (``total``, then ``received``, then address). ``name`` is the contact's
        most used display name, missing when they never wrote; ``first`` and
        ``last`` are tz-aware UTC, placeholder dates (before 1990, or ahead of
        now) left out as the charts leave them out.
    """
    return contacts_from(prepare(messages, self_addrs))


def contacts_from(prep: Prepared) -> pd.DataFrame:
    """:func:`contacts` of messages already prepared (the team view shares the arrays)."""
    u = len(prep.uniques)
    r_rows, r_codes = prep.received
    s_rows, s_codes = prep.sent
    sent = np.bincount(s_codes, minlength=u)
    received = np.bincount(r_codes, minlength=u)
    first, last = first_last(np.concatenate([s_codes, r_codes]),
                             prep.dates[np.concatenate([s_rows, r_rows])], u)
    keep = np.flatnonzero((sent + received > 0) & ~prep.is_self)
    out = pd.DataFrame({
        "contact": pd.Series(prep.uniques.take(keep), dtype="str"),
        "name": pd.Series(_names(prep).reindex(keep).to_numpy(), dtype="str"),
        "sent": sent[keep].astype(np.int64),
        "received": received[keep].astype(np.int64),
        "total": (sent + received)[keep].astype(np.int64),
        "first": first[keep],
        "last": last[keep],
    })
    return busiest_first(out)[CONTACT_COLUMNS]


def busiest_first(contacts_frame: pd.DataFrame) -> pd.DataFrame:
    """The contacts' one order, everywhere: most ``total``, most ``received``, then address."""
    return contacts_frame.sort_values(["total", "received", "contact"],
                                      ascending=[False, False, True], ignore_index=True)


def top_contacts(contacts_frame: pd.DataFrame, n: int = 10) -> list[str]:
    """Return the ``n`` most active contact addresses of a :func:`contacts` frame."""
    return [str(c) for c in busiest_first(contacts_frame)["contact"].head(n)]


# --------------------------------------------------------------------------- over time


def normalise_freq(freq: str) -> Freq:
    """The period code (``D``, ``W``, ``M``, ``Y``) of any alias (``"month"``, ``"MS"``...)."""
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
    f = normalise_freq(freq)
    missing = dates_ns == NAT
    dt = dates_ns.view("datetime64[ns]")
    if f == "W":
        days = dt.astype("datetime64[D]").view(np.int64)
        out = (days - (days + 3) % 7).view("datetime64[D]")  # 1970-01-01 was a Thursday
    else:
        out = dt.astype(f"datetime64[{f}]")  # D, M, Y are numpy's units too
    res = out.astype("datetime64[ns]").view(np.int64).copy()
    res[missing] = NAT
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
    prep = prepare(messages, self_addrs)
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
        ranked = np.argsort(-totals, kind="stable")  # a tie: the smaller code first
        wanted = np.zeros(len(totals), dtype=bool)
        wanted[ranked[: max(top, 0)]] = True
        wanted &= totals > 0
    if wanted is not None:
        sel = wanted[codes]
        rows, codes, is_sent = rows[sel], codes[sel], is_sent[sel]
    periods = period_start(prep.dates[rows], freq)
    ok = periods != NAT
    long = pd.DataFrame({"period": periods[ok], "code": codes[ok], "sent": is_sent[ok]})
    long["received"] = 1 - long["sent"]
    out = long.groupby(["period", "code"], sort=True).sum().reset_index()
    out["total"] = out["sent"] + out["received"]
    out["contact"] = pd.Series(prep.uniques.take(out["code"].to_numpy()), dtype="str")
    out["period"] = to_utc(out["period"].to_numpy(dtype=np.int64))
    out = out[VOLUME_COLUMNS].astype({"sent": "int64", "received": "int64", "total": "int64"})
    out.attrs["freq"] = normalise_freq(freq)  # lets a chart fill empty periods with 0
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
        irt = clean_ids(column("in_reply_to"))
        has_irt = irt.notna().to_numpy(dtype=bool)
        parent_pos.append(np.flatnonzero(has_irt))
        parent_val.append(irt[has_irt])
    if "references" in frame.columns:
        pos, vals = explode_lists(column("references"))
        last = np.flatnonzero(np.diff(pos, append=-1))  # each row's last reference
        pos, vals = pos[last], clean_ids(vals.iloc[last])
        use = ~has_irt[pos] & vals.notna().to_numpy(dtype=bool)
        parent_pos.append(pos[use])
        parent_val.append(vals[use])
    if not parent_pos:
        return np.empty(0, dtype=np.int64), pa.chunked_array([], type=pa.string())
    positions = np.concatenate(parent_pos)
    values = pd.concat(parent_val, ignore_index=True)
    return positions, arrow_strings(values)


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
    require_columns(messages, "from_addr", "date")
    n = len(messages)
    if "copies" in messages.columns:  # already one row per message
        labels = keep = np.arange(n, dtype=np.int64)
    else:
        labels, keep, _ = dedupe_positions(messages)
    me = as_address_set(self_addrs)
    from_codes, uniques = factorize_addresses(messages["from_addr"])
    is_self = np.append(np.asarray(uniques.isin(list(me)), dtype=bool), False)
    from_self = is_self[from_codes]
    dates = date_ns(messages)

    # Join each reply's parent id to the row carrying that Message-ID. The
    # hash tables are built over the distinct parent ids (replies are the
    # minority), then every row's id is probed: integer positions after that.
    reply_pos, parent_ids = _parent_ids(messages, keep)
    distinct = pc.unique(parent_ids)
    reply_to = np.asarray(pc.index_in(parent_ids, value_set=distinct).to_numpy(),
                          dtype=np.int64)
    ids = arrow_strings(message_ids(messages))
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
    asked, answered = dates[orig], dates[reply]
    keep_pair = ((by_self | by_contact) & (asked != NAT) & (answered != NAT)
                 & (answered >= asked))
    asked, answered = asked[keep_pair], answered[keep_pair]
    return pd.DataFrame({
        "contact": pd.Series(uniques.take(np.where(by_self, of, rf)[keep_pair]), dtype="str"),
        "replier": pd.Series(np.where(by_self[keep_pair], "self", "contact"), dtype="str"),
        "asked": to_utc(asked),
        "answered": to_utc(answered),
        "hours": (answered - asked) / 3.6e12,
    })


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


#: The response-time histogram's bins: log-spaced from one minute to the slowest reply.
RESPONSE_BINS = 40
RESPONSE_FLOOR_HOURS = 1 / 60
HISTOGRAM_COLUMNS = ["replier", "left", "right", "replies"]


def response_bin_edges(slowest_hours: float) -> list[float]:
    """The histogram's bin edges: log-spaced, one minute to ``slowest_hours`` (10 min at least)."""
    high = max(float(slowest_hours), RESPONSE_FLOOR_HOURS * 10)
    edges = [float(e) for e in
             np.logspace(np.log10(RESPONSE_FLOOR_HOURS), np.log10(high), RESPONSE_BINS)]
    # 10 ** log10(x) can miss x by a rounding step: pin the ends, so the
    # slowest reply is always inside the last bin.
    edges[0], edges[-1] = RESPONSE_FLOOR_HOURS, high
    return edges


def response_histogram(responses: pd.DataFrame) -> pd.DataFrame:
    """Reply delays as a histogram per replier: the response-time chart's input.

    An aggregate (at most 2 x 39 rows, whatever the number of replies), so
    an engine that cannot hand over every reply of a big store can draw the
    same chart (:meth:`mailhat_nb.analysis.engines.run.Analysis.response_histogram`).
    Delays under a minute count in the first bin.

    Returns
    -------
    pandas.DataFrame
        ``replier, left, right, replies`` (hours; the last bin includes its
        right edge), bins without replies left out; ``attrs["median_hours"]``
        maps each replier to its median delay.
    """
    out = pd.DataFrame({c: pd.Series(dtype="str" if c == "replier" else "float64")
                        for c in HISTOGRAM_COLUMNS}).astype({"replies": "int64"})
    out.attrs["median_hours"] = {}
    if responses.empty:
        return out
    hours = responses["hours"].to_numpy(dtype=float)
    edges = np.asarray(response_bin_edges(float(np.max(hours))))
    parts = []
    medians: dict[str, float] = {}
    for who in ("self", "contact"):
        h = np.clip(hours[(responses["replier"] == who).to_numpy()], RESPONSE_FLOOR_HOURS, None)
        if len(h) == 0:
            continue
        counts, _ = np.histogram(h, bins=edges)
        used = np.flatnonzero(counts)
        parts.append(pd.DataFrame({"replier": who, "left": edges[used],
                                   "right": edges[used + 1], "replies": counts[used]}))
        medians[who] = float(np.median(h))
    out = pd.concat(parts, ignore_index=True).astype({"replier": "str", "replies": "int64"})
    out.attrs["median_hours"] = medians
    return out[HISTOGRAM_COLUMNS]


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
        prep = prepare(uniq, self_addrs)
        keep = prep.from_self if direction == "sent" else ~prep.from_self
        uniq = uniq.iloc[np.flatnonzero(keep)]
    ns = date_ns(uniq)
    valid = ns != NAT
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
            conv = to_utc(ns).tz_convert(clock).tz_localize(None)
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
