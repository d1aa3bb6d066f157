"""The ``messages`` frame of a store or of offline mail, with ``direction``.

This is where the rule for "you" meets the data: the store and the offline
readers (:mod:`mailhat_nb.sync`) hold what the server or the files hold,
and know nothing of who the account's owner is; here each account's own
addresses (:func:`~mailhat_nb.analysis.identity.self_addresses`) decide
which rows are ``sent``.

API
---
``read_messages(store_dir, account=None, folders=None) -> DataFrame``
    A store (``mailhat sync`` / ``mailhat import``), all accounts or one.
``load_maildir(path, account, self_addrs=()) -> DataFrame``
``load_mbox(path, account, self_addrs=()) -> DataFrame``
    A Maildir tree or an mbox file, read without a store (self = ``account``
    when it is an address + the From of sent mail + Delivered-To +
    ``self_addrs``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from mailhat_nb.analysis.frames import (
    add_direction,
    concat_frames,
    frame_from_arrow,
    messages_frame,
)
from mailhat_nb.analysis.identity import self_addresses
from mailhat_nb.errors import UsageError
from mailhat_nb.sync.offline import FolderBatch, read_maildir, read_mbox
from mailhat_nb.sync.store import read_table


def read_messages(store_dir: Path | str, account: str | None = None,
                  folders: Iterable[str] | None = None) -> pd.DataFrame:
    """The ``messages`` frame (DESIGN.md) of a store: all accounts, or one, or some folders.

    ``direction`` is computed here, per account, from who "self" is
    (:func:`~mailhat_nb.analysis.identity.self_addresses`: the login, the From of sent
    mail, Delivered-To), because it depends on the whole account, not on one
    synced chunk. It is the same rule ``mailhat contacts`` counts with, so a
    ``sent`` row is always from an address the contacts treat as self.

    Parameters
    ----------
    store_dir:
        The store directory (``--store``).
    account:
        Only this account (the login address), or every account.
    folders:
        Only these folders (decoded names, e.g. ``INBOX.Sent``), or all.
    """
    if not Path(store_dir).is_dir():
        raise UsageError(f"no store at {store_dir}: run `mailhat sync` or `mailhat import` first")
    df = frame_from_arrow(read_table(store_dir, account, folders))
    if df.empty:
        return df
    return pd.concat([add_direction(rows, self_addresses(rows, login=str(acct)))
                      for acct, rows in df.groupby("account", observed=True, sort=False)],
                     ignore_index=True)


def _load(batches: Iterable[FolderBatch], account: str, self_addrs: Iterable[str]) -> pd.DataFrame:
    df = concat_frames([messages_frame(b.rows) for b in batches if b.rows])
    return add_direction(df, self_addresses(df, login=account, extra=self_addrs))


def load_maildir(
    path: str | os.PathLike[str], account: str, self_addrs: Iterable[str] = ()
) -> pd.DataFrame:
    """The whole tree as one ``messages`` frame, ``direction`` set."""
    return _load(read_maildir(path, account), account, self_addrs)


def load_mbox(
    path: str | os.PathLike[str], account: str, self_addrs: Iterable[str] = ()
) -> pd.DataFrame:
    """The whole mbox file as one ``messages`` frame, ``direction`` set."""
    return _load(read_mbox(path, account), account, self_addrs)
