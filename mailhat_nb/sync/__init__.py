"""Mailbox sync: message sources -> parsed rows -> the store.

The storage layer: it keeps what the server (or the files) hold, and knows
nothing of who the account's owner is. It never imports
:mod:`mailhat_nb.analysis`, which reads the store as frames and decides
which rows are "sent" (``tests/test_layout.py`` pins both rules).

The API the CLI, the widgets and the benchmarks use::

    from mailhat_nb.sync import ImapSettings, sync_account
    summary = sync_account(ImapSettings("me@example.com", "mail.example.com"),
                           password, "store/")             # a Secret
    import_source("maildir", Path("backup/"), "store/")   # mbox / Maildir, same store
    sync_accounts([(entry, password), ...], "store/")    # a team's accounts, side by side

Modules, by what they hold:

- sources: :mod:`.imap` (the IMAP session; :mod:`.imap_errors`, the one
  boundary where its foreign errors become ours) over :mod:`.wire` (its
  commands, pipelined), :mod:`.fetch` (the answers read and lexed fast) and
  :mod:`.borrowed` (the one use of what imapclient keeps private);
  :mod:`.offline` (Maildir trees and mbox files);
- rows: :mod:`.parse` (header blocks, never raising), :mod:`.rows` (chunks
  to Arrow tables, in :mod:`.worker` processes), :mod:`.schema` (the one
  schema of a stored message), :mod:`.keys` (what each part carries for the
  engines: the duplicate rule's keys, repeated recipients), :mod:`.folders` (folder roles);
- the store: :mod:`.store` (Parquet parts and state records, one commit per
  change), :mod:`.uids` (sequence sets);
- driving it: :mod:`.engine` (:func:`sync_account`: the run, its
  retries), :mod:`.folderjob` (one folder's rounds of commands),
  :mod:`.pipeline` (chunks parsed, then committed in order),
  :mod:`.summary` (what a run did), :mod:`.accounts`
  (the accounts file, :func:`sync_accounts`), :mod:`.importer`
  (:func:`import_source`), :mod:`.progress`, :mod:`.memory`.

Importing this package imports none of them: the names below load their
module on first use, so a parse worker (``python -m mailhat_nb.sync.worker``)
never pays for the IMAP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailhat_nb.sync.accounts import AccountEntry, AccountRun, load_accounts, sync_accounts
    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings, ImapSource
    from mailhat_nb.sync.importer import import_source
    from mailhat_nb.sync.offline import FolderBatch, read_maildir, read_mbox
    from mailhat_nb.sync.progress import Progress, ProgressCallback, TqdmProgress
    from mailhat_nb.sync.store import Store, read_table
    from mailhat_nb.sync.summary import FolderResult, SyncSummary

_HOMES = {
    "AccountEntry": "accounts",
    "AccountRun": "accounts",
    "FolderBatch": "offline",
    "FolderResult": "summary",
    "ImapSettings": "imap",
    "ImapSource": "imap",
    "Progress": "progress",
    "ProgressCallback": "progress",
    "Store": "store",
    "SyncSummary": "summary",
    "TqdmProgress": "progress",
    "import_source": "importer",
    "load_accounts": "accounts",
    "read_maildir": "offline",
    "read_mbox": "offline",
    "read_table": "store",
    "sync_account": "engine",
    "sync_accounts": "accounts",
}

__all__ = [
    "AccountEntry",
    "AccountRun",
    "FolderBatch",
    "FolderResult",
    "ImapSettings",
    "ImapSource",
    "Progress",
    "ProgressCallback",
    "Store",
    "SyncSummary",
    "TqdmProgress",
    "import_source",
    "load_accounts",
    "read_maildir",
    "read_mbox",
    "read_table",
    "sync_account",
    "sync_accounts",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
