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
             rule as 64-bit hashes, date, what data health counts; no strings.
``mixed``    content keys whose rows carry different recipient lists.
``rk``       the recipient-set hash of the rows under a ``mixed`` key.
``lab``      each row's message label (connected components of the two
             keys, across the team).
``kept``     per message: the row that stands for it and how many rows it had.
``u``        the unique messages: the kept rows, read again from the store
             with the strings and lists the metrics need.
``held``     (message, account): whose mailboxes hold a copy.
``sends``    (message, account): who sent a message of the team.
``rt``       the timed replies.

Positions: a row's position is ``rank * 2**32 + uid``, where the rank orders
(account, folder, UIDVALIDITY) as docs/team.md's store order does: wherever
the pandas code says "the first row in store order", the SQL says "the
smallest position".

Hashes: the duplicate rule's keys and Message-IDs are compared through 64-bit
hashes (DuckDB ``hash``, Spark ``xxhash64``): two different keys share a hash
with odds about n**2 / 2**65 (3 in a million at ten million rows), the
price of never holding the strings of ten million Message-IDs in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhat_nb.analysis.dedupe import HEADER_DATE_SOURCES, SUSPECT_BEFORE
from mailhat_nb.analysis.engines.dialect import Dialect
from mailhat_nb.analysis.identity import SENT_LABELS

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
        character is a blank or a bracket is trimmed (cheap test first).
        """
        edge = "(" + ", ".join(_quote(c) for c in WS + "<>") + ")"
        slow = self.trim(self.trim(self.trim(expr), "<>"))
        return (f"nullif(CASE WHEN left({expr}, 1) IN {edge} OR right({expr}, 1) IN {edge} "
                f"THEN {slow} ELSE {expr} END, '')")

    def rcpts(self, *, ordered: bool = True) -> str:
        """The recipients of a row: To + Cc, distinct (and sorted, for a set key).

        Taken as stored: the parser lower-cases and strips every address it
        writes (DESIGN.md, "Frames"), so normalising each element again, as
        the pandas path does for frames built by hand, would cost a lambda
        per address and change nothing.
        """
        d = self.d
        both = (f"concat(coalesce(r.to_addrs, {d.empty_list}), "
                f"coalesce(r.cc_addrs, {d.empty_list}))")
        return f"array_sort(array_distinct({both}))" if ordered else f"array_distinct({both})"

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
        # The IDs are cleaned once, in the inner query, then hashed.
        return f"""
            SELECT pos, aid, fid, ts, pref,
                   CASE WHEN mid IS NULL THEN NULL ELSE {d.hash('mid')} END AS idk, ck, rr,
                   uidvalidity, defects
            FROM (SELECT {self.pos()} AS pos, CAST(r.aid AS INT) AS aid,
                         CAST(r.fid AS INT) AS fid, r.date AS ts, {pref} AS pref,
                         {self.clean_id('r.message_id')} AS mid, {content} AS ck, {raw} AS rr,
                         r.uidvalidity,
                         CASE WHEN {d.size('r.defects')} > 0 THEN r.defects END AS defects
                  FROM srcv r) t"""

    @staticmethod
    def mixed() -> str:
        """Content keys whose rows carry different recipient lists (as stored)."""
        return "SELECT ck FROM m GROUP BY ck HAVING min(rr) <> max(rr)"

    def recipient_keys(self) -> str:
        """A hash of the recipient set, for the rows of the :meth:`mixed` content keys."""
        return f"""
            SELECT {self.pos()} AS pos, {self.d.hash(self.rcpts())} AS rh FROM srcv r
            WHERE {self.pos()} IN (SELECT pos FROM m WHERE ck IN (SELECT ck FROM mixed))"""

    @staticmethod
    def no_recipient_keys() -> str:
        """An empty ``rk`` (no content key is mixed), typed as :meth:`recipient_keys`."""
        return "SELECT pos, ck AS rh FROM m WHERE 1 = 0"

    def unique(self) -> str:
        """``u``: the unique messages, each its kept row's values, label and copies.

        A second read of the store, joined to ``kept``: the strings and lists
        are read, and the parent's ID cleaned, for the kept rows only; no
        string is held for every stored row.
        """
        d = self.d
        return f"""
            SELECT pos, aid, sender, from_name, ts, offset_min,
                   CASE WHEN parent IS NULL THEN NULL ELSE {d.hash('parent')} END AS par_h,
                   rcpts, l, copies
            FROM (SELECT k.kpos AS pos, CAST(r.aid AS INT) AS aid, r.sender, r.from_name,
                         r.date AS ts, CAST(r.date_offset_min AS INT) AS offset_min,
                         coalesce({self.clean_id('r.in_reply_to')},
                                  {self.clean_id(d.last('r.references'))}) AS parent,
                         CASE WHEN r.sender IN (SELECT address FROM me)
                              THEN {self.rcpts(ordered=False)} END AS rcpts,
                         k.l, k.copies
                  FROM srcv r JOIN kept k ON {self.pos()} = k.kpos) t"""

    # ------------------------------------------------------------------ the duplicate rule

    def first_labels(self) -> str:
        """Each row's full keys, and its own position as its label to start from."""
        ck = f"CASE WHEN rk.rh IS NULL THEN m.ck ELSE {self.d.hash('m.ck', 'rk.rh')} END"
        return (f"SELECT m.pos, m.aid, m.idk, {ck} AS ck, m.pref, m.pos AS l "
                f"FROM m LEFT JOIN rk ON m.pos = rk.pos")

    @staticmethod
    def propagate(table: str) -> str:
        """One pass of label propagation: smallest label per content key, then per ID.

        Group-bys and joins rather than window functions: hash aggregates
        stream and spill, where a window sorts each partition.
        """
        return f"""
            WITH c AS (SELECT t.pos, t.aid, t.idk, t.ck, t.pref, g.l AS lc
                       FROM {table} t JOIN (SELECT ck, min(l) AS l FROM {table} GROUP BY ck) g
                       ON t.ck = g.ck)
            SELECT c.pos, c.aid, c.idk, c.ck, c.pref, coalesce(g.l, c.lc) AS l
            FROM c LEFT JOIN (SELECT idk, min(lc) AS l FROM c WHERE idk IS NOT NULL
                              GROUP BY idk) g ON c.idk = g.idk"""

    @staticmethod
    def unsettled(table: str) -> str:
        """Content keys whose rows still carry different labels (0: the labels are final).

        After :meth:`propagate` every Message-ID group agrees on its label;
        when every content group does too, no pass can change anything.
        """
        return (f"SELECT count(*) AS n FROM (SELECT ck FROM {table} GROUP BY ck "
                f"HAVING min(l) <> max(l)) t")

    @staticmethod
    def kept() -> str:
        """Per message: the kept row (a header-dated copy first, then the first) and copies."""
        return (f"SELECT l, min(pref * {PREF_SHIFT} + pos) % {PREF_SHIFT} AS kpos, "
                f"count(*) AS copies FROM lab GROUP BY l")

    @staticmethod
    def held() -> str:
        """(message label, account): the account's mailbox holds a copy."""
        return "SELECT DISTINCT l, aid FROM lab"

    @staticmethod
    def senders_of() -> str:
        """(message label, account) for the team's messages: who sent it (docs/team.md).

        The owners of its From address that hold a copy; when none does,
        every owner of the address.
        """
        return """
            WITH cand AS (SELECT u.l, o.aid FROM u JOIN owners o ON u.sender = o.address),
            hold AS (SELECT c.l, c.aid, CASE WHEN h.l IS NULL THEN 0 ELSE 1 END AS holds
                     FROM cand c LEFT JOIN held h ON c.l = h.l AND c.aid = h.aid),
            anyh AS (SELECT l, max(holds) AS any_holds FROM hold GROUP BY l)
            SELECT hold.l, hold.aid FROM hold JOIN anyh ON hold.l = anyh.l
            WHERE hold.holds = 1 OR anyh.any_holds = 0"""

    # ------------------------------------------------------------------ contacts

    def contacts(self) -> str:
        """``contact, name, sent, received, first_us, last_us`` (unsorted)."""
        d = self.d
        us = d.epoch_us("ts")
        ok = self.plausible(us)
        first = f"min(CASE WHEN {ok} THEN {us} END)"
        last = f"max(CASE WHEN {ok} THEN {us} END)"
        return f"""
            WITH recv AS (
                SELECT sender AS contact, count(*) AS received, {first} AS f, {last} AS l
                FROM u WHERE sender IS NOT NULL AND sender NOT IN (SELECT address FROM me)
                GROUP BY sender),
            sent AS (
                SELECT rc AS contact, count(*) AS sent, {first} AS f, {last} AS l
                FROM (SELECT {d.explode('rcpts')} AS rc, ts FROM u WHERE rcpts IS NOT NULL) t
                WHERE rc NOT IN (SELECT address FROM me) GROUP BY rc),
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
        return f"""
            SELECT sender, name FROM (
                SELECT sender, name, row_number() OVER (
                    PARTITION BY sender ORDER BY n DESC, name ASC) AS k
                FROM (SELECT sender, {clean} AS name, sum(n) AS n
                      FROM (SELECT sender, from_name, count(*) AS n FROM u
                            WHERE sender IS NOT NULL AND from_name IS NOT NULL
                            GROUP BY sender, from_name) raw
                      GROUP BY sender, {clean}) c
                WHERE name <> '' AND lower(name) <> lower(sender)) t
            WHERE k = 1"""

    # ------------------------------------------------------------------ over time

    def volume(self, contacts: list[str], unit: str) -> str:
        """Per period (``date_trunc`` unit, UTC) and chosen contact: sent and received."""
        d = self.d
        chosen = _in_list(set(contacts)) if contacts else "(NULL)"
        period = d.epoch_us(f"date_trunc('{unit}', ts)")
        return f"""
            SELECT {period} AS period_us, contact, sum(s) AS sent, sum(1 - s) AS received
            FROM (SELECT ts, sender AS contact, 0 AS s FROM u
                  WHERE sender IN {chosen} AND sender NOT IN (SELECT address FROM me)
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
        self_sender = "(sender IS NOT NULL AND sender IN (SELECT address FROM me))"
        if direction == "sent":
            where += f" AND {self_sender}"
        elif direction == "received":
            where += f" AND NOT {self_sender}"
        return f"""
            SELECT ((({day} + 3) % 7) + 7) % 7 AS weekday, (({hour} % 24) + 24) % 24 AS hour,
                   count(*) AS n, max(CASE WHEN offset_min IS NOT NULL THEN 1 ELSE 0 END) AS tz
            FROM u WHERE {where} GROUP BY 1, 2"""

    # ------------------------------------------------------------------ response times

    def responses(self) -> str:
        """Replies between self and a contact (``metrics.response_times``).

        The parent is the message (label) holding the cited Message-ID: every
        row of one ID carries one label, so the label and then the message's
        kept row in ``u`` are found by joins, with no per-ID pick of a row.
        """
        us = self.d.epoch_us
        me = "(SELECT address FROM me)"
        return f"""
            WITH parents AS (
                SELECT idk, min(l) AS l FROM lab
                WHERE idk IN (SELECT par_h FROM u WHERE par_h IS NOT NULL) GROUP BY idk),
            pairs AS (
                SELECT r.pos AS reply, r.sender AS rs, r.ts AS rts,
                       o.pos AS orig, o.sender AS os, o.ts AS ots
                FROM u r JOIN parents p ON r.par_h = p.idk
                JOIN u o ON o.l = p.l
                WHERE r.par_h IS NOT NULL AND o.pos <> r.pos),
            typed AS (
                SELECT *,
                  (rs IS NOT NULL AND rs IN {me}) AND NOT (os IS NOT NULL AND os IN {me})
                    AND os IS NOT NULL AS by_self,
                  NOT (rs IS NOT NULL AND rs IN {me}) AND (os IS NOT NULL AND os IN {me})
                    AND rs IS NOT NULL AS by_contact
                FROM pairs)
            SELECT CASE WHEN by_self THEN os ELSE rs END AS contact,
                   CASE WHEN by_self THEN 'self' ELSE 'contact' END AS replier,
                   {us('ots')} AS asked_us, {us('rts')} AS answered_us, reply,
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

    def by_account(self) -> str:
        """Per contact and account: messages sent by the account, and received in its mailbox."""
        explode = self.d.explode("rcpts")
        return f"""
            WITH sent AS (
                SELECT t.rc AS contact, s.aid, count(*) AS sent
                FROM (SELECT l, {explode} AS rc FROM u WHERE rcpts IS NOT NULL) t
                JOIN sends s ON t.l = s.l
                WHERE t.rc NOT IN (SELECT address FROM me) GROUP BY t.rc, s.aid),
            recv AS (
                SELECT u.sender AS contact, h.aid, count(*) AS received
                FROM u JOIN held h ON u.l = h.l
                WHERE u.sender IS NOT NULL AND u.sender NOT IN (SELECT address FROM me)
                GROUP BY u.sender, h.aid)
            SELECT coalesce(s.contact, r.contact) AS contact, coalesce(s.aid, r.aid) AS aid,
                   coalesce(s.sent, 0) AS sent, coalesce(r.received, 0) AS received
            FROM sent s FULL OUTER JOIN recv r ON s.contact = r.contact AND s.aid = r.aid"""

    def internal(self) -> str:
        """Per (sending account, recipient account): the team's messages between them."""
        us = self.d.epoch_us("u.ts")
        ok = self.plausible(us)
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
                   min(CASE WHEN {ok} THEN {us} END) AS first_us,
                   max(CASE WHEN {ok} THEN {us} END) AS last_us
            FROM pairs p JOIN u ON p.l = u.l GROUP BY p.from_aid, p.to_aid"""

    # ------------------------------------------------------------------ data health

    def health(self) -> str:
        """Per folder: rows, duplicates, date fallbacks, missing and placeholder dates...

        A row is a duplicate when its message has another copy in the same
        account, that is, when another row of its account shares its
        Message-ID or its full content key: a group of connected rows has
        two or more rows exactly when each of its rows shares a key with
        another. So no second label propagation (within each account) is
        needed, only two counts per key.
        """
        d = self.d
        us = d.epoch_us("x.ts")
        ck = f"CASE WHEN rk.rh IS NULL THEN m.ck ELSE {d.hash('m.ck', 'rk.rh')} END"
        return f"""
            WITH x AS (SELECT m.aid, m.fid, m.idk, {ck} AS ck, m.pref, m.ts, m.defects,
                              m.uidvalidity
                       FROM m LEFT JOIN rk ON m.pos = rk.pos),
            di AS (SELECT aid, idk FROM x WHERE idk IS NOT NULL
                   GROUP BY aid, idk HAVING count(*) > 1),
            dc AS (SELECT aid, ck FROM x GROUP BY aid, ck HAVING count(*) > 1)
            SELECT x.fid, count(*) AS rows,
                   sum(CASE WHEN di.idk IS NOT NULL OR dc.ck IS NOT NULL THEN 1 ELSE 0 END)
                       AS duplicates,
                   sum(x.pref) AS date_fallbacks,
                   sum(CASE WHEN x.ts IS NULL THEN 1 ELSE 0 END) AS no_date,
                   sum(CASE WHEN x.ts IS NOT NULL AND NOT {self.plausible(us)}
                       THEN 1 ELSE 0 END) AS suspect_dates,
                   sum(CASE WHEN {d.size('x.defects')} > 0 THEN 1 ELSE 0 END) AS defects,
                   count(DISTINCT x.uidvalidity) AS uidvalidity_values
            FROM x LEFT JOIN di ON x.aid = di.aid AND x.idk = di.idk
            LEFT JOIN dc ON x.aid = dc.aid AND x.ck = dc.ck
            GROUP BY x.fid"""

    def top_defects(self) -> str:
        """Per folder, the most common defect; ties go to the one seen first in the store."""
        explode = self.d.explode("defects")
        return f"""
            SELECT fid, defect FROM (
                SELECT c.fid, c.defect, row_number() OVER (
                    PARTITION BY c.fid ORDER BY c.n DESC, fp.p ASC, c.defect ASC) AS k
                FROM (SELECT fid, defect, count(*) AS n
                      FROM (SELECT fid, {explode} AS defect FROM m) t GROUP BY fid, defect) c
                JOIN (SELECT defect, min(pos) AS p
                      FROM (SELECT pos, {explode} AS defect FROM m) t GROUP BY defect) fp
                  ON c.defect = fp.defect) t
            WHERE k = 1"""
