"""A synthetic team store: N message rows written straight into the store's layout.

Shaped like a team's real mail, so every rule of the analysis has work to do:

* **accounts**: a team of ``--accounts`` mailboxes at one domain, some busier
  than others; each mailbox has ``INBOX``, ``Sent``, ``Archive``, ``All Mail``
  and ``Export`` folders (roles inbox, sent, archive, all, and none);
* **contacts** follow a Zipf law (a few correspondents dominate), each with a
  teammate who mostly handles them (so the team view's ``owner`` means
  something), display names, and domains of several sizes;
* **messages** are inbound (a contact writes to a teammate, sometimes with a
  second teammate in Cc), outbound (a teammate writes to contacts, sometimes
  copying a teammate) or **internal** (teammate to teammate);
* **threads**: 40 % of messages are replies, two levels deep, going the other
  way, with ``In-Reply-To`` and ``References`` and a log-normal delay;
* **copies**: a message is filed once per teammate involved (the sender's
  Sent, each recipient's INBOX or Archive: copies *across teammates*), and
  again in ``All Mail`` (same Message-ID) or ``Export`` (a re-issued ID, like
  the Enron corpus: only the content rule matches it): copies *across folders*;
* dates in office hours with the writer's UTC offset, a few fallbacks to
  INTERNALDATE, a few missing dates and decoding defects.

Rows are built with numpy and Arrow (no Python loop per row) in chunks, and
each chunk is committed into each (account, folder) as a new part through the
store's own writer (:class:`mailhat_nb.sync.store.Store`, the schema of
:mod:`mailhat_nb.sync.schema`), so the store is what a sync would leave:
``_state.json`` records, hive directories, readable by every engine. The
same seed gives the same store.

Run: ``.venv/bin/python benchmarks/synthetic_store.py --rows 10000000 --accounts 20
--store /tmp/big-store``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mailhat_nb.sync.rows import write_parquet
from mailhat_nb.sync.schema import STORE_COLUMNS, arrow_type, store_schema
from mailhat_nb.sync.store import FolderStore, Store, utc_now

DOMAIN = "team.example.com"
FOLDERS = ("INBOX", "Sent", "Archive", "All Mail", "Export")
ROLES = ("inbox", "sent", "archive", "all", "")
INBOX, SENT, ARCHIVE, ALL_MAIL, EXPORT = range(5)
UIDVALIDITY = 1_700_000_000
DAY_US = 86_400 * 10**6
START_US = 1_546_300_800 * 10**6            # 2019-01-01 00:00 UTC
FIRST = np.array(["Ann", "Bob", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo",
                  "Kofi", "Lena", "Mia", "Noor", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tess"])
LAST = np.array(["Lee", "Smith", "Garcia", "Okafor", "Ivanova", "Kim", "Rossi", "Novak",
                 "Haddad", "Silva", "Tanaka", "Berg", "Dubois", "Nguyen"])
DOMAINS = np.array(["acme.test", "globex.test", "initech.test", "gmail.com", "corp.test",
                    "lists.example.org", "umbrella.test", "hooli.test"])
TOPICS = np.array(["Budget", "Meeting", "Report", "Lunch?", "Contract", "Q3 plan", "Invoice",
                   "Schedule", "Hello", "Update", "Renewal", "Support ticket", "Quote",
                   "Order status", "Onboarding", "Feedback"])
# Per logical message: what kind (inbound, outbound, internal) and the reply mix.
KINDS_P = (0.55, 0.30, 0.15)
LEVELS_P = (0.60, 0.25, 0.15)               # originals, replies, replies to replies
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Team:
    """The fixed cast: teammates and contacts, with names and who handles whom."""

    addresses: pa.Array          # teammates first (0..accounts-1), then contacts
    names: pa.Array
    accounts: int
    contact_weights: npt.NDArray[np.float64]
    owner: IntArray               # contact -> the teammate who mostly handles it
    teammate_weights: npt.NDArray[np.float64]

    @property
    def contacts(self) -> int:
        return len(self.contact_weights)


def make_team(accounts: int, contacts: int, rng: np.random.Generator) -> Team:
    """Teammates ``first.last@team.example.com`` and Zipf-weighted outside contacts."""
    mates = [f"{FIRST[i % len(FIRST)].lower()}.{LAST[i % len(LAST)].lower()}{i}@{DOMAIN}"
             for i in range(accounts)]
    mate_names = [f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}" for i in range(accounts)]
    fi = rng.integers(0, len(FIRST), contacts)
    li = rng.integers(0, len(LAST), contacts)
    di = rng.choice(len(DOMAINS), contacts, p=[0.2, 0.15, 0.1, 0.25, 0.1, 0.05, 0.1, 0.05])
    local = np.char.add(np.char.add(np.char.lower(FIRST[fi]), "."),
                        np.char.add(np.char.lower(LAST[li]), np.arange(contacts).astype(str)))
    addrs = np.char.add(np.char.add(local, "@"), DOMAINS[di])
    names = np.char.add(np.char.add(FIRST[fi], " "), LAST[li]).astype(object)
    names[rng.random(contacts) < 0.3] = None            # many senders give no name
    weights = 1.0 / (np.arange(contacts) + 10.0)
    mate_w = 1.0 / (np.arange(accounts) + 3.0)
    return Team(
        addresses=pa.array(mates + addrs.tolist(), pa.large_string()),
        names=pa.array(mate_names + names.tolist(), pa.large_string()),
        accounts=accounts,
        contact_weights=weights / weights.sum(),
        owner=rng.choice(accounts, contacts, p=mate_w / mate_w.sum()).astype(np.int64),
        teammate_weights=mate_w / mate_w.sum(),
    )


def _other_mate(rng: np.random.Generator, mate: IntArray, accounts: int) -> IntArray:
    """A teammate other than ``mate`` (uniform)."""
    shift = rng.integers(1, max(accounts, 2), len(mate))
    return np.asarray((mate + shift) % accounts, dtype=np.int64)


def office_hours(rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
    """``n`` dates (µs since the epoch, whole seconds) in 2019-2023 office hours, and offsets.

    Weekdays mostly, around 13:30 on the writer's clock, which is UTC plus
    the returned offset (minutes), as a Date header gives it.
    """
    day = rng.integers(0, 5 * 365, n)
    weekday = (day + 1) % 7                             # 2019-01-01 was a Tuesday
    day = np.where((weekday >= 5) & (rng.random(n) < 0.7), day - (weekday - 4), day)
    hour = np.clip(rng.normal(13.5, 3.2, n), 0, 23.99)
    offset = rng.choice(np.array([-480, -300, 0, 60, 330, 540]), n,
                        p=[0.25, 0.3, 0.15, 0.15, 0.1, 0.05])
    date = (START_US + day * DAY_US + (hour * 3600).astype(np.int64) * 10**6
            - offset * 60 * 10**6)
    return date, offset


def _large(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _lists(lengths: IntArray, values: IntArray, pool: pa.Array) -> pa.ListArray:
    """A list column: row i holds ``pool[values[off_i:off_i + lengths[i]]]``."""
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pool.take(pa.array(values)))


@dataclass
class Messages:
    """One chunk of logical messages (before they are filed in mailboxes)."""

    sender: IntArray                 # address code (teammates are 0..accounts-1)
    to: pa.ListArray
    cc: pa.ListArray
    to_codes: list[IntArray]          # per message: teammates among the recipients
    date_us: IntArray
    offset_min: IntArray
    message_id: pa.Array
    in_reply_to: pa.Array
    references: pa.ListArray
    subject: pa.Array
    no_date: BoolArray
    fallback: BoolArray
    defect: BoolArray
    size: IntArray


def make_messages(team: Team, n: int, chunk: int, seed: int,
                  rng: np.random.Generator) -> Messages:
    """``n`` logical messages: originals, replies and replies to replies."""
    a = team.accounts
    level = rng.choice(3, n, p=LEVELS_P)
    order = np.argsort(level, kind="stable")           # originals first, then each level
    level = level[order]
    orig = np.flatnonzero(level == 0)
    parent = np.full(n, -1, dtype=np.int64)
    lvl1 = np.flatnonzero(level == 1)
    lvl2 = np.flatnonzero(level == 2)
    parent[lvl1] = rng.choice(orig, len(lvl1))
    parent[lvl2] = rng.choice(lvl1, len(lvl2)) if len(lvl1) else rng.choice(orig, len(lvl2))

    kind = rng.choice(3, n, p=KINDS_P)                 # 0 inbound, 1 outbound, 2 internal
    contact = a + rng.choice(team.contacts, n, p=team.contact_weights)
    handled = np.where(rng.random(n) < 0.8, team.owner[contact - a],
                       rng.choice(a, n, p=team.teammate_weights))
    mate = np.where(kind == 2, rng.choice(a, n, p=team.teammate_weights), handled)
    peer = _other_mate(rng, mate, a)                   # the internal recipient
    sender = np.where(kind == 0, contact, mate)
    main_rcpt = np.where(kind == 0, mate, np.where(kind == 1, contact, peer))
    # A reply goes the other way: its parent's main recipient answers its sender.
    for idx in (lvl1, lvl2):
        p = parent[idx]
        sender[idx], main_rcpt[idx] = main_rcpt[p], sender[p]
        kind[idx] = np.where(kind[p] == 2, 2, 1 - kind[p])

    cc_mate = np.where(rng.random(n) < 0.15, _other_mate(rng, np.where(
        sender < a, sender, main_rcpt), a), -1)
    cc_mate = np.where((cc_mate == sender) | (cc_mate == main_rcpt), -1, cc_mate)
    outside = kind != 2                                 # internal mail stays in the team
    extra_to = rng.choice(3, n, p=[0.75, 0.18, 0.07]) * outside
    extra_cc = rng.choice(2, n, p=[0.85, 0.15]) * outside
    to_len = 1 + extra_to
    to_vals = a + rng.choice(team.contacts, int(to_len.sum()), p=team.contact_weights)
    to_vals[np.r_[0, np.cumsum(to_len)[:-1]]] = main_rcpt
    has_cc_mate = cc_mate >= 0
    cc_len = extra_cc + has_cc_mate
    cc_vals = a + rng.choice(team.contacts, int(cc_len.sum()), p=team.contact_weights)
    cc_vals[np.r_[0, np.cumsum(cc_len)[:-1]][has_cc_mate]] = cc_mate[has_cc_mate]

    # Dates: office hours on weekdays, the writer's offset; replies after a delay.
    date, offset = office_hours(rng, n)
    for idx in (lvl1, lvl2):
        delay_s = np.exp(rng.normal(np.log(3 * 3600), 1.6, len(idx))).astype(np.int64) + 60
        date[idx] = date[parent[idx]] + delay_s * 10**6
        offset[idx] = offset[parent[idx]]

    ids = pc.binary_join_element_wise(
        pa.array(np.arange(n)).cast(pa.large_string()), _large(f"c{chunk}"),
        _large(f"s{seed}@mail.synthetic.test"), _large("."))
    has_parent = parent >= 0
    irt = ids.take(pa.array(np.maximum(parent, 0), mask=~has_parent))
    grand = np.where(has_parent, parent[np.maximum(parent, 0)], -1)
    ref_len = has_parent.astype(np.int64) + (grand >= 0)
    ref_vals = np.column_stack([grand, parent]).ravel()
    ref_vals = ref_vals[ref_vals >= 0]
    topic = rng.integers(0, len(TOPICS), n)
    for idx in (lvl1, lvl2):
        topic[idx] = topic[parent[idx]]
    subject = pc.binary_join_element_wise(
        pa.array(np.where(has_parent, "Re: ", "")).cast(pa.large_string()),
        pa.array(TOPICS[topic]).cast(pa.large_string()), _large(""))
    to_codes = [main_rcpt, np.where(has_cc_mate, cc_mate, -1)]
    return Messages(
        sender=sender, to=_lists(to_len, to_vals, team.addresses),
        cc=_lists(cc_len, cc_vals, team.addresses), to_codes=to_codes, date_us=date,
        offset_min=offset, message_id=ids, in_reply_to=irt,
        references=_lists(ref_len, ref_vals, ids), subject=subject,
        no_date=rng.random(n) < 0.001, fallback=rng.random(n) < 0.005,
        defect=rng.random(n) < 0.003, size=rng.integers(800, 60_000, n),
    )


def file_rows(team: Team, msgs: Messages, rng: np.random.Generator) -> tuple[
        IntArray, IntArray, IntArray, BoolArray]:
    """Where each message is filed: (message, account, folder, re-issued id) per row.

    The sender's Sent folder when a teammate wrote it, each teammate
    recipient's INBOX (or Archive); then some rows again in All Mail (same
    ID) or Export (new ID).
    """
    a = team.accounts
    n = len(msgs.sender)
    idx = np.arange(n, dtype=np.int64)
    msg_parts, acct_parts, folder_parts = [], [], []
    sent = msgs.sender < a
    msg_parts.append(idx[sent])
    acct_parts.append(msgs.sender[sent])
    folder_parts.append(np.full(int(sent.sum()), SENT))
    for who in msgs.to_codes:
        got = (who >= 0) & (who < a) & (who != msgs.sender)
        msg_parts.append(idx[got])
        acct_parts.append(who[got])
        folder_parts.append(np.where(rng.random(int(got.sum())) < 0.8, INBOX, ARCHIVE))
    msg = np.concatenate(msg_parts)
    acct = np.concatenate(acct_parts)
    folder = np.concatenate(folder_parts)
    again = rng.random(len(msg))
    copy_all = again < 0.05
    copy_export = (again >= 0.05) & (again < 0.07)
    msg = np.r_[msg, msg[copy_all], msg[copy_export]]
    acct = np.r_[acct, acct[copy_all], acct[copy_export]]
    folder = np.r_[folder, np.full(int(copy_all.sum()), ALL_MAIL),
                   np.full(int(copy_export.sum()), EXPORT)]
    reissued = np.r_[np.zeros(len(msg) - int(copy_export.sum()), dtype=bool),
                     np.ones(int(copy_export.sum()), dtype=bool)]
    return msg, acct, folder, reissued


def rows_table(team: Team, msgs: Messages, msg: IntArray, acct: IntArray, folder: IntArray,
               reissued: BoolArray, chunk: int) -> pa.Table:
    """The rows as an Arrow table of the store's schema (``uid`` filled in later)."""
    take = pa.array(msg)
    n = len(msg)
    null_date = msgs.no_date[msg]
    fallback = msgs.fallback[msg] & ~null_date
    date = pa.array(msgs.date_us[msg], pa.timestamp("us", tz="UTC"), mask=null_date)
    new_ids = pc.binary_join_element_wise(
        pa.array(np.arange(n)).cast(pa.large_string()),
        _large(f"x{chunk}@export.synthetic.test"), _large("."))
    message_id = pc.if_else(pa.array(reissued), new_ids, msgs.message_id.take(take))
    internal = pa.array(msgs.date_us[msg] + 45 * 10**6, pa.timestamp("us", tz="UTC"))
    source = np.where(null_date, 2, np.where(fallback, 1, 0))
    is_received = folder != SENT
    delivered = _lists(is_received.astype(np.int64), acct[is_received], team.addresses)
    defects = np.where(null_date, 1, np.where(msgs.defect[msg], 0, -1))
    defect_list = _lists((defects >= 0).astype(np.int64), defects[defects >= 0],
                         pa.array(["subject_undecodable", "date_missing"]))
    flags = _lists(np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                   pa.array(["\\Seen"]))
    empty = _lists(np.zeros(n, dtype=np.int64), np.zeros(0, dtype=np.int64), pa.array([""]))
    sender = msgs.sender[msg]
    columns: dict[str, pa.Array] = {
        "folder_role": pa.DictionaryArray.from_arrays(
            pa.array(folder, pa.int8()), pa.array(ROLES, pa.large_string())),
        "uidvalidity": pa.array(np.full(n, UIDVALIDITY, dtype=np.int64)),
        "uid": pa.array(np.zeros(n, dtype=np.int64)),
        "message_id": message_id,
        "date": pc.if_else(pa.array(fallback), internal, date),
        "date_source": pa.DictionaryArray.from_arrays(
            pa.array(source, pa.int8()),
            pa.array(["header", "internaldate", "none"], pa.large_string())),
        "date_offset_min": pa.array(msgs.offset_min[msg].astype(np.int16),
                                    mask=null_date | fallback),
        "internaldate": internal,
        "from_addr": team.addresses.take(pa.array(sender)),
        "from_name": team.names.take(pa.array(sender)),
        "to_addrs": msgs.to.take(take),
        "cc_addrs": msgs.cc.take(take),
        "delivered_to": delivered,
        "subject": msgs.subject.take(take),
        "in_reply_to": msgs.in_reply_to.take(take),
        "references": msgs.references.take(take),
        "size": pa.array(msgs.size[msg]),
        "flags": flags,
        "labels": empty,
        "defects": defect_list,
    }
    data = [columns[name].cast(arrow_type(kind)) if name in columns
            else pa.nulls(n, arrow_type(kind)) for name, kind in STORE_COLUMNS.items()]
    return pa.Table.from_arrays(data, schema=store_schema())


class Writer:
    """Commits each chunk's rows as one new part per (account, folder)."""

    def __init__(self, store: Path, team: Team) -> None:
        self.root = Store(store)
        self.team = team
        self.folders: dict[tuple[int, int], FolderStore] = {}
        self.next_uid: dict[tuple[int, int], int] = {}

    def folder(self, acct: int, folder: int) -> FolderStore:
        key = (acct, folder)
        if key not in self.folders:
            account = str(self.team.addresses[acct])
            store = self.root.open_folder(account, FOLDERS[folder])
            store.commit_state(uidvalidity=UIDVALIDITY, role=ROLES[folder], source="synthetic")
            self.folders[key] = store
            self.next_uid[key] = 1
        return self.folders[key]

    def write(self, table: pa.Table, acct: IntArray, folder: IntArray) -> None:
        order = np.lexsort((np.arange(len(acct)), folder, acct))
        key = acct[order] * len(FOLDERS) + folder[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], len(key)]
        for s, e in zip(starts, ends, strict=True):
            a, f = int(acct[order[s]]), int(folder[order[s]])
            store = self.folder(a, f)
            first = self.next_uid[(a, f)]
            uids = np.arange(first, first + (e - s), dtype=np.int64)
            self.next_uid[(a, f)] = int(first + (e - s))
            part = table.take(pa.array(order[s:e]))
            part = part.set_column(part.schema.get_field_index("uid"), "uid", pa.array(uids))
            name, tmp = store.reserve_part(int(uids[0]), int(uids[-1]))
            write_parquet(part, tmp)
            store.append_written(name, uids.tolist())

    def close(self) -> None:
        now = utc_now()
        for key, store in self.folders.items():
            n = self.next_uid[key] - 1
            store.commit_state(complete=True, messages=n, uidnext=n + 1, last_sync=now)


def generate(store: Path | str, rows: int, accounts: int = 20, seed: int = 7,
             chunk_rows: int = 1_000_000, contacts: int | None = None) -> int:
    """Write about ``rows`` rows (one per message per folder) into ``store``; return how many.

    The number of logical messages is chosen so the rows come out close to
    ``rows`` (each message is filed ~1.4 times); the chunks are independent
    given the seed, so the same arguments give the same store.
    """
    rng = np.random.default_rng(seed)
    team = make_team(accounts, contacts or max(2_000, rows // 50), rng)
    writer = Writer(Path(store), team)
    written = 0
    chunk = 0
    per_message = 1.4                   # rows per message, refined by each chunk
    with contextlib.ExitStack() as locks:
        for i in range(accounts):       # one writer per account, as a sync takes it
            locks.enter_context(writer.root.lock(str(team.addresses[i])))
        while written < rows:
            crng = np.random.default_rng([seed, chunk])
            want = min(chunk_rows, rows - written)
            msgs = make_messages(team, max(int(want / per_message) + 1, 1), chunk, seed, crng)
            msg, acct, folder, reissued = file_rows(team, msgs, crng)
            per_message = len(msg) / len(msgs.sender)
            if len(msg) > want:         # a random few rows too many: a mailbox lost them
                keep = np.sort(crng.choice(len(msg), want, replace=False))
                msg, acct, folder, reissued = msg[keep], acct[keep], folder[keep], reissued[keep]
            keep_n = len(msg)
            table = rows_table(team, msgs, msg, acct, folder, reissued, chunk)
            writer.write(table, acct, folder)
            written += keep_n
            chunk += 1
        writer.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.store.exists() and any(args.store.iterdir()):
        parser.error(f"{args.store} is not empty: give a new directory")
    start = time.perf_counter()
    n = generate(args.store, args.rows, args.accounts, args.seed, args.chunk_rows)
    print(f"wrote {n:,} rows in {args.accounts} accounts to {args.store} in "
          f"{time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
