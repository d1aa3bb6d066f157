"""The team view: a store of several accounts read as one team (docs/team.md).

A two-account store written with the store's own API (alice and bob, who
write to each other and to two outsiders) pins the three defects the
all-accounts analysis had (a teammate's login counted as self for every
account, a client's message to two teammates counted twice, mail between
teammates lost), the JSON of ``mailhat contacts`` and the internal table.
A plain-Python count written from docs/team.md alone (``oracle``) checks the
pandas code on random teams, in every row order (hypothesis).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from test_contacts_enron import oracle_counts, oracle_records, oracle_self, oracle_unique

from mailhat_nb import cli
from mailhat_nb import contacts as ca
from mailhat_nb.analysis.load import read_messages
from mailhat_nb.errors import UsageError
from mailhat_nb.sync import rows as rowmod
from mailhat_nb.sync.store import Store

A, B = "alice@team.example", "bob@team.example"
CAROL, DAVE = "carol@client.example", "dave@other.example"
T0 = dt.datetime(2023, 5, 1, 9, tzinfo=dt.UTC)


def row(uid: int, mid: str, frm: str, to: list[str], role: str, **extra: Any) -> dict[str, Any]:
    """A stored row; the date and subject follow the Message-ID, as copies' do."""
    n = int("".join(c for c in mid if c.isdigit()) or 0) + ord(mid[0])
    base: dict[str, Any] = {
        "uidvalidity": 1, "uid": uid, "message_id": f"{mid}@mail", "folder_role": role,
        "date": T0 + dt.timedelta(hours=n), "date_source": "header", "date_offset_min": 0,
        "internaldate": T0, "from_addr": frm, "from_name": "", "to_addrs": to,
        "cc_addrs": [], "delivered_to": [], "subject": f"about {mid}", "subject_raw": None,
        "in_reply_to": None, "references": [], "list_id": None, "size": 100, "flags": [],
        "labels": [], "gm_msgid": None, "gm_thrid": None, "defects": [],
    }
    base.update(extra)
    return base


#: account -> folder -> rows. Copies of one message share its Message-ID.
TEAM = {
    A: {
        "INBOX": [row(1, "c1", CAROL, [A, B], "inbox", from_name="Carol C"),  # to both
                  row(2, "b1", B, [A], "inbox"),                          # bob -> alice
                  row(3, "d1", DAVE, [A], "inbox")],
        "Sent": [row(1, "a1", A, [CAROL], "sent"),
                 row(2, "a2", A, [B], "sent"),                            # alice -> bob
                 row(3, "a3", A, [CAROL, B], "sent")],                    # carol + bob
    },
    B: {
        "INBOX": [row(1, "c1", CAROL, [A, B], "inbox", from_name="Carol C"),
                  row(2, "a2", A, [B], "inbox"),
                  row(3, "a3", A, [CAROL, B], "inbox"),
                  row(4, "c2", CAROL, [B], "inbox", from_name="Carol C")],
        "Sent": [row(1, "b1", B, [A], "sent"),
                 row(2, "b2", B, [CAROL], "sent"),
                 row(3, "b3", B, [DAVE], "sent")],
    },
}


def write_store(root: Path, team: dict[str, dict[str, list[dict[str, Any]]]]) -> Path:
    for account, folders in team.items():
        for folder, rows in folders.items():
            fs = Store(root).open_folder(account, folder)
            fs.commit_state(uidvalidity=1)
            fs.append(rowmod.rows_to_table(rows), [r["uid"] for r in rows])
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "store", TEAM)


def contacts_json(store: Path, capsys: pytest.CaptureFixture[str],
                  *args: str) -> list[dict[str, Any]]:
    assert cli.main(["contacts", "--store", str(store), "--json", *args]) == 0
    out: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return out


# --------------------------------------------------------------------------- the three defects


def test_a_teammates_login_is_never_another_accounts_self(store: Path) -> None:
    frame = read_messages(store)
    who = ca.own_addresses(frame)  # several accounts: each its own, said whose
    assert set(zip(who["account"], who["address"], strict=True)) == {(A, A), (B, B)}
    assert who.set_index("address").loc[B, "sources"] == "login, sent folder"
    # so a message from carol that only bob's mailbox holds is bob's alone
    per = ca.contacts_by_account(frame, ca.team_identity(frame))
    carol = per[per["contact"] == CAROL].set_index("account")
    assert carol.loc[A, "received"] == 1          # c1 only: c2 is not in alice's mailbox
    assert carol.loc[B, "received"] == 2


def test_a_clients_message_to_two_teammates_counts_once(
        store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = {p["contact"]: p for p in contacts_json(store, capsys)}
    assert (got[CAROL]["sent"], got[CAROL]["received"]) == (3, 2)  # a1 a3 b2 / c1 c2
    assert (got[DAVE]["sent"], got[DAVE]["received"]) == (1, 1)
    assert set(got) == {CAROL, DAVE}  # teammates are never contacts


def test_mail_between_teammates_is_the_internal_table(
        store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["contacts", "--store", str(store), "--internal", "--json"]) == 0
    inside = json.loads(capsys.readouterr().out)
    assert [(r["from_account"], r["to_account"], r["messages"]) for r in inside] == [
        (A, B, 2), (B, A, 1)]
    assert inside[0]["first"] == (T0 + dt.timedelta(hours=2 + ord("a"))).isoformat()
    assert inside[0]["last"] == (T0 + dt.timedelta(hours=3 + ord("a"))).isoformat()


# --------------------------------------------------------------------------- the team view


def test_json_rows_carry_accounts_and_owner(store: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    got = contacts_json(store, capsys)
    assert [p["contact"] for p in got] == [CAROL, DAVE]
    assert list(got[0]) == ["contact", "name", "sent", "received", "total", "first", "last",
                            "owner", "accounts"]
    assert got[0]["name"] == "Carol C"
    # carol: alice sent a1 a3 and holds c1; bob sent b2 and holds c1 c2:
    # 3 each, alice sent more, so alice owns carol.
    assert got[0]["accounts"] == {A: {"sent": 2, "received": 1}, B: {"sent": 1, "received": 2}}
    assert got[0]["owner"] == A
    # dave: alice holds d1, bob sent b3; a tie on both counts goes to who sent
    assert got[1]["accounts"] == {A: {"sent": 0, "received": 1}, B: {"sent": 1, "received": 0}}
    assert got[1]["owner"] == B
    assert got[0]["first"] == (T0 + dt.timedelta(hours=1 + ord("a"))).isoformat()  # a1


def test_account_keeps_the_single_view(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = contacts_json(store, capsys, "--account", A)
    # alice's own view: bob is a contact there, as before the team view existed
    assert {p["contact"]: (p["sent"], p["received"]) for p in got} == {
        CAROL: (2, 1), B: (2, 1), DAVE: (0, 1)}
    assert set(got[0]) == {"contact", "name", "sent", "received", "total", "first", "last"}
    assert cli.main(["contacts", "--store", str(store), "--account", A, "--internal"]) == 2
    assert "--internal" in capsys.readouterr().err


def test_table_and_csv_of_the_team(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["contacts", "--store", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"team of 2 accounts: {A}: {A} (login, sent folder); " \
                     f"{B}: {B} (login, sent folder)"
    assert out[1].split() == ["contact", "name", "sent", "recv", "total", "first", "last",
                              "owner"]
    assert (out[2].split()[0], out[2].split()[-1]) == (CAROL, A)
    assert cli.main(["contacts", "--store", str(store), "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "contact,name,sent,received,total,first,last,owner"
    assert cli.main(["contacts", "--store", str(store), "--internal"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:3] == ["from", "to", "messages"]
    assert table[2].split()[:3] == [A, B, "2"]


def test_self_in_the_team_view_says_whose(store: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["contacts", "--store", str(store), "--self", "old@team.example"]) == 2
    assert "ACCOUNT:ADDR" in capsys.readouterr().err
    assert cli.main(["contacts", "--store", str(store), "--self",
                     "nobody@x.example:old@team.example"]) == 2
    assert "no account 'nobody@x.example'" in capsys.readouterr().err
    # dave becomes bob's own address: dave's mail is bob's, b3 a note to self
    got = contacts_json(store, capsys, "--self", f"{B}:{DAVE}")
    assert [p["contact"] for p in got] == [CAROL]
    assert cli.main(["contacts", "--store", str(store), "--self", f"{B}:{DAVE}", "--internal",
                     "--json"]) == 0
    inside = json.loads(capsys.readouterr().out)
    assert [(r["from_account"], r["to_account"], r["messages"]) for r in inside] == [
        (A, B, 2), (B, A, 2)]  # d1: dave (bob's now) -> alice
    got = contacts_json(store, capsys, "--exclude", B)
    assert {p["contact"] for p in got} == {CAROL, DAVE, B}  # bob is nobody's address now


def test_owner_and_counts_from_python_match_the_cli(store: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    frame = read_messages(store)
    who = ca.team_identity(frame)
    team = ca.team_messages(frame)
    assert len(team) == 9
    assert team["copies"].sum() == len(frame) == 13
    assert list(team.set_index("message_id").loc["c1@mail", "held_by"]) == [A, B]
    people = ca.team_contacts(team, who)
    assert people.equals(ca.team_contacts(frame, who))  # raw or de-duplicated: the same
    assert ca.team_records(people, ca.contacts_by_account(team, who)) == contacts_json(
        store, capsys)
    # The team's totals are the single-account rules with the team as self.
    same = ca.contacts(team, who)
    assert same.equals(people.drop(columns="owner"))
    with pytest.raises(UsageError, match="identity table"):
        ca.team_contacts(frame, [A, B])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="without held_by"):
        ca.team_contacts(ca.unique_messages(frame), who)


def test_one_account_store_is_the_single_view(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    only = write_store(tmp_path / "one", {A: TEAM[A]})
    got = contacts_json(only, capsys)
    assert "owner" not in got[0]
    assert cli.main(["contacts", "--store", str(only), "--internal"]) == 2
    assert "several accounts" in capsys.readouterr().err


# --------------------------------------------------------------------------- the oracle


def oracle(frame: pd.DataFrame, own: dict[str, set[str]]) -> dict[str, Any]:
    """docs/team.md in plain Python: dicts, sets and a union-find, no package code."""
    rows = frame.to_dict("records")
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: dict[Any, int] = {}
    for i, r in enumerate(rows):
        rcpts = frozenset(list(r["to_addrs"]) + list(r["cc_addrs"]))
        keys = []
        if isinstance(r["message_id"], str) and r["message_id"]:
            keys.append(("id", r["message_id"]))
        if not pd.isna(r["date"]):
            keys.append(("content", r["from_addr"], r["date"], r["subject"], rcpts))
        for k in keys:
            if k in seen:
                parent[find(i)] = find(seen[k])
            else:
                seen[k] = i
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(rows)):
        groups[find(i)].append(i)
    team = set().union(*own.values())
    owners = {a: {acct for acct, addrs in own.items() if a in addrs} for a in team}
    sent: dict[str, int] = defaultdict(int)
    received: dict[str, int] = defaultdict(int)
    per: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    inside: dict[tuple[str, str], int] = defaultdict(int)
    for members in groups.values():
        kept = rows[min(members, key=lambda i: (
            rows[i]["date_source"] != "header", rows[i]["account"], rows[i]["folder"],
            rows[i]["uidvalidity"], rows[i]["uid"], i))]
        holders = {rows[i]["account"] for i in members}
        frm = kept["from_addr"]
        rcpts = set(kept["to_addrs"]) | set(kept["cc_addrs"])
        if frm in team:
            by = (owners[frm] & holders) or owners[frm]
            for c in rcpts - team:
                sent[c] += 1
                for acct in by:
                    per[c, acct][0] += 1
            pairs = {(s, t) for s in by for r in rcpts & team for t in owners[r] if s != t}
            for pair in pairs:
                inside[pair] += 1
        elif isinstance(frm, str):
            received[frm] += 1
            for acct in holders:
                per[frm, acct][1] += 1
    return {"sent": dict(sent), "received": dict(received),
            "per": {k: tuple(v) for k, v in per.items()}, "internal": dict(inside)}


def pandas_view(frame: pd.DataFrame, who: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """The pandas tables as the oracle's dicts, and the team's tables for exact comparison."""
    team = ca.team_messages(frame)
    per = ca.contacts_by_account(team, who)
    people = ca.team_contacts(team, who, by_account=per)
    inside = ca.internal_mail(team, who)
    counts = {
        "sent": {c: s for c, s in zip(people["contact"], people["sent"], strict=True) if s},
        "received": {c: r for c, r in zip(people["contact"], people["received"], strict=True)
                     if r},
        "per": {(c, a): (s, r) for c, a, s, r in zip(per["contact"], per["account"],
                                                     per["sent"], per["received"],
                                                     strict=True)},
        "internal": dict(zip(zip(inside["from_account"], inside["to_account"], strict=True),
                             inside["messages"], strict=True)),
    }
    return counts, pd.concat([people, inside], keys=["people", "inside"])


PEOPLE = ["a@t.x", "b@t.x", "shared@t.x", "c@out.x", "d@out.x", "e@out.x"]
ACCOUNTS = {"a@t.x": {"a@t.x", "shared@t.x"}, "b@t.x": {"b@t.x", "shared@t.x"}}

message = st.fixed_dictionaries({
    "mid": st.sampled_from(["m1", "m2", "m3", "m4", "m5", None]),
    "frm": st.sampled_from(PEOPLE),
    "to": st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3),
    "hour": st.integers(0, 3),
    "subject": st.sampled_from(["x", "y"]),
    "account": st.sampled_from(sorted(ACCOUNTS)),
    "folder": st.sampled_from(["INBOX", "Sent", "Archive"]),
    "header": st.booleans(),
})


def frame_of(messages: list[dict[str, Any]]) -> pd.DataFrame:
    from mailhat_nb.analysis.frames import messages_frame

    return messages_frame([{
        "account": m["account"], "folder": m["folder"], "uidvalidity": 1, "uid": i + 1,
        "message_id": m["mid"], "date": T0 + dt.timedelta(hours=m["hour"]),
        "date_source": "header" if m["header"] else "internaldate",
        "from_addr": m["frm"], "to_addrs": m["to"], "cc_addrs": [], "subject": m["subject"],
    } for i, m in enumerate(messages)])


def identity_of(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([(acct, a) for acct, addrs in ACCOUNTS.items() for a in addrs],
                        columns=["account", "address"])


@settings(max_examples=60, deadline=None)
@given(st.lists(message, min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_pandas_equals_the_plain_count_in_every_order(messages: list[dict[str, Any]],
                                                      rnd: Any) -> None:
    frame = frame_of(messages)
    who = identity_of(frame)
    counts, tables = pandas_view(frame, who)
    assert counts == oracle(frame, ACCOUNTS)
    order = list(range(len(frame)))
    rnd.shuffle(order)
    again, shuffled_tables = pandas_view(frame.iloc[order].reset_index(drop=True), who)
    assert again == counts
    assert tables.equals(shuffled_tables)  # names, dates, owners too, whatever the row order


def test_empty_and_teamless_frames() -> None:
    frame = frame_of([{"mid": "m1", "frm": "c@out.x", "to": ["d@out.x"], "hour": 0,
                       "subject": "x", "account": "a@t.x", "folder": "INBOX", "header": True}])
    who = identity_of(frame)
    assert ca.internal_mail(frame, who).empty
    assert list(ca.internal_mail(frame.iloc[:0], who).columns) == [
        "from_account", "to_account", "messages", "first", "last"]
    people = ca.team_contacts(frame, who)
    assert people["owner"].tolist() == ["a@t.x"]
    assert ca.team_contacts(frame.iloc[:0], who).empty
    assert np.array_equal(ca.team_messages(frame)["copies"], [1])


# --------------------------------------------------------------------------- Enron, four accounts


ENRON = ["badeer-r", "cuilla-m", "dean-c", "delainey-d"]


@pytest.fixture(scope="module")
def enron_team(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four Enron mailboxes imported side by side: one store, four accounts."""
    store = tmp_path_factory.mktemp("enron-team")
    for person in ENRON:
        assert cli.main(["import", "--maildir", str(corpus / "enron" / person),
                         "--store", str(store)]) == 0
    return store


def test_enron_as_four_accounts_matches_the_plain_count(enron_team: Path, corpus: Path) -> None:
    records = {p: oracle_records(corpus / "enron" / p) for p in ENRON}
    own = {p: oracle_self(records[p]) for p in ENRON}
    team = set().union(*own.values())
    every = tuple(r for p in ENRON for r in records[p])
    frame = read_messages(enron_team)
    who = ca.team_identity(frame)
    assert {p: set(who.loc[who["account"] == p, "address"]) for p in ENRON} == own
    msgs = ca.team_messages(frame)
    assert len(msgs) == len(oracle_unique(every))  # copies across mailboxes merged
    assert len(msgs) < sum(len(oracle_unique(records[p])) for p in ENRON)
    per = ca.contacts_by_account(msgs, who)
    people = ca.team_contacts(msgs, who, by_account=per)
    got = {c: (s, r) for c, s, r in zip(people["contact"], people["sent"], people["received"],
                                        strict=True)}
    assert got == oracle_counts(every, team)
    assert ca.internal_mail(msgs, who).empty  # these four never wrote to each other

    # Consistent with each account's own view: a contact's messages with one
    # account are what that account's single view counts (no two of these
    # mailboxes share an address), and the team counts each message once.
    for person in ENRON:
        alone = ca.contacts(frame[frame["account"] == person], who[who["account"] == person])
        mine = per[per["account"] == person]
        assert dict(zip(mine["contact"], zip(mine["sent"], mine["received"], strict=True),
                        strict=True)) == {
            c: (s, r) for c, s, r in zip(alone["contact"], alone["sent"], alone["received"],
                                         strict=True)}
    sums = per.groupby("contact")[["sent", "received", "total"]].sum()
    table = people.set_index("contact")
    assert (table["sent"] <= sums.loc[table.index, "sent"]).all()
    assert (table["received"] <= sums.loc[table.index, "received"]).all()
    assert (sums["total"] > table.loc[sums.index, "total"]).sum() > 0  # shared messages exist
    best = per.sort_values(["contact", "total", "sent", "account"],
                           ascending=[True, False, False, True]).drop_duplicates("contact")
    assert dict(zip(best["contact"], best["account"], strict=True)) == dict(
        zip(people["contact"], people["owner"], strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["b@x", "a@x", "é@x", "Z@x"]),
                          st.sampled_from(["ann@t", "bob@t", "Ávila@t"]),
                          st.integers(0, 3), st.integers(0, 3)),
                min_size=0, max_size=12, unique_by=lambda r: (r[0], r[1])),
       st.randoms())
def test_the_owner_is_the_busiest_account_then_the_sender_then_the_name(
        rows: list[tuple[str, str, int, int]], rnd: Any) -> None:
    """``team.owners`` against its definition, in any row order: most total, most sent, name."""
    from mailhat_nb.analysis.team import owners

    rnd.shuffle(rows)
    table = pd.DataFrame(rows, columns=["contact", "account", "sent", "received"])
    table["total"] = table["sent"] + table["received"]
    got = owners(table.astype({"contact": "str", "account": "str"}))
    want = {}
    for contact in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == contact]
        want[contact] = min(mine, key=lambda r: (-(r[2] + r[3]), -r[2], r[1]))[1]
    assert list(got.index) == list(want)
    assert list(got) == list(want.values())
