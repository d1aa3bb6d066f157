"""Data health: per folder, how complete and how clean the synced data is.

Before anyone trusts a chart of who writes to whom, they should see whether
the store holds what the server holds and how much of it parsed cleanly:
rows versus the server's count, Date fallbacks (INTERNALDATE instead of the
header), placeholder dates, decoding fallbacks, duplicate copies (by the
rule of :mod:`mailhat_nb.analysis.dedupe`), and UIDVALIDITY renumberings. Kept apart
from :mod:`mailhat_nb.analysis.metrics` because it answers a different question
(can I trust the data?) on the raw rows, where the metrics count messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mailhat_nb.analysis.addresses import IntArray, explode_codes_raw
from mailhat_nb.analysis.dedupe import (
    NAT,
    date_fallback,
    date_ns,
    duplicate_groups,
    plausible,
    require_columns,
)
from mailhat_nb.errors import UsageError

HEALTH_COLUMNS = ["account", "folder", "rows", "server_count", "missing", "duplicates",
                  "date_fallbacks", "no_date", "suspect_dates", "defects", "top_defect",
                  "uidvalidity_values", "uidvalidity_events"]


#: Messages per folder by the server's count (IMAP ``STATUS MESSAGES``), keyed by
#: folder name or by ``(account, folder)``.
FolderCounts = Mapping[str, int] | Mapping[tuple[str, str], int]


def _per_folder(table: pd.DataFrame, counts: Mapping[Any, int] | None) -> pd.Series:
    """Look each (account, folder) up in ``counts``: by the pair, else by folder.

    One lookup per folder, not per message.
    """
    if counts is None:
        return pd.Series(pd.NA, index=table.index, dtype="Int64")
    vals = [counts.get((a, f), counts.get(f))
            for a, f in zip(table["account"], table["folder"], strict=True)]
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
        whose message has another copy in the same account (the rule of
        :func:`unique_messages`, within each account), ``date_fallbacks`` rows whose date did not
        come from the Date header, ``suspect_dates`` dates before 1990 or in
        the future (placeholders that stretch every time axis),
        ``defects`` rows with any parse/decoding fallback, ``top_defect`` the
        most common one, ``uidvalidity_values`` distinct UIDVALIDITY values
        in the rows (more than one means a renumbering mixed into the store).
    """
    require_columns(messages, "folder")
    n = len(messages)
    # Group on integer codes: (account, folder) pairs are few, rows are many.
    acc_codes, acc_names = (
        pd.factorize(messages["account"], use_na_sentinel=False)
        if "account" in messages.columns
        else (np.zeros(n, dtype=np.int64), pd.Index([""]))
    )
    fol_codes, fol_names = pd.factorize(messages["folder"], use_na_sentinel=False)
    pair = np.asarray(acc_codes, dtype=np.int64) * max(len(fol_names), 1) + fol_codes
    group, first, g = np.unique(pair, return_index=True, return_inverse=True)
    k = len(group)

    def per_group(flags: npt.NDArray[np.bool_] | IntArray) -> IntArray:
        return np.bincount(g, weights=flags, minlength=k).astype(np.int64)

    # Duplicates are copies within one account: a message in two teammates'
    # mailboxes is one message of the team, not a flaw of either folder. A
    # unique frame of several accounts merged those, so it cannot say.
    one_account = "account" not in messages.columns or messages["account"].nunique() <= 1
    if unique is not None and one_account and messages.index.is_unique:
        pos = messages.index.get_indexer(unique.index)
        if (pos < 0).any():
            raise UsageError("`unique` is not unique_messages() of this frame")
        dup = np.ones(n, dtype=bool)
        dup[pos] = unique["copies"].to_numpy() > 1
    elif {"from_addr", "date"} <= set(messages.columns) and n:
        labels = duplicate_groups(messages, across_accounts=False)
        dup = np.bincount(labels, minlength=n)[labels] > 1
    else:
        dup = np.zeros(n, dtype=bool)
    ns = date_ns(messages) if "date" in messages.columns else np.full(n, NAT)
    no_date = ns == NAT
    suspect = ~no_date & ~plausible(ns)
    has_defect = np.zeros(n, dtype=bool)
    top_defect = np.full(k, None, dtype=object)
    if "defects" in messages.columns:
        d_pos, d_codes, d_names = explode_codes_raw(messages["defects"])
        has_defect[d_pos] = True
        width = max(len(d_names), 1)
        combo, counts = np.unique(g[d_pos] * width + d_codes, return_counts=True)
        order = np.lexsort((-counts, combo // width))  # per folder, the most common first
        best_g, best_d = combo[order] // width, combo[order] % width
        head = np.diff(best_g, prepend=-1) != 0
        top_defect[best_g[head]] = np.asarray(d_names, dtype=object)[best_d[head]]
    uv_values = np.zeros(k, dtype=np.int64)
    if "uidvalidity" in messages.columns:  # distinct values per folder
        uv_codes = np.asarray(pd.factorize(messages["uidvalidity"])[0], dtype=np.int64)
        uv_ok, width = uv_codes >= 0, int(uv_codes.max(initial=0)) + 1
        uv_values += np.bincount(np.unique(g[uv_ok] * width + uv_codes[uv_ok]) // width,
                                 minlength=k)
    out = pd.DataFrame({
        "account": pd.Series(np.asarray(acc_names, dtype=object)[acc_codes[first]],
                             dtype="str").fillna(""),
        "folder": pd.Series(np.asarray(fol_names, dtype=object)[fol_codes[first]], dtype="str"),
        "rows": np.bincount(g, minlength=k).astype(np.int64),
        "duplicates": per_group(dup),
        "date_fallbacks": per_group(date_fallback(messages)),
        "no_date": per_group(no_date),
        "suspect_dates": per_group(suspect),
        "defects": per_group(has_defect),
        "top_defect": pd.Series(top_defect, dtype="str"),
        "uidvalidity_values": uv_values,
    })
    out = out.sort_values(["account", "folder"], kind="stable", ignore_index=True)
    return finish_health(out, server_counts, uidvalidity_events)


def finish_health(out: pd.DataFrame, server_counts: FolderCounts | None,
                  uidvalidity_events: pd.DataFrame | Mapping[str, int] | None) -> pd.DataFrame:
    """Add what the rows cannot say to a per-folder table: the server's view and events.

    Shared by :func:`data_health` and the SQL engines (:mod:`mailhat_nb.analysis.engines`),
    which count the per-folder columns their own way and finish the same way.
    """
    out = _add_server_only_folders(out, server_counts)
    out["server_count"] = _per_folder(out, server_counts)
    out["missing"] = out["server_count"] - pd.Series(out["rows"], dtype="Int64")
    events: pd.DataFrame | Mapping[Any, int] | None = uidvalidity_events
    if isinstance(events, pd.DataFrame):  # one row per event -> counts per folder
        keys = ["account", "folder"] if "account" in events.columns else ["folder"]
        events = {tuple(map(str, key)) if isinstance(key, tuple) else str(key): int(count)
                  for key, count in events.groupby(keys).size().items()}
    out["uidvalidity_events"] = _per_folder(out, events)
    if events is not None:
        out["uidvalidity_events"] = out["uidvalidity_events"].fillna(0)
    return out[HEALTH_COLUMNS]
