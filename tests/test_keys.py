"""What each part carries for the engines (:mod:`mailhat_nb.sync.keys`): keys and a flag.

The keys are stored: a part written today must agree with one written years
ago, so the hash is pinned to fixed values here; and each key must say what
the rule says (``DESIGN.md``: the same Message-ID, or the same From, Date,
Subject and set of To+Cc), checked against the pandas path's own rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhat_nb.analysis.dedupe import duplicate_groups
from mailhat_nb.analysis.frames import messages_frame
from mailhat_nb.sync import rows as rowmod
from mailhat_nb.sync.keys import with_keys
from mailhat_nb.sync.schema import DERIVED_COLUMNS

WHEN = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def keys(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    table = with_keys(rowmod.rows_to_table([{"uid": i + 1, **r} for i, r in enumerate(rows)]))
    return table.select(list(DERIVED_COLUMNS)).to_pylist()


def test_the_hash_never_changes() -> None:
    # Stored values: a change here splits every store's old parts from its new ones.
    assert keys({"message_id": "m@x", "in_reply_to": "p@x", "from_addr": "f@x",
                 "subject": "Hi", "date": WHEN, "to_addrs": ["b@x", "a@x"],
                 "cc_addrs": ["c@x"]}) == [{"id_key": 1717105441546651304,
                                            "parent_key": 1287236670819144934,
                                            "content_key": -6660993272463884315,
                                            "rcpt_repeats": False}]
    assert keys({"message_id": "Zoë Ünï"})[0]["id_key"] == 3365158717903059637


def test_ids_are_cleaned_as_the_pandas_path_cleans_them() -> None:
    got = keys({"message_id": "<a@b>"}, {"message_id": " a@b "}, {"message_id": "a@b"},
               {"message_id": " <> "}, {"message_id": None}, {"message_id": "A@b"})
    assert got[0]["id_key"] == got[1]["id_key"] == got[2]["id_key"] is not None
    assert got[3]["id_key"] is None
    assert got[4]["id_key"] is None
    assert got[5]["id_key"] != got[0]["id_key"]        # IDs are compared as written


def test_the_parent_is_in_reply_to_else_the_last_reference() -> None:
    got = keys({"in_reply_to": "<p@x>", "references": ["q@x", "r@x"]},
               {"in_reply_to": " ", "references": ["q@x", "<r@x>"]},
               {"references": ["q@x", "  "]},
               {"in_reply_to": None, "references": []})
    ids = keys({"message_id": "p@x"}, {"message_id": "r@x"})
    assert got[0]["parent_key"] == ids[0]["id_key"]    # the parent's own key
    assert got[1]["parent_key"] == ids[1]["id_key"]    # a blank In-Reply-To is none
    assert got[2]["parent_key"] is None                # the last entry only, as the rule
    assert got[3]["parent_key"] is None


def test_content_ignores_recipient_order_placement_and_repeats() -> None:
    base = {"from_addr": "f@x", "subject": "Hi", "date": WHEN}
    got = keys({**base, "to_addrs": ["a@x", "b@x"]},
               {**base, "to_addrs": ["b@x"], "cc_addrs": ["a@x", "b@x"]},
               {**base, "to_addrs": ["a@x"]},
               {**base, "to_addrs": ["a@x", "b@x"], "subject": ""},
               {**base, "to_addrs": ["a@x", "b@x"], "subject": None},
               {**base, "to_addrs": ["a@x", "b@x"], "date": None},
               {**base, "to_addrs": ["a@x", "b@x"], "from_addr": ""},
               {**base, "to_addrs": ["a@x", "b@x"], "from_addr": None})
    first = got[0]["content_key"]
    assert first is not None
    assert got[1]["content_key"] == first
    assert len({g["content_key"] for g in got[2:5]} | {first}) == 4
    assert got[5]["content_key"] is None               # no Date: never matched on content
    assert got[6]["content_key"] == got[7]["content_key"] != first


def test_repeats_flag_an_address_named_twice_in_to_and_cc() -> None:
    got = keys({"to_addrs": ["a@x", "b@x"], "cc_addrs": ["c@x"]},
               {"to_addrs": ["a@x"], "cc_addrs": ["a@x"]},
               {"to_addrs": ["b@x", "a@x", "b@x"]},
               {"cc_addrs": ["c@x", "c@x"]},
               {"to_addrs": [], "cc_addrs": []},
               {"to_addrs": ["A@x", "a@x"]})             # as stored: the parser lower-cases
    assert [g["rcpt_repeats"] for g in got] == [False, True, True, True, False, False]


ADDRESS = st.sampled_from(["a@x", "b@x", "c@x"])
ROW = st.fixed_dictionaries({
    "message_id": st.sampled_from([None, "m1", "<m1>", "m2"]),
    "from_addr": st.sampled_from(["f@x", "g@x", ""]),
    "subject": st.sampled_from([None, "", "Hi"]),
    "date": st.sampled_from([None, WHEN, datetime(2021, 5, 1, tzinfo=UTC)]),
    "to_addrs": st.lists(ADDRESS, max_size=3),
    "cc_addrs": st.lists(ADDRESS, max_size=2),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=8))
def test_rows_sharing_a_key_are_one_message_of_the_pandas_rule(rows: list[dict[str, Any]]) -> None:
    got = keys(*rows)
    for row, derived in zip(rows, got, strict=True):
        named = row["to_addrs"] + row["cc_addrs"]
        assert derived["rcpt_repeats"] == (len(set(named)) < len(named))
    frame = messages_frame([{**r, "uid": i + 1, "account": "a", "folder": "INBOX"}
                            for i, r in enumerate(rows)])
    labels = duplicate_groups(frame)
    for i in range(len(rows)):
        for j in range(len(rows)):
            for key in ("id_key", "content_key"):
                if got[i][key] is not None and got[i][key] == got[j][key]:
                    assert labels[i] == labels[j], (key, rows[i], rows[j])
    # ...and rows the rule joins are joined by a chain of equal keys
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for key in ("id_key", "content_key"):
        for i in range(len(rows)):
            for j in range(len(rows)):
                if got[i][key] is not None and got[i][key] == got[j][key]:
                    parent[root(i)] = root(j)
    for i in range(len(rows)):
        for j in range(len(rows)):
            assert (root(i) == root(j)) == (labels[i] == labels[j]), (rows[i], rows[j])


def test_every_written_part_carries_the_keys(tmp_path: Path) -> None:
    table = rowmod.rows_to_table([{"uid": 1, "message_id": "m@x", "date": WHEN}])
    rowmod.write_parquet(table, tmp_path / "p.parquet")
    again = pq.read_table(tmp_path / "p.parquet")
    assert again.select(list(DERIVED_COLUMNS)).to_pylist() == keys({"message_id": "m@x",
                                                                     "date": WHEN})
    # written again (a compaction): computed afresh, never duplicated
    rowmod.write_parquet(again, tmp_path / "q.parquet")
    assert pq.read_table(tmp_path / "q.parquet").column_names == again.column_names
