"""Correspondence analysis: the one module notebooks import.

Re-exports the identity (:mod:`mailhat_nb.identity`), duplicate-rule
(:mod:`mailhat_nb.dedupe`), metrics (:mod:`mailhat_nb.metrics`) and
data-health (:mod:`mailhat_nb.health`) functions and adds the exports (CSV,
Parquet, JSON records); the charts are in :mod:`mailhat_nb.charts`. Data passes in
and out of functions (no hidden state), so each notebook cell is one call::

    from mailhat_nb import charts, contacts as ca
    from mailhat_nb.sync.store import read_messages

    msgs = read_messages(store)                      # the sync's Parquet store
    me = ca.own_addresses(msgs, extra=["me@old.example"])   # who is "self", and why
    aliases = ca.suggest_aliases(msgs, me)           # the user ticks `accept`
    msgs = ca.apply_aliases(msgs, aliases)           # only accepted rows merge
    uniq = ca.unique_messages(msgs)                  # duplicate copies counted once
    people = ca.contacts(uniq, me)                   # contact, name, sent, received, ...
    charts.top_contacts_chart(people, 15)
    charts.volume_chart(ca.volume(uniq, me, "M"), names=people)
    charts.activity_heatmap(ca.activity(uniq, me, direction="sent"))
    charts.response_time_chart(ca.response_times(uniq, me))
    charts.data_health_chart(ca.data_health(msgs, server_counts, unique=uniq))
    ca.export(people, "contacts.csv")                # or .parquet / .json

The counting rules are stated in :mod:`mailhat_nb.metrics` (what
``sent``/``received`` count) and :mod:`mailhat_nb.dedupe` (the duplicate rule).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mailhat_nb.addresses import explode_lists
from mailhat_nb.dedupe import duplicate_groups, unique_messages
from mailhat_nb.errors import UsageError
from mailhat_nb.health import data_health
from mailhat_nb.identity import (
    apply_aliases,
    by_domain,
    is_sent_folder,
    own_addresses,
    suggest_aliases,
)
from mailhat_nb.metrics import (
    activity,
    contacts,
    response_medians,
    response_times,
    top_contacts,
    volume,
)

__all__ = [
    "activity",
    "apply_aliases",
    "by_domain",
    "contacts",
    "data_health",
    "duplicate_groups",
    "export",
    "is_sent_folder",
    "own_addresses",
    "response_medians",
    "response_times",
    "suggest_aliases",
    "to_csv",
    "to_parquet",
    "to_records",
    "top_contacts",
    "unique_messages",
    "volume",
]


# --------------------------------------------------------------------------- exports


def _jsonable(value: object) -> object:
    """One cell as JSON: timestamps ISO-8601, missing -> None, numpy -> Python."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    try:
        if pd.isna(value):  # type: ignore[call-overload]
            return None
    except (TypeError, ValueError):
        pass
    return value


def to_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Return the rows as JSON-ready dicts (what ``mailhat contacts --json`` prints).

    Dates become ISO-8601 strings with their UTC offset
    (``2001-10-01T14:03:00+00:00``), missing values ``None``, numpy scalars
    plain ints/floats, list cells lists. Runs per cell: meant for result
    tables (contacts, volume), not for a million-row messages frame.
    """
    cols = [str(c) for c in frame.columns]
    return [
        {c: _jsonable(v) for c, v in zip(cols, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def _list_columns(frame: pd.DataFrame) -> list[str]:
    out = []
    for col in frame.columns:
        s = frame[col]
        if isinstance(s.dtype, pd.ArrowDtype) and "list" in str(s.dtype.pyarrow_dtype):
            out.append(str(col))
        elif s.dtype == object:
            first = s.dropna().head(1)
            if len(first) and isinstance(first.iloc[0], (list, tuple, np.ndarray)):
                out.append(str(col))
    return out


def to_csv(frame: pd.DataFrame, path: str | Path | None = None) -> str | None:
    """Write ``frame`` as CSV (UTF-8), or return the text when ``path`` is None.

    List cells (recipients, defects) are joined with ``"; "`` because CSV has
    no lists and spreadsheets split on commas; dates are ISO-8601 with their
    offset, so a spreadsheet or another tool reads back the same instant.
    """
    out = frame.copy()
    for col in _list_columns(out):
        pos, vals = explode_lists(out[col])
        joined = pd.Series(vals.to_numpy(), index=pos).groupby(level=0).agg("; ".join)
        cells = joined.reindex(range(len(out)), fill_value="")
        out[col] = cells.to_numpy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].map(lambda t: t.isoformat() if not pd.isna(t) else "")
    try:
        if path is None:
            text: str = out.to_csv(index=False)
            return text
        out.to_csv(path, index=False, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return None


def to_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet (pyarrow); lists and tz-aware dates kept as such.

    Parquet keeps types exactly (a list of recipients stays a list, a UTC
    timestamp stays one), so pandas, DuckDB or Spark read back the same data.
    The file carries no pandas metadata, like the store's parts: pandas
    cannot read back its own metadata for pyarrow list columns.
    ``mailhat_nb.frames.conform`` re-types a messages frame read back.
    """
    target = Path(path)
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table.replace_schema_metadata(None), target)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except (pa.ArrowException, ValueError, TypeError) as exc:  # e.g. a mixed-type column
        raise UsageError(f"cannot store this frame as Parquet: {exc}") from exc
    return target


def export(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` as CSV, Parquet or JSON, chosen by its suffix."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        to_csv(frame, target)
    elif suffix in (".parquet", ".pq"):
        to_parquet(frame, target)
    elif suffix == ".json":
        try:
            target.write_text(json.dumps(to_records(frame), indent=2, ensure_ascii=False),
                              encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    else:
        raise UsageError(f"unknown export format {suffix!r}: use .csv, .parquet or .json")
    return target
