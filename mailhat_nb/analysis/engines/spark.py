"""Apache Spark: the same queries past one machine (``local[*]`` here, a cluster in production).

Spark reads the store's Parquet dataset itself, from every executor, so the
store must be on storage they all see (a shared file system, HDFS, S3 with
the cluster's connector): ``--store`` is then the path or URL they share.
Partition values stay strings (a folder called ``2001`` is not a number),
and intermediate tables are checkpointed locally once built, so the label
propagation's passes do not recompute the whole lineage each time.

pyspark is an optional extra (``pip install 'mailhat_nb[spark]'``) and needs
a Java runtime (Debian's ``openjdk-17-jre-headless``); nothing imports it
unless ``--engine spark`` is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from mailhat_nb.analysis.engines.run import Source
from mailhat_nb.errors import MailhatError, UsageError

#: Where Spark runs when no master URL is given: every core of this machine.
LOCAL_MASTER = "local[*]"


def spark_session(master: str = LOCAL_MASTER, app_name: str = "mailhat") -> Any:
    """A SparkSession for the analysis (UTC, partition values kept as strings).

    Raises
    ------
    UsageError
        pyspark is not installed (it is the ``[spark]`` extra), or no Java
        runtime was found.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UsageError("--engine spark needs pyspark: pip install 'mailhat_nb[spark]' "
                         "(and a Java runtime, e.g. Debian's openjdk-17-jre-headless)") from exc
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
               .config("spark.sql.shuffle.partitions", "8")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", "1g"))
    if master.startswith("local"):
        # Local mode talks to itself only: keep the driver on loopback rather
        # than the address the host name resolves to.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")   # read by the JVM it starts
        builder = (builder.config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1"))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j/Java start-up failures come in several kinds
        raise UsageError(f"cannot start Spark at {master}: {exc} (is Java installed?)") from exc
    # Hadoop logs a stack trace at WARN for every glob it tries as a streaming
    # sink's metadata directory first: noise, not a problem.
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkBackend:
    """The analysis's tables as Spark temporary views.

    Parameters
    ----------
    session
        A SparkSession (:func:`spark_session`); the caller owns it, so a test
        session or a notebook can start Spark once and analyse many stores.
    """

    dialect_name = "spark"

    def __init__(self, session: Any) -> None:
        self.spark = session
        self._views: list[str] = []

    def _sql(self, sql: str) -> Any:
        try:
            return self.spark.sql(sql)
        except Exception as exc:  # AnalysisException, Py4JJavaError...: one boundary
            raise MailhatError(f"Spark failed: {exc}") from exc

    def source(self, store: Path) -> Source:
        """See :class:`~.run.Backend`."""
        import pyarrow.parquet as pq

        root = str(store)
        frame = (self.spark.read.option("basePath", root).option("mergeSchema", "true")
                 .parquet(f"{root}/account=*/folder=*/*.parquet"))
        frame.createOrReplaceTempView("store_rows")
        self._views.append("store_rows")
        return Source.of_parts("store_rows", (
            pq.read_schema(p).names for p in store.glob("account=*/folder=*/*.parquet")))

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """See :class:`~.run.Backend`.

        Rows and an explicit schema rather than the pandas frame: pyspark's
        pandas conversion warns about pandas 3, and cannot type an empty frame.
        """
        from pyspark.sql import types as spark_types

        kinds = {"i": spark_types.LongType(), "u": spark_types.LongType(),
                 "b": spark_types.BooleanType(), "f": spark_types.DoubleType()}
        schema = spark_types.StructType([
            spark_types.StructField(str(c), kinds.get(frame[c].dtype.kind,
                                                      spark_types.StringType()))
            for c in frame.columns])
        rows = [tuple(v.item() if hasattr(v, "item") else v for v in r)
                for r in frame.itertuples(index=False, name=None)]
        self.spark.createDataFrame(rows, schema).createOrReplaceTempView(name)
        self._views.append(name)

    def view(self, name: str, sql: str) -> None:
        """See :class:`~.run.Backend`."""
        self._sql(sql).createOrReplaceTempView(name)
        self._views.append(name)

    def table(self, name: str, sql: str) -> None:
        """See :class:`~.run.Backend`."""
        self._sql(sql).localCheckpoint(eager=True).createOrReplaceTempView(name)
        self._views.append(name)

    def frame(self, sql: str) -> pd.DataFrame:
        """See :class:`~.run.Backend`."""
        result = self._sql(sql)
        return pd.DataFrame([r.asDict() for r in result.collect()], columns=result.columns)

    def narrow(self, name: str, columns: list[str]) -> None:
        """See :class:`~.run.Backend`: a projection of the checkpointed rows."""
        self._sql(f"SELECT {', '.join(columns)} FROM {name}").createOrReplaceTempView(name)

    def drop(self, name: str) -> None:
        """See :class:`~.run.Backend`."""
        self.spark.catalog.dropTempView(name)

    def close(self) -> None:
        """See :class:`~.run.Backend`."""
        for name in dict.fromkeys(self._views):
            self.spark.catalog.dropTempView(name)
