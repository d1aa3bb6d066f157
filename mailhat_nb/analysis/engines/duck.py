"""DuckDB: the embedded, out-of-core engine (one process, bounded memory, spills to disk).

DuckDB reads the store's Parquet parts itself, only the columns a query
names (projection pushdown) and only the chosen accounts' directories
(hive partitions: predicate pushdown), and runs every step with at most
``memory_limit`` of memory, spilling what does not fit to a temporary
directory. The glob names ``account=*/folder=*/*.parquet`` exactly: ``**``
would also read ``_retired/`` (DuckDB does not skip ``_`` paths), and the
parts' ``_tmp-*.tmp`` files do not end in ``.parquet``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mailhat_nb.analysis.engines.run import Source
from mailhat_nb.errors import MailhatError

#: Memory DuckDB may use before it spills to disk (Python's own memory comes on top),
#: when nothing says how big the store is.
MEMORY_LIMIT = "512MB"
#: :func:`memory_for`: DuckDB's memory per stored row, and its bounds.
BYTES_PER_ROW = 100
MIN_MEMORY_MB, MAX_MEMORY_MB = 256, 768


def memory_for(rows: int) -> str:
    """DuckDB's ``memory_limit`` for a store of ``rows`` rows.

    The widest tables (a narrow row per stored row, the unique messages
    with their strings) grow with the store: about a hundred bytes a row
    keeps them in memory, and everything spilled is written and read back
    by every query that follows. A small store gets little (it needs
    little); the cap keeps the whole process, Python's part included,
    under 1.5 GB at any size: beyond it DuckDB spills.
    """
    mb = min(max(rows * BYTES_PER_ROW // 2**20, MIN_MEMORY_MB), MAX_MEMORY_MB)
    return f"{mb}MB"


class DuckBackend:
    """A DuckDB connection set up for one analysis (see the module docstring).

    Parameters
    ----------
    memory_limit
        DuckDB's ``memory_limit`` (e.g. ``"1GB"``); beyond it, intermediate
        results spill to ``temp_dir``.
    threads
        Worker threads (default: the machine's cores).
    temp_dir
        Where to spill; default a fresh directory under the system's temp
        directory, removed by :meth:`close`.
    """

    dialect_name = "duckdb"

    def __init__(self, memory_limit: str = MEMORY_LIMIT, threads: int | None = None,
                 temp_dir: str | os.PathLike[str] | None = None) -> None:
        import duckdb

        self._own_tmp = (tempfile.TemporaryDirectory(prefix="mailhat-duckdb-")
                         if temp_dir is None else None)
        spill = self._own_tmp.name if self._own_tmp is not None else str(temp_dir)
        config: dict[str, Any] = {
            "memory_limit": memory_limit,
            "threads": threads or os.cpu_count() or 1,
            "temp_directory": spill,
            # Results are sorted where order matters; the rest need not keep
            # the scan's order, which lets DuckDB stream and spill freely.
            "preserve_insertion_order": False,
        }
        try:
            self.con = duckdb.connect(":memory:", config=config)
            self.con.execute("SET TimeZone = 'UTC'")
            # Each query reads the same parts' footers: keep them parsed (a
            # setting of the parquet extension, so set once it is loaded).
            self.con.execute("SET parquet_metadata_cache = true")
        except duckdb.Error as exc:
            raise MailhatError(f"cannot start DuckDB: {exc}") from exc
        self._error = duckdb.Error

    def source(self, store: Path) -> Source:
        """See :class:`~.run.Backend`.

        The parts' footers are read once here (``parquet_schema``). When
        every part has the same columns, DuckDB binds each query to the first
        part's; only a store whose parts differ (some written before a column
        existed) needs ``union_by_name``, which reads every footer again for
        every query.
        """
        glob = str(store / "account=*" / "folder=*" / "*.parquet").replace("'", "''")
        try:
            shapes = {frozenset(names) for (names,) in self._run(
                f"SELECT list(name) FROM parquet_schema('{glob}') GROUP BY file_name"
            ).fetchall()}
        except MailhatError:    # no part at all: the queries say so, as before
            shapes = set()
        union = "false" if len(shapes) == 1 else "true"
        return Source.of_parts(f"read_parquet('{glob}', hive_partitioning = true, "
                               f"union_by_name = {union}, "
                               f"hive_types = {{'account': VARCHAR, 'folder': VARCHAR}})",
                               shapes)

    def _run(self, sql: str) -> Any:
        try:
            return self.con.execute(sql)
        except self._error as exc:
            raise MailhatError(f"DuckDB failed: {exc}") from exc

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """See :class:`~.run.Backend`."""
        self.con.register(f"{name}_frame", frame)
        self._run(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_frame")
        self.con.unregister(f"{name}_frame")

    def view(self, name: str, sql: str) -> None:
        """See :class:`~.run.Backend`."""
        self._run(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")

    def table(self, name: str, sql: str) -> None:
        """See :class:`~.run.Backend`."""
        self._run(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def frame(self, sql: str) -> pd.DataFrame:
        """See :class:`~.run.Backend`."""
        result: pd.DataFrame = self._run(sql).df()
        return result

    def narrow(self, name: str, columns: list[str]) -> None:
        """See :class:`~.run.Backend`: dropping a column frees it at once, copying nothing."""
        have = [r[0] for r in self._run(f"DESCRIBE {name}").fetchall()]
        for column in have:
            if column not in columns:
                self._run(f"ALTER TABLE {name} DROP COLUMN {column}")

    def drop(self, name: str) -> None:
        """See :class:`~.run.Backend`."""
        self._run(f"DROP TABLE IF EXISTS {name}")

    def close(self) -> None:
        """See :class:`~.run.Backend`."""
        self.con.close()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
