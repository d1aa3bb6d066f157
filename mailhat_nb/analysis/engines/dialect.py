"""The few places where DuckDB's SQL and Spark SQL differ, and nothing else.

Every query of :mod:`.queries` is written once, in the SQL both engines
share (joins, group-bys, window functions, ``CASE``, ``array_sort``,
``array_distinct``, ``concat`` of lists, ``trim``, ``median``); what they
spell differently goes through a :class:`Dialect`: lambdas (DuckDB
``lambda x: ...``, Spark ``x -> ...``), list functions and where their
indexes count from, a 64-bit hash,
microseconds since the epoch, bit shifts and exploding a list. String
literals avoid backslashes, which Spark un-escapes and DuckDB does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Dialect:
    """How one engine spells what the other spells differently."""

    name: str
    filter_fn: str          # keep the elements a lambda accepts
    size_fn: str            # number of elements of a list
    hash_fn: str            # a 64-bit hash of any number of values
    epoch_us_fn: str        # a timestamp as microseconds since 1970-01-01 UTC
    explode_fn: str         # one row per element of a list (in a SELECT list)
    last_fmt: str           # the last element of a list, NULL when empty
    empty_list: str         # an empty list of strings
    arrow: bool             # Spark's ``x -> body`` rather than DuckDB's ``lambda x: body``
    shl_fmt: str            # a 64-bit integer shifted left
    shr_fmt: str            # a 64-bit integer shifted right
    position_fn: str        # where a value first is in a list, counting from 1
    index_base: int         # what a filter lambda's index counts from

    def filter(self, items: str, var: str, cond: str) -> str:
        """``[var for var in items if cond]``."""
        lam = f"{var} -> {cond}" if self.arrow else f"lambda {var}: {cond}"
        return f"{self.filter_fn}({items}, {lam})"

    def first_places(self, items: str) -> str:
        """``items`` without repeats, in order: each element kept at its first place.

        A lambda over a handful of elements (a message's recipients) costs
        less than ``array_distinct``'s hash set per list.
        """
        place = "i" if self.index_base == 1 else f"i + {1 - self.index_base}"
        cond = f"{self.position_fn}({items}, x) = {place}"
        lam = f"(x, i) -> {cond}" if self.arrow else f"lambda x, i: {cond}"
        return f"{self.filter_fn}({items}, {lam})"

    def size(self, items: str) -> str:
        """The length of a list (NULL for a NULL list)."""
        return f"{self.size_fn}({items})"

    def last(self, items: str) -> str:
        """The last element of a list, NULL for an empty one (Spark's ``[i]`` counts from 0)."""
        return self.last_fmt.format(items)

    def hash(self, *values: str) -> str:
        """A 64-bit hash; equality of keys is all it is used for."""
        return f"{self.hash_fn}({', '.join(values)})"

    def epoch_us(self, ts: str) -> str:
        """Microseconds since the epoch of a UTC timestamp."""
        return f"{self.epoch_us_fn}({ts})"

    def shl(self, value: str, bits: str) -> str:
        """``value << bits``."""
        return self.shl_fmt.format(value, bits)

    def shr(self, value: str, bits: str) -> str:
        """``value >> bits``."""
        return self.shr_fmt.format(value, bits)

    def explode(self, items: str) -> str:
        """One row per element of ``items`` (NULL and empty lists give none)."""
        return f"{self.explode_fn}({items})"


DUCKDB: Final = Dialect(
    name="duckdb", filter_fn="list_filter", size_fn="len",
    hash_fn="hash", epoch_us_fn="epoch_us", explode_fn="unnest", last_fmt="{}[-1]",
    empty_list="CAST([] AS VARCHAR[])",
    arrow=False, shl_fmt="({} << {})", shr_fmt="({} >> {})",
    position_fn="list_position", index_base=1,
)
SPARK: Final = Dialect(
    name="spark", filter_fn="filter", size_fn="size",
    hash_fn="xxhash64", epoch_us_fn="unix_micros", explode_fn="explode",
    last_fmt="try_element_at({}, -1)", empty_list="CAST(array() AS ARRAY<STRING>)",
    arrow=True, shl_fmt="shiftleft({}, {})", shr_fmt="shiftright({}, {})",
    position_fn="array_position", index_base=0,
)
