"""The Parquet store: atomic commits, crash recovery, flag/expunge/retire, layout, reading."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mailhat_nb.analysis.frames import MESSAGE_DTYPES, messages_frame
from mailhat_nb.analysis.load import read_messages
from mailhat_nb.errors import StoreError, UsageError
from mailhat_nb.sync import rows as rowmod
from mailhat_nb.sync.schema import DERIVED_COLUMNS, REPEATS_COLUMN, store_schema
from mailhat_nb.sync.store import (
    STATE_FILE,
    FolderStore,
    Store,
    escape_component,
    read_table,
)

ACCOUNT = "me@example.com"


def row(uid: int, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uidvalidity": 7, "uid": uid, "message_id": f"m{uid}@x", "folder_role": "inbox",
        "date": dt.datetime(2022, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=uid),
        "date_source": "header", "date_offset_min": 60,
        "internaldate": dt.datetime(2022, 1, 1, tzinfo=dt.UTC),
        "from_addr": f"p{uid % 3}@example.org", "from_name": "Pé", "to_addrs": [ACCOUNT],
        "cc_addrs": [], "delivered_to": [], "subject": f"s{uid}", "subject_raw": None,
        "in_reply_to": None, "references": [], "list_id": None, "size": 100 + uid,
        "flags": ["\\Seen"], "labels": [], "gm_msgid": None, "gm_thrid": None, "defects": [],
    }
    base.update(extra)
    return base


def table(uids: list[int], **extra: Any) -> pa.Table:
    return rowmod.rows_to_table([row(u, **extra) for u in uids])


def open_folder(tmp_path: Path, folder: str = "INBOX") -> FolderStore:
    fs = Store(tmp_path).open_folder(ACCOUNT, folder)
    if fs.state.uidvalidity is None:
        fs.commit_state(uidvalidity=7)
    return fs


def uids_on_disk(fs: FolderStore) -> list[int]:
    return sorted(u for f in fs.files() for u in pq.read_table(f).column("uid").to_pylist())


def test_store_schema_is_the_frame_contract() -> None:
    # The store writes Arrow itself (no pandas in the sync's hot path); pin
    # that it writes exactly what frames.messages_frame would.
    frame = messages_frame([{**row(1), "account": ACCOUNT, "folder": "INBOX"}])
    expected = pa.Table.from_pandas(frame.drop(columns=["account", "folder", "direction"]),
                                    preserve_index=False).schema
    assert rowmod.store_schema().names == expected.names
    for field in rowmod.store_schema():
        assert field.type == expected.field(field.name).type, field.name
    assert set(MESSAGE_DTYPES) == {*rowmod.STORE_COLUMNS, "account", "folder", "direction"}


def test_append_commits_and_reads_back(tmp_path: Path) -> None:
    fs = open_folder(tmp_path)
    fs.append(table([1, 2, 3]), [1, 2, 3], highestmodseq=5)
    fs.append(table([5, 6]), [5, 6])
    assert fs.state.uids == "1:3,5:6"
    assert fs.state.uid_list()[-1] == 6
    again = Store(tmp_path).open_folder(ACCOUNT, "INBOX")
    assert again.state.highestmodseq == 5
    assert uids_on_disk(again) == [1, 2, 3, 5, 6]
    with pytest.raises(StoreError, match="duplicate"):
        again.append(table([6, 7]), [6, 7])
    assert uids_on_disk(Store(tmp_path).open_folder(ACCOUNT, "INBOX")) == [1, 2, 3, 5, 6]


def test_crash_before_the_commit_point_leaves_nothing(tmp_path: Path) -> None:
    fs = open_folder(tmp_path)
    fs.append(table([1, 2]), [1, 2])
    # A chunk written but never committed (the process died before the state write):
    _, tmp = fs.reserve_part(3, 4)
    rowmod.write_parquet(table([3, 4]), tmp)
    # ... and a stray part file no state names.
    rowmod.write_parquet(table([9]), fs.path / "part-v7-0000000009-0000000009-g0.parquet")
    recovered = Store(tmp_path).open_folder(ACCOUNT, "INBOX")
    assert not tmp.exists()
    assert sorted(p.name for p in recovered.path.iterdir()) == sorted(
        [STATE_FILE, *(p.file for p in recovered.state.parts)])
    assert uids_on_disk(recovered) == [1, 2]
    assert read_table(tmp_path).column("uid").to_pylist() == [1, 2]


def test_crash_after_the_commit_point_is_rolled_forward(tmp_path: Path) -> None:
    fs = open_folder(tmp_path)
    fs.append(table([1, 2]), [1, 2])
    name, tmp = fs.reserve_part(3, 4)
    rowmod.write_parquet(table([3, 4]), tmp)
    # Simulate death right after the state was replaced, before the rename ran.
    fs.state.parts.append(type(fs.state.parts[0])(name, 7, 3, 4, 2))
    fs.state.uids = "1:4"
    fs.state.pending = {"renames": [[str(tmp), str(fs.path / name)]], "deletes": []}
    (fs.path / STATE_FILE).write_bytes(fs.state.to_json())
    # Readers already see the committed part, under its temporary name ...
    assert sorted(read_messages(tmp_path)["uid"]) == [1, 2, 3, 4]
    # ... and the next writer finishes the move.
    recovered = Store(tmp_path).open_folder(ACCOUNT, "INBOX")
    assert uids_on_disk(recovered) == [1, 2, 3, 4]
    assert not tmp.exists()


def test_flags_expunge_retire_and_compact(tmp_path: Path) -> None:
    fs = open_folder(tmp_path)
    for first in range(1, 61, 2):
        fs.append(table([first, first + 1]), [first, first + 1])
    changed = fs.update_flags({3: ("\\Seen", "\\Flagged"), 4: ("\\Seen",), 999: ("x",)},
                              highestmodseq=9)
    assert changed == 1  # 4 already had exactly \Seen; 999 is not stored
    removed = fs.expunge({5, 6, 7, 999})
    assert removed == 3
    assert fs.compact()  # 30 parts > COMPACT_AFTER
    assert len(fs.state.parts) == 1
    df = read_messages(tmp_path)
    assert sorted(df["uid"]) == [u for u in range(1, 61) if u not in (5, 6, 7)]
    flags = dict(zip(df["uid"], df["flags"], strict=True))
    assert list(flags[3]) == ["\\Seen", "\\Flagged"]
    assert list(flags[4]) == ["\\Seen"]
    assert fs.state.uids == "1:4,8:60"
    assert fs.state.highestmodseq == 9
    rows = fs.retire("uidvalidity_changed", uidvalidity=8)
    assert rows == 57
    assert fs.state.parts == []
    assert fs.state.events[-1]["event"] == "uidvalidity_changed"
    assert read_messages(tmp_path).empty
    retired = list((tmp_path / "_retired").rglob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in retired) == 57


@pytest.mark.parametrize("old", [DERIVED_COLUMNS, (REPEATS_COLUMN,)])
def test_compaction_merges_parts_written_before_the_derived_columns(
        tmp_path: Path, old: tuple[str, ...]) -> None:
    fs = open_folder(tmp_path)
    for first in range(1, 61, 2):
        fs.append(table([first, first + 1]), [first, first + 1])
    for part in fs.files()[::2]:     # every other part as an older writer left it
        pq.write_table(pq.read_table(part).drop_columns(list(old)), part)
    assert fs.compact()
    assert len(fs.state.parts) == 1
    merged = pq.read_table(fs.files()[0])
    assert merged.column_names == [*store_schema().names, *DERIVED_COLUMNS]
    assert merged.column("uid").to_pylist() == list(range(1, 61))
    assert merged.column("id_key").null_count == 0


def test_layout_is_readable_without_the_package(tmp_path: Path) -> None:
    odd = "INBOX.Entwürfe/2024 = 100% [draft]"
    for folder, uids in (("INBOX", [1, 2]), (odd, [1])):
        fs = open_folder(tmp_path, folder)
        fs.append(table(uids), uids)
    path = Store(tmp_path).folder_path(ACCOUNT, odd)
    assert path.name == "folder=INBOX.Entwürfe%2F2024 %3D 100%25 %5Bdraft%5D"
    plain = pd.read_parquet(tmp_path)  # hive partitions, _state.json etc. ignored
    assert sorted(map(str, plain["folder"].unique())) == sorted(["INBOX", odd])
    assert set(plain["account"].astype(str)) == {ACCOUNT}
    assert len(plain) == 3


def test_read_messages_types_direction_and_filters(tmp_path: Path) -> None:
    inbox = open_folder(tmp_path, "INBOX")
    inbox.append(table([1, 2, 3]), [1, 2, 3])
    sent = open_folder(tmp_path, "INBOX.Sent")
    sent.append(rowmod.rows_to_table([row(1, from_addr=ACCOUNT, folder_role="sent")]), [1])
    df = read_messages(tmp_path)
    assert {c: df[c].dtype for c in MESSAGE_DTYPES} == MESSAGE_DTYPES
    assert dict(zip(df["folder"].astype(str), df["direction"].astype(str), strict=True)) \
        == {"INBOX": "received", "INBOX.Sent": "sent"}
    only = read_messages(tmp_path, account=ACCOUNT, folders=["INBOX.Sent"])
    assert list(only["folder"].astype(str)) == ["INBOX.Sent"]
    assert read_messages(tmp_path, account="nobody@x").empty
    assert len(read_messages(tmp_path, account=ACCOUNT.upper())) == 4  # addresses: any case
    with pytest.raises(UsageError):
        read_messages(tmp_path / "missing")


def test_state_file_is_plain_json(tmp_path: Path) -> None:
    fs = open_folder(tmp_path)
    fs.append(table([1]), [1], uidnext=2)
    data = json.loads((fs.path / STATE_FILE).read_text("utf-8"))
    assert {"account", "folder", "uidvalidity", "uidnext", "highestmodseq", "last_sync",
            "events", "parts", "uids", "role"} <= set(data)
    assert data["account"] == ACCOUNT
    assert data["uidvalidity"] == 7
    assert data["uidnext"] == 2


@pytest.mark.parametrize("content", ["[]", '{"garbage": 1}', '{"account": "a", "folder": 3}',
                                     '{"account": "a", "folder": "b", "parts": [1]}',
                                     '{"account": "a", "folder": "b", "parts": [{"file": "p", '
                                     '"uidvalidity": 7, "first": "1", "last": 2, "rows": 2}]}'])
def test_a_state_file_of_the_wrong_shape_is_a_store_error(tmp_path: Path, content: str) -> None:
    fs = open_folder(tmp_path)
    fs.append(table([1, 2]), [1, 2])
    (fs.path / STATE_FILE).write_text(content)
    with pytest.raises(StoreError, match=r"cannot read .*_state\.json"):
        read_messages(tmp_path)
    with pytest.raises(StoreError, match=r"cannot read .*_state\.json"):
        Store(tmp_path).open_folder(ACCOUNT, "INBOX")


def test_another_accounts_broken_record_does_not_stop_this_one(tmp_path: Path) -> None:
    fs = open_folder(tmp_path)
    fs.append(table([1, 2]), [1, 2])
    other = Store(tmp_path).open_folder("other@example.com", "INBOX")
    (other.path / STATE_FILE).write_text("[]")
    assert len(read_messages(tmp_path, account=ACCOUNT)) == 2
    assert Store(tmp_path).accounts() == [ACCOUNT]
    with pytest.raises(StoreError):
        read_messages(tmp_path)


def test_a_damaged_part_sets_its_folder_aside_whole(tmp_path: Path) -> None:
    fs = open_folder(tmp_path)
    fs.append(table([1, 2, 3]), [1, 2, 3])
    fs.append(table([5, 8]), [5, 8])
    other = Store(tmp_path).open_folder(ACCOUNT, "INBOX.Sent")
    other.commit_state(uidvalidity=7)
    other.append(table([1]), [1])
    damaged = fs.files()[1]
    damaged.write_bytes(b"PAR1 and then garbage")
    with Store(tmp_path).lock(ACCOUNT):
        moved = Store(tmp_path).set_aside_damaged(ACCOUNT)
    assert len(moved) == 1
    assert moved[0].startswith("_retired/account=me@example.com/folder=INBOX-damaged-")
    assert (tmp_path / moved[0] / damaged.name).read_bytes() == b"PAR1 and then garbage"
    assert [s.folder for s in Store(tmp_path).states(ACCOUNT)] == ["INBOX.Sent"]
    assert Store(tmp_path).set_aside_damaged(ACCOUNT) == []  # healed: nothing more to move
    fresh = Store(tmp_path).open_folder(ACCOUNT, "INBOX")  # fetched again as new
    assert (fresh.state.uid_list(), fresh.state.complete) == ([], False)


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.lock(ACCOUNT), pytest.raises(UsageError, match="another sync"), \
            store.lock(ACCOUNT):
        pass
    with store.lock(ACCOUNT):  # released again
        pass
    # One writer per account: a team's accounts sync into one store together.
    with store.lock(ACCOUNT), store.lock("teammate@example.com"):
        assert sorted(p.parent.name for p in tmp_path.glob("*/_lock")) == [
            "account=me@example.com", "account=teammate@example.com"]


def test_a_store_path_that_is_a_file_is_bad_usage(tmp_path: Path) -> None:
    # Like any other wrong argument (exit 2), not a store failure (exit 1).
    path = tmp_path / "store"
    path.write_text("x")
    with pytest.raises(UsageError, match="is a file"), Store(path).lock(ACCOUNT):
        pass
    with pytest.raises(UsageError):
        read_messages(path)
    assert path.read_text() == "x"


@pytest.mark.parametrize("name", ["INBOX", "a/b", "100%", "x" * 400, "Réunions", "tab\there"])
def test_escaped_names_are_single_safe_components(name: str) -> None:
    out = escape_component(name)
    assert "/" not in out
    assert "\t" not in out
    assert len(out.encode()) <= 200
    assert out.startswith(name[:3]) or "%" in out[:9]
    assert not os.path.isabs(out)
