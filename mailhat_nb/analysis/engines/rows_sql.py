"""The rows and the duplicate rule in SQL: identity's scans, then ``m`` to ``u``.

See :mod:`.queries` for the tables and the order they are built in.
"""

from __future__ import annotations

from mailhat_nb.analysis.dedupe import HEADER_DATE_SOURCES
from mailhat_nb.analysis.engines.sql_base import PREF_SHIFT, QueryBase, in_list


class RowQueries(QueryBase):
    """From the stored rows to the unique messages (``u``)."""

    # ------------------------------------------------------------------ the rows

    def src(self, accounts: list[str] | None) -> str:
        """The stored rows of the chosen accounts, with the folder's facts."""
        where = f"WHERE r.account IN {in_list(set(accounts))}" if accounts else ""
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
        header = in_list(HEADER_DATE_SOURCES)
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
        flag = ", r.rcpt_repeats" if self.repeats else ""
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
                         r.to_addrs, r.cc_addrs{flag}, k.l{more}
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
