"""The commit protocol: every change of a folder is one atomic state write.

New files are written under a temporary ``_tmp-*`` name and fsynced; then
the state is replaced atomically (write, fsync, ``os.replace``, fsync the
directory) naming the new parts and listing the file moves still to do;
then the moves run. That state write is the commit point: a crash before
it leaves the folder as it was, a crash after it is finished by
:meth:`FolderCommits.recover` when the folder is next opened.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailhat_nb.errors import StoreError, reason
from mailhat_nb.sync.store.layout import STATE_FILE
from mailhat_nb.sync.store.state import FolderState

if TYPE_CHECKING:
    import pyarrow as pa


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path.with_name(f"_tmp-{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class FolderCommits:
    """One folder's directory and state, and the one way to change them: :meth:`_commit`."""

    def __init__(self, root: Path, path: Path, state: FolderState) -> None:
        self.root = root
        self.path = path
        self.state = state

    def _write_part(self, table: pa.Table, name: str) -> Path:
        from mailhat_nb.sync.rows import write_parquet

        tmp = self.tmp_path(name)
        try:
            write_parquet(table, tmp)
        except OSError as exc:
            raise StoreError(f"cannot write {tmp}: {reason(exc)}") from exc
        return tmp

    def tmp_path(self, name: str) -> Path:
        """Where a new part is written before its commit (ignored by readers).

        The name carries this process's id: a worker of a killed sync may
        still be finishing a file for a moment, and must never write the same
        path as the sync that resumes after it.
        """
        return self.path / f"_tmp-{os.getpid()}-{name}.tmp"

    def _commit(self, renames: Sequence[tuple[Path, Path]] = (),
                deletes: Sequence[Path] = (), **updates: Any) -> None:
        """Set state fields (``updates``), write the state naming the new parts, move files."""
        for key, value in updates.items():
            setattr(self.state, key, value)
        self.state.pending = {
            "renames": [[str(a), str(b)] for a, b in renames],
            "deletes": [[str(p)] for p in deletes],
        }
        try:
            write_atomic(self.path / STATE_FILE, self.state.to_json())
        except OSError as exc:
            raise StoreError(f"cannot write the state of {self.state.folder!r}: "
                             f"{reason(exc)}") from exc
        self._apply_pending()

    def _apply_pending(self) -> None:
        pending = self.state.pending
        if not pending:
            return
        try:
            for src, dst in pending.get("renames", []):
                if os.path.exists(src):
                    Path(dst).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
            for (victim,) in pending.get("deletes", []):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(victim)
            # No fsync here: until the next commit the state still lists these
            # moves (a crash replays them), and the next commit's fsync of this
            # directory makes them durable before its state can forget them.
        except OSError as exc:
            raise StoreError(f"cannot finish a commit in {self.path}: {reason(exc)}") from exc
        self.state.pending = {}

    def recover(self) -> None:
        """Finish an interrupted commit and drop files no committed state names."""
        self._apply_pending()
        named = {p.file for p in self.state.parts} | {STATE_FILE}
        for entry in self.path.iterdir():
            if entry.name in named or not entry.is_file():
                continue
            if entry.name.endswith(".parquet") or entry.name.startswith("_tmp-"):
                entry.unlink()

    def commit_state(self, **updates: Any) -> None:
        """Change state fields only (e.g. UIDNEXT and ``complete`` at the end)."""
        self._commit(**updates)
