"""``mailhat import``: an mbox file or a Maildir tree into the same store as a sync.

Reading and parsing are :mod:`mailhat_nb.sync.offline`'s (its batch readers,
so memory stays flat on a multi-GB Takeout export); this module writes each
batch as a Parquet part in the store's schema and commits a folder once its
last batch is written, replacing whatever an earlier import stored for that
folder. An mbox file and an IMAP account are then read back by the same
:func:`~mailhat_nb.analysis.load.read_messages`.

Imports add up: each folder records its **origin** (the resolved file or
tree it came from), and a second source imported into the same account adds
its folders beside the first's (Google Takeout gives one mbox per label).
Only an import of the same origin replaces what that origin imported, and
retires the folders it no longer has. A folder of the same name that another
origin imported is never overwritten unless the user says so (``replace``:
the same mailbox exported again to another place); one a sync stored is the
server's and never replaced. Folders imported before origins were recorded
are replaced by an import of the same name, as they were then, and never
retired by another source.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from mailhat_nb.checks import as_text
from mailhat_nb.errors import NothingToImport, UsageError
from mailhat_nb.sync import rows as rowmod
from mailhat_nb.sync.store import FolderState, FolderStore, Store, utc_now

Kind = Literal["mbox", "maildir"]


def default_account(kind: Kind, path: Path) -> str:
    """The account name an import uses when none is given: the source's name."""
    return as_text(path.stem if kind == "mbox" else path.resolve().name)


def import_source(kind: Kind, path: Path, store: Path | str,
                  account: str | None = None, *, replace: bool = False) -> dict[str, Any]:
    """Read ``path`` with the offline reader and store it under ``account``.

    ``replace``: a folder of the same name that another file or tree
    imported is replaced by this source's (else the import stops there, see
    the module docstring).

    Returns
    -------
    dict
        ``{"account", "source", "rows", "folders": {folder: rows}, "skipped":
        [directories with no mail], "set_aside": [damaged folders, moved under
        _retired/]}``.

    Raises
    ------
    NothingToImport
        The source holds no message at all (checked before the store is
        touched). Empty folders beside full ones are imported as such.
    UsageError
        The source cannot be read, or ``store`` is not a directory; or a
        folder it would write holds another source's rows (the folders
        written before it stay, nothing is lost).
    """
    from mailhat_nb.sync import offline

    if kind not in ("mbox", "maildir"):
        raise UsageError(f"unknown source kind {kind!r}")
    _refuse_store_as_source(path, Path(store))
    account = account or default_account(kind, path)
    batches: Iterator[offline.FolderBatch] = (
        offline.read_mbox(path, account) if kind == "mbox"
        else offline.read_maildir(path, account))
    batches = _first_message_or_raise(batches, kind, path)
    root = Store(store)
    now = utc_now()
    folders: dict[str, int] = {}
    skipped: list[str] = []
    origin = str(path.resolve())
    with root.lock(account):
        set_aside = root.set_aside_damaged(account)  # damaged folders: imported anew
        held = {state.folder: state for state in root.states(account)}
        current: FolderStore | None = None
        written: list[tuple[str, list[int]]] = []
        for batch in batches:
            if batch.not_mail:
                skipped.append(batch.source)
                continue
            if current is None or current.state.folder != batch.folder:
                _check_folder(held.get(batch.folder), account, origin, replace)
                current = root.open_folder(account, batch.folder)
                current.commit_state(uidvalidity=batch.uidvalidity)
                written = []
            uids = [int(r["uid"]) for r in batch.rows]
            if uids:
                name, tmp = current.reserve_part(min(uids), max(uids))
                order = sorted(range(len(uids)), key=uids.__getitem__)
                rowmod.write_parquet(
                    rowmod.rows_to_table([batch.rows[i] for i in order]), tmp)
                written.append((name, [uids[i] for i in order]))
            if batch.final:
                count = sum(len(u) for _, u in written)
                current.state.log("imported", source=str(path), rows=count)
                current.replace_parts(
                    written, source=kind, origin=origin, role=batch.folder_role, complete=True,
                    messages=count, last_sync=now, highestmodseq=None,
                    uidnext=max((u[-1] for _, u in written), default=0) + 1)
                folders[batch.folder] = count
                current = None
        for state in root.states(account):
            if state.origin == origin and state.folder not in folders and state.parts:
                root.open_folder(account, state.folder).retire("gone_from_import_source")
    return {"account": account, "source": str(path), "rows": sum(folders.values()),
            "folders": folders, "skipped": skipped, "set_aside": set_aside}


def _check_folder(state: FolderState | None, account: str, origin: str,
                  replace: bool) -> None:
    """Refuse to write over a folder another source filled (module docstring).

    Raises
    ------
    UsageError
        Naming the folder, what filled it, and the way out.
    """
    if state is None:
        return
    if state.source == "imap":
        raise UsageError(f"folder {state.folder!r} of {account} holds what `mailhat sync` "
                         "stored from the server: an import never replaces it; import into "
                         "another --account")
    if replace or state.origin in (None, origin) or not state.parts:
        return
    raise UsageError(f"folder {state.folder!r} of {account} holds what {state.origin} "
                     "imported: this source would replace it. Import it into another "
                     "--account, or add --replace if it is the same mailbox exported again")


def _refuse_store_as_source(path: Path, store: Path) -> None:
    """A store is not a mail source, and an import must not read what it writes.

    Importing a store would turn its Parquet and state files into "messages";
    importing a tree that contains the store would read its own output.

    Raises
    ------
    UsageError
        Naming the store.
    """
    source, target = path.resolve(), store.resolve()
    if source.is_dir() and ((source / "_lock").exists() or any(source.glob("account=*"))
                            or source.name.startswith(("account=", "folder="))):
        raise UsageError(f"{path} is a mailhat store, not a mail source: read it with "
                         "`mailhat contacts --store` or `read_messages()`")
    if source.is_dir() and target.is_relative_to(source):
        raise UsageError(f"the store {store} is inside {path}: the import would read its "
                         "own output; put the store elsewhere")


def _first_message_or_raise(batches: Iterator[Any], kind: Kind,
                            path: Path) -> Iterator[Any]:
    """``batches`` unchanged, once one holds a message; else :class:`NothingToImport`.

    Reads ahead only empty batches (a folder with no message is one empty
    final batch), so memory stays that of one batch.
    """
    held = []
    for batch in batches:
        held.append(batch)
        if batch.rows:
            return itertools.chain(held, batches)
    if held and all(b.not_mail for b in held):
        why = ("none of its files starts like an email (header lines such as From: or "
               "Subject:); is it the right directory?")
    elif kind == "mbox":
        why = ("the file is empty" if path.is_file() and path.stat().st_size == 0
               else "it is not an mbox file: no line starts with 'From ' to separate messages")
    elif held:
        why = "its folders are empty"
    else:
        why = ("it holds no Maildir folder (cur/, new/) and no message files; is it the "
               "right directory?")
    raise NothingToImport(f"no messages found in {path}: {why}")
