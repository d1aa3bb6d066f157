"""Analysis engines: the same contacts, volume, activity, response times and health.

On pandas, DuckDB or Spark:

* **pandas** (:mod:`mailhat_nb.contacts`): the reference; the store becomes
  one ``messages`` frame in memory (about 1 KB of memory per row at peak).
* **DuckDB** (:mod:`.duck`): embedded and out of core; reads the Parquet
  dataset column by column and keeps within a memory limit, spilling to disk.
* **Spark** (:mod:`.spark`): the same queries on a cluster (or ``local[*]``).

DuckDB and Spark run one definition of each query (:mod:`.queries`, with the
dialect differences in :mod:`.dialect`) through :class:`.run.Analysis`, and
return the pandas functions' frames, equal row by row.

API
---
``choose_engine(store, engine="auto") -> "pandas" | "duckdb" | "spark"``
``open_analysis(store, engine, *, spark_master=None, **identity) -> Analysis``
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mailhat_nb.errors import UsageError

if TYPE_CHECKING:
    from mailhat_nb.analysis.engines.run import Analysis, Backend

Engine = Literal["pandas", "duckdb", "spark"]
ENGINES = ("auto", "pandas", "duckdb", "spark")

#: ``auto`` picks DuckDB from this many stored rows on. The pandas path holds
#: the whole ``messages`` frame (about 1 KB per row at its peak) and grows
#: with the store, while DuckDB stays within its memory limit; from a hundred
#: thousand rows DuckDB is also the faster (``benchmarks/bench_engines.py``),
#: and below it pandas answers without DuckDB's start-up.
AUTO_DUCKDB_ROWS = 100_000


def stored_rows(store: Path | str, accounts: Iterable[str] | None = None) -> int:
    """Rows the store holds (for the chosen accounts), from the folders' state records."""
    from mailhat_nb.sync.store import Store

    wanted = None if accounts is None else {a.casefold() for a in accounts}
    return sum(p.rows for s in Store(store).states()
               if wanted is None or s.account.casefold() in wanted for p in s.parts)


def choose_engine(store: Path | str, engine: str = "auto",
                  accounts: Iterable[str] | None = None) -> Engine:
    """The engine to use: as asked, or by the store's size for ``auto`` (never Spark)."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "duckdb" if stored_rows(store, accounts) >= AUTO_DUCKDB_ROWS else "pandas"
    named: dict[str, Engine] = {"pandas": "pandas", "duckdb": "duckdb", "spark": "spark"}
    return named[engine]


def open_analysis(store: Path | str, engine: Engine, *, spark_master: str | None = None,
                  accounts: Iterable[str] | None = None, extra: Iterable[str] = (),
                  exclude: Iterable[str] = ()) -> Analysis:
    """An :class:`~.run.Analysis` of ``store`` on DuckDB or Spark (close it when done)."""
    from mailhat_nb.analysis.engines.run import Analysis

    backend: Backend
    if engine == "duckdb":
        from mailhat_nb.analysis.engines.duck import DuckBackend, memory_for

        backend = DuckBackend(memory_limit=memory_for(stored_rows(store, accounts)))
    elif engine == "spark":
        from mailhat_nb.analysis.engines.spark import LOCAL_MASTER, SparkBackend, spark_session

        backend = SparkBackend(spark_session(spark_master or LOCAL_MASTER))
    else:
        raise UsageError(f"open_analysis runs DuckDB or Spark, not {engine!r}")
    try:
        return Analysis(backend, store, accounts=accounts, extra=extra, exclude=exclude)
    except BaseException:
        backend.close()
        raise
