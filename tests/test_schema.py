"""The one schema of a stored message, and every path that fills it.

Adding a column is one line in mailhat_nb/sync/schema.py plus its value
(from the parser, or from the server); these tests fail until every path
agrees: the parser's keys and positions, the worker's tables, the frame.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from mailhat_nb.analysis.frames import MESSAGE_COLUMNS, MESSAGE_DTYPES, messages_frame
from mailhat_nb.sync import rows
from mailhat_nb.sync.fetch import FetchedMessage
from mailhat_nb.sync.parse import PARSE_KEYS, parse_headers
from mailhat_nb.sync.parse.headers import _empty_values
from mailhat_nb.sync.schema import DERIVED_COLUMNS, LIST, STORE_COLUMNS, store_schema

#: What the server (or the file) tells about a message, beside its header block.
SERVER_FACTS = {"folder_role", "uidvalidity", "uid", "internaldate", "size", "flags", "gm_msgid"}

RICH = (b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
        b"From: =?utf-8?q?Zo=C3=AB?= <Zoe@Example.COM>\r\n"
        b"To: a@example.com, B <b@example.com>\r\nCc: c@example.com\r\n"
        b"Delivered-To: me@example.com\r\n"
        b"Subject: =?x-unknown?q?caf=E9?=\r\n"
        b"Message-ID: 1234@example.com\r\n"
        b"In-Reply-To: <1233@example.com>\r\nReferences: <1232@example.com> <1233@example.com>\r\n"
        b"List-Id: Team <team.example.com>\r\n"
        b"X-Gmail-Labels: Inbox,Work\r\nX-GM-THRID: 77\r\n\r\n")


def test_every_stored_column_comes_from_the_parser_or_the_server() -> None:
    assert set(PARSE_KEYS) <= set(STORE_COLUMNS)
    assert set(STORE_COLUMNS) - set(PARSE_KEYS) == SERVER_FACTS


def test_the_parser_puts_each_value_under_its_own_key() -> None:
    # Every key gets a value no other key has: a value in the wrong position fails.
    assert parse_headers(RICH) == {
        "message_id": "1234@example.com",
        "date": datetime(2003, 7, 1, 8, 52, 37, tzinfo=UTC),
        "date_source": "header",
        "date_offset_min": 120,
        "from_addr": "zoe@example.com",
        "from_name": "Zoë",
        "to_addrs": ["a@example.com", "b@example.com"],
        "cc_addrs": ["c@example.com"],
        "delivered_to": ["me@example.com"],
        "subject": "café",
        "subject_raw": "=?x-unknown?q?caf=E9?=",
        "in_reply_to": "1233@example.com",
        "references": ["1232@example.com", "1233@example.com"],
        "list_id": "team.example.com",
        "labels": ["Inbox", "Work"],
        "gm_thrid": 77,
        "defects": ["charset_unknown", "message_id_nonstandard", "subject_undecodable"],
    }


def test_the_empty_row_has_a_value_of_each_columns_kind() -> None:
    when = datetime(2020, 1, 1, tzinfo=UTC)
    empty = dict(zip(PARSE_KEYS, _empty_values(when, ["parse_error"]), strict=True))
    assert (empty["date"], empty["date_source"], empty["defects"]) == (when, "internaldate",
                                                                       ["parse_error"])
    for key in set(PARSE_KEYS) - {"date", "date_source", "defects"}:
        assert empty[key] == ([] if STORE_COLUMNS[key] == LIST else None), key


def test_the_workers_parts_and_the_frame_hold_every_column(tmp_path: Path) -> None:
    msg = FetchedMessage(uid=3, flags=("\\Seen",), size=99, header=RICH,
                         internaldate=datetime(2003, 7, 1, tzinfo=UTC), gm_msgid=5)
    job = rows.ChunkJob.from_messages([msg], "inbox", 1, str(tmp_path / "p.parquet"))
    assert rows.chunk_to_table(job).schema == store_schema()
    stored = pq.read_table(rows.process_chunk(job).tmp_path)
    assert stored.column_names == [*STORE_COLUMNS, *DERIVED_COLUMNS]   # the keys follow (sync.keys)
    assert all(v is not None for v in stored.to_pylist()[0].values())
    assert list(MESSAGE_DTYPES) == list(MESSAGE_COLUMNS) == [
        "account", "folder", *[c for c in STORE_COLUMNS if c != "defects"], "direction",
        "defects"]
    frame = messages_frame([{**stored.to_pylist()[0], "account": "a", "folder": "INBOX"}])
    assert {c: frame[c].dtype for c in MESSAGE_COLUMNS} == MESSAGE_DTYPES
