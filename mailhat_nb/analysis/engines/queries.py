"""Every query of the out-of-core analysis, written once for DuckDB and Spark.

The queries restate, in SQL, the pandas definitions of :mod:`..identity`,
:mod:`..dedupe`, :mod:`..metrics` and :mod:`..health` (those are the
reference; ``tests/test_engines.py`` compares the two row by row). What the
engines spell differently goes through :class:`~.dialect.Dialect`.

The tables, in the order :class:`~.run.Analysis` builds them:

``folders``  (registered from Python) one row per stored folder, in store
             order (account, then folder, by code point): the partition
             values the engine reads (``akey``, ``fkey``), the real names,
             whether the folder's name says Sent.
``src``      the Parquet rows joined to ``folders``: a view, read again by
             each query that needs it (projection and predicate pushdown keep
             each read to the columns and accounts it uses).
``cand``, ``core``  (registered) per account, the Delivered-To addresses to
             check and the addresses they must not have written to.
``me``, ``owners``  (registered) the team's addresses, and whose each one is.
``fv``       (registered) each folder's UIDVALIDITY values, ranked.
``m``        one narrow row per stored row: position, keys of the duplicate
             rule as 64-bit hashes, what data health counts; no strings.
``hper``     per (folder, UIDVALIDITY) rank: the rows and data health's facts.
``gck``      per content key: its smallest position; whether its rows carry
             different recipient lists (``mixed``).
``rk``       the rows under a mixed key: their key with the recipient set.
``lab``      each row's message label (connected components of the two
             keys, across the team).
``kept``     per message: the row that stands for it (and who holds it, how many rows).
``held``     (message, account, copies): whose mailboxes hold a copy, for teams
             of more than ``MASK_ACCOUNTS`` accounts (else ``kept``'s and ``u``'s ``mask``).
``hdup``     per rank: the rows whose account holds another copy (data health).
             From here on ``lab`` keeps only each row's Message-ID and label
             (what the replies need), before the widest table is built.
``u``        the unique messages: the kept rows, read again from the store
             with the strings and lists the metrics need.
``sends``    (message, account): who sent a message of the team (internal mail).
``rg``, ``sg``  per contact (and mask), the messages received from it and sent to it.
``rt``       the timed replies: replier and hours, what the histogram bins.

Positions: a row's position is ``rank * 2**32 + uid``, where the rank orders
(account, folder, UIDVALIDITY) as docs/team.md's store order does: wherever
the pandas code says "the first row in store order", the SQL says "the
smallest position".

Hashes: the duplicate rule's keys and Message-IDs are compared through 64-bit
hashes: two different keys share a hash with odds about n**2 / 2**65 (3 in a
million at ten million rows), the price of never holding the strings of ten
million Message-IDs in memory. A store whose every part carries the keys the
writer hashed (``id_key``, ``parent_key``, ``content_key``: :mod:`mailhat_nb.sync.keys`)
is read through them (:attr:`Queries.keyed`); an older one is hashed here
(DuckDB ``hash``, Spark ``xxhash64``), by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhat_nb.analysis.engines.metrics_sql import MetricQueries
from mailhat_nb.analysis.engines.rows_sql import RowQueries
from mailhat_nb.analysis.engines.sql_base import MASK_ACCOUNTS

__all__ = ["MASK_ACCOUNTS", "Queries"]


@dataclass(frozen=True)
class Queries(RowQueries, MetricQueries):
    """The SQL of every step, for one dialect and one store read.

    The rows and the duplicate rule are :class:`~.rows_sql.RowQueries`, the
    metrics :class:`~.metrics_sql.MetricQueries`, both built on
    :class:`~.sql_base.QueryBase`'s fields and expressions.
    """
