"""The duplicate rule: one message counts once, however many folders file it.

The ``messages`` frame has one row per message *per folder*; the same
message filed in several folders (Sent plus a Notes "All documents" view,
two Sent folders, Gmail's labels seen as folders...) is one message for
every count. This module holds that rule, and the column helpers the
metrics (:mod:`mailhat_nb.analysis.metrics`) and the data-health table
(:mod:`mailhat_nb.analysis.health`) share with it, so the three agree on what a
message, a date and a Message-ID are.

The rule (``DESIGN.md``, ``docs/team.md``)
------------------------------------------
Two rows are the same message when they carry the **same Message-ID**, or
the **same From, Date, Subject and recipients** (To and Cc as a set). The
second half exists because exporters re-issue IDs: every copy of an Enron
message has its own ``Message-ID``, so ID matching alone finds nothing
there. The relation is applied transitively (copies matched by ID and copies
matched by content end up in one group). Rows without a Message-ID, or
without a Date, are never matched on that key.

The rule spans every account of the frame: the same message in two
teammates' mailboxes is one message of the team (a frame of one account is
that account's view). Data health asks the narrower question, "does this
account hold a copy twice?", with ``across_accounts=False``.

Each message is represented by one of its rows, the **kept copy**: a copy
whose Date came from the header first (a fallback date can move a message
by days), then the first in store order, ``(account, folder, uidvalidity,
uid)`` compared as plain values (strings by code point). Store order, not
frame order, so that any engine reading the same store keeps the same copy.
:func:`unique_messages` applies the rule and says how many rows each message
stood for (``copies``).

Everything is vectorised (integer codes, hashes, label propagation), never a
Python loop per row, so a million rows stay interactive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from mailhat_nb.analysis.addresses import IntArray, factorize_addresses, recipient_pairs
from mailhat_nb.errors import UsageError
from mailhat_nb.sync import keys

#: ``date_source`` values that mean "from the message's own Date header".
#: Anything else (INTERNALDATE, a Received line, the file's mtime...) is a
#: fallback: data health reports it, and the duplicate rule keeps a copy
#: whose date came from the header in preference, because a fallback can
#: move a message by days.
HEADER_DATE_SOURCES = frozenset({"header", "date", "date_header"})

#: A missing date in :func:`date_ns` output (int64 nanoseconds).
NAT = np.iinfo(np.int64).min


# --------------------------------------------------------------------------- column helpers


def require_columns(frame: pd.DataFrame, *columns: str) -> None:
    """Raise a :class:`UsageError` naming the contract columns ``frame`` lacks.

    A notebook passes frames built in many ways; a missing column should say
    which one and where the contract is, not end in a ``KeyError``.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(
            "the messages frame lacks column(s) " + ", ".join(missing)
            + " (see DESIGN.md, 'Frames')"
        )


def per_value(values: pd.Series, test: Callable[[pd.Series], object],
              missing: bool = False) -> npt.NDArray[np.bool_]:
    """Each row's value put to ``test`` (vectorised, on a ``str`` Series); missing: ``missing``.

    The test runs on the distinct values only (a handful of folders, roles,
    labels or date sources), then is spread to the rows by their codes.
    """
    codes, uniques = pd.factorize(values)
    per = np.asarray(test(pd.Series(np.asarray(uniques, dtype=object), dtype="str")), dtype=bool)
    return np.append(per, missing)[codes]


def date_fallback(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Which rows' date did not come from their Date header (:data:`HEADER_DATE_SOURCES`)."""
    if "date_source" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return per_value(frame["date_source"],
                     lambda src: ~src.str.lower().isin(HEADER_DATE_SOURCES), missing=True)


def date_ns(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    """``date`` as int64 nanoseconds since the epoch (UTC); NaT as int64 min."""
    date = pd.to_datetime(frame["date"], utc=True)
    return date.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


#: Dates before this are placeholders (Enron's 1979-1980 epochs, a client's
#: unset clock), not when anyone wrote: reported by data health, left out of
#: charts and of a contact's first/last.
SUSPECT_BEFORE = pd.Timestamp("1990-01-01", tz="UTC")


def plausible(ns: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which dates (ns since the epoch) could be real: present, after 1990, not ahead of now."""
    future = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)).value
    ok: npt.NDArray[np.bool_] = (ns != NAT) & (ns >= SUSPECT_BEFORE.value) & (ns <= future)
    return ok


def to_utc(ns: npt.NDArray[np.int64]) -> pd.DatetimeIndex:
    """The inverse of :func:`date_ns`: int64 nanoseconds (:data:`NAT` = missing) to UTC."""
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")


def first_last(groups: IntArray, ns: npt.NDArray[np.int64],
               size: int) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """The earliest and latest :func:`plausible` date of each group ``0..size-1`` (UTC, or NaT)."""
    ok = plausible(ns)  # a 1980 placeholder is not when anyone first wrote
    first = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(size, NAT, dtype=np.int64)
    np.minimum.at(first, groups[ok], ns[ok])
    np.maximum.at(last, groups[ok], ns[ok])
    first[first == np.iinfo(np.int64).max] = NAT
    return to_utc(first), to_utc(last)


def _codes(values: pd.Series | npt.NDArray[np.int64], *, na_unique: bool) -> IntArray:
    """Return dense codes for any column.

    Missing values get a code of their own each (``na_unique``), or a shared one.
    """
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


def clean_ids(ids: pd.Series) -> pd.Series:
    """Message-IDs without blanks and angle brackets; empty -> missing.

    The rule of the keys the store writes (:func:`mailhat_nb.sync.keys.clean_ids`),
    so the pandas path and the SQL engines agree on what one ID is.
    """
    return pd.Series(keys.clean_ids(arrow_strings(ids)), dtype="str")


def message_ids(frame: pd.DataFrame) -> pd.Series:
    """Message-IDs of every row (positional index), cleaned."""
    if "message_id" not in frame.columns:
        return pd.Series(pd.NA, index=range(len(frame)), dtype="str")
    return clean_ids(frame["message_id"])


def arrow_strings(values: pd.Series) -> pa.ChunkedArray:
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


def sorted_codes(values: pd.Series) -> tuple[IntArray, pd.Index]:
    """Codes of ``values`` numbered in sorted order of the values (missing: -1).

    Strings sort by code point, as DuckDB and Spark compare them, so a rank
    built on these codes is the same in every engine. Sorting touches only
    the distinct values (a few accounts and folders, not the rows).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    names = pd.Index(np.asarray(uniques, dtype=object)).astype("str")
    order = np.argsort(names.to_numpy(dtype=object), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    out = np.append(rank, -1)[np.asarray(codes, dtype=np.int64)]
    return out, names[order]


def store_rank(frame: pd.DataFrame) -> IntArray:
    """Each row's rank in store order: ``(account, folder, uidvalidity, uid)``, then position.

    The order the kept copy of a message is chosen by (module docstring):
    a frame may come in any order (read in parallel, concatenated by hand),
    the store's row keys do not change.
    """
    n = len(frame)
    keys: list[IntArray] = [np.arange(n, dtype=np.int64)]
    for col in ("uid", "uidvalidity"):
        if col in frame.columns:
            keys.append(pd.to_numeric(frame[col], errors="coerce").fillna(-1)
                        .to_numpy(dtype=np.int64))
    for col in ("folder", "account"):
        if col in frame.columns:
            keys.append(sorted_codes(frame[col])[0])
    order = np.lexsort(keys)  # the last key is the primary one
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    return rank


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
            h = keys.splitmix64(h ^ part.astype(np.uint64))
    key = np.asarray(pd.factorize(h.view(np.int64))[0], dtype=np.int64)
    first = _first_positions(key)[key]
    if all(np.array_equal(part, part[first]) for part in parts):
        return key
    return _combine(*(_codes(p, na_unique=False) for p in parts))


def duplicate_groups(messages: pd.DataFrame, *, across_accounts: bool = True) -> IntArray:
    """Label each row with its message: rows with the same label are one message.

    The rule (``DESIGN.md``): the same Message-ID, or the same From, Date,
    Subject and set of To+Cc recipients; applied transitively, across every
    account of the frame (a team's copies of one message are one), or within
    each account when ``across_accounts`` is False. Labels are row positions
    of a group member (the smallest), so they are stable for a given frame order.

    Why both keys: Message-ID is the standard identity of a message, but
    exporters re-issue IDs (each Enron copy has its own), while the content
    key catches those copies; a Message-ID match also unites copies whose
    Date was re-written by a server. Recipient sets are compared through an
    order-free 64-bit hash of their addresses (To/Cc placement and order do
    not matter); everything else is compared exactly.
    """
    require_columns(messages, "from_addr", "date")
    n = len(messages)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    account = (np.zeros(n, dtype=np.int64) if across_accounts or "account" not in messages
               else _codes(messages["account"], na_unique=False))
    one_account = bool(account.min() == account.max())
    id_codes = _codes(message_ids(messages), na_unique=True)
    by_id = id_codes if one_account else _content_key([account, id_codes])

    from_codes, _ = factorize_addresses(messages["from_addr"])
    dates = date_ns(messages)
    subject = (
        _codes(messages["subject"], na_unique=False)
        if "subject" in messages.columns
        else np.zeros(n, dtype=np.int64)
    )
    pos, rcodes, _ = recipient_pairs(messages)
    rkey = keys.row_sums(n, pos, keys.splitmix64(rcodes)).view(np.int64)  # the set's key
    # A missing Date never matches: give each such row a value of its own.
    no_date = dates == NAT
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


def dedupe_positions(messages: pd.DataFrame) -> tuple[IntArray, IntArray, IntArray]:
    """Apply the rule as positions: what :func:`unique_messages` does, without copying.

    The metrics take only the few columns they read from the kept rows,
    instead of copying every column of a million-row frame.

    Returns
    -------
    labels, keep, copies
        :func:`duplicate_groups` labels; the kept row positions (the kept
        copy of each message: a header Date first, then store order), in
        frame order; how many rows each kept row stands for.
    """
    labels = duplicate_groups(messages)
    # Per message: a copy dated by its header first, then store order.
    order = np.lexsort((store_rank(messages), date_fallback(messages), labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.diff(sorted_labels, prepend=-1))  # each message's first row
    keep = order[starts]
    counts = np.diff(np.r_[starts, len(order)]).astype(np.int64)
    by_pos = np.argsort(keep, kind="stable")
    return labels, keep[by_pos], counts[by_pos]


def unique_messages(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per message: the duplicate-copy rule applied (see module docstring).

    The kept row of each group is the first in store order whose Date came
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
    _, keep, counts = dedupe_positions(messages)
    return take_rows(messages, keep).assign(copies=counts)


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
