"""The store directory: its accounts, their folders and the folders' state records."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mailhat_nb.checks import check_text
from mailhat_nb.errors import StoreError, reason
from mailhat_nb.sync.store.damage import part_intact
from mailhat_nb.sync.store.folder import FolderStore
from mailhat_nb.sync.store.layout import RETIRED_DIR, STATE_FILE, account_dir, folder_dir
from mailhat_nb.sync.store.lock import writer_lock
from mailhat_nb.sync.store.state import FolderState, load_state


class Store:
    """A store directory: accounts, their folders, and their state records."""

    def __init__(self, root: Path | str) -> None:
        check_text(str(root), "store directory name")
        self.root = Path(root)

    def folder_path(self, account: str, folder: str) -> Path:
        """Directory of one folder's parts and state."""
        return folder_dir(self.root, account, folder)

    def open_folder(self, account: str, folder: str) -> FolderStore:
        """The folder's store, recovered from any interrupted commit.

        Raises
        ------
        StoreError
            When the state record is unreadable (the message says which file).
        """
        path = self.folder_path(account, folder)
        state_file = path / STATE_FILE
        if state_file.exists():
            state = load_state(state_file)
        else:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {path}: {reason(exc)}") from exc
            state = FolderState(account=account, folder=folder)
        if (state.account, state.folder) != (account, folder):
            raise StoreError(f"{state_file} belongs to {state.account!r} / {state.folder!r}, "
                             f"not {account!r} / {folder!r} (a name collision after escaping)")
        store = FolderStore(self.root, path, state)
        try:
            store.recover()
        except OSError as exc:
            raise StoreError(f"cannot recover {path}: {reason(exc)}") from exc
        return store

    def states(self, account: str | None = None) -> list[FolderState]:
        """Every folder's state (of one account, or all), read-only."""
        out: list[FolderState] = []
        if not self.root.is_dir():
            return out
        mine = None if account is None else self.account_dir(account).name.casefold()
        for state_file in sorted(self.root.glob(f"account=*/folder=*/{STATE_FILE}")):
            if mine is not None and state_file.parent.parent.name.casefold() != mine:
                continue  # another account (and its troubles) is not this one's
            state = load_state(state_file)
            if account is None or state.account.casefold() == account.casefold():
                out.append(state)
        return out

    def account_dir(self, account: str) -> Path:
        """The directory of ``account``'s folders."""
        return account_dir(self.root, account)

    def set_aside_damaged(self, account: str, *, deep: bool = False) -> list[str]:
        """Move ``account``'s damaged folders out of the store: the one way damage heals.

        A folder is damaged when its ``_state.json`` cannot be read, or when a
        part it names is missing or not whole (:func:`~.damage.part_intact`:
        both ends, or with ``deep`` every byte). Left in place it would stop
        every reader, or worse, count without its rows. The writer that holds
        the lock moves the folder's directory to ``_retired/`` (kept, never
        read), so the sync (or the import) that called this fetches the
        folder again as new. Returns where each went, relative to the store.
        """
        moved: list[str] = []
        home = self.account_dir(account)
        for state_file in sorted(home.glob(f"folder=*/{STATE_FILE}")):
            if not self._damaged(state_file, deep):
                continue
            damaged = state_file.parent
            dest = (self.root / RETIRED_DIR / home.name
                    / f"{damaged.name}-damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(damaged, dest)
            except OSError as exc:
                raise StoreError(f"cannot set aside {damaged}: {reason(exc)}") from exc
            moved.append(str(dest.relative_to(self.root)))
        return moved

    def _damaged(self, state_file: Path, deep: bool) -> bool:
        try:
            folder = FolderStore(self.root, state_file.parent, load_state(state_file))
            folder.recover()  # a commit a crash interrupted names parts still to move
        except (StoreError, OSError):
            return True
        return not all(part_intact(folder.path / p.file, p.rows, deep=deep)
                       for p in folder.state.parts)

    def accounts(self) -> list[str]:
        """The accounts the store holds (those with a readable folder record)."""
        found = set()
        for state_file in self.root.glob(f"account=*/folder=*/{STATE_FILE}"):
            with contextlib.suppress(StoreError):
                found.add(load_state(state_file).account)
        return sorted(found)

    @contextlib.contextmanager
    def lock(self, account: str) -> Iterator[None]:
        """Hold ``account``'s writer lock (see :func:`~.lock.writer_lock`)."""
        with writer_lock(self.root, account):
            yield
