"""Reading the store: exactly the committed parts, safe while a sync runs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mailhat_nb.errors import StoreError
from mailhat_nb.sync.store.damage import damaged_part
from mailhat_nb.sync.store.root import Store
from mailhat_nb.sync.store.state import FolderState

if TYPE_CHECKING:
    import pyarrow as pa

#: Reads of a store whose parts a running sync replaced under the reader.
READ_ATTEMPTS = 3


def _committed_files(store: Store, account: str | None,
                     folders: Iterable[str] | None) -> Iterator[tuple[FolderState, Path]]:
    wanted = set(folders) if folders is not None else None
    for state in store.states(account):
        if wanted is not None and state.folder not in wanted:
            continue
        path = store.folder_path(state.account, state.folder)
        # A commit whose renames a crash interrupted: the part is still under
        # its temporary name until the next sync opens the folder.
        moved = {dst: src for src, dst in state.pending.get("renames", [])}
        for part in sorted(state.parts, key=lambda p: p.first):
            file = path / part.file
            src = moved.get(str(file))
            if src is not None and not file.exists() and os.path.exists(src):
                file = Path(src)
            yield state, file


def uidvalidity_events(store_dir: Path | str, account: str | None = None) -> dict[str, int]:
    """Folder -> how often the server renumbered it (UIDVALIDITY changed).

    Each change retired the folder's rows and re-fetched it: data health
    reports it, because anything keyed on the old UIDs (a saved selection, an
    export) no longer matches. Read from the folders' event logs.
    """
    counts: dict[str, int] = {}
    for state in Store(store_dir).states(account):
        changes = sum(1 for e in state.events if e.get("event") == "uidvalidity_changed")
        if changes:
            counts[state.folder] = changes
    return counts


def read_table(store_dir: Path | str, account: str | None = None,
               folders: Iterable[str] | None = None) -> pa.Table:
    """The stored rows as one Arrow table, with ``account`` and ``folder`` columns.

    Reads exactly the committed parts (never a file a running sync is still
    writing), so it is safe while a sync runs.
    """
    import pyarrow as pa

    for _ in range(READ_ATTEMPTS):
        try:
            tables = _read_parts(Store(store_dir), account, folders)
            break
        except FileNotFoundError as exc:
            # Compacted or expunged by a sync running right now: its new state
            # names the new parts, so read the states again.
            missing = exc.filename or str(exc)
            time.sleep(0.05)
    else:
        raise StoreError(f"{missing} is missing from the store (removed by hand?): run the "
                         "sync (or the import) again, which fetches its messages again")
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StoreError(f"parts of {store_dir} do not share a schema: {exc}") from exc


def _read_parts(store: Store, account: str | None,
                folders: Iterable[str] | None) -> list[pa.Table]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for state, path in _committed_files(store, account, folders):
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise damaged_part(path, exc) from exc
        n = table.num_rows
        table = table.append_column("account", pa.array([state.account] * n, pa.string()))
        table = table.append_column("folder", pa.array([state.folder] * n, pa.string()))
        tables.append(table)
    return tables
