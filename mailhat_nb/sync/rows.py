"""Fetched messages -> parsed rows -> Arrow tables in the store's schema.

This is the CPU-heavy half of a sync (header parsing, Arrow conversion and
Parquet; the socket and its lexer stay in the sync's process), so it is
written to run in a worker process:
:func:`process_chunk` takes plain picklable data (a :class:`ChunkJob`),
parses, converts and writes the chunk's Parquet file under a temporary
name, and returns only what the committing process needs. It imports
pyarrow and the parser, never pandas: a worker starts in a fraction of a
second, and a sync that finds little to do never pays pandas' import.

The tables are in the one schema of a stored message,
:mod:`mailhat_nb.sync.schema`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailhat_nb.errors import StoreError, reason
from mailhat_nb.sync.fetch import FetchedMessage
from mailhat_nb.sync.schema import DICT, LIST, NOT_NULL, STORE_COLUMNS, arrow_type, store_schema

if TYPE_CHECKING:
    import pyarrow as pa


def rows_to_table(rows: Sequence[Mapping[str, Any]],
                  extra: Mapping[str, pa.DataType] | None = None) -> pa.Table:
    """Row dicts (parse output plus the server's facts) -> a table in :func:`store_schema`.

    Missing keys take the frame's empty values: null, ``[]`` for lists, 0
    for ``uid``, ``uidvalidity`` and ``size``. The keys of the first row are
    transposed with one ``itemgetter`` call per row and ``zip``, both in C
    (a per-column comprehension costs more than the parse of a header); a
    key some row lacks is read per column. ``extra`` columns (the frame's
    ``account`` and ``folder``) follow the schema's, typed as given.
    """
    import pyarrow as pa

    extra = extra or {}
    names = [n for n in (*STORE_COLUMNS, *extra) if rows and n in rows[0]]
    columns: dict[str, Sequence[Any]] = {}
    if names:
        getter = itemgetter(*names)
        try:
            tuples = [getter(r) for r in rows]
        except KeyError:
            names = []
        else:
            columns = dict(zip(names, zip(*tuples, strict=True) if len(names) > 1
                               else [tuples], strict=True))
    fixed: dict[str, Sequence[Any]] = {}
    for name, kind in STORE_COLUMNS.items():
        values = columns[name] if name in columns else [r.get(name) for r in rows]
        if None in values:
            if kind == LIST:
                values = [v if v is not None else [] for v in values]
            elif name in NOT_NULL:
                values = [v if v is not None else 0 for v in values]
        fixed[name] = values
    table = columns_to_table(fixed)
    for name, kind in extra.items():
        table = table.append_column(name, pa.array(
            columns[name] if name in columns else [r.get(name) for r in rows], kind))
    return table


def columns_to_table(columns: Mapping[str, Sequence[Any] | pa.Array]) -> pa.Table:
    """One sequence (or Arrow array) per :data:`STORE_COLUMNS` name -> a table.

    The values must already be the frame's: no None in list columns, nor in
    ``uid``, ``uidvalidity`` and ``size``.
    """
    import pyarrow as pa

    arrays = []
    for name, kind in STORE_COLUMNS.items():
        values = columns[name]
        try:
            if isinstance(values, pa.Array):
                arrays.append(values)
            elif kind == DICT:
                arr = pa.array(values, pa.large_string()).dictionary_encode()
                arrays.append(arr.cast(arrow_type(kind)))
            else:
                arrays.append(pa.array(values, arrow_type(kind)))
        except (TypeError, ValueError, OverflowError) as exc:  # Arrow's are among them
            raise type(exc)(f"column {name!r}: {exc}") from exc
    return pa.Table.from_arrays(arrays, schema=store_schema())


@dataclass(frozen=True)
class ChunkJob:
    """One fetched chunk, as a worker needs it: plain lists, one per server fact.

    Column lists, not :class:`~.fetch.FetchedMessage` objects, because the
    job crosses a pipe: pickling and unpickling many small dataclass
    instances costs several times the CPU of the same data as lists.
    ``gm_*`` are None when no message in the chunk has them (not Gmail).
    """

    role: str
    uidvalidity: int
    tmp_path: str
    uids: list[int]
    headers: list[bytes]
    internaldates: list[datetime | None]
    sizes: list[int]
    flags: list[tuple[str, ...]]
    gm_msgids: list[int | None] | None = None
    gm_thrids: list[int | None] | None = None
    gm_labels: list[tuple[str, ...] | None] | None = None

    @classmethod
    def from_messages(cls, messages: Sequence[FetchedMessage], role: str, uidvalidity: int,
                      tmp_path: str) -> ChunkJob:
        """The job for ``messages``."""
        gmail = any(m.gm_msgid is not None or m.gm_thrid is not None
                    or m.gm_labels is not None for m in messages)
        return cls(
            role, uidvalidity, tmp_path,
            uids=[m.uid for m in messages],
            headers=[m.header or b"" for m in messages],
            internaldates=[m.internaldate for m in messages],
            sizes=[m.size or 0 for m in messages],
            flags=[m.flags for m in messages],
            gm_msgids=[m.gm_msgid for m in messages] if gmail else None,
            gm_thrids=[m.gm_thrid for m in messages] if gmail else None,
            gm_labels=[m.gm_labels for m in messages] if gmail else None,
        )

    def __len__(self) -> int:
        return len(self.uids)


def chunk_to_table(job: ChunkJob) -> pa.Table:
    """Parse a chunk's header blocks and add the server's facts: the chunk's table.

    Column by column from the start (:func:`~.parse.parse_columns`): no row
    dicts. Constant columns (role, UIDVALIDITY) are built by Arrow, not from
    lists of 5,000 equal values.
    """
    import pyarrow as pa

    from mailhat_nb.sync.parse import parse_columns

    n = len(job.uids)
    columns: dict[str, Sequence[Any] | pa.Array] = dict(
        parse_columns(job.headers, job.internaldates))
    columns["folder_role"] = pa.DictionaryArray.from_arrays(
        pa.repeat(pa.scalar(0, pa.int8()), n), pa.array([job.role], pa.large_string()))
    columns["uidvalidity"] = pa.repeat(pa.scalar(job.uidvalidity, pa.int64()), n)
    columns["uid"] = job.uids
    columns["size"] = job.sizes
    columns["flags"] = job.flags
    columns["internaldate"] = job.internaldates
    if job.gm_msgids is None or job.gm_thrids is None or job.gm_labels is None:
        columns["gm_msgid"] = pa.nulls(n, pa.int64())
    else:
        columns["gm_msgid"] = job.gm_msgids
        # the server's labels and thread id, where it sent them, over the headers'
        columns["gm_thrid"] = [s if s is not None else h
                               for s, h in zip(job.gm_thrids, columns["gm_thrid"], strict=True)]
        columns["labels"] = [s if s is not None else h
                             for s, h in zip(job.gm_labels, columns["labels"], strict=True)]
    return columns_to_table(columns)


@dataclass(frozen=True)
class ChunkDone:
    """What a worker hands back (small on purpose: see :mod:`.worker`)."""

    tmp_path: str
    rows: int


def write_parquet(table: pa.Table, path: str | Path) -> None:
    """Write and fsync one Parquet part (zstd), with the rows' keys (:func:`~.keys.with_keys`)."""
    import pyarrow.parquet as pq

    from mailhat_nb.sync.keys import with_keys

    with open(path, "wb") as fh:
        pq.write_table(with_keys(table), fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())


def process_chunk(job: ChunkJob) -> ChunkDone:
    """Parse, convert and write one chunk under its temporary name (worker entry point).

    Raises
    ------
    StoreError
        The rows could not be converted or written (disk full, a value Arrow
        refuses); pyarrow's and the OS's errors are translated here, the
        store's boundary.
    """
    import pyarrow as pa

    try:
        write_parquet(chunk_to_table(job), job.tmp_path)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot write a chunk of {len(job)} rows to {job.tmp_path}: "
                         f"{reason(exc)}") from exc
    return ChunkDone(job.tmp_path, len(job))


def warm_up() -> int:
    """Import what a worker needs, so the first chunk does not wait for it."""
    import pyarrow.parquet  # noqa: F401 - imported for its start-up time, not a name

    import mailhat_nb.sync.parse  # noqa: F401 - the same

    return os.getpid()
