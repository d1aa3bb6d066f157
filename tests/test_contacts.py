"""Contacts, identity, metrics and exports on small frames built by hand.

Each frame follows the DESIGN.md ``messages`` contract; ``build`` makes list
columns either pyarrow lists (what the store returns) or object lists (what
a hand-built frame has), and every counting test runs on both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mailhat_nb import contacts as ca
from mailhat_nb.errors import UsageError

ME = "me@example.com"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
LIST_COLS = ("to_addrs", "cc_addrs", "references", "defects", "delivered_to")


def msg(frm: str | None, to: Iterable[str] = (), cc: Iterable[str] = (), *,
        at: datetime | None = T0, mid: str | None = None, subject: str = "hi",
        folder: str = "INBOX", **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account": ME, "folder": folder, "uidvalidity": 1, "uid": 0,
        "message_id": mid, "date": at, "date_source": "header",
        "from_addr": frm, "from_name": extra.pop("name", ""),
        "to_addrs": list(to), "cc_addrs": list(cc), "subject": subject,
        "in_reply_to": None, "references": [], "defects": [], "delivered_to": [],
        "folder_role": "sent" if folder == "Sent" else "",
    }
    row.update(extra)
    return row


def build(rows: list[dict[str, Any]], lists: str = "arrow") -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["uid"] = np.arange(1, len(frame) + 1)
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    for col in ("message_id", "from_addr", "from_name", "subject", "in_reply_to", "folder",
                "account", "date_source", "folder_role"):
        frame[col] = frame[col].astype("str")
    for col in LIST_COLS:
        if lists == "arrow":
            frame[col] = pd.Series(pa.array(list(frame[col]), type=pa.list_(pa.string())),
                                   dtype=pd.ArrowDtype(pa.list_(pa.string())))
        else:
            frame[col] = pd.Series([list(v) for v in frame[col]], dtype=object)
    return frame


def counts(people: pd.DataFrame) -> dict[str, tuple[int, int]]:
    return {c: (int(s), int(r)) for c, s, r in
            zip(people["contact"], people["sent"], people["received"], strict=True)}


@pytest.fixture(params=["arrow", "object"])
def lists(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --------------------------------------------------------------------------- counting


def test_sent_received_total_first_last(lists: str) -> None:
    rows = [
        msg(ME, ["a@x.com", "b@x.com"], ["a@x.com"], folder="Sent", mid="1"),   # a once
        msg(ME, ["a@x.com"], at=T0 + timedelta(days=3), folder="Sent", mid="2"),
        msg("a@x.com", [ME], at=T0 - timedelta(days=1), mid="3", name="Ann A"),
        msg("c@x.com", ["list@x.com"], mid="4"),       # not addressed to me: still received
        msg(ME, [ME, "d@x.com"], folder="Sent", mid="5"),  # self in To: not a contact
    ]
    people = ca.contacts(build(rows, lists), [ME])
    assert counts(people) == {"a@x.com": (2, 1), "b@x.com": (1, 0), "c@x.com": (0, 1),
                              "d@x.com": (1, 0)}
    a = people.set_index("contact").loc["a@x.com"]
    assert a["total"] == 3
    assert a["name"] == "Ann A"
    assert a["first"] == pd.Timestamp(T0 - timedelta(days=1))
    assert a["last"] == pd.Timestamp(T0 + timedelta(days=3))
    assert list(people.columns) == ["contact", "name", "sent", "received", "total",
                                    "first", "last"]
    assert people["contact"].iloc[0] == "a@x.com"  # busiest first
    assert pd.isna(people.set_index("contact").loc["b@x.com", "name"])


def test_addresses_compared_lower_cased(lists: str) -> None:
    rows = [msg(" Ann@X.com", [ME.upper()], mid="1"),
            msg(ME.upper(), ["ANN@x.COM "], folder="Sent", mid="2")]
    assert counts(ca.contacts(build(rows, lists), ["Me@Example.com"])) == {"ann@x.com": (1, 1)}


def test_self_never_a_contact_with_several_own_addresses(lists: str) -> None:
    rows = [msg(ME, ["old@example.org", "a@x.com"], folder="Sent", mid="1"),
            msg("old@example.org", ["a@x.com"], mid="2")]
    got = ca.contacts(build(rows, lists), [ME, "old@example.org"])
    assert counts(got) == {"a@x.com": (2, 0)}


def test_missing_from_and_empty_frame(lists: str) -> None:
    rows = [msg(None, [ME], mid="1"), msg("a@x.com", [], mid="2")]
    assert counts(ca.contacts(build(rows, lists), [ME])) == {"a@x.com": (0, 1)}
    empty = ca.contacts(build(rows, lists).iloc[:0], [ME])
    assert empty.empty
    assert list(empty.columns) == ["contact", "name", "sent", "received", "total", "first",
                                   "last"]


# --------------------------------------------------------------------------- duplicates


def test_same_message_id_in_two_folders_counts_once(lists: str) -> None:
    rows = [msg(ME, ["a@x.com"], folder="Sent", mid="m1"),
            msg(ME, ["a@x.com"], folder="All Mail", mid="<m1>",
                at=T0 + timedelta(minutes=5))]  # a server re-wrote the date
    frame = build(rows, lists)
    assert counts(ca.contacts(frame, [ME])) == {"a@x.com": (1, 0)}
    assert ca.unique_messages(frame)["copies"].tolist() == [2]


def test_reissued_ids_matched_on_from_date_subject_recipients(lists: str) -> None:
    rows = [msg(ME, ["a@x.com", "b@x.com"], ["c@x.com"], folder="sent", mid="e1"),
            msg(ME, ["c@x.com"], ["b@x.com", "a@x.com"], folder="_sent_mail", mid="e2"),
            msg(ME, ["a@x.com", "b@x.com", "c@x.com"], folder="all_documents", mid="e3")]
    assert counts(ca.contacts(build(rows, lists), [ME])) == {
        "a@x.com": (1, 0), "b@x.com": (1, 0), "c@x.com": (1, 0)}


@pytest.mark.parametrize("change", [
    {"at": T0 + timedelta(seconds=1)}, {"subject": "other"}, {"to": ["z@x.com"]},
    {"frm": "b@x.com"},
])
def test_content_key_needs_all_four_fields(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {"frm": "a@x.com", "to": [ME], "mid": "1"}
    other = {**base, "mid": "2", **change}
    frame = build([msg(**base), msg(**other)])
    assert len(ca.unique_messages(frame)) == 2


def test_duplicates_transitive_and_missing_keys() -> None:
    rows = [
        msg("a@x.com", [ME], mid="x", folder="INBOX"),
        msg("a@x.com", [ME], mid="y", folder="Archive"),                  # content = row 0
        msg("a@x.com", [ME], mid="y", folder="Trash",
            at=T0 + timedelta(hours=1)),                                 # id = row 1
        msg("b@x.com", [ME], mid=None, at=None),
        msg("b@x.com", [ME], mid=None, at=None),   # no ID, no date: never matched
    ]
    frame = build(rows)
    assert ca.unique_messages(frame)["copies"].tolist() == [3, 1, 1]
    labels = ca.duplicate_groups(frame)
    assert labels[0] == labels[1] == labels[2]
    assert len(set(labels[3:])) == 2


def test_copies_in_two_accounts_are_one_message_of_the_team() -> None:
    # Was "accounts never merged": the team view (docs/team.md) counts the
    # same message in two teammates' mailboxes once. Data health still asks
    # whether one account holds a copy twice: no.
    rows = [msg("a@x.com", [ME], mid="1"), {**msg("a@x.com", [ME], mid="1"),
                                            "account": "other@example.com"}]
    frame = build(rows)
    assert ca.unique_messages(frame)["copies"].tolist() == [2]
    assert len(set(ca.duplicate_groups(frame, across_accounts=False))) == 2
    assert ca.data_health(frame)["duplicates"].tolist() == [0, 0]
    assert ca.data_health(frame, unique=ca.unique_messages(frame))["duplicates"].tolist() == [
        0, 0]


def test_arrow_and_object_lists_agree() -> None:
    rng = np.random.default_rng(3)
    people = [f"p{i}@x.com" for i in range(30)]
    rows = []
    for i in range(400):
        sent = rng.random() < 0.3
        to = list(rng.choice(people, rng.integers(1, 4), replace=False))
        rows.append(msg(ME if sent else people[i % 30], to if sent else [ME, *to[:1]],
                        list(rng.choice(people, rng.integers(0, 2))),
                        at=T0 + timedelta(hours=int(rng.integers(0, 500))),
                        mid=str(i % 350), folder="Sent" if sent else "INBOX"))
    a = ca.contacts(build(rows, "arrow"), [ME])
    o = ca.contacts(build(rows, "object"), [ME])
    pd.testing.assert_frame_equal(a, o)
    assert a["total"].sum() > 0


# --------------------------------------------------------------------------- identity


def test_own_addresses_sources_and_exclude() -> None:
    rows = [msg(ME, ["a@x.com"], folder="Sent", mid="1"),
            msg("assistant@example.com", ["a@x.com"], folder="Sent", mid="2"),
            msg("a@x.com", [ME], mid="3", delivered_to=["me+news@example.com"]),
            msg("b@x.com", [ME], folder="INBOX.Sent", folder_role="inbox", mid="4")]
    me = ca.own_addresses(build(rows), extra=["Me@Old.org"])
    table = dict(zip(me["address"], me["sources"], strict=True))
    assert table == {ME: "login, sent folder", "assistant@example.com": "sent folder",
                     "me+news@example.com": "delivered-to", "me@old.org": "user"}
    # folder_role says "inbox": the name "INBOX.Sent" is not trusted over it
    assert "b@x.com" not in table
    without = ca.own_addresses(build(rows), exclude=["assistant@example.com"])
    assert "assistant@example.com" not in set(without["address"])


def test_sent_folder_by_name_when_no_role() -> None:
    frame = build([msg("me@x.com", [], folder=f, mid=str(i), folder_role="")
                   for i, f in enumerate(["INBOX.Sent", "[Gmail]/Sent Mail", "sent_items",
                                          "Sent Items", "Archive/sent-2019", "INBOX"])])
    assert ca.is_sent_folder(frame).tolist() == [True, True, True, True, False, False]


def test_gmail_sent_label_marks_sent_mail_in_any_folder(lists: str) -> None:
    # Takeout writes "Sent" in X-Gmail-Labels, IMAP's X-GM-LABELS says \Sent;
    # a Gmail mailbox has one folder (All Mail) for everything, role "all".
    rows = [msg("me@gmail.com", ["a@x.com"], folder="All mail", folder_role="all", mid="1"),
            msg("alias@gmail.com", ["a@x.com"], folder="[Gmail]/All Mail", folder_role="all",
                mid="2"),
            msg("a@x.com", ["me@gmail.com"], folder="All mail", folder_role="all", mid="3"),
            msg("b@x.com", ["me@gmail.com"], folder="All mail", folder_role="all", mid="4")]
    frame = build(rows, lists).drop(columns="account")
    labels = [["Sent"], ["\\Important", "\\Sent"], ["Inbox", "Opened"], ["Sent Items"]]
    frame["labels"] = (pd.Series(pa.array(labels, type=pa.list_(pa.string())),
                                 dtype=pd.ArrowDtype(pa.list_(pa.string())))
                       if lists == "arrow" else pd.Series(labels, dtype=object))
    assert ca.is_sent_folder(frame).tolist() == [True, True, False, False]
    me = ca.own_addresses(frame)
    assert dict(zip(me["address"], me["sources"], strict=True)) == {
        "me@gmail.com": "sent folder", "alias@gmail.com": "sent folder"}
    assert set(ca.contacts(frame, me)["contact"]) == {"a@x.com", "b@x.com"}


def test_self_rule_takes_only_addresses_as_login_and_refuses_bad_user_input() -> None:
    rows = [msg("me@x.com", ["a@x.com"], folder="Sent", mid="1")]
    frame = build(rows).assign(account="takeout")  # an import named after its file
    assert set(ca.own_addresses(frame)["address"]) == {"me@x.com"}
    assert set(ca.own_addresses(frame, login="jdoe")["address"]) == {"me@x.com"}
    assert set(ca.own_addresses(frame, login=["jdoe", "J@X.com"])["address"]) == {
        "me@x.com", "j@x.com"}
    for bad in (["NOT AN ADDRESS"], ["me@"], ["Me <me@x.com>"], "me@x.com"):
        with pytest.raises(UsageError, match="self address"):
            ca.own_addresses(frame, extra=bad)


def test_public_api_is_importable_from_contacts() -> None:
    # Notebooks and widgets use `from mailhat_nb import contacts as ca`; the
    # split of the metrics into dedupe / metrics / health must not change it.
    from mailhat_nb.analysis import dedupe, health, identity, metrics

    assert sorted(ca.__all__) == [
        "activity", "apply_aliases", "by_domain", "contacts", "contacts_by_account",
        "data_health", "duplicate_groups", "export", "internal_mail", "is_sent_folder",
        "own_addresses", "response_histogram", "response_medians", "response_times",
        "suggest_aliases",
        "team_contacts", "team_identity", "team_messages", "team_records", "to_csv",
        "to_parquet", "to_records", "top_contacts", "unique_messages", "volume"]
    homes = {"unique_messages": dedupe, "duplicate_groups": dedupe, "data_health": health,
             "contacts": metrics, "volume": metrics, "activity": metrics,
             "response_times": metrics, "own_addresses": identity}
    for name, module in homes.items():
        assert getattr(ca, name) is getattr(module, name), name
    # The rule is stated where it is implemented.
    assert "**same From, Date, Subject and recipients**" in (dedupe.__doc__ or "")


def test_alias_suggestions_by_name_and_gmail() -> None:
    senders = [("ann@work.com", "Ann Lee"), ("ann@work.com", "Ann Lee"),
               ("ann.lee@home.net", "Lee, Ann"), ("j.doe+shop@gmail.com", ""),
               ("jdoe@googlemail.com", ""), ("JDoe@gmail.com", ""), ("jdoe@gmail.com", ""),
               ("j.smith@work.com", ""), ("jsmith@work.com", "")]
    frame = build([msg(a, [ME], mid=str(i), name=n, at=T0 + timedelta(minutes=i))
                   for i, (a, n) in enumerate(senders)])
    sug = ca.suggest_aliases(frame)
    pairs = {(a, b): r for a, b, r in zip(sug["address"], sug["alias_of"], sug["reason"],
                                          strict=True)}
    assert pairs == {
        ("ann.lee@home.net", "ann@work.com"): "same display name",
        ("j.doe+shop@gmail.com", "jdoe@gmail.com"): "gmail dots/+tag",
        ("jdoe@googlemail.com", "jdoe@gmail.com"): "gmail dots/+tag",
    }  # dots on work.com are not Gmail's: never suggested
    assert not sug["accept"].any()
    # Nothing accepted: nothing merged.
    assert ca.apply_aliases(frame, sug)["from_addr"].equals(frame["from_addr"])
    sug.loc[sug["address"] == "ann.lee@home.net", "accept"] = True
    merged = ca.contacts(ca.apply_aliases(frame, sug), [ME])
    assert counts(merged)["ann@work.com"] == (0, 3)
    assert "ann.lee@home.net" not in set(merged["contact"])
    assert merged.set_index("contact").loc["ann@work.com", "name"] == "Ann Lee"


def test_apply_aliases_on_messages_is_exact_and_keeps_lists(lists: str) -> None:
    rows = [msg(ME, ["a@x.com", "a2@x.com"], ["A2@x.com"], folder="Sent", mid="1"),
            msg("a2@x.com", [ME], mid="2")]
    frame = build(rows, lists)
    out = ca.apply_aliases(frame, {"a2@x.com": "a@x.com"})
    assert counts(ca.contacts(out, [ME])) == {"a@x.com": (1, 1)}  # not (2, 1)
    assert frame["from_addr"].tolist()[1] == "a2@x.com"  # input untouched
    # On a contacts table: summed (documented: sent may count a message twice).
    table = ca.apply_aliases(ca.contacts(frame, [ME]), {"a2@x.com": "a@x.com"})
    assert counts(table) == {"a@x.com": (2, 1)}


def test_alias_chains_resolve_and_cycles_fail() -> None:
    frame = build([msg("c@x.com", [ME], mid="1")])
    out = ca.apply_aliases(frame, {"c@x.com": "b@x.com", "b@x.com": "a@x.com"})
    assert out["from_addr"].tolist() == ["a@x.com"]
    with pytest.raises(UsageError, match="cycle"):
        ca.apply_aliases(frame, {"c@x.com": "b@x.com", "b@x.com": "c@x.com"})


def test_alias_to_self_makes_it_self() -> None:
    rows = [msg(ME, ["a@x.com"], folder="Sent", mid="1", name="Me Myself"),
            msg("me.work@corp.com", ["a@x.com"], mid="2", name="Me Myself",
                at=T0 + timedelta(days=1))]
    frame = build(rows)
    sug = ca.suggest_aliases(frame, [ME])
    assert sug[["address", "alias_of"]].values.tolist() == [["me.work@corp.com", ME]]
    merged = ca.contacts(ca.apply_aliases(frame, sug.assign(accept=True)), [ME])
    assert counts(merged) == {"a@x.com": (2, 0)}


def test_by_domain() -> None:
    rows = [msg("a@x.com", [ME], mid="1"), msg("b@x.com", [ME], mid="2"),
            msg(ME, ["c@y.org"], folder="Sent", mid="3")]
    dom = ca.by_domain(ca.contacts(build(rows), [ME]))
    assert dom[["domain", "contacts", "sent", "received"]].values.tolist() == [
        ["x.com", 2, 0, 2], ["y.org", 1, 1, 0]]


# --------------------------------------------------------------------------- over time


def test_volume_by_week_and_month(lists: str) -> None:
    rows = [msg("a@x.com", [ME], at=T0 + timedelta(days=d), mid=str(d))
            for d in (0, 1, 6, 7, 30)] + [
        msg(ME, ["a@x.com", "b@x.com"], at=T0 + timedelta(days=8), folder="Sent", mid="s")]
    frame = build(rows, lists)
    week = ca.volume(frame, [ME], "W")
    a = week[week["contact"] == "a@x.com"]
    assert a["period"].dt.strftime("%Y-%m-%d").tolist() == ["2024-03-04", "2024-03-11",
                                                           "2024-04-01"]
    assert a["received"].tolist() == [3, 1, 1]
    assert a["sent"].tolist() == [0, 1, 0]
    assert week.attrs["freq"] == "W"
    month = ca.volume(frame, [ME], "month", contacts=["B@x.com"])
    assert month[["contact", "sent", "total"]].values.tolist() == [["b@x.com", 1, 1]]
    assert set(ca.volume(frame, [ME], "M", top=1)["contact"]) == {"a@x.com"}
    with pytest.raises(UsageError, match="unknown period"):
        ca.volume(frame, [ME], "fortnight")


def test_activity_clock() -> None:
    rows = [msg("a@x.com", [ME], at=T0, mid="1", date_offset_min=-300),   # 04:00 Mon local
            msg(ME, ["a@x.com"], at=T0 + timedelta(days=1), folder="Sent", mid="2",
                date_offset_min=60)]                                       # 10:00 Tue local
    frame = build(rows)
    local = ca.activity(frame)
    assert local.loc["Mon", 4] == 1
    assert local.loc["Tue", 10] == 1
    assert local.values.sum() == 2
    assert local.attrs["clock"] == "sender's local time"
    utc = ca.activity(frame, clock="utc")
    assert utc.loc["Mon", 9] == 1
    assert utc.loc["Tue", 9] == 1
    tokyo = ca.activity(frame, clock="Asia/Tokyo")
    assert tokyo.loc["Mon", 18] == 1
    sent = ca.activity(frame, [ME], direction="sent")
    assert sent.values.sum() == 1
    assert sent.loc["Tue", 10] == 1
    with pytest.raises(UsageError):
        ca.activity(frame, direction="sent")
    with pytest.raises(UsageError, match="time zone"):
        ca.activity(frame, clock="Mars/Olympus")


# --------------------------------------------------------------------------- response times


def test_response_times_both_directions(lists: str) -> None:
    rows = [
        msg("a@x.com", [ME], mid="q1", at=T0),
        msg(ME, ["a@x.com"], mid="r1", at=T0 + timedelta(hours=2), folder="Sent",
            in_reply_to="<q1>"),
        msg(ME, ["b@x.com"], mid="q2", at=T0, folder="Sent"),
        msg("b@x.com", [ME], mid="r2", at=T0 + timedelta(hours=5),
            references=["zzz", "q2"]),                       # parent = last References id
        msg("b@x.com", [ME], mid="r3", at=T0 - timedelta(hours=1), in_reply_to="q2"),  # < 0
        msg("c@x.com", ["a@x.com"], mid="r4", at=T0 + timedelta(hours=1), in_reply_to="q1"),
        msg("a@x.com", [ME], mid="r5", at=T0 + timedelta(hours=1), in_reply_to="unknown"),
    ]
    rt = ca.response_times(build(rows, lists), [ME])
    got = sorted(zip(rt["contact"], rt["replier"], rt["hours"], strict=True))
    assert got == [("a@x.com", "self", 2.0), ("b@x.com", "contact", 5.0)]
    med = ca.response_medians(rt)
    assert med.set_index("contact").loc["a@x.com", "self_median_hours"] == 2.0
    assert med.set_index("contact").loc["b@x.com", "contact_replies"] == 1
    assert pd.isna(med.set_index("contact").loc["b@x.com", "self_median_hours"])


def test_reply_to_a_dropped_copy_id_is_resolved_on_the_raw_frame() -> None:
    rows = [msg("a@x.com", [ME], mid="orig-a", folder="INBOX"),
            msg("a@x.com", [ME], mid="orig-b", folder="Archive"),  # same content, new ID
            msg(ME, ["a@x.com"], mid="r", at=T0 + timedelta(hours=3), folder="Sent",
                in_reply_to="orig-b")]
    raw = build(rows)
    assert ca.response_times(raw, [ME])["hours"].tolist() == [3.0]
    assert len(ca.unique_messages(raw)) == 2  # the Archive copy is gone after dedup
    assert ca.response_medians(ca.response_times(raw.iloc[:0], [ME])).empty


# --------------------------------------------------------------------------- data health


def test_data_health() -> None:
    rows = [msg("a@x.com", [ME], mid="1", folder="INBOX", uidvalidity=7),
            msg("a@x.com", [ME], mid="1", folder="Archive", uidvalidity=9),
            msg("b@x.com", [ME], mid="2", folder="INBOX", uidvalidity=8,
                date_source="internaldate", defects=["undecodable_subject"]),
            msg("c@x.com", [ME], mid="3", folder="INBOX", uidvalidity=7,
                at=datetime(1980, 1, 1, tzinfo=UTC), defects=["bad_date", "undecodable_subject"]),
            msg("d@x.com", [ME], mid="4", folder="INBOX", at=None, date_source="none",
                uidvalidity=7, defects=["undecodable_subject"])]
    frame = build(rows)
    h = ca.data_health(frame, server_counts={"INBOX": 5, "Gone": 2},
                       uidvalidity_events=pd.DataFrame({"folder": ["INBOX", "INBOX"]}))
    h = h.set_index("folder")
    assert h.loc["INBOX", "rows"] == 4
    assert h.loc["INBOX", "missing"] == 1
    assert h.loc["Gone", "rows"] == 0
    assert h.loc["Gone", "missing"] == 2
    assert h.loc["INBOX", "duplicates"] == 1
    assert h.loc["Archive", "duplicates"] == 1
    assert h.loc["INBOX", "date_fallbacks"] == 2
    assert h.loc["INBOX", "no_date"] == 1
    assert h.loc["INBOX", "suspect_dates"] == 1
    assert h.loc["INBOX", "defects"] == 3
    assert h.loc["INBOX", "top_defect"] == "undecodable_subject"
    assert h.loc["INBOX", "uidvalidity_values"] == 2
    assert h.loc["INBOX", "uidvalidity_events"] == 2
    assert pd.isna(h.loc["Archive", "server_count"])
    again = ca.data_health(frame, unique=ca.unique_messages(frame))
    assert again["duplicates"].tolist() == ca.data_health(frame)["duplicates"].tolist()
    keyed = ca.data_health(frame, server_counts={(ME, "Archive"): 3},
                           uidvalidity_events={"Archive": 1}).set_index("folder")
    assert keyed.loc["Archive", "missing"] == 2
    assert keyed.loc["Archive", "uidvalidity_events"] == 1


# --------------------------------------------------------------------------- exports


def test_records_csv_parquet_roundtrip(tmp_path: Path, lists: str) -> None:
    rows = [msg("a@x.com", [ME, "b@x.com"], mid="1", name="Ann"),
            msg(ME, ["b@x.com"], folder="Sent", mid="2")]
    frame = build(rows, lists)
    people = ca.contacts(frame, [ME])
    records = ca.to_records(people)
    assert records[0] == {"contact": "a@x.com", "name": "Ann", "sent": 0, "received": 1,
                          "total": 1, "first": "2024-03-04T09:00:00+00:00",
                          "last": "2024-03-04T09:00:00+00:00"}
    assert records[1]["name"] is None
    json.dumps(records)  # JSON-ready
    text = ca.to_csv(frame)
    assert text is not None
    assert "me@example.com; b@x.com" in text
    back = pd.read_csv(ca.export(people, tmp_path / "c.csv"))
    assert back["contact"].tolist() == people["contact"].tolist()
    assert pd.to_datetime(back["first"]).tolist() == people["first"].tolist()
    pq = pd.read_parquet(ca.export(frame, tmp_path / "m.parquet"))
    assert [list(v) for v in pq["to_addrs"]] == [[ME, "b@x.com"], ["b@x.com"]]
    assert str(pq["date"].dt.tz) == "UTC"
    assert json.loads(ca.export(people, tmp_path / "c.json").read_text())[0]["contact"] == \
        "a@x.com"
    with pytest.raises(UsageError, match="format"):
        ca.export(people, tmp_path / "c.xlsx")
    with pytest.raises(UsageError, match="cannot write"):
        ca.to_csv(people, tmp_path / "no" / "such" / "dir.csv")


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_mailboxes_match_a_plain_python_count(seed: int) -> None:
    """Random mail with both kinds of copies, against the union-find reference count."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_contacts_enron import Rec, oracle_counts

    rng = np.random.default_rng(seed)
    people = [f"p{i}@x.com" for i in range(15)]
    me = {ME, "alias@me.org"}
    recs: list[Rec] = []
    for i in range(300):
        sent = rng.random() < 0.4
        frm = str(rng.choice(sorted(me))) if sent else str(rng.choice(people))
        rc = frozenset(str(a) for a in rng.choice([*people, ME], rng.integers(0, 4)))
        at = T0 + timedelta(hours=int(rng.integers(0, 50)))  # collisions happen
        rec = Rec("Sent" if sent else "INBOX", f"id{i}", at, frm, rc,
                  str(rng.choice(["a", "b", "Re: a"])))
        recs.append(rec)
        if rng.random() < 0.2:   # an exporter's copy: new ID, same content
            recs.append(Rec("export", f"copy{i}", at, frm, rc, rec.subject))
        if rng.random() < 0.2:   # an IMAP "All Mail" copy: same ID, other date
            recs.append(Rec("All Mail", f"id{i}", at + timedelta(minutes=3), frm, rc,
                            rec.subject))
    rows = [msg(r.from_addr, sorted(r.rcpts), at=r.date, mid=r.message_id,
                subject=r.subject or "", folder=r.folder) for r in recs]
    order = rng.permutation(len(rows))
    frame = build([rows[i] for i in order])
    expected = oracle_counts(tuple(recs), me)
    assert counts(ca.contacts(frame, sorted(me))) == expected
    # Splitting recipients between To and Cc, in any order, changes nothing.
    split = frame.assign(
        to_addrs=[list(v)[::-1][:1] for v in frame["to_addrs"]],
        cc_addrs=[list(v)[::-1][1:] for v in frame["to_addrs"]])
    assert counts(ca.contacts(split, sorted(me))) == expected


# --------------------------------------------------------------------------- review findings


def test_a_forwarders_delivered_to_is_not_self() -> None:
    # An auto-forward leaves the colleague's address in Delivered-To; the
    # colleague also writes to us: a correspondent, not one of our addresses.
    rows = [msg("colleague@work.com", [ME], mid="1", delivered_to=[ME, "colleague@work.com"]),
            msg("colleague@work.com", [ME], mid="2", delivered_to=[ME],
                at=T0 + timedelta(hours=1)),
            msg(ME, ["colleague@work.com"], folder="Sent", mid="3", at=T0 + timedelta(hours=2)),
            msg("poster@x.org", ["list@groups.example"], mid="4", at=T0 + timedelta(days=1),
                delivered_to=["alias@me.example"])]
    frame = build(rows)
    me = ca.own_addresses(frame, login=ME)
    assert set(me["address"]) == {ME, "alias@me.example"}
    assert counts(ca.contacts(frame, me)) == {"colleague@work.com": (1, 2),
                                              "poster@x.org": (0, 1)}


def test_gmail_list_delivered_to_lines_are_not_addresses() -> None:
    from mailhat_nb.sync.parse import parse_headers

    parsed = parse_headers(b"From: a@b.c\r\nDelivered-To: me@gmail.com\r\n"
                           b"Delivered-To: mailing list golang-nuts@googlegroups.com\r\n"
                           b"Delivered-To: moderator for list@example.org\r\n\r\n")
    assert list(parsed["delivered_to"]) == ["me@gmail.com"]


def test_alias_suggestions_on_an_empty_frame() -> None:
    assert ca.suggest_aliases(build([msg("a@x.com", [ME])]).iloc[0:0]).empty


def test_an_address_accepted_under_two_canonicals_joins_them_all() -> None:
    rows = [msg(frm, [ME], mid=str(i), name=name, at=T0 + timedelta(hours=i))
            for i, (frm, name) in enumerate([
                ("j.doe@gmail.com", "Jo Doe"), ("jdoe@gmail.com", ""), ("jdoe@gmail.com", ""),
                ("jo@work.com", "Jo Doe"), ("jo@work.com", "Jo Doe")])]
    frame = build(rows)
    accepted = {"j.doe@gmail.com": "jdoe@gmail.com"}
    both = pd.DataFrame({"address": ["j.doe@gmail.com", "j.doe@gmail.com"],
                         "alias_of": ["jdoe@gmail.com", "jo@work.com"], "accept": [True, True]})
    assert counts(ca.contacts(ca.apply_aliases(frame, accepted), [ME])) == {
        "jdoe@gmail.com": (0, 3), "jo@work.com": (0, 2)}
    assert counts(ca.contacts(ca.apply_aliases(frame, both), [ME])) == {
        "jdoe@gmail.com": (0, 5)}


def test_a_group_with_self_in_it_stays_self() -> None:
    rows = [msg(ME, ["a@x.com"], folder="Sent", mid="1"),
            msg("old@home.example", ["a@x.com"], mid="2", at=T0 + timedelta(days=1))]
    frame = build(rows)
    table = pd.DataFrame({"address": ["old@home.example", "old@home.example"],
                          "alias_of": ["other@home.example", ME], "accept": [True, True]})
    merged = ca.apply_aliases(frame, table, [ME])
    assert set(merged["from_addr"]) == {ME}
    assert counts(ca.contacts(merged, [ME])) == {"a@x.com": (2, 0)}


def test_a_self_alias_cannot_be_merged_on_a_contacts_table() -> None:
    rows = [msg(ME, ["a@x.com"], folder="Sent", mid="1"),
            msg("old@home.example", ["a@x.com"], mid="2"),
            msg("a@x.com", ["old@home.example"], mid="3")]
    people = ca.contacts(build(rows), [ME])
    with pytest.raises(UsageError, match="only be merged on the messages frame"):
        ca.apply_aliases(people, {"old@home.example": ME}, [ME])


def test_placeholder_dates_are_not_a_contacts_first_or_last() -> None:
    rows = [msg("a@x.com", [ME], mid="1", at=datetime(1980, 1, 1, tzinfo=UTC)),
            msg("a@x.com", [ME], mid="2")]
    people = ca.contacts(build(rows), [ME])
    assert people["first"].iloc[0] == pd.Timestamp(T0)
    assert int(people["received"].iloc[0]) == 2  # still counted
