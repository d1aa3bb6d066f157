"""The metrics in SQL: contacts, volume, activity, replies, the team, data health.

Each reads the unique messages (``u``) and the tables beside it: see
:mod:`.queries` for the order they are built in.
"""

from __future__ import annotations

from mailhat_nb.analysis.engines.sql_base import US_PER_DAY, US_PER_HOUR, QueryBase, in_list


class MetricQueries(QueryBase):
    """Each metric from the unique messages (``u``) and the tables beside it."""

    # ------------------------------------------------------------------ contacts

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
        chosen = in_list(set(contacts)) if contacts else "(NULL)"
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
