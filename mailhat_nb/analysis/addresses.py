"""Address columns of a ``messages`` frame, vectorised.

The ``messages`` frame (see ``DESIGN.md``) keeps recipients as list columns,
``to_addrs`` and ``cc_addrs``. Depending on who built the frame those are
pyarrow lists (``pd.ArrowDtype(pa.list_(pa.string()))``, what the Parquet
store returns) or plain object columns holding ``list``/``tuple``/numpy
arrays (what a hand-built frame or ``pd.read_parquet`` without arrow dtypes
returns). Every function here accepts both, and never loops in Python over
rows: an analyst's mailbox of a million messages must stay interactive.

Addresses are compared lower-cased and stripped: ``DESIGN.md`` says so, and
a frame built by hand may not have done it. The work is done on the distinct
values (``factorize`` first, then clean the few thousand uniques), because a
mailbox repeats the same addresses millions of times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mailhat_nb.errors import UsageError

#: Gmail ignores dots in the local part and anything after ``+``, but only on
#: its own domains; on any other domain ``a.b@x`` and ``ab@x`` may be two people.
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

IntArray = npt.NDArray[np.int64]
#: What every function taking "the account's own addresses" accepts.
SelfAddrs = Iterable[str] | pd.DataFrame | pd.Series | None


def factorize_addresses(values: pd.Series) -> tuple[IntArray, pd.Index]:
    """Integer codes for normalised addresses.

    Returns
    -------
    codes, uniques
        ``uniques[codes[i]]`` is ``values[i]`` stripped and lower-cased;
        ``codes[i] == -1`` where the value is missing or blank. ``uniques``
        holds no duplicates after normalisation (``A@x`` and ``a@x`` share a
        code), which is what makes integer group-bys equal address group-bys.
    """
    raw_codes, raw_uniques = pd.factorize(values, use_na_sentinel=True)
    clean = pd.Series(np.asarray(raw_uniques, dtype=object), dtype="str")
    clean = clean.str.strip().str.lower()
    clean = clean.where(clean != "")
    clean_codes, uniques = pd.factorize(clean, use_na_sentinel=True)
    lookup = np.append(np.asarray(clean_codes, dtype=np.int64), -1)
    codes = lookup[np.asarray(raw_codes, dtype=np.int64)]  # -1 indexes the appended -1
    return codes, pd.Index(uniques, dtype="str")


def normalise(values: pd.Series) -> pd.Series:
    """Lower-case and strip addresses; blanks become missing (index kept)."""
    codes, uniques = factorize_addresses(values)
    taken = pd.api.extensions.take(uniques.array, codes, allow_fill=True)
    return pd.Series(taken, index=values.index, dtype="str")


def is_arrow_list(column: pd.Series) -> bool:
    """Return whether ``column`` holds pyarrow lists (else: object list-likes)."""
    dtype = column.dtype
    return isinstance(dtype, pd.ArrowDtype) and (
        pa.types.is_list(dtype.pyarrow_dtype) or pa.types.is_large_list(dtype.pyarrow_dtype)
    )


def _flatten(column: pd.Series) -> tuple[IntArray, pd.Series]:
    """Row positions and values of a list column, values possibly missing."""
    if is_arrow_list(column):
        chunked = column.array.__arrow_array__()
        positions = np.asarray(pc.list_parent_indices(chunked), dtype=np.int64)
        values = pd.Series(pd.arrays.ArrowExtensionArray(pc.list_flatten(chunked)))
        return positions, values
    exploded = pd.Series(column.to_numpy(dtype=object), dtype=object).explode()
    return exploded.index.to_numpy(dtype=np.int64), exploded.reset_index(drop=True)


def explode_lists(column: pd.Series) -> tuple[IntArray, pd.Series]:
    """Flatten a list column into ``(row positions, values)``.

    Parameters
    ----------
    column
        pyarrow lists, or an object column of list-likes. Missing or empty
        lists contribute nothing; a bare string counts as a one-element list
        (hand-built frames sometimes hold one).

    Returns
    -------
    positions, values
        ``positions[i]`` is the 0-based row position (not the index label)
        of ``values[i]``, in row order. Values are as stored (not
        normalised), never missing.
    """
    positions, values = _flatten(column)
    values = values.astype("str")
    keep = values.notna().to_numpy()
    if keep.all():
        return positions, values
    return positions[keep], values[keep].reset_index(drop=True)


def explode_codes(column: pd.Series) -> tuple[IntArray, IntArray, pd.Index]:
    """Flatten a list column of addresses straight to integer codes.

    Like :func:`explode_lists` followed by :func:`factorize_addresses`, but
    without materialising the flattened strings a second time: on a million
    messages that saves a few hundred MB of short-lived copies.

    Returns
    -------
    positions, codes, uniques
        Row positions (in row order), codes into ``uniques`` (never -1).
    """
    positions, values = _flatten(column)
    codes, uniques = factorize_addresses(values)
    ok = codes >= 0
    if ok.all():
        return positions, codes, uniques
    return positions[ok], codes[ok], uniques


def explode_codes_raw(column: pd.Series) -> tuple[IntArray, IntArray, pd.Index]:
    """Flatten a list column of labels (not addresses) to integer codes, as stored.

    For columns such as ``defects``, whose values are names, not addresses:
    no lower-casing, only missing values dropped.
    """
    positions, values = _flatten(column)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    ok = codes >= 0
    return positions[ok], codes[ok], pd.Index(np.asarray(uniques, dtype=object), dtype="str")


def recipient_pairs(frame: pd.DataFrame) -> tuple[IntArray, IntArray, pd.Index]:
    """Every distinct (row position, recipient) of ``to_addrs`` + ``cc_addrs``.

    An address in both To and Cc of one message (or twice in To) is one
    recipient: ``sent`` counts messages, not header slots.

    Returns
    -------
    positions, codes, uniques
        Row positions (sorted), address codes into ``uniques`` (never -1).
    """
    parts = [explode_codes(frame[col]) for col in ("to_addrs", "cc_addrs")
             if col in frame.columns]
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), pd.Index([], dtype="str")
    uniques = parts[0][2]
    for _, _, more in parts[1:]:
        uniques = uniques.append(more).unique()
    positions = np.concatenate([p for p, _, _ in parts])
    codes = np.concatenate([
        np.asarray(uniques.get_indexer(u), dtype=np.int64)[c] for _, c, u in parts
    ])
    width = max(len(uniques), 1)
    # Sort (row, address) keys and drop repeats. The keys arrive as one
    # sorted run per column, which a stable (merge) sort exploits.
    key = np.sort(positions * width + codes, kind="stable")
    key = key[np.diff(key, prepend=-1) != 0]
    return key // width, key % width, uniques


def domain_of(addresses: pd.Series) -> pd.Series:
    """Return the part after the last ``@`` (lower-cased); missing when there is none."""
    addr = addresses.astype("str")
    dom = addr.str.rpartition("@")[2].str.lower()
    has_at = addr.str.contains("@", regex=False).fillna(False).astype(bool)
    return dom.where(has_at & (dom != ""))


def gmail_canonical(addresses: pd.Series) -> pd.Series:
    """Map to the mailbox Gmail delivers to: dots and ``+tag`` dropped, ``@gmail.com``.

    Only for ``gmail.com`` / ``googlemail.com`` (one service, two names);
    every other address is returned unchanged, because elsewhere a dot or a
    plus sign can tell two different people apart.
    """
    addr = addresses.astype("str").str.strip().str.lower()
    if addr.empty:  # rpartition of nothing has no columns to index
        return addr
    parts = addr.str.rpartition("@")
    local, dom = parts[0], parts[2]
    is_gmail = dom.isin(GMAIL_DOMAINS).to_numpy(dtype=bool)
    canon_local = local.str.split("+", n=1).str[0].str.replace(".", "", regex=False)
    return addr.where(~is_gmail, canon_local + "@gmail.com")


def as_address_set(addresses: SelfAddrs) -> frozenset[str]:
    """Return normalised addresses from a list, a Series or an identity table.

    An identity table is what :func:`mailhat_nb.analysis.identity.own_addresses`
    returns (its ``address`` column); accepting it lets a notebook pass on the
    very table it showed the user.
    """
    if addresses is None:
        return frozenset()
    if isinstance(addresses, pd.DataFrame):
        if "address" not in addresses.columns:
            raise UsageError("an identity table needs an 'address' column")
        addresses = addresses["address"]
    if isinstance(addresses, str):
        raise UsageError("pass a list of addresses, not one string")
    return frozenset(
        a.strip().lower() for a in addresses if isinstance(a, str) and a.strip()
    )


#: One address as a person types it: a local part, ``@``, a domain; no blanks,
#: no display-name or list punctuation. Deliberately loose on the rest (RFC
#: 5322 quoted local parts are allowed by mail, never typed as "my address"),
#: strict enough to catch a name, a sentence or two addresses in one value.
_ADDRESS = re.compile(r"^[^\s@<>(),;:\"\[\]]+@(?![.-])[^\s@<>(),;:\"\[\]]+(?<![.-])$")


def is_address(text: object) -> bool:
    """Return whether ``text`` looks like one email address (``name@domain``).

    A login is not always an address (``jdoe``), and an import's account
    name need not be one (``takeout``): callers use this to decide whether
    such a value can be "self" at all.
    """
    return isinstance(text, str) and _ADDRESS.match(text.strip()) is not None


def check_addresses(values: Iterable[object], what: str = "address") -> list[str]:
    """Return ``values`` normalised (stripped, lower-cased), or raise on one that is not an address.

    For addresses a user types (``--self``, a notebook's ``me`` list): a typo
    there silently changes every count, so it is refused with the value and
    what is wrong, rather than ignored. Blank values are skipped: they can
    change nothing (an empty notebook parameter, a trailing comma).

    Raises
    ------
    UsageError
        Naming the first value that is not of the form ``name@domain``.
    """
    if isinstance(values, str):
        raise UsageError(f"{what}: pass a list of addresses, not one string")
    out = []
    for value in values:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not is_address(value):
            raise UsageError(f"{what} {value!r} is not an email address (name@domain)")
        out.append(str(value).strip().lower())
    return out
