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

from mailhat_nb.analysis.dedupe import HEADER_DATE_SOURCES, SUSPECT_BEFORE
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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in_list(values: frozenset[str] | set[str]) -> str:
    return "(" + ", ".join(_quote(v) for v in sorted(values)) + ")"


@dataclass(frozen=True)
class Queries:
    """The SQL of every step, for one dialect and one store read."""

    d: Dialect
    source: str          # the raw Parquet rows: a table function or a view name
    now_us: int          # "now" for the plausible-date rule, fixed once per run
    masks: bool = False  # who holds a message as a bit mask of accounts (MASK_ACCOUNTS or fewer)
    keyed: bool = False  # every part carries the keys the store writes (sync.keys)

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
        return f"trim(BOTH {_quote(chars)} FROM {expr})"

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
        # One address and no Cc (most mail) is distinct already.
        return (f"CASE WHEN {d.size(cc)} = 0 AND {d.size(to)} <= 1 THEN {to} "
                f"ELSE {d.first_places(both)} END")

    def sent_row(self) -> str:
        """Whether a row is filed as sent mail (``identity.is_sent_folder``)."""
        d = self.d
        role = f"nullif(lower({self.trim('CAST(r.folder_role AS STRING)')}), '')"
        labels = ", ".join("concat(chr(92), " + _quote(x[1:]) + ")"  # no backslash in SQL
                           if x.startswith(chr(92)) else _quote(x) for x in sorted(SENT_LABELS))
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

    # ------------------------------------------------------------------ the rows

    def src(self, accounts: list[str] | None) -> str:
        """The stored rows of the chosen accounts, with the folder's facts."""
        where = f"WHERE r.account IN {_in_list(set(accounts))}" if accounts else ""
        return (f"SELECT r.*, f.aid, f.fid, f.fid AS frank, f.name_sent, "
                f"{self.addr('r.from_addr')} AS sender "
                f"FROM {self.source} r JOIN folders f "
                f"ON r.account = f.akey AND r.folder = f.fkey {where}")

    def senders(self) -> str:
        """Per account and sender: rows from it, and how many of those are sent mail."""
        return (f"SELECT aid, sender, count(*) AS messages, "
                f"sum(CASE WHEN {self.sent_row()} THEN 1 ELSE 0 END) AS sent_rows "
                f"FROM src r WHERE sender IS NOT NULL GROUP BY aid, sender")

    def delivered_to(self) -> str:
        """Every Delivered-To address, per account."""
        return (f"SELECT DISTINCT aid, {self.addr('x')} AS a FROM (SELECT DISTINCT aid, "
                f"{self.d.explode('delivered_to')} AS x FROM src) t "
                f"WHERE {self.addr('x')} IS NOT NULL")

    def wrote_to(self) -> str:
        """Which ``cand`` senders wrote to their account's ``core``, outside its sent mail."""
        return (f"SELECT DISTINCT t.aid, t.sender FROM (SELECT r.aid, r.sender, "
                f"{self.d.explode(self.rcpts())} AS rc FROM src r JOIN cand c "
                f"ON r.aid = c.aid AND r.sender = c.address "
                f"WHERE NOT {self.sent_row()}) t "
                f"JOIN core ON t.aid = core.aid AND t.rc = core.address")

    @staticmethod
    def versions() -> str:
        """The (folder, UIDVALIDITY) pairs, which order the rows after the folder."""
        return "SELECT DISTINCT fid, uidvalidity FROM src"

    @staticmethod
    def pos() -> str:
        """A row's position (see the module docstring)."""
        return f"(r.vrank * {RANK_SHIFT} + r.uid)"

    @staticmethod
    def ranked() -> str:
        """``src`` with each row's (folder, UIDVALIDITY) rank, for positions."""
        return ("SELECT s.*, v.vrank FROM src s JOIN fv v "
                "ON s.fid = v.fid AND s.uidvalidity = v.uidvalidity")

    def messages(self) -> str:
        """``m``: one narrow row per stored row, only fixed-width values (and rare defects).

        ``ck`` is the content key without the recipients, and ``rr`` a hash of
        the recipient lists exactly as stored: rows sharing ``ck`` and ``rr``
        have the same recipient set, so the order-free set key, the costly
        part, is built by :meth:`recipient_keys` only where a content key
        holds two different ``rr``. The strings the metrics read are taken
        later, for the kept rows only (:meth:`unique`).

        A :attr:`keyed` store holds the keys already (``id_key``, and
        ``content_key`` with the recipient set in it, so no ``rr``): no string
        is read. A row without a Date has no content key; its position stands
        in, as here.
        """
        d = self.d
        no_date = "(r.date IS NULL)"
        header = _in_list(HEADER_DATE_SOURCES)
        pref = f"CASE WHEN lower(CAST(r.date_source AS STRING)) IN {header} THEN 0 ELSE 1 END"
        content = d.hash("coalesce(r.sender, '')", "r.sender IS NULL",
                         "coalesce(r.subject, '')", "r.subject IS NULL", no_date,
                         f"CASE WHEN {no_date} THEN {self.pos()} ELSE {d.epoch_us('r.date')} END")
        raw = d.hash(f"coalesce(r.to_addrs, {d.empty_list})",
                     f"coalesce(r.cc_addrs, {d.empty_list})")
        # Data health's facts of the row, as small integers: 1 for no date, 2 for an
        # implausible one; whether the parser noted a defect.
        dq = (f"CASE WHEN {no_date} THEN 1 WHEN NOT {self.plausible(d.epoch_us('r.date'))} "
              f"THEN 2 ELSE 0 END")
        bad = f"CASE WHEN {d.size('r.defects')} > 0 THEN 1 ELSE 0 END"
        if self.keyed:
            return f"""
                SELECT {self.pos()} AS pos, CAST(r.aid AS INT) AS aid, r.id_key AS idk,
                       coalesce(r.content_key, {d.hash(self.pos())}) AS ck,
                       CAST({pref} AS TINYINT) AS pref,
                       CAST({dq} AS TINYINT) AS dq, CAST({bad} AS TINYINT) AS bad
                FROM srcv r"""
        # The IDs are cleaned once, in the inner query, then hashed.
        return f"""
            SELECT pos, aid, CASE WHEN mid IS NULL THEN NULL ELSE {d.hash('mid')} END AS idk,
                   ck, rr, pref, dq, bad
            FROM (SELECT {self.pos()} AS pos, CAST(r.aid AS INT) AS aid,
                         CAST({pref} AS TINYINT) AS pref, CAST({dq} AS TINYINT) AS dq,
                         CAST({bad} AS TINYINT) AS bad,
                         {self.clean_id('r.message_id')} AS mid, {content} AS ck, {raw} AS rr
                  FROM srcv r) t"""

    def content_groups(self) -> str:
        """``gck``: per content key, its smallest position, and whether it is ``mixed``.

        Mixed: its rows carry different recipient lists (as stored), so the
        recipient sets must be compared (:meth:`recipient_keys`) before the
        key says which rows are one message. A :attr:`keyed` store's content
        keys hold the recipient set: none is mixed.
        """
        if self.keyed:
            return "SELECT ck, min(pos) AS lc FROM m GROUP BY ck"
        return ("SELECT ck, min(pos) AS lc, CASE WHEN min(rr) <> max(rr) THEN 1 ELSE 0 END "
                "AS mixed FROM m GROUP BY ck")

    def recipient_keys(self) -> str:
        """``rk``: the rows of the mixed content keys, their full key and its smallest position."""
        full = self.d.hash("x.ck", "x.rh")
        return f"""
            SELECT pos, ck, min(pos) OVER (PARTITION BY ck) AS lc
            FROM (SELECT x.pos, {full} AS ck
                  FROM (SELECT mm.pos, mm.ck, {self.d.hash(self.rcpts())} AS rh
                        FROM srcv r JOIN (SELECT pos, ck FROM m WHERE ck IN (
                                              SELECT ck FROM gck WHERE mixed = 1)) mm
                        ON {self.pos()} = mm.pos) x) t"""

    @staticmethod
    def no_recipient_keys() -> str:
        """An empty ``rk`` (no content key is mixed), typed as :meth:`recipient_keys`."""
        return "SELECT pos, ck, pos AS lc FROM m WHERE 1 = 0"

    def unique(self) -> str:
        """``u``: the unique messages, each its kept row's values and label.

        A second read of the store, joined to ``kept``: the strings and lists
        are read, and the parent's ID cleaned, for the kept rows only; no
        string is held for every stored row. ``mine``: the team sent it (its
        From is one of the team's addresses), found once here for every
        query that asks; only then are its recipients kept (``rcpts``).
        """
        d = self.d
        more = ", mask" if self.masks else ""
        if self.keyed:
            parent, par_h = "r.parent_key", "parent"
        else:
            parent = (f"coalesce({self.clean_id('r.in_reply_to')}, "
                      f"{self.clean_id(d.last('r.references'))})")
            par_h = f"CASE WHEN parent IS NULL THEN NULL ELSE {d.hash('parent')} END"
        return f"""
            SELECT pos, sender, from_name, ts, offset_min, {par_h} AS par_h,
                   mine, CASE WHEN mine THEN {self.rcpts(ordered=False)} END AS rcpts, l{more}
            FROM (SELECT k.kpos AS pos, r.sender, r.from_name,
                         r.date AS ts, CAST(r.date_offset_min AS INT) AS offset_min,
                         {parent} AS parent,
                         coalesce(r.sender IN (SELECT address FROM me), false) AS mine,
                         r.to_addrs, r.cc_addrs, k.l{more}
                  FROM srcv r JOIN kept k ON {self.pos()} = k.kpos) r"""

    # ------------------------------------------------------------------ the duplicate rule

    @staticmethod
    def first_labels() -> str:
        """Each row's full key and its label after a first pass, and whether it ``moved``.

        The first pass, from each row's own position as its label: the
        smallest position per content key (``gck``, or ``rk`` for the rows
        of a mixed key), then the smallest of those per Message-ID (a window
        aggregate). A row ``moved`` when its ID's label is smaller than its
        content key's: only the content keys of such rows can still disagree
        (see :meth:`unsettled`).
        """
        return """
            SELECT pos, aid, idk, ck, pref, l, CASE WHEN l < lc THEN 1 ELSE 0 END AS moved
            FROM (SELECT pos, aid, idk, ck, pref, lc,
                         CASE WHEN idk IS NULL THEN lc
                              ELSE min(lc) OVER (PARTITION BY idk) END AS l
                  FROM (SELECT m.pos, m.aid, m.idk, coalesce(rk.ck, m.ck) AS ck, m.pref,
                               coalesce(rk.lc, g.lc) AS lc
                        FROM m JOIN gck g ON m.ck = g.ck
                        LEFT JOIN rk ON m.pos = rk.pos) t0) t1"""

    @staticmethod
    def propagate(table: str) -> str:
        """One more pass of label propagation: smallest label per content key, then per ID.

        Group-bys and joins: real mail rarely needs this pass (see
        :meth:`first_labels`).
        """
        return f"""
            WITH c AS (SELECT t.pos, t.aid, t.idk, t.ck, t.pref, g.l AS lc
                       FROM {table} t JOIN (SELECT ck, min(l) AS l FROM {table} GROUP BY ck) g
                       ON t.ck = g.ck)
            SELECT c.pos, c.aid, c.idk, c.ck, c.pref, coalesce(g.l, c.lc) AS l
            FROM c LEFT JOIN (SELECT idk, min(lc) AS l FROM c WHERE idk IS NOT NULL
                              GROUP BY idk) g ON c.idk = g.idk"""

    @staticmethod
    def unsettled(table: str, *, moved_only: bool = False) -> str:
        """Content keys whose rows still carry different labels (0: the labels are final).

        After :meth:`propagate` every Message-ID group agrees on its label;
        when every content group does too, no pass can change anything.
        ``moved_only``: after :meth:`first_labels`, only a content key with a
        row that ``moved`` can disagree (the others hold their smallest
        position throughout), so only those few are grouped.
        """
        where = (f"WHERE ck IN (SELECT ck FROM {table} WHERE moved = 1) " if moved_only
                 else "")
        return (f"SELECT count(*) AS n FROM (SELECT ck FROM {table} {where}GROUP BY ck "
                f"HAVING min(l) <> max(l)) t")

    def kept(self) -> str:
        """Per message: the kept row (a header-dated copy first, then the first).

        With :attr:`masks`, also the accounts that hold a copy (``mask``) and
        how many rows it had (``copies``): that takes the place of ``held``.
        """
        more = (f", bit_or({self.bit('aid')}) AS mask, count(*) AS copies" if self.masks
                else "")
        return (f"SELECT l, min(CAST(pref AS BIGINT) * {PREF_SHIFT} + pos) % {PREF_SHIFT} "
                f"AS kpos{more} FROM lab GROUP BY l")

    @staticmethod
    def held() -> str:
        """(message label, account): the account's mailbox holds ``n`` copies."""
        return "SELECT l, aid, count(*) AS n FROM lab GROUP BY l, aid"

    def senders_of(self) -> str:
        """(message label, account) for the team's messages: who sent it (docs/team.md).

        The owners of its From address that hold a copy; when none does,
        every owner of the address.
        """
        if self.masks:
            return f"""
                SELECT u.l, o.aid FROM u JOIN owners o ON u.sender = o.address
                JOIN ({self._owned()}) w ON u.sender = w.address
                WHERE (u.mask & w.om) = 0 OR {self.holds('u.mask', 'o.aid')}"""
        return """
            WITH cand AS (SELECT u.l, o.aid FROM u JOIN owners o ON u.sender = o.address),
            hold AS (SELECT c.l, c.aid, CASE WHEN h.l IS NULL THEN 0 ELSE 1 END AS holds
                     FROM cand c LEFT JOIN held h ON c.l = h.l AND c.aid = h.aid),
            anyh AS (SELECT l, max(holds) AS any_holds FROM hold GROUP BY l)
            SELECT hold.l, hold.aid FROM hold JOIN anyh ON hold.l = anyh.l
            WHERE hold.holds = 1 OR anyh.any_holds = 0"""

    # ------------------------------------------------------------------ contacts

    def _first_last(self, ts: str = "ts") -> tuple[str, str]:
        """The first and last plausible date of a group, in microseconds."""
        us = self.d.epoch_us(ts)
        ok = self.plausible(us)
        return f"min(CASE WHEN {ok} THEN {us} END)", f"max(CASE WHEN {ok} THEN {us} END)"

    def received_groups(self) -> str:
        """``rg``: messages from each contact, per holders' mask when there are masks.

        One pass over ``u`` that serves both the team's counts
        (:meth:`contacts`) and each teammate's (:meth:`by_account`).
        """
        first, last = self._first_last()
        mask = ", mask" if self.masks else ""
        return f"""
            SELECT sender{mask}, count(*) AS n, {first} AS f, {last} AS l
            FROM u WHERE sender IS NOT NULL AND NOT mine GROUP BY sender{mask}"""

    def sent_groups(self) -> str:
        """``sg``: the team's messages to each contact, per sender (and mask): see ``rg``."""
        first, last = self._first_last()
        mask = ", mask" if self.masks else ""
        return f"""
            SELECT rc, sender{mask}, count(*) AS n, {first} AS f, {last} AS l
            FROM (SELECT sender{mask}, ts, {self.d.explode('rcpts')} AS rc FROM u
                  WHERE rcpts IS NOT NULL) t
            WHERE rc NOT IN (SELECT address FROM me) GROUP BY rc, sender{mask}"""

    def contacts(self) -> str:
        """``contact, name, sent, received, first_us, last_us`` (unsorted), from ``rg``, ``sg``."""
        return f"""
            WITH recv AS (
                SELECT sender AS contact, sum(n) AS received, min(f) AS f, max(l) AS l
                FROM rg GROUP BY sender),
            sent AS (
                SELECT rc AS contact, sum(n) AS sent, min(f) AS f, max(l) AS l
                FROM sg GROUP BY rc),
            both_ AS (
                SELECT coalesce(s.contact, r.contact) AS contact,
                       coalesce(s.sent, 0) AS sent, coalesce(r.received, 0) AS received,
                       least(s.f, r.f) AS first_us, greatest(s.l, r.l) AS last_us
                FROM sent s FULL OUTER JOIN recv r ON s.contact = r.contact)
            SELECT b.*, n.name FROM both_ b LEFT JOIN ({self.names()}) n ON b.contact = n.sender
        """

    def names(self) -> str:
        """Per sender, the most used display name, cleaned (``metrics._names``).

        Blanks, then quotes around it, then blanks stripped; empty names and
        the address itself dropped; a tie goes to the smallest name. Names
        are counted as stored first, then cleaned: the trims run once per
        distinct (sender, name), not once per message.
        """
        clean = self.trim(self.trim(self.trim("from_name"), "'\""))
        # Usable names rank first, and the test comes after the ranking: a filter on
        # the name before it would be pushed below the counts, to every message.
        return f"""
            SELECT sender, name FROM (
                SELECT sender, name, ok, row_number() OVER (
                    PARTITION BY sender ORDER BY ok DESC, n DESC, name ASC) AS k
                FROM (SELECT sender, name, n,
                             CASE WHEN name <> '' AND lower(name) <> lower(sender)
                                  THEN 1 ELSE 0 END AS ok
                      FROM (SELECT sender, {clean} AS name, sum(n) AS n
                            FROM (SELECT sender, from_name, count(*) AS n FROM u
                                  WHERE sender IS NOT NULL AND from_name IS NOT NULL
                                  GROUP BY sender, from_name) raw
                            GROUP BY sender, {clean}) c) c2) t
            WHERE k = 1 AND ok = 1"""

    # ------------------------------------------------------------------ over time

    def volume(self, contacts: list[str], unit: str) -> str:
        """Per period (``date_trunc`` unit, UTC) and chosen contact: sent and received."""
        d = self.d
        chosen = _in_list(set(contacts)) if contacts else "(NULL)"
        period = d.epoch_us(f"date_trunc('{unit}', ts)")
        return f"""
            SELECT {period} AS period_us, contact, sum(s) AS sent, sum(1 - s) AS received
            FROM (SELECT ts, sender AS contact, 0 AS s FROM u
                  WHERE sender IN {chosen} AND NOT mine
                  UNION ALL
                  SELECT ts, rc AS contact, 1 AS s
                  FROM (SELECT {d.explode('rcpts')} AS rc, ts FROM u
                        WHERE rcpts IS NOT NULL) t
                  WHERE rc IN {chosen} AND rc NOT IN (SELECT address FROM me)) v
            WHERE ts IS NOT NULL
            GROUP BY {period}, contact"""

    def activity(self, direction: str | None) -> str:
        """Weekday x hour counts on the writer's clock (``metrics.activity``)."""
        local = f"({self.d.epoch_us('ts')} + CAST(coalesce(offset_min, 0) AS BIGINT) * 60000000)"
        day = f"CAST(floor({local} / {US_PER_DAY}) AS BIGINT)"
        hour = f"CAST(floor({local} / {US_PER_HOUR}) AS BIGINT)"
        where = "ts IS NOT NULL"
        if direction == "sent":
            where += " AND mine"
        elif direction == "received":
            where += " AND NOT mine"
        return f"""
            SELECT ((({day} + 3) % 7) + 7) % 7 AS weekday, (({hour} % 24) + 24) % 24 AS hour,
                   count(*) AS n, max(CASE WHEN offset_min IS NOT NULL THEN 1 ELSE 0 END) AS tz
            FROM u WHERE {where} GROUP BY 1, 2"""

    # ------------------------------------------------------------------ response times

    def responses(self, *, full: bool = True) -> str:
        """Replies between self and a contact (``metrics.response_times``).

        ``full``: every column of a timed reply; else only what the histogram
        bins (``replier``, ``hours``), which spares the contact's string per
        reply.

        The parent is the message (label) holding the cited Message-ID: every
        row of one ID carries one label, so the label and then the message's
        kept row in ``u`` are found by joins, with no per-ID pick of a row.
        """
        us = self.d.epoch_us
        cols = (f"CASE WHEN by_self THEN os ELSE rs END AS contact, {us('ots')} AS asked_us, "
                f"{us('rts')} AS answered_us, reply," if full else "")
        return f"""
            WITH parents AS (
                SELECT idk, min(l) AS l FROM lab
                WHERE idk IN (SELECT par_h FROM u WHERE par_h IS NOT NULL) GROUP BY idk),
            pairs AS (
                SELECT r.pos AS reply, r.sender AS rs, r.mine AS rm, r.ts AS rts,
                       o.pos AS orig, o.sender AS os, o.mine AS om, o.ts AS ots
                FROM u r JOIN parents p ON r.par_h = p.idk
                JOIN u o ON o.l = p.l
                WHERE r.par_h IS NOT NULL AND o.pos <> r.pos),
            typed AS (
                SELECT *,
                  rm AND NOT om AND os IS NOT NULL AS by_self,
                  NOT rm AND om AND rs IS NOT NULL AS by_contact
                FROM pairs)
            SELECT {cols}
                   CASE WHEN by_self THEN 'self' ELSE 'contact' END AS replier,
                   CAST(({us('rts')} - {us('ots')}) * 1000 AS DOUBLE) / 3.6e12 AS hours
            FROM typed
            WHERE (by_self OR by_contact) AND ots IS NOT NULL AND rts IS NOT NULL
              AND rts >= ots"""

    @staticmethod
    def response_histogram(edges: list[float], floor: float) -> str:
        """Replies per replier and bin, and the medians (``metrics.response_histogram``).

        Bins are found by comparing with the very edges numpy uses (written
        as exact double literals), so every reply lands where ``np.histogram``
        puts it: bin i holds ``edges[i] <= h < edges[i + 1]``, the last bin
        its right edge too.
        """
        def lit(x: float) -> str:
            text = repr(float(x))
            return text if "e" in text else text + "e0"

        cases = " ".join(f"WHEN h < {lit(e)} THEN {i}" for i, e in enumerate(edges[1:-1]))
        return f"""
            SELECT replier, b, count(*) AS replies, min(med) AS median_hours
            FROM (SELECT replier, CASE {cases} ELSE {len(edges) - 2} END AS b,
                         median(h) OVER (PARTITION BY replier) AS med
                  FROM (SELECT replier, greatest(hours, {lit(floor)}) AS h FROM rt) t) t2
            GROUP BY replier, b"""

    # ------------------------------------------------------------------ the team

    def by_account(self, *, ordered: bool = True) -> str:
        """Per contact and account: messages sent by the account, and received in its mailbox.

        ``ordered``: in the frame's order, contact then account (``aid``
        follows the accounts' names); the engine sorts a million rows faster
        than pandas.
        """
        explode = self.d.explode("rcpts")
        return f"""
            WITH sent AS ({self._sent(explode)}),
            recv AS ({self._received()})
            SELECT coalesce(s.contact, r.contact) AS contact, coalesce(s.aid, r.aid) AS aid,
                   coalesce(s.sent, 0) AS sent, coalesce(r.received, 0) AS received
            FROM sent s FULL OUTER JOIN recv r ON s.contact = r.contact AND s.aid = r.aid
            {"ORDER BY 1, 2" if ordered else ""}"""

    def contact_owners(self) -> str:
        """Per contact, its owner's ``aid`` (``team.owners``).

        The account with the most messages with the contact, then the one
        that sent more, then the first by name (``aid`` order).
        """
        return f"""
            SELECT contact, aid FROM (
                SELECT contact, aid, row_number() OVER (
                    PARTITION BY contact ORDER BY sent + received DESC, sent DESC, aid ASC) AS k
                FROM ({self.by_account(ordered=False)}) b) t
            WHERE k = 1"""

    def _sent(self, explode: str) -> str:
        """Per contact and account: the account's messages to the contact (``senders_of``)."""
        if self.masks:    # the rule of senders_of on each group, against the small owners table
            return f"""
                SELECT t.rc AS contact, o.aid, sum(t.n) AS sent
                FROM sg t JOIN owners o ON t.sender = o.address
                JOIN ({self._owned()}) w ON t.sender = w.address
                WHERE (t.mask & w.om) = 0 OR {self.holds('t.mask', 'o.aid')}
                GROUP BY t.rc, o.aid"""
        return f"""
                SELECT t.rc AS contact, s.aid, count(*) AS sent
                FROM (SELECT l, {explode} AS rc FROM u WHERE rcpts IS NOT NULL) t
                JOIN sends s ON t.l = s.l
                WHERE t.rc NOT IN (SELECT address FROM me) GROUP BY t.rc, s.aid"""

    def _owned(self) -> str:
        """Per team address, the mask of the accounts that own it."""
        return f"SELECT address, bit_or({self.bit('aid')}) AS om FROM owners GROUP BY address"

    def _received(self) -> str:
        """Per contact and account: the contact's messages the account's mailbox holds."""
        if self.masks:    # per (contact, mask) first (`rg`): a few rows per contact, then the bits
            return f"""
                SELECT g.sender AS contact, a.aid, sum(g.n) AS received
                FROM rg g JOIN accts a ON {self.holds('g.mask', 'a.aid')}
                GROUP BY g.sender, a.aid"""
        return """
                SELECT u.sender AS contact, h.aid, count(*) AS received
                FROM u JOIN held h ON u.l = h.l
                WHERE u.sender IS NOT NULL AND NOT u.mine GROUP BY u.sender, h.aid"""

    def internal(self) -> str:
        """Per (sending account, recipient account): the team's messages between them."""
        first, last = self._first_last("u.ts")
        return f"""
            WITH ins AS (
                SELECT t.l, o.aid AS to_aid
                FROM (SELECT l, {self.d.explode('rcpts')} AS rc FROM u
                      WHERE rcpts IS NOT NULL) t
                JOIN owners o ON t.rc = o.address),
            pairs AS (
                SELECT DISTINCT s.l, s.aid AS from_aid, i.to_aid
                FROM sends s JOIN ins i ON s.l = i.l WHERE s.aid <> i.to_aid)
            SELECT p.from_aid, p.to_aid, count(*) AS messages,
                   {first} AS first_us, {last} AS last_us
            FROM pairs p JOIN u ON p.l = u.l GROUP BY p.from_aid, p.to_aid"""

    # ------------------------------------------------------------------ data health

    @staticmethod
    def vrank(pos: str) -> str:
        """The (folder, UIDVALIDITY) rank of a position: its high bits."""
        return f"CAST(floor({pos} / {RANK_SHIFT}) AS BIGINT)"

    def rank_counts(self) -> str:
        """``hper``: per (folder, UIDVALIDITY) rank, rows and the facts data health counts.

        Taken from ``m`` while it exists, so the wide per-row tables need not
        carry the facts until data health is asked for.
        """
        return f"""
            SELECT {self.vrank('pos')} AS vrank, count(*) AS rows,
                   sum(pref) AS date_fallbacks,
                   sum(CASE WHEN dq = 1 THEN 1 ELSE 0 END) AS no_date,
                   sum(CASE WHEN dq = 2 THEN 1 ELSE 0 END) AS suspect_dates,
                   sum(bad) AS defects
            FROM m GROUP BY {self.vrank('pos')}"""

    def duplicates(self) -> str:
        """``hdup``: per (folder, UIDVALIDITY) rank, rows whose account holds another copy.

        A row is a duplicate when its message has another copy in the same
        account, that is, when another row of its account shares its
        Message-ID or its full content key (a group of connected rows has
        two or more rows exactly when each of its rows shares a key with
        another): no second label propagation, within each account, is
        needed. Such rows are in the same team message too, so only the
        messages an account holds twice or more are looked at (``held``; or,
        with masks, the messages with more rows than holders, from ``kept``).
        """
        twice = ("JOIN (SELECT l FROM kept WHERE copies > bit_count(mask)) h ON x.l = h.l"
                 if self.masks else   # more rows than holders: some account holds two
                 "JOIN (SELECT l, aid FROM held WHERE n > 1) h ON x.l = h.l AND x.aid = h.aid")
        return f"""
            WITH c AS (SELECT x.pos, x.aid, x.idk, x.ck FROM lab x {twice}),
            di AS (SELECT aid, idk FROM c WHERE idk IS NOT NULL
                   GROUP BY aid, idk HAVING count(*) > 1),
            dc AS (SELECT aid, ck FROM c GROUP BY aid, ck HAVING count(*) > 1)
            SELECT {self.vrank('c.pos')} AS vrank, count(*) AS duplicates
            FROM c LEFT JOIN di ON c.aid = di.aid AND c.idk = di.idk
            LEFT JOIN dc ON c.aid = dc.aid AND c.ck = dc.ck
            WHERE di.idk IS NOT NULL OR dc.ck IS NOT NULL
            GROUP BY {self.vrank('c.pos')}"""

    @staticmethod
    def health() -> str:
        """Per folder: rows, duplicates, date fallbacks, missing and placeholder dates...

        Rows are counted per (folder, UIDVALIDITY) rank (``hper``, ``hdup``),
        then per folder.
        """
        return """
            SELECT v.fid, sum(p.rows) AS rows, sum(coalesce(d.duplicates, 0)) AS duplicates,
                   sum(p.date_fallbacks) AS date_fallbacks, sum(p.no_date) AS no_date,
                   sum(p.suspect_dates) AS suspect_dates, sum(p.defects) AS defects,
                   count(DISTINCT v.uidvalidity) AS uidvalidity_values
            FROM hper p JOIN fv v ON p.vrank = v.vrank
            LEFT JOIN hdup d ON p.vrank = d.vrank
            GROUP BY v.fid"""

    def top_defects(self) -> str:
        """Per folder, the most common defect; ties go to the one seen first in the store.

        Read from the store again (the defects column only): few rows have any.
        """
        d = self.d
        return f"""
            WITH t AS (SELECT r.fid, {self.pos()} AS pos, {d.explode('r.defects')} AS defect
                       FROM srcv r WHERE {d.size('r.defects')} > 0)
            SELECT fid, defect FROM (
                SELECT c.fid, c.defect, row_number() OVER (
                    PARTITION BY c.fid ORDER BY c.n DESC, fp.p ASC, c.defect ASC) AS k
                FROM (SELECT fid, defect, count(*) AS n FROM t GROUP BY fid, defect) c
                JOIN (SELECT defect, min(pos) AS p FROM t GROUP BY defect) fp
                  ON c.defect = fp.defect) t2
            WHERE k = 1"""
