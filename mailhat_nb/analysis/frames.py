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


#: ``account`` and ``folder``: categories of whatever values the store holds.
_ANY_CATEGORY: Final = "category"


def _dtype(name: str, kind: str) -> Any:
    if kind == DICT:
        return pd.CategoricalDtype(list(CATEGORIES[name]))
    return "int64" if name in NOT_NULL else _KIND_DTYPES[kind]


#: Column name -> dtype, in column order (see the module docstring).
MESSAGE_DTYPES: Final[dict[str, Any]] = {
    "account": _ANY_CATEGORY,
    "folder": _ANY_CATEGORY,
    **{name: _dtype(name, kind) for name, kind in STORE_COLUMNS.items() if name != "defects"},
    "direction": pd.CategoricalDtype(list(DIRECTIONS)),
    "defects": LIST_DTYPE,
}

#: The ``messages`` columns, in order (DESIGN.md's, plus the parse extras).
MESSAGE_COLUMNS: Final[tuple[str, ...]] = tuple(MESSAGE_DTYPES)

_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "account": pa.string(), "folder": pa.string(), "direction": pa.string(),
    **{name: arrow_type(kind) for name, kind in STORE_COLUMNS.items()},
}


#: Arrow types whose pandas dtype is not the default one (see the module docstring).
_PANDAS_TYPES: Final[dict[pa.DataType, Any]] = {
    pa.large_string(): STR_DTYPE, pa.int64(): pd.Int64Dtype(), pa.int16(): pd.Int16Dtype()}


def _column(name: str, arr: pa.Array | pa.ChunkedArray) -> Any:
    """One Arrow column -> a pandas array of the contract dtype (``name``'s)."""
    dtype = MESSAGE_DTYPES[name]
    if isinstance(dtype, pd.CategoricalDtype) or dtype is _ANY_CATEGORY:
        if not pa.types.is_dictionary(arr.type):
            arr = arr.cast(pa.string()).dictionary_encode()
        values = pd.Categorical(arr.to_pandas())
        return values.set_categories(dtype.categories) \
            if isinstance(dtype, pd.CategoricalDtype) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if name in NOT_NULL:
        return arr.cast(pa.int64()).fill_null(NOT_NULL[name]).to_numpy(zero_copy_only=False)
    arr = arr.cast(_ARROW_TYPES[name])
    if dtype is LIST_DTYPE:
        return pd.arrays.ArrowExtensionArray(arr.fill_null(pa.scalar([], arr.type)))
    return pd.array(arr.to_pandas(types_mapper=_PANDAS_TYPES.get), dtype=dtype)


def _columns(arrays: Mapping[str, pa.Array | pa.ChunkedArray], n: int,
             names: Iterable[str]) -> dict[str, Any]:
    """``names`` as pandas arrays of the contract, from ``arrays`` (absent: empty values)."""
    out: dict[str, Any] = {}
    for name in names:
        arr = arrays[name] if name in arrays else pa.nulls(n, _ARROW_TYPES[name])
        try:
            out[name] = _column(name, arr)
        except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
            raise UsageError(
                f"messages column {name!r}: cannot convert the values ({exc})"
            ) from exc
    return out


def frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    """A table holding (some of) :data:`MESSAGE_COLUMNS` -> the typed ``messages`` frame.

    The one conversion to the contract: the store's tables
    (:func:`mailhat_nb.analysis.load.read_messages`), row dicts through the
    store's own :func:`~mailhat_nb.sync.rows.rows_to_table`
    (:func:`messages_frame`), and any frame (:func:`conform`) come through
    here. A column the table lacks takes its empty value; other columns are
    dropped.
    """
    arrays = {name: table.column(name) for name in table.column_names}
    return pd.DataFrame(_columns(arrays, table.num_rows, MESSAGE_COLUMNS),
                        columns=list(MESSAGE_COLUMNS))


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
    from mailhat_nb.sync.rows import rows_to_table

    rows = rows if isinstance(rows, list) else list(rows)
    with gc_paused():
        try:
            table = rows_to_table(rows, {n: _ARROW_TYPES[n]
                                         for n in ("account", "folder", "direction")})
        except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
            raise UsageError(f"messages {exc}") from exc
        return frame_from_arrow(table)


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
    n = len(df)
    kept = {name: df[name].array for name in MESSAGE_COLUMNS
            if name in df.columns and _same_dtype(df[name].dtype, MESSAGE_DTYPES[name])}
    redo = _columns({name: pa.array(df[name], from_pandas=True) for name in df.columns
                     if name in MESSAGE_DTYPES and name not in kept}, n,
                    [name for name in MESSAGE_COLUMNS if name not in kept])
    extra = {c: df[c].array for c in df.columns if c not in MESSAGE_DTYPES}
    return pd.DataFrame({name: kept.get(name, redo.get(name)) for name in MESSAGE_COLUMNS}
                        | extra, index=pd.RangeIndex(n))


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
    sent = df["from_addr"].isin(_norm(self_addrs)).to_numpy(dtype=bool)
    out = df.copy(deep=False)   # assign() copies every column on pandas 2.2 without copy-on-write
    out["direction"] = pd.Categorical.from_codes(np.where(sent, 0, 1).astype(np.int8),
                                                 dtype=MESSAGE_DTYPES["direction"])
    return out
