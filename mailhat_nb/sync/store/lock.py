"""The writer lock: one sync or import of an account at a time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mailhat_nb.errors import StoreError, UsageError, reason
from mailhat_nb.sync.store.layout import LOCK_FILE, account_dir


@contextlib.contextmanager
def writer_lock(root: Path, account: str) -> Iterator[None]:
    """Hold ``account``'s writer lock (one sync or import of it at a time).

    An advisory ``flock`` on ``<store>/account=<account>/_lock``: the kernel
    releases it when the holder dies, even by SIGKILL, so a crash never
    leaves the account locked. Per account, not per store, because a
    team's accounts sync into one store at the same time (``mailhat sync
    --accounts``): every write of a sync or an import stays inside its
    account's directory (its folders, its ``_retired/account=...``).

    Raises
    ------
    UsageError
        When another process (or thread) holds it, or the store path is a
        file (a wrong ``--store``, bad usage like any other wrong argument).
    """
    import fcntl

    if root.exists() and not root.is_dir():
        raise UsageError(f"the store {root} is a file, not a directory")
    home = account_dir(root, account)
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the store at {root}: {reason(exc)}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another sync or import is writing {account} to {root}; "
                             "wait for it to finish") from None
        yield
    finally:
        os.close(fd)
