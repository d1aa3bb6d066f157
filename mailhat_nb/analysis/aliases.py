"""Which addresses are one person: suggested for the user, merged only when accepted.

:func:`suggest_aliases` finds addresses that look like one person (the same
display name; Gmail's dots and ``+tags``, on Gmail only) and returns them
with ``accept = False``; :func:`apply_aliases` merges only the rows the user
set to ``True``, in a messages frame or a contacts frame.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from mailhat_nb.analysis.addresses import (
    SelfAddrs,
    as_address_set,
    explode_lists,
    factorize_addresses,
    gmail_canonical,
    normalise,
    recipient_pairs,
)
from mailhat_nb.analysis.metrics import busiest_first
from mailhat_nb.errors import UsageError

ALIAS_COLUMNS = ["address", "alias_of", "reason", "name", "messages", "accept"]
_NAME_JUNK = re.compile(r"[\"'()<>\[\]]")
_SPACES = re.compile(r"\s+")


def _name_key(names: pd.Series) -> pd.Series:
    """Normalise display names so "Dean, Clint", "clint dean" and "Clint  Dean" meet."""
    n = names.astype("str").str.replace(_NAME_JUNK, " ", regex=True)
    n = n.str.replace(_SPACES, " ", regex=True).str.strip().str.casefold()
    swapped = n.str.extract(r"^([^,]+),\s*([^,]+)$")
    n = n.where(swapped[0].isna(), swapped[1].str.strip() + " " + swapped[0].str.strip())
    useless = n.isna() | (n.str.len() < 3) | n.str.contains("@", regex=False).fillna(True)
    return n.where(~useless.astype(bool))


def _address_activity(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``address, name, messages`` from a contacts or messages frame."""
    if {"contact", "total"} <= set(frame.columns):
        return pd.DataFrame({
            "address": normalise(frame["contact"]).to_numpy(),
            "name": frame["name"].astype("str").to_numpy() if "name" in frame.columns
            else pd.Series(pd.NA, index=frame.index, dtype="str").to_numpy(),
            "messages": frame["total"].to_numpy(dtype=np.int64),
        }).dropna(subset=["address"])
    if "from_addr" not in frame.columns:
        raise UsageError("pass a messages frame (from_addr, ...) or a contacts frame")
    f_codes, f_uniques = factorize_addresses(frame["from_addr"])
    _, r_codes, r_uniques = recipient_pairs(frame)
    counts = pd.concat([
        pd.Series(f_uniques.take(f_codes[f_codes >= 0]), dtype="str"),
        pd.Series(r_uniques.take(r_codes), dtype="str"),
    ]).value_counts()
    names = pd.Series(dtype="str")
    if "from_name" in frame.columns:
        pairs = pd.DataFrame({"address": pd.Series(f_uniques.take(np.maximum(f_codes, 0)),
                                                   dtype="str").where(f_codes >= 0),
                              "name": frame["from_name"].astype("str").str.strip().to_numpy()})
        pairs = pairs.dropna()
        pairs = pairs[pairs["name"] != ""]
        best = pairs.value_counts().reset_index().drop_duplicates("address")
        names = pd.Series(best["name"].to_numpy(), index=best["address"].to_numpy(), dtype="str")
    out = pd.DataFrame({"address": counts.index.astype("str"),
                        "messages": counts.to_numpy(dtype=np.int64)})
    out["name"] = out["address"].map(names)
    return out


def suggest_aliases(frame: pd.DataFrame, self_addrs: SelfAddrs = None) -> pd.DataFrame:
    """Suggest addresses that are probably one person, for the user to accept or reject.

    Two signals, each a suggestion only (a name is not an identity: two
    "John Smith"s exist, and a team mailbox can carry a person's name):

    * **same display name** on several addresses (compared case- and
      punctuation-insensitively, "Last, First" read as "First Last");
    * **Gmail equivalence**: on ``gmail.com``/``googlemail.com`` only, dots
      in the local part and a ``+tag`` do not change the mailbox.

    Parameters
    ----------
    frame
        A ``messages`` frame, or a :func:`~mailhat_nb.analysis.metrics.contacts` frame.
    self_addrs
        The account's own addresses, optional. When a group holds one, it is
        the group's canonical address, so accepting a suggestion makes the
        alias self (never the reverse).

    Returns
    -------
    pandas.DataFrame
        ``address, alias_of, reason, name, messages, accept``: one row per
        address that would be merged into ``alias_of`` (the group's most used
        address, or its self address). ``accept`` is ``False`` everywhere: set
        it to ``True`` on the rows to merge, then call :func:`apply_aliases`.
    """
    me = as_address_set(self_addrs)
    act = _address_activity(frame)
    act = act.groupby("address", as_index=False).agg(
        messages=("messages", "sum"), name=("name", "first"))
    act["is_self"] = act["address"].isin(list(me))
    groups = [
        act.assign(key=_name_key(act["name"]), reason="same display name"),
        act.assign(key=gmail_canonical(act["address"]), reason="gmail dots/+tag"),
    ]
    rows = []
    for g in groups:
        g = g.dropna(subset=["key"])
        g = g[g.groupby("key")["address"].transform("nunique") > 1]
        if g.empty:
            continue
        g = g.sort_values(["key", "is_self", "messages", "address"],
                          ascending=[True, False, False, True])
        canon = g.groupby("key")["address"].transform("first")
        both_self = g["is_self"] & canon.isin(list(me))
        g = g.assign(alias_of=canon)[(g["address"] != canon) & ~both_self]
        rows.append(g)
    if not rows:
        return pd.DataFrame({col: pd.Series(dtype=dtype) for col, dtype in zip(
            ALIAS_COLUMNS, ["str", "str", "str", "str", "int64", "bool"], strict=True)})
    out = pd.concat(rows, ignore_index=True)
    out = out.groupby(["address", "alias_of"], as_index=False, sort=True).agg(
        reason=("reason", " + ".join), name=("name", "first"), messages=("messages", "first"))
    out["accept"] = False
    return out.sort_values(["alias_of", "messages"], ascending=[True, False],
                           ignore_index=True)[ALIAS_COLUMNS]


def _alias_map(accepted: pd.DataFrame | Mapping[str, str],
               prefer: frozenset[str] = frozenset()) -> dict[str, str]:
    """Resolve accepted aliases to ``{address: its group's canonical}``.

    Chains are followed and every accepted pair joins its two addresses, so
    a group can be larger than one row. Its canonical is where its chains
    end, one of ``prefer`` (self) when one is there: self stays self.
    """
    if isinstance(accepted, pd.DataFrame):
        if not {"address", "alias_of"} <= set(accepted.columns):
            raise UsageError("the aliases table needs 'address' and 'alias_of' columns")
        rows = accepted
        if "accept" in accepted.columns:
            rows = accepted[accepted["accept"].fillna(False).astype(bool)]
        pairs = list(zip(rows["address"], rows["alias_of"], strict=True))
    else:
        pairs = list(accepted.items())
    edges = [(str(a).strip().lower(), str(c).strip().lower()) for a, c in pairs]
    targets: dict[str, str] = {}
    for alias, canon in edges:
        targets.setdefault(alias, canon)
    end_of: dict[str, str] = {}  # where each alias's chain ends
    for alias in targets:  # a cycle is a contradiction the user must resolve
        seen, target = {alias}, targets[alias]
        while target in targets and targets[target] != target:
            if target in seen:
                raise UsageError(f"aliases form a cycle through {target}")
            seen.add(target)
            target = targets[target]
        end_of[alias] = target
    # Every accepted pair joins two addresses into one person, so an address
    # accepted under two canonicals (Gmail's dots *and* the same name
    # elsewhere) joins all three rather than being split by the last row.
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for alias, canon in edges:
        ra, rc = root(alias), root(canon)
        if ra != rc:
            parent[ra] = rc
    ends: dict[str, str] = {}
    for alias, canon in edges:
        final = end_of.get(canon, canon)
        group = root(alias)
        if group not in ends or (final in prefer and ends[group] not in prefer):
            ends[group] = final
    members = {x for pair in edges for x in pair}
    return {x: ends[root(x)] for x in members if ends[root(x)] != x}


def _map_values(values: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Replace addresses found in ``mapping`` (a hash lookup, no Python loop)."""
    return values.map(mapping).fillna(values).astype("str")


def _map_list_column(column: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Replace addresses inside a list column; the result is a pyarrow list column.

    Missing lists become empty ones (the ``messages`` contract allows either
    pyarrow or object lists, and readers treat both alike).
    """
    pos, vals = explode_lists(column)
    mapped = _map_values(normalise(vals), mapping)
    offsets = np.searchsorted(pos, np.arange(len(column) + 1)).astype(np.int32)
    values = pa.array(mapped.to_numpy(dtype=object), type=pa.string())
    rebuilt = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pd.Series(pd.arrays.ArrowExtensionArray(rebuilt), index=column.index,
                     name=column.name)


def apply_aliases(
    frame: pd.DataFrame,
    accepted: pd.DataFrame | Mapping[str, str],
    self_addrs: SelfAddrs = None,
) -> pd.DataFrame:
    """Merge accepted aliases into their canonical address.

    Parameters
    ----------
    frame
        A ``messages`` frame (``from_addr``, ``to_addrs`` and ``cc_addrs``
        are rewritten: exact, a message to two aliases of one person still
        counts once afterwards), or a contacts frame (rows are summed:
        ``received`` stays exact, ``sent`` can count a message twice if it
        was addressed to two aliases, so prefer the messages frame).
    accepted
        The table from :func:`suggest_aliases` (only ``accept == True`` rows
        are used) or a mapping ``{alias: canonical}``. Chains resolve.
    self_addrs
        Self's addresses: a group of aliases that includes one is merged into
        it (self stays self). For a contacts frame, merging into self is
        refused (the alias's sent mail is not in it; merge on the messages
        frame), and rows whose address is self are dropped.

    Raises
    ------
    UsageError
        Accepted aliases that form a cycle, a self alias on a contacts frame,
        or a frame of neither kind.

    Returns
    -------
    pandas.DataFrame
        A new frame; the input is not modified.
    """
    me = as_address_set(self_addrs)
    mapping = _alias_map(accepted, me)
    if not mapping:
        return frame.copy()
    if "from_addr" in frame.columns:
        out = frame.copy()
        from_norm = normalise(out["from_addr"])
        out["from_addr"] = _map_values(from_norm, mapping)
        for col in ("to_addrs", "cc_addrs"):
            if col in out.columns:
                out[col] = _map_list_column(out[col], mapping)
        return out
    if {"contact", "sent", "received"} <= set(frame.columns):
        if any(canon in me for canon in mapping.values()):
            # The alias's rows say what it received from others, not whom it
            # wrote to: its sent mail would be lost. The messages frame knows.
            raise UsageError("an alias of your own address can only be merged on the messages "
                             "frame: apply_aliases(messages, ...) and count contacts again")
        c = frame.copy()
        c["contact"] = _map_values(normalise(c["contact"]), mapping)
        canon_name = c.loc[c["contact"].isin(list(mapping.values())) & c["name"].notna(),
                           ["contact", "name"]] if "name" in c.columns else None
        how = {"sent": "sum", "received": "sum", "first": "min", "last": "max", "name": "first"}
        merged = c.groupby("contact", as_index=False).agg(
            **{col: (col, how[col]) for col in how if col in c.columns})
        if canon_name is not None and not canon_name.empty:
            prefer = canon_name.drop_duplicates("contact").set_index("contact")["name"]
            merged["name"] = merged["contact"].map(prefer).fillna(merged["name"])
        merged["total"] = merged["sent"] + merged["received"]
        merged = merged[~merged["contact"].isin(list(me))]
        return busiest_first(merged)[[col for col in frame.columns if col in merged.columns]]
    raise UsageError("apply_aliases takes a messages frame or a contacts frame")
