r"""The ``messages`` DataFrame: columns, dtypes, folder roles and direction.

One row per message per folder (DESIGN.md, "Frames"). Every source (IMAP
sync, the Parquet store, Maildir and mbox imports) builds the frame through
:func:`messages_frame` or re-types a frame it read through :func:`conform`,
so analysis code can rely on one set of dtypes, chosen to be compact and
Parquet-native (read a file back with ``dtype_backend="pyarrow"`` and
:func:`conform`; pandas 3.1's plain ``read_parquet`` chokes on its own list
columns, see :func:`conform`):

The columns are ``account`` and ``folder`` (categories), the stored columns
of :mod:`mailhat_nb.sync.schema` in its order (where each is described),
then ``direction`` (``sent``/``received``, :func:`add_direction`) before the
last, ``defects``. The dtypes follow the schema's kinds: dictionaries are
categories with fixed values, ``list`` a ``list<string>`` (``pd.ArrowDtype``),
``str`` pandas' string dtype, ``ts`` ``datetime64[us, UTC]``, integers
``int64`` for the row key and ``size`` (never missing), else ``Int64`` /
``Int16``.

``str`` is pandas' default string dtype (pyarrow-backed, missing = NaN): the
same dtype ``pd.read_parquet`` gives back, and half the memory of object
strings. Lists are Arrow lists rather than object columns of Python lists:
~10x less memory, Parquet-native, and :mod:`mailhat_nb.analysis.addresses` explodes
them without a Python loop. datetimes are microseconds, not nanoseconds:
mail dates predate 1677 only when broken, but Python datetimes and Parquet
timestamps are microseconds anyway.

API
---
``MESSAGE_COLUMNS``, ``MESSAGE_DTYPES``
``messages_frame(rows) -> DataFrame``       rows (dicts) to the typed frame
``conform(df) -> DataFrame``                any frame (e.g. from Parquet) to the contract
``concat_frames(frames) -> DataFrame``      batches into one frame, dtypes kept
``add_direction(df, self_addrs) -> DataFrame``

Who "self" is (and so which rows are ``sent``) is decided in one place,
:func:`mailhat_nb.analysis.identity.self_addresses`, which the contacts use too;
:func:`add_direction` only applies a given set.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from mailhat_nb.errors import UsageError
from mailhat_nb.sync.memory import gc_paused
from mailhat_nb.sync.schema import (
    CATEGORIES,
    DICT,
    INT16,
    INT64,
    LIST,
    NOT_NULL,
    STORE_COLUMNS,
    STR,
    TS,
    arrow_type,
)

DIRECTIONS: Final = ("sent", "received")

LIST_DTYPE: Final = pd.ArrowDtype(pa.list_(pa.string()))
STR_DTYPE: Final = pd.StringDtype(storage="pyarrow", na_value=np.nan)
UTC_DTYPE: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")

_KIND_DTYPES: Final[dict[str, Any]] = {LIST: LIST_DTYPE, STR: STR_DTYPE, TS: UTC_DTYPE,
                                        INT64: "Int64", INT16: "Int16"}


def _dtype(name: str, kind: str) -> Any:
    if kind == DICT:
        return pd.CategoricalDtype(list(CATEGORIES[name]))
    return "int64" if name in NOT_NULL else _KIND_DTYPES[kind]


#: Column name -> dtype, in column order (see the module docstring).
MESSAGE_DTYPES: Final[dict[str, Any]] = {
    "account": "category",
    "folder": "category",
    **{name: _dtype(name, kind) for name, kind in STORE_COLUMNS.items() if name != "defects"},
    "direction": pd.CategoricalDtype(list(DIRECTIONS)),
    "defects": LIST_DTYPE,
}

#: The ``messages`` columns, in order (DESIGN.md's, plus the parse extras).
MESSAGE_COLUMNS: Final[tuple[str, ...]] = tuple(MESSAGE_DTYPES)

_LIST_ARROW: Final = arrow_type(LIST)
_TS_ARROW: Final = arrow_type(TS)


def _column(name: str, values: list[Any]) -> Any:
    """One column as a pandas array of the contract dtype."""
    dtype = MESSAGE_DTYPES[name]
    if dtype is LIST_DTYPE:
        if None in values:
            values = [v if v is not None else [] for v in values]
        arr = pa.array(values, type=_LIST_ARROW)
        return pd.arrays.ArrowExtensionArray(arr)
    if dtype is UTC_DTYPE:
        arr = pa.array(values, type=_TS_ARROW, from_pandas=True)
        return pd.array(arr.to_pandas(), dtype=UTC_DTYPE)
    if dtype is STR_DTYPE:
        return pd.array(values, dtype=STR_DTYPE)
    if name in NOT_NULL:
        return np.asarray(values, dtype=np.int64)
    if isinstance(dtype, pd.CategoricalDtype):  # fixed categories (before: it == "category")
        return pd.Categorical(values, dtype=dtype)
    if dtype == "category":
        return pd.Categorical(values)
    return pd.array(values, dtype=dtype)


def messages_frame(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Build the typed ``messages`` frame from row dicts.

    Parameters
    ----------
    rows
        Dicts with (a subset of) :data:`MESSAGE_COLUMNS` as keys, e.g.
        :func:`mailhat_nb.sync.parse.parse_headers` output plus the source's
        ``account, folder, uidvalidity, uid, size, flags, internaldate``.
        Extra keys are ignored. A key missing from a row takes the column's
        empty value: NA, ``[]`` for lists, ``0`` for ``uid``/``uidvalidity``/
        ``size`` (those three have no NA: they are the row key and a count).

    Returns
    -------
    DataFrame
        Columns exactly :data:`MESSAGE_COLUMNS`, dtypes
        :data:`MESSAGE_DTYPES`, a fresh RangeIndex.
    """
    if isinstance(rows, pd.DataFrame):
        return conform(rows)
    with gc_paused():
        return _build(rows if isinstance(rows, list) else list(rows))


def _build(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    columns = _transpose(rows)
    data: dict[str, Any] = {}
    for name in MESSAGE_COLUMNS:
        default = NOT_NULL.get(name)
        values = columns.get(name)
        if values is None:
            values = [r.get(name, default) for r in rows]
        if default is not None and None in values:
            values = [default if v is None else v for v in values]
        try:
            data[name] = _column(name, values)
        except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
            raise UsageError(
                f"messages column {name!r}: cannot convert the values ({exc})"
            ) from exc
    return pd.DataFrame(data, columns=list(MESSAGE_COLUMNS))


def _transpose(rows: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Columns of the keys every row has, transposed in C (itemgetter + zip).

    Twice as fast as one ``[r.get(c) for r in rows]`` per column; keys some
    row lacks are left to the caller's per-column path.
    """
    if not rows:
        return {}
    keys = [c for c in MESSAGE_COLUMNS if c in rows[0]]
    if not keys:
        return {}
    getter = operator.itemgetter(*keys)
    try:
        tuples = [getter(r) for r in rows]
    except KeyError:
        return {}
    if len(keys) == 1:
        return {keys[0]: tuples}
    return {k: list(col) for k, col in zip(keys, zip(*tuples, strict=True), strict=True)}


def _same_dtype(have: Any, want: Any) -> bool:
    """Dtype equality that never raises and respects fixed categories.

    ``np.dtype("O") == pd.ArrowDtype(...)`` raises TypeError, and every
    categorical compares equal to the string ``"category"``.
    """
    if isinstance(want, pd.CategoricalDtype):
        return isinstance(have, pd.CategoricalDtype) and list(have.categories) == list(
            want.categories
        )
    if isinstance(want, str) and want == "category":
        return isinstance(have, pd.CategoricalDtype)
    try:
        return bool(want == have)
    except TypeError:
        return False


def _from_arrow(name: str, col: pd.Series) -> Any:
    """An Arrow-backed column (``dtype_backend="pyarrow"``) to the contract dtype."""
    dtype = MESSAGE_DTYPES[name]
    arr = pa.chunked_array(col.array.__arrow_array__()).combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if dtype is LIST_DTYPE:
        arr = arr.cast(_LIST_ARROW).fill_null(pa.scalar([], _LIST_ARROW))
        return pd.arrays.ArrowExtensionArray(arr)
    if dtype is UTC_DTYPE:
        return pd.array(arr.cast(_TS_ARROW).to_pandas(), dtype=UTC_DTYPE)
    values = arr.to_pylist()
    if name in NOT_NULL:
        values = [NOT_NULL[name] if v is None else v for v in values]
    return _column(name, values)


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Re-type any messages-like frame to the contract (columns added, ordered).

    For a frame read back from Parquet (list columns may come back as object
    arrays of numpy arrays, categories as strings, or everything Arrow-backed)
    or built by hand. Columns not in the contract are kept, after the contract's.

    Notes
    -----
    pandas 3.1.1 cannot read back its own ``df.to_parquet`` file when a column
    is an Arrow list: ``pd.read_parquet(path)`` raises ``TypeError: data type
    'list<item: string>[pyarrow]' not understood`` (it feeds the dtype name in
    the pandas metadata to numpy). Read such files with
    ``conform(pd.read_parquet(path, dtype_backend="pyarrow"))``.
    """
    out: dict[str, Any] = {}
    n = len(df)
    for name in MESSAGE_COLUMNS:
        dtype = MESSAGE_DTYPES[name]
        if name not in df.columns:
            out[name] = _column(name, [NOT_NULL.get(name)] * n)
            continue
        col = df[name]
        if _same_dtype(col.dtype, dtype):
            out[name] = col.array
        elif isinstance(col.dtype, pd.ArrowDtype):
            out[name] = _from_arrow(name, col)
        elif dtype is LIST_DTYPE:
            values = [
                [] if v is None or (isinstance(v, float) and np.isnan(v)) else list(v)
                for v in col.to_numpy(dtype=object)
            ]
            out[name] = _column(name, values)
        elif dtype is UTC_DTYPE:
            out[name] = pd.array(pd.to_datetime(col, utc=True), dtype=UTC_DTYPE)
        else:
            out[name] = col.astype(dtype).array
    extra = {c: df[c].array for c in df.columns if c not in MESSAGE_DTYPES}
    return pd.DataFrame({**out, **extra}, index=pd.RangeIndex(n))


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate ``messages`` frames, keeping the contract's dtypes.

    Plain :func:`pandas.concat` turns categoricals with different categories
    (``folder`` of two batches) into object columns; this re-types them.
    """
    if not frames:
        return messages_frame([])
    if len(frames) == 1:
        return frames[0]
    loose = [
        f.astype({c: object for c in f.columns if isinstance(f[c].dtype, pd.CategoricalDtype)
                  and MESSAGE_DTYPES.get(c) == "category"})
        for f in frames
    ]  # fmt: skip
    return conform(pd.concat(loose, ignore_index=True))


# --------------------------------------------------------------------------- direction


def _norm(addresses: Iterable[str | None]) -> set[str]:
    return {a.strip().lower() for a in addresses if isinstance(a, str) and a.strip()}


def add_direction(df: pd.DataFrame, self_addrs: Iterable[str]) -> pd.DataFrame:
    """A copy of ``df`` with ``direction`` set: ``sent`` when From is self.

    ``self_addrs`` should come from :func:`mailhat_nb.analysis.identity.self_addresses`
    (the package's one rule for self), so that a row's ``direction`` and the
    contacts' ``sent``/``received`` agree.

    Vectorised (one ``isin`` over the column); a missing From is
    ``received``. Addresses in ``self_addrs`` are normalised (stripped,
    lower-cased) first, so a user-typed ``Me@Example.com`` matches.
    """
    own = _norm(self_addrs)
    sent = df["from_addr"].isin(own).to_numpy(dtype=bool)
    out = df.copy(deep=False)
    out["direction"] = pd.Categorical.from_codes(
        np.where(sent, 0, 1).astype(np.int8), dtype=MESSAGE_DTYPES["direction"]
    )
    return out
