"""Damage from outside (a disk fault, a "clean-up" by hand): how a part is checked.

See :mod:`mailhat_nb.sync.store` for when the check runs and how damage heals
(:meth:`~.root.Store.set_aside_damaged`).
"""

from __future__ import annotations

import os
from pathlib import Path

from mailhat_nb.errors import StoreError, reason


def damaged_part(path: Path, exc: Exception) -> StoreError:
    """The error for a part that exists but cannot be read, with the way out."""
    return StoreError(f"cannot read {path}: {reason(exc)}; the file is damaged: `mailhat sync "
                      "--verify` sets it aside and fetches its messages again (for an "
                      "import: import the source again)")


def part_intact(path: Path, rows: int | None = None, *, deep: bool = False) -> bool:
    """Whether a part file is there and whole.

    By default two 4-byte reads (Parquet starts and ends with ``PAR1``),
    cheap enough to run on every part before a folder is called unchanged;
    catches a deleted, truncated or replaced file. ``deep`` reads the whole
    part and checks its row count (``rows``): it also catches damage inside
    the file, at the price of reading the store (``mailhat sync --verify``).
    """
    if deep:
        import pyarrow.parquet as pq

        try:
            found = pq.read_table(path).num_rows
        except (OSError, ValueError):
            return False
        return rows is None or found == rows
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(-4, os.SEEK_END)  # OSError on a file shorter than 4 bytes
            tail = f.read(4)
    except OSError:
        return False
    return head == tail == b"PAR1"
