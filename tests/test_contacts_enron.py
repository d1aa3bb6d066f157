"""Contacts on real Enron mailboxes, checked against an independent count.

The independent count (``oracle_*``) reads the message files with nothing but
the standard library's ``email`` package and counts with plain dicts and a
union-find: no pandas, no package code. The frame under test always comes
from the package's Maildir reader (``mailhat_nb.analysis.load.load_maildir``),
so the reader, the parser and the counting are all checked against the
plain-Python count (never a frame built from the oracle itself, which would
compare the oracle with itself).
"""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import os
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from mailhat_nb.analysis.load import load_maildir
from mailhat_nb.contacts import contacts, own_addresses, unique_messages

SENT = {"sent", "sent_items", "_sent_mail"}


@dataclass(frozen=True)
class Rec:
    folder: str
    message_id: str | None
    date: datetime | None
    from_addr: str | None
    rcpts: frozenset[str]
    subject: str | None


def _decode(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, UnicodeError, ValueError):
        return value


@cache
def oracle_records(person_dir: Path) -> tuple[Rec, ...]:
    """Every file of one Enron person, parsed by the stdlib (compat32)."""
    out = []
    for dirpath, _, files in os.walk(person_dir):
        folder = os.path.relpath(dirpath, person_dir)
        for name in files:
            if name.startswith("."):
                continue
            with open(os.path.join(dirpath, name), "rb") as fh:
                msg = email.message_from_binary_file(fh, policy=email.policy.compat32)
            try:
                date = email.utils.parsedate_to_datetime(msg["Date"]).astimezone(UTC)
            except (TypeError, ValueError):
                date = None
            from_addr = email.utils.parseaddr(msg.get("From", ""))[1].strip().lower() or None
            heads = (msg.get_all("To") or []) + (msg.get_all("Cc") or [])
            rcpts = frozenset(a.strip().lower() for _, a in email.utils.getaddresses(heads)
                              if a.strip())
            mid = (msg.get("Message-ID") or "").strip().strip("<>") or None
            out.append(Rec(folder, mid, date, from_addr, rcpts, _decode(msg["Subject"])))
    return tuple(out)


def oracle_unique(records: tuple[Rec, ...]) -> list[Rec]:
    """DESIGN rule: same Message-ID, or same From+Date+Subject+recipients (transitive)."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: dict[object, int] = {}
    for i, r in enumerate(records):
        keys: list[object] = []
        if r.message_id:
            keys.append(("id", r.message_id))
        if r.date is not None:
            keys.append(("content", r.from_addr, r.date, r.subject or "", r.rcpts))
        for k in keys:
            if k in seen:
                parent[find(i)] = find(seen[k])
            else:
                seen[k] = i
    groups: dict[int, Rec] = {}
    for i, r in enumerate(records):
        groups.setdefault(find(i), r)
    return list(groups.values())


def oracle_self(records: tuple[Rec, ...]) -> set[str]:
    return {r.from_addr for r in records if r.folder in SENT and r.from_addr}


def oracle_counts(records: tuple[Rec, ...], me: set[str]) -> dict[str, tuple[int, int]]:
    sent: Counter[str] = Counter()
    received: Counter[str] = Counter()
    for r in oracle_unique(records):
        if r.from_addr in me:
            sent.update(a for a in r.rcpts if a not in me)
        elif r.from_addr:
            received[r.from_addr] += 1
    return {c: (sent[c], received[c]) for c in set(sent) | set(received)}


def load_person(person_dir: Path, account: str) -> pd.DataFrame:
    """The frame under test: the package's own Maildir reader."""
    frame: pd.DataFrame = load_maildir(person_dir, account)
    return frame


PERSONS = ["cuilla-m", "dean-c", "delainey-d"]


@pytest.fixture(scope="module", params=PERSONS)
def person(request: pytest.FixtureRequest, corpus: Path) -> tuple[str, Path, pd.DataFrame]:
    person_dir = corpus / "enron" / request.param
    return request.param, person_dir, load_person(person_dir, request.param)


def test_one_row_per_file(person: tuple[str, Path, pd.DataFrame]) -> None:
    _, person_dir, frame = person
    assert len(frame) == len(oracle_records(person_dir))


def test_self_is_the_sent_folders_from(person: tuple[str, Path, pd.DataFrame]) -> None:
    name, person_dir, frame = person
    me = own_addresses(frame)
    assert set(me["address"]) == oracle_self(oracle_records(person_dir))
    if name == "dean-c":  # two custodians merged in one mailbox (corpus README)
        assert {"clint.dean@enron.com", "craig.dean@enron.com"} <= set(me["address"])


def test_direction_and_contacts_agree_on_self(person: tuple[str, Path, pd.DataFrame]) -> None:
    # One rule for self: a row the reader calls "sent" is exactly a row whose
    # sender the contacts treat as self, so no self address is ever a contact.
    _, _, frame = person
    me = own_addresses(frame)
    from_self = frame["from_addr"].isin(list(me["address"])).to_numpy()
    assert ((frame["direction"] == "sent").to_numpy() == from_self).all()
    assert from_self.any()
    assert not set(contacts(frame, me)["contact"]) & set(me["address"])


def test_duplicates_collapse_like_the_independent_count(
    person: tuple[str, Path, pd.DataFrame],
) -> None:
    _, person_dir, frame = person
    recs = oracle_records(person_dir)
    uniq = unique_messages(frame)
    assert len(uniq) == len(oracle_unique(recs))
    assert len(uniq) < len(frame)  # every Enron mailbox repeats messages across views
    assert uniq["copies"].sum() == len(frame)


def test_contacts_match_the_independent_count(person: tuple[str, Path, pd.DataFrame]) -> None:
    _, person_dir, frame = person
    recs = oracle_records(person_dir)
    me = oracle_self(recs)
    expected = oracle_counts(recs, me)
    got = contacts(frame, own_addresses(frame))
    got_counts = {
        c: (s, r) for c, s, r in zip(got["contact"], got["sent"], got["received"], strict=True)
    }
    assert got_counts == expected
    assert not set(got["contact"]) & me
    assert (got["total"] == got["sent"] + got["received"]).all()


def test_sent_folders_and_views_count_once(corpus: Path) -> None:
    """delainey-d files most sent mail in `sent` and `_sent_mail` and again in two views."""
    person_dir = corpus / "enron" / "delainey-d"
    frame = load_person(person_dir, "delainey-d")
    copies = {"sent", "_sent_mail", "sent_items", "all_documents", "discussion_threads"}
    sub = frame[frame["folder"].astype("str").isin(copies)]
    recs = tuple(r for r in oracle_records(person_dir) if r.folder in copies)
    assert len(sub) == len(recs)
    uniq = unique_messages(sub)
    assert len(uniq) == len(oracle_unique(recs))
    assert len(uniq) < 0.6 * len(sub)  # measured: most rows are second or third copies
    me = oracle_self(oracle_records(person_dir))
    got = contacts(sub, sorted(me))
    assert dict(zip(got["contact"], zip(got["sent"], got["received"], strict=True),
                    strict=True)) == oracle_counts(recs, me)
    # Adding yet another copy of every sent message, with fresh Message-IDs
    # (as an exporter would), changes nothing.
    again = sub[sub["folder"] == "sent"].assign(
        folder="copy_of_sent", message_id=lambda d: "new-" + d["message_id"].astype("str"))
    assert contacts(pd.concat([sub, again], ignore_index=True), sorted(me)).equals(got)
