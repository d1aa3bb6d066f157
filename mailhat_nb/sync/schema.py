"""The one schema of a stored message: its columns, in order, their kinds and Arrow types.

The store's Parquet parts hold exactly these columns; the ``messages`` frame
(:mod:`mailhat_nb.analysis.frames`) is ``account`` and ``folder`` (the
store's directory names), these, and ``direction`` (decided when reading),
its dtypes derived from the kinds here. Adding a column is one line here,
plus its value: from the header parser (:data:`~.parse.PARSE_KEYS`) or from
the server (:func:`~.rows.chunk_to_table`); ``tests/test_schema.py`` checks
that every column gets one, of its kind, on every path.

Each Parquet part also carries :data:`DERIVED_COLUMNS`, the duplicate rule's
keys and whether the recipients repeat an address, computed from these
columns as the part is written (:mod:`~.keys`): they are for the SQL
engines, never a frame's columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from mailhat_nb.sync.folders import FOLDER_ROLES

if TYPE_CHECKING:
    import pyarrow as pa

#: Column kinds (each maps to one Arrow type, :func:`arrow_type`).
LIST = "list"  # list<string>; [] for none, never null
STR = "str"  # large_string
TS = "ts"  # timestamp[us, UTC]
DICT = "dict"  # dictionary<int8, large_string>, values from CATEGORIES
INT64 = "int64"
INT16 = "int16"

#: Column -> kind, in the frame's column order.
STORE_COLUMNS: Final[dict[str, str]] = {
    "folder_role": DICT,  # inbox sent drafts trash junk all archive "" (sync.folders)
    "uidvalidity": INT64,  # with uid, account and folder: the row's key
    "uid": INT64,
    "message_id": STR,  # without the angle brackets
    "date": TS,  # the Date header, else INTERNALDATE (date_source says which)
    "date_source": DICT,  # header internaldate none
    "date_offset_min": INT16,  # the sender's UTC offset, from the Date header
    "internaldate": TS,  # the server's arrival time, or a file's mtime
    "from_addr": STR,  # lower-cased
    "from_name": STR,  # decoded display name
    "to_addrs": LIST,  # lower-cased addresses
    "cc_addrs": LIST,
    "delivered_to": LIST,
    "subject": STR,  # decoded
    "subject_raw": STR,  # only when decoding had to guess or repair
    "in_reply_to": STR,
    "references": LIST,
    "list_id": STR,
    "size": INT64,  # RFC822.SIZE (CRLF line ends), or the file's size counted so
    "flags": LIST,  # IMAP names, never \Recent
    "labels": LIST,  # Gmail's labels, else []
    "gm_msgid": INT64,  # Gmail's ids, else null
    "gm_thrid": INT64,
    "defects": LIST,  # what could not be parsed cleanly (parse.PARSE_DEFECTS); [] if clean
}
#: The duplicate rule's keys (64-bit hashes) after the columns above, in every part
#: written since they exist (:mod:`~.keys`).
KEY_COLUMNS: Final = ("id_key", "parent_key", "content_key")
#: Whether To+Cc name an address twice (in every part written since it exists).
REPEATS_COLUMN: Final = "rcpt_repeats"
#: What the writer adds to :data:`STORE_COLUMNS`, in order (:mod:`~.keys`).
DERIVED_COLUMNS: Final = (*KEY_COLUMNS, REPEATS_COLUMN)
#: Columns that are never null: the row key and a count (0 when unknown).
NOT_NULL: Final = {"uidvalidity": 0, "uid": 0, "size": 0}
#: Where ``date`` came from.
DATE_SOURCES: Final = ("header", "internaldate", "none")
#: The values a dictionary column may hold, in order.
CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "folder_role": FOLDER_ROLES, "date_source": DATE_SOURCES}


def arrow_type(kind: str) -> pa.DataType:
    """The Arrow type of a column kind of :data:`STORE_COLUMNS`."""
    import pyarrow as pa

    return {
        LIST: pa.list_(pa.string()), STR: pa.large_string(),
        TS: pa.timestamp("us", tz="UTC"), DICT: pa.dictionary(pa.int8(), pa.large_string()),
        INT64: pa.int64(), INT16: pa.int16(),
    }[kind]


def store_schema() -> pa.Schema:
    """The Arrow schema of every Parquet part in the store."""
    import pyarrow as pa

    return pa.schema([(name, arrow_type(kind)) for name, kind in STORE_COLUMNS.items()])
