"""The store's writer lock: one sync or import at a time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mailhat_nb.errors import StoreError, UsageError, reason
from mailhat_nb.sync.store.layout import LOCK_FILE


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the store's writer lock (one sync or import at a time).

    An advisory ``flock`` on ``<store>/_lock``: the kernel releases it
    when the holder dies, even by SIGKILL, so a crash never leaves the
    store locked.

    Raises
    ------
    UsageError
        When another process holds it, or the store path is a file (a
        wrong ``--store``, bad usage like any other wrong argument).
    """
    import fcntl

    if root.exists() and not root.is_dir():
        raise UsageError(f"the store {root} is a file, not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the store at {root}: {reason(exc)}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another sync or import is writing to {root}; "
                             "wait for it to finish") from None
        yield
    finally:
        os.close(fd)
