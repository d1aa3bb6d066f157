"""Result tables out of the notebook: CSV, Parquet, JSON records.

The formats a support agent or an analyst hands on: CSV for a spreadsheet
(lists joined, dates ISO-8601 with their offset), Parquet for pandas, DuckDB
or Spark (types kept), JSON records for ``mailhat contacts --json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mailhat_nb.analysis.addresses import explode_lists
from mailhat_nb.errors import UsageError


def _jsonable(value: object) -> object:
    """One cell as JSON: timestamps ISO-8601, missing -> None, numpy -> Python."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    try:
        if pd.isna(value):  # type: ignore[call-overload]  # any scalar; the stubs list a few
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


def team_records(people: pd.DataFrame, by_account: pd.DataFrame) -> list[dict[str, object]]:
    """The team view as ``mailhat contacts --json`` prints it.

    Each row of :func:`~mailhat_nb.analysis.team.team_contacts` (``owner``
    included) gains ``"accounts": {account: {"sent", "received"}}`` from
    :func:`~mailhat_nb.analysis.team.contacts_by_account`: only the accounts
    with at least one message with that contact.
    """
    per: dict[str, dict[str, dict[str, int]]] = {}
    table = by_account[["contact", "account", "sent", "received"]]
    for contact, account, sent, received in table.itertuples(index=False, name=None):
        per.setdefault(str(contact), {})[str(account)] = {"sent": int(sent),
                                                          "received": int(received)}
    rows = to_records(people)
    for row in rows:
        row["accounts"] = per.get(str(row["contact"]), {})
    return rows


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
        out[col] = joined.reindex(range(len(out)), fill_value="").to_numpy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].map(lambda t: t.isoformat() if not pd.isna(t) else "")
    try:
        return out.to_csv(path, index=False, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def to_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet (pyarrow); lists and tz-aware dates kept as such.

    Parquet keeps types exactly (a list of recipients stays a list, a UTC
    timestamp stays one), so pandas, DuckDB or Spark read back the same data.
    The file carries no pandas metadata, like the store's parts: pandas
    cannot read back its own metadata for pyarrow list columns.
    ``mailhat_nb.analysis.frames.conform`` re-types a messages frame read back.
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
