"""What every query of :mod:`.queries` is built from: one engine's spelling and the store's facts.

The constants of positions and masks, SQL literals, and the expressions the
row queries (:mod:`.rows_sql`) and the metrics (:mod:`.metrics_sql`) share.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhat_nb.analysis.dedupe import SUSPECT_BEFORE
from mailhat_nb.analysis.engines.dialect import Dialect
from mailhat_nb.analysis.identity import SENT_LABELS

#: Teams of up to this many accounts have who holds each message as a 64-bit mask.
MASK_ACCOUNTS = 62
#: Positions are ``folder rank * 2**32 + uid``; a copy's preference goes above them.
RANK_SHIFT = 2**32
PREF_SHIFT = 2**60
US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
WS = " \t\n\r\f\v"                              # whitespace, without a backslash


def quote(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def in_list(values: frozenset[str] | set[str]) -> str:
    """``values`` as an SQL ``IN`` list, sorted (the same SQL text every run)."""
    return "(" + ", ".join(quote(v) for v in sorted(values)) + ")"


@dataclass(frozen=True)
class QueryBase:
    """One dialect and one store read: the fields every query reads, and shared expressions."""

    d: Dialect
    source: str          # the raw Parquet rows: a table function or a view name
    now_us: int          # "now" for the plausible-date rule, fixed once per run
    masks: bool = False  # who holds a message as a bit mask of accounts (MASK_ACCOUNTS or fewer)
    keyed: bool = False  # every part carries the keys the store writes (sync.keys)
    repeats: bool = False  # every part flags its repeated recipients (sync.keys)

    def bit(self, aid: str) -> str:
        """The bit of account ``aid`` in a mask."""
        return self.d.shl("CAST(1 AS BIGINT)", aid)

    def holds(self, mask: str, aid: str) -> str:
        """Whether ``mask`` has account ``aid``'s bit."""
        return f"({self.d.shr(mask, aid)} & 1) = 1"

    # ------------------------------------------------------------------ expressions

    @staticmethod
    def trim(expr: str, chars: str = WS) -> str:
        """``expr`` without leading and trailing ``chars`` (SQL's ``trim``, no regex)."""
        return f"trim(BOTH {quote(chars)} FROM {expr})"

    @staticmethod
    def addr(expr: str) -> str:
        """An address as the analysis compares it (blank = NULL).

        The store holds addresses as the parser wrote them, stripped and
        lower-cased (DESIGN.md, "Frames"); the pandas path normalises again
        for frames built by hand, which a store never holds.
        """
        return f"nullif({expr}, '')"

    def clean_id(self, expr: str) -> str:
        """A Message-ID without blanks and angle brackets; blank = NULL (``clean_ids``).

        The parser stores IDs bare, so only a value whose first or last
        character could be a blank or a bracket is trimmed (a cheap test of
        character codes first: any control character or space, ``<``, ``>``;
        the trims leave other control characters as they are).
        """
        def edge(char: str) -> str:
            return f"(ascii({char}) <= 32 OR ascii({char}) IN (60, 62))"
        slow = self.trim(self.trim(self.trim(expr), "<>"))
        return (f"nullif(CASE WHEN {edge(expr)} OR {edge(f'right({expr}, 1)')} "
                f"THEN {slow} ELSE {expr} END, '')")

    def rcpts(self, *, ordered: bool = True) -> str:
        """The recipients of a row: To + Cc, distinct (and sorted, for a set key).

        Taken as stored: the parser lower-cases and strips every address it
        writes (DESIGN.md, "Frames"), so normalising each element again, as
        the pandas path does for frames built by hand, would cost a lambda
        per address and change nothing.
        """
        d = self.d
        to = f"coalesce(r.to_addrs, {d.empty_list})"
        cc = f"coalesce(r.cc_addrs, {d.empty_list})"
        both = f"concat({to}, {cc})"
        if ordered:
            return f"array_sort(array_distinct({both}))"
        if self.repeats:     # the writer flagged the lists that repeat an address
            return f"CASE WHEN r.rcpt_repeats THEN {d.first_places(both)} ELSE {both} END"
        # One address and no Cc (most mail) is distinct already.
        return (f"CASE WHEN {d.size(cc)} = 0 AND {d.size(to)} <= 1 THEN {to} "
                f"ELSE {d.first_places(both)} END")

    def sent_row(self) -> str:
        """Whether a row is filed as sent mail (``identity.is_sent_folder``)."""
        d = self.d
        role = f"nullif(lower({self.trim('CAST(r.folder_role AS STRING)')}), '')"
        labels = ", ".join("concat(chr(92), " + quote(x[1:]) + ")"  # no backslash in SQL
                           if x.startswith(chr(92)) else quote(x) for x in sorted(SENT_LABELS))
        hit = d.filter("r.labels", "x", f"lower({self.trim('x')}) IN ({labels})")
        # The lambda runs only where there are labels (Gmail): most rows have none.
        by_label = f"CASE WHEN {d.size('r.labels')} > 0 THEN {d.size(hit)} > 0 ELSE false END"
        return (f"(CASE WHEN {role} IS NOT NULL THEN {role} = 'sent' ELSE r.name_sent END "
                f"OR coalesce({by_label}, false))")

    def plausible(self, us: str) -> str:
        """A date that could be real: after 1990, not ahead of now (``dedupe.plausible``)."""
        low = SUSPECT_BEFORE.value // 1000
        high = self.now_us + US_PER_DAY
        return f"({us} >= {low} AND {us} <= {high})"

    @staticmethod
    def pos() -> str:
        """A row's position (see :mod:`.queries`)."""
        return f"(r.vrank * {RANK_SHIFT} + r.uid)"

    @staticmethod
    def vrank(pos: str) -> str:
        """The (folder, UIDVALIDITY) rank of a position: its high bits."""
        return f"CAST(floor({pos} / {RANK_SHIFT}) AS BIGINT)"

    def _first_last(self, ts: str = "ts") -> tuple[str, str]:
        """The first and last plausible date of a group, in microseconds."""
        us = self.d.epoch_us(ts)
        ok = self.plausible(us)
        return f"min(CASE WHEN {ok} THEN {us} END)", f"max(CASE WHEN {ok} THEN {us} END)"

    def _owned(self) -> str:
        """Per team address, the mask of the accounts that own it."""
        return f"SELECT address, bit_or({self.bit('aid')}) AS om FROM owners GROUP BY address"
