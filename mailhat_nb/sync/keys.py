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

Beside them, ``rcpt_repeats``: whether To+Cc name an address twice (To and
Cc both, or one list twice). The metrics count each recipient once per
message; with this flag the engines make a list distinct only where it
repeats (one row in ten of Enron's mail, fewer in most), instead of
searching every list of more than one address.

A part written before the keys existed has none: the engines then hash in
SQL for the whole store, with the same rule (:mod:`mailhat_nb.analysis.engines`);
likewise, without the flag in every part, they search every list.

The hash is BLAKE2b cut to 64 bits, from the standard library, of each
distinct string of a part (so a chunk hashes each sender and address once);
the content key combines its fields' hashes with splitmix64 in numpy, the
recipients as a sum over the *set*, so neither their order nor their To/Cc
placement counts. Both are the same on every machine and Python, forever, so
parts written years apart agree (``tests/test_keys.py`` pins values). Two
different keys share a hash with odds about n**2 / 2**65 (3 in a million at
ten million rows).
"""

from __future__ import annotations

from hashlib import blake2b
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mailhat_nb.sync.schema import DERIVED_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa


def _digests(strings: list[str]) -> npt.NDArray[np.uint64]:
    """Each string's key: BLAKE2b of its UTF-8, cut to 8 bytes (little-endian)."""
    return np.frombuffer(b"".join(
        blake2b(v.encode("utf-8", "surrogatepass"), digest_size=8).digest() for v in strings),
        dtype="<u8")


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


def splitmix64(x: npt.NDArray[np.int64] | npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: every input bit moves every output bit.

    So sums of hashed values (a set's key, here and in the pandas path's
    ``dedupe``) stay unique. Signed input is taken bit for bit.
    """
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64, copy=False) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hashes(values: pa.Array) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Per value, its :func:`_digests` key (0 where null), and where it is not null.

    Each distinct value is hashed once: a part repeats its senders and
    addresses many times.
    """
    import pyarrow.compute as pc

    codes = pc.dictionary_encode(values)
    distinct = _digests(codes.dictionary.to_pylist())
    present = codes.indices.is_valid().to_numpy(zero_copy_only=False)
    picked = distinct[codes.indices.fill_null(0).to_numpy()] if len(distinct) else (
        np.zeros(len(values), dtype=np.uint64))
    return np.where(present, picked, np.uint64(0)), present


def _recipients(to: pa.Array, cc: pa.Array) -> tuple[npt.NDArray[np.uint64],
                                                      npt.NDArray[np.bool_]]:
    """Per row, an order-free hash of its To+Cc *set* (0 for none), and whether it repeats.

    A row repeats an address when it has fewer distinct (row, address)
    pairs than addresses.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = np.concatenate([pc.list_parent_indices(to).to_numpy(),
                           pc.list_parent_indices(cc).to_numpy()]).astype(np.int64)
    values = pa.concat_arrays([pc.list_flatten(to), pc.list_flatten(cc)])
    codes = pc.dictionary_encode(values)
    width = max(len(codes.dictionary), 1)
    pairs = np.unique(rows * width + codes.indices.to_numpy())   # a set per row, sorted
    row, code = np.divmod(pairs, width)
    per_address = splitmix64(_digests(codes.dictionary.to_pylist()))
    repeats = np.bincount(rows, minlength=len(to)) != np.bincount(row, minlength=len(to))
    return row_sums(len(to), row, per_address[code]), repeats


def row_sums(n: int, rows: npt.NDArray[np.int64],
             values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Per row ``0..n-1``, the sum of its ``values`` (wrapping; 0 for none); ``rows`` sorted.

    With :func:`splitmix64`-mixed values this is an order-free key of each
    row's set (here and in the pandas path's ``dedupe``); a segmented sum
    does it in one pass.
    """
    out = np.zeros(n, dtype=np.uint64)
    if len(rows):
        starts = np.flatnonzero(np.diff(rows, prepend=-1))   # each row's first value
        with np.errstate(over="ignore"):
            out[rows[starts]] = np.add.reduceat(values, starts)
    return out


def _content_keys(columns: dict[str, pa.Array],
                  recipient_sets: npt.NDArray[np.uint64]) -> pa.Array:
    """From, Subject (null apart from empty), Date and the recipient set, as one key."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sender, _ = _hashes(pc.fill_null(columns["from_addr"], ""))   # none is empty
    subject, has_subject = _hashes(columns["subject"])
    date = columns["date"].cast(pa.int64())
    key = splitmix64(sender)
    for part in (subject, has_subject.astype(np.uint64),
                 date.fill_null(0).to_numpy().view(np.uint64),
                 recipient_sets):
        key = splitmix64(key ^ part)
    return pa.array(key.view(np.int64), mask=date.is_null().to_numpy(zero_copy_only=False))


def without_derived(table: pa.Table) -> pa.Table:
    """``table`` without the :data:`~.schema.DERIVED_COLUMNS` it carries (if any)."""
    return table.drop_columns([c for c in DERIVED_COLUMNS if c in table.column_names])


def with_keys(table: pa.Table) -> pa.Table:
    """``table`` with its :data:`~.schema.DERIVED_COLUMNS` (re)computed from its columns."""
    import pyarrow as pa

    table = without_derived(table)
    columns = {name: table.column(name).combine_chunks() for name in table.column_names}

    def ids(values: pa.Array) -> pa.Array:
        hashed, present = _hashes(values)
        return pa.array(hashed.view(np.int64), mask=~present)

    parents = clean_ids(columns["in_reply_to"]).fill_null(
        clean_ids(_last(columns["references"])))
    sets, repeats = _recipients(columns["to_addrs"], columns["cc_addrs"])
    derived = (ids(clean_ids(columns["message_id"])), ids(parents),
               _content_keys(columns, sets), pa.array(repeats))
    for name, values in zip(DERIVED_COLUMNS, derived, strict=True):
        table = table.append_column(name, values)
    return table
