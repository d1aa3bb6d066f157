"""The duplicate rule's keys of each stored row, written beside its columns.

The analysis finds one message in many rows by its Message-ID, or by its
content: From, Date, Subject and the set of To+Cc (``DESIGN.md``). On a big
store, hashing those strings is most of what the SQL engines spend; a row's
keys never change, so the writer hashes them once, here, and every part
carries them as three 64-bit columns (:data:`~.schema.KEY_COLUMNS`):

``id_key``       the cleaned Message-ID (null: none);
``parent_key``   the cleaned ID it replies to: In-Reply-To, else the last
                 References entry (null: none); the same hash as ``id_key``,
                 so a reply's ``parent_key`` equals its parent's ``id_key``;
``content_key``  From, Date, Subject and the recipient set (null: no Date,
                 when the rule never matches on content).

A part written before the keys existed has none: the engines then hash in
SQL for the whole store, with the same rule (:mod:`mailhat_nb.analysis.engines`).

The hash is BLAKE2b cut to 64 bits, from the standard library: the same
value on every machine and Python, forever, so parts written years apart
agree (``tests/test_keys.py`` pins values). Two different keys share a hash
with odds about n**2 / 2**65 (3 in a million at ten million rows).
"""

from __future__ import annotations

from hashlib import blake2b
from typing import TYPE_CHECKING

from mailhat_nb.sync.schema import KEY_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa


def hash64(text: str) -> int:
    """A string's signed 64-bit key (BLAKE2b of its UTF-8, cut to 8 bytes)."""
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def clean_ids(ids: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Message-IDs without blanks and angle brackets; empty -> null.

    The parser stores IDs bare already; only values that still carry ``<``,
    ``>`` or blanks are rewritten, with Arrow kernels, so a clean column is
    checked quickly and not copied. The analysis's ``dedupe.clean_ids`` is this.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    dirty = pc.match_substring_regex(ids, r"^\s|[<>]|\s$")
    if pc.any(dirty).as_py():
        fixed = pc.utf8_trim_whitespace(pc.utf8_trim(pc.utf8_trim_whitespace(ids), "<>"))
        ids = pc.if_else(dirty, fixed, ids)
    empty = pc.equal(ids, "")
    if pc.any(empty).as_py():
        ids = pc.if_else(empty, pa.scalar(None, ids.type), ids)
    return ids


def _last(lists: pa.Array) -> pa.Array:
    """Each list's last element, as a large string (null for an empty list)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = lists.offsets.to_numpy()     # absolute positions in ``lists.values``
    ends = offsets[1:]
    present = ends > offsets[:-1]
    last = pa.nulls(len(lists), pa.large_string())
    if present.any():
        picked = lists.values.take(pa.array(ends[present] - 1)).cast(pa.large_string())
        last = pc.replace_with_mask(last, pa.array(present), picked)
    return last


def _content(sender: str | None, subject: str | None, date: int | None,
             to: list[str], cc: list[str]) -> int | None:
    """The content key of one row (see the module docstring); None without a Date.

    Every field is written with its length in front, so no two different
    rows can make the same text; the recipients as a sorted set, so their
    order and To/Cc placement do not count.
    """
    if date is None:
        return None
    rcpts = sorted(set(to).union(cc)) if cc or len(to) > 1 else to
    fields = [sender or "", "-" if subject is None else "+" + subject, str(date), *rcpts]
    return hash64("".join(f"{len(f)}:{f}" for f in fields))


def with_keys(table: pa.Table) -> pa.Table:
    """``table`` with its :data:`~.schema.KEY_COLUMNS` (re)computed from its columns."""
    import pyarrow as pa

    table = table.drop_columns([c for c in KEY_COLUMNS if c in table.column_names])
    table = table.combine_chunks()

    def column(name: str) -> pa.Array:
        return table.column(name).chunk(0) if table.num_rows else pa.array(
            [], table.schema.field(name).type)

    def hashed(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        return pa.array([None if x is None else hash64(x) for x in ids.to_pylist()], pa.int64())

    ids = clean_ids(column("message_id"))
    parents = clean_ids(column("in_reply_to")).fill_null(clean_ids(_last(column("references"))))
    content = pa.array(map(_content, column("from_addr").to_pylist(),
                           column("subject").to_pylist(),
                           column("date").cast(pa.int64()).to_pylist(),
                           column("to_addrs").to_pylist(),
                           column("cc_addrs").to_pylist()), pa.int64())
    for name, values in zip(KEY_COLUMNS, (hashed(ids), hashed(parents), content), strict=True):
        table = table.append_column(name, values)
    return table
