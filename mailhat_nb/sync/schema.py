"""The one schema of a stored message: its columns, in order, and their Arrow types.

The store's Parquet parts hold exactly these columns (``account`` and
``folder`` are directory names, ``direction`` is computed when reading).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

LIST = "list"
STR = "str"
TS = "ts"
DICT = "dict"

#: Column -> kind, in the frame's column order (kinds map to Arrow types below).
STORE_COLUMNS: dict[str, str] = {
    "folder_role": DICT, "uidvalidity": "int64", "uid": "int64", "message_id": STR,
    "date": TS, "date_source": DICT, "date_offset_min": "int16", "internaldate": TS,
    "from_addr": STR, "from_name": STR, "to_addrs": LIST, "cc_addrs": LIST,
    "delivered_to": LIST, "subject": STR, "subject_raw": STR, "in_reply_to": STR,
    "references": LIST, "list_id": STR, "size": "int64", "flags": LIST, "labels": LIST,
    "gm_msgid": "int64", "gm_thrid": "int64", "defects": LIST,
}  # fmt: skip
NOT_NULL = {"uidvalidity": 0, "uid": 0, "size": 0}


def arrow_type(kind: str) -> pa.DataType:
    """The Arrow type of a column kind of :data:`STORE_COLUMNS`."""
    import pyarrow as pa

    return {
        LIST: pa.list_(pa.string()), STR: pa.large_string(),
        TS: pa.timestamp("us", tz="UTC"), DICT: pa.dictionary(pa.int8(), pa.large_string()),
        "int64": pa.int64(), "int16": pa.int16(),
    }[kind]


def store_schema() -> pa.Schema:
    """The Arrow schema of every Parquet part in the store."""
    import pyarrow as pa

    return pa.schema([(name, arrow_type(kind)) for name, kind in STORE_COLUMNS.items()])
