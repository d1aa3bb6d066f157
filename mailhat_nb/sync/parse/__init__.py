"""Header blocks into ``messages`` rows: fast, defensive, never raising.

:mod:`.headers` is the parser (its docstring lists the row's keys); the
careful helpers for the hard cases are :mod:`.rfc2047` (encoded words),
:mod:`.addrparse` (address lists) and :mod:`.dates` (Date headers). The
sync's parse worker imports this package: nothing here may import pandas.
"""

from mailhat_nb.sync.parse.headers import (
    FETCH_HEADER_FIELDS,
    PARSE_DEFECTS,
    PARSE_KEYS,
    clear_field_memo,
    parse_columns,
    parse_headers,
)

__all__ = [
    "FETCH_HEADER_FIELDS",
    "PARSE_DEFECTS",
    "PARSE_KEYS",
    "clear_field_memo",
    "parse_columns",
    "parse_headers",
]
