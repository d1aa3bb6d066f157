"""UID sequence sets (RFC 3501 ``1:3,7,9:10``): the state records' and the commands' form."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence


def parse_sequence_set(text: str | bytes) -> list[int]:
    """``"1:3,7,9:10"`` -> ``[1, 2, 3, 7, 9, 10]`` (``*`` is not allowed here)."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    out: list[int] = []
    for piece in text.split(","):
        if not piece:
            continue
        lo, _, hi = piece.partition(":")
        a = int(lo)
        b = int(hi) if hi else a
        if a > b:
            a, b = b, a
        out.extend(range(a, b + 1))
    return out


def to_ranges(uids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted UIDs -> maximal runs ``(first, last)``."""
    runs: list[tuple[int, int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], uid)
        else:
            runs.append((uid, uid))
    return runs


def sequence_set(uids: Sequence[int]) -> str:
    """Sorted UIDs -> the compact IMAP form (``"1:3,7"``), for state files and commands."""
    return ",".join(f"{a}:{b}" if a != b else str(a) for a, b in to_ranges(uids))


def chunk_ranges(uids: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Split sorted UIDs into ``(first, last)`` ranges of at most ``size`` messages each.

    A range may span UIDs that no longer exist; the server skips them. That
    is what keeps every command line short whatever the mailbox holds.
    """
    return [(uids[i], uids[min(i + size, len(uids)) - 1]) for i in range(0, len(uids), size)]


def uid_ranges(lo: int, hi: int, expected: int, size: int,
               width: Callable[[int], int] | None = None,
               ) -> list[tuple[int, int | None, int]] | None:
    """UID ranges from ``lo`` on, for messages whose UIDs a SEARCH did not list.

    Each range is ``(first, last, width)``; together they cover ``lo..hi``,
    and the last one is open (``last`` None: ``lo:*``), so messages that
    arrive after ``hi`` was read come too. The server skips UIDs that do not
    exist, and each range holds at most its width of messages: that is what
    bounds a chunk. Widths are ``size``, or what ``width(left)`` says for
    each range in turn (``left``: the UIDs still to cover). [] when
    ``lo > hi``.

    None when the UIDs are too sparse for that: the span is wider than
    twice the ``expected`` number of messages plus ``size``, and ranges
    would mostly ask for nothing (a SEARCH listing the UIDs is cheaper then).
    """
    if lo > hi:
        return []
    if hi - lo + 1 > 2 * expected + size:
        return None
    out: list[tuple[int, int | None, int]] = []
    start = lo
    while True:
        left = hi - start + 1
        step = width(left) if width is not None else size
        if step >= left:
            out.append((start, None, left))
            return out
        out.append((start, start + step - 1, step))
        start += step


def overlaps(existing: str, new: Sequence[int]) -> bool:
    """Whether sorted ``new`` shares a UID with the sequence set ``existing``."""
    if not existing or not new:
        return False
    for piece in existing.split(","):
        lo, _, hi = piece.partition(":")
        a, b = int(lo), int(hi or lo)
        i = bisect.bisect_left(new, a)
        if i < len(new) and new[i] <= b:
            return True
    return False


def merge_uids(existing: str, new: Sequence[int]) -> str:
    """Add sorted ``new`` UIDs to the sequence set ``existing``.

    The common case (all new UIDs above the stored ones) only touches the
    tail of the string; anything else falls back to a full merge.
    """
    if not new:
        return existing
    if not existing:
        return sequence_set(new)
    head, _, last = existing.rpartition(",")
    lo, _, hi = last.partition(":")
    top = int(hi or lo)
    if new[0] <= top:
        return sequence_set(sorted(set(parse_sequence_set(existing)) | set(new)))
    runs = to_ranges(new)
    prefix = existing
    if runs[0][0] == top + 1:
        runs[0] = (int(lo), runs[0][1])
        prefix = head
    tail = ",".join(f"{a}:{b}" if a != b else str(a) for a, b in runs)
    return f"{prefix},{tail}" if prefix else tail
