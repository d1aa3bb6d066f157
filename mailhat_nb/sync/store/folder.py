"""A folder's changes: new parts, flag updates, expunges, retirement, compaction.

Each public method is one commit (:class:`~.commit.FolderCommits`).
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailhat_nb.errors import StoreError
from mailhat_nb.sync.store.commit import FolderCommits
from mailhat_nb.sync.store.damage import damaged_part
from mailhat_nb.sync.store.layout import RETIRED_DIR
from mailhat_nb.sync.store.state import FolderState, PartInfo
from mailhat_nb.sync.uids import merge_uids, overlaps, sequence_set

if TYPE_CHECKING:
    import pyarrow as pa

#: Merge parts when a folder has more than this many (many small incremental syncs).
COMPACT_AFTER = 24
COMPACT_TARGET_ROWS = 50_000


class FolderStore(FolderCommits):
    """One folder's parts and state; every method that changes them is one commit."""

    def __init__(self, root: Path, path: Path, state: FolderState) -> None:
        super().__init__(root, path, state)
        self._reserved: set[str] = set()

    def _part_name(self, uidvalidity: int, first: int, last: int) -> str:
        gen = 0
        taken = {p.file for p in self.state.parts} | self._reserved
        while True:
            name = f"part-v{uidvalidity}-{first:010d}-{last:010d}-g{gen}.parquet"
            if name not in taken and not (self.path / name).exists():
                self._reserved.add(name)
                return name
            gen += 1

    def reserve_part(self, first: int, last: int) -> tuple[str, Path]:
        """A fresh part name for UIDs ``first..last``, and its temporary path.

        A worker process writes the part there; :meth:`append_written` commits it.
        """
        if self.state.uidvalidity is None:
            raise StoreError("a part before the folder's UIDVALIDITY is known")
        name = self._part_name(self.state.uidvalidity, first, last)
        return name, self.tmp_path(name)

    def append_written(self, name: str, uids: Sequence[int], **updates: Any) -> None:
        """Commit a part a worker wrote to ``tmp_path(name)`` holding sorted ``uids``."""
        if self.state.uidvalidity is None:
            raise StoreError("append before the folder's UIDVALIDITY is known")
        renames: list[tuple[Path, Path]] = []
        if uids:
            if not self.tmp_path(name).exists():
                raise StoreError(f"the new part {self.tmp_path(name)} is missing")
            if overlaps(self.state.uids, uids):
                raise StoreError(f"UIDs already stored in {self.state.folder!r}: refusing "
                                 "to duplicate rows")
            renames.append((self.tmp_path(name), self.path / name))
            self.state.parts.append(PartInfo(name, self.state.uidvalidity, uids[0], uids[-1],
                                             len(uids)))
            self.state.uids = merge_uids(self.state.uids, uids)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.tmp_path(name).unlink()
        self._reserved.discard(name)
        self._commit(renames, **updates)

    def append(self, table: pa.Table, uids: Sequence[int], **updates: Any) -> None:
        """Add the rows of one chunk (sorted ``uids``) as a new part; one commit."""
        if not uids:
            self.commit_state(**updates)
            return
        name, _ = self.reserve_part(uids[0], uids[-1])
        self._write_part(table, name)
        self.append_written(name, uids, **updates)

    def _rewrite(self, parts: Iterable[PartInfo],
                 change: Any) -> tuple[list[tuple[Path, Path]], list[Path]]:
        """Rewrite ``parts`` through ``change(table) -> table``; returns the file moves.

        A part ``change`` returns as it was (the very same table) stays as it
        is: a flag check that found nothing new writes nothing.
        """
        import pyarrow.parquet as pq

        renames: list[tuple[Path, Path]] = []
        deletes: list[Path] = []
        for part in list(parts):
            try:
                table = pq.read_table(self.path / part.file)
            except (OSError, ValueError) as exc:
                raise damaged_part(self.path / part.file, exc) from exc
            new = change(table)
            if new is table:
                continue
            self.state.parts.remove(part)
            deletes.append(self.path / part.file)
            if new.num_rows:
                uids = new.column("uid").to_pylist()
                name = self._part_name(part.uidvalidity, min(uids), max(uids))
                renames.append((self._write_part(new, name), self.path / name))
                self.state.parts.append(PartInfo(name, part.uidvalidity, min(uids), max(uids),
                                                 new.num_rows))
        self.state.parts.sort(key=lambda p: p.first)
        return renames, deletes

    def _parts_holding(self, uids: Iterable[int]) -> list[PartInfo]:
        wanted = sorted(set(uids))
        out = []
        for part in self.state.parts:
            i = bisect.bisect_left(wanted, part.first)
            if i < len(wanted) and wanted[i] <= part.last:
                out.append(part)
        return out

    def update_flags(self, flags: Mapping[int, Sequence[str]],
                     labels: Mapping[int, Sequence[str]] | None = None,
                     **updates: Any) -> int:
        """Set new flags (and Gmail labels) on stored rows; one commit.

        Returns how many stored rows changed.
        """
        changed = 0
        targets = set(flags) | set(labels or {})
        holding = self._parts_holding(targets)
        if not holding:  # only the state moves (e.g. HIGHESTMODSEQ): no pyarrow needed
            self.commit_state(**updates)
            return 0

        import pyarrow as pa

        def change(table: pa.Table) -> pa.Table:
            nonlocal changed
            uids = table.column("uid").to_pylist()
            cols: dict[str, Mapping[int, Sequence[str]]] = {"flags": flags}
            if labels:
                cols["labels"] = labels
            for col, new_values in cols.items():
                old = table.column(col).to_pylist()
                values, hits = [], 0
                for uid, value in zip(uids, old, strict=True):
                    new = new_values.get(uid)
                    if new is not None and list(new) != list(value or []):
                        hits += 1
                        value = list(new)
                    values.append(value)
                if not hits:
                    continue
                changed += hits
                idx = table.schema.get_field_index(col)
                table = table.set_column(idx, table.schema.field(idx),
                                         pa.array(values, table.schema.field(idx).type))
            return table

        renames, deletes = self._rewrite(holding, change)
        self._commit(renames, deletes, **updates)
        return changed

    def expunge(self, uids: Iterable[int], **updates: Any) -> int:
        """Remove rows whose messages left the server; one commit. Returns rows removed."""
        import pyarrow as pa
        import pyarrow.compute as pc

        gone = set(uids) & set(self.state.uid_list())
        removed = 0

        def change(table: pa.Table) -> pa.Table:
            nonlocal removed
            keep = pc.invert(pc.is_in(table.column("uid"), pa.array(sorted(gone), pa.int64())))
            new = table.filter(keep)
            removed += table.num_rows - new.num_rows
            return new

        renames, deletes = self._rewrite(self._parts_holding(gone), change)
        if gone:
            remaining = sorted(set(self.state.uid_list()) - gone)
            self.state.uids = sequence_set(remaining)
        self._commit(renames, deletes, **updates)
        return removed

    def retire(self, reason: str, **updates: Any) -> int:
        """Move every row out of the readable store; one commit.

        For a UIDVALIDITY change or a folder deleted on the server. The rows go
        to ``_retired/`` (kept, not read). Returns how many were retired.
        """
        rows = sum(p.rows for p in self.state.parts)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        dest = (self.root / RETIRED_DIR / self.path.parent.name / self.path.name
                / f"v{self.state.uidvalidity}-{stamp}")
        renames = [(self.path / p.file, dest / p.file) for p in self.state.parts]
        self.state.log(reason, uidvalidity=self.state.uidvalidity, retired_rows=rows,
                       retired_to=str(dest.relative_to(self.root)) if renames else None)
        self.state.parts = []
        self.state.uids = ""
        self.state.messages = 0
        self.state.highestmodseq = None
        self.state.uidnext = None
        self.state.complete = False
        self._commit(renames, **updates)
        return rows

    def replace_parts(self, written: Sequence[tuple[str, Sequence[int]]], **updates: Any,
                      ) -> None:
        """Make the parts written to ``tmp_path(name)`` the folder's only rows; one commit.

        ``written`` lists ``(name, sorted uids)`` from :meth:`reserve_part`, in
        UID order, disjoint (an offline import that streamed batch by batch).
        """
        if self.state.uidvalidity is None and written:
            raise StoreError("parts need the folder's UIDVALIDITY first")
        deletes = [self.path / p.file for p in self.state.parts]
        renames: list[tuple[Path, Path]] = []
        self.state.parts = []
        every: list[int] = []
        for name, uids in written:
            if not uids:
                continue
            if not self.tmp_path(name).exists():
                raise StoreError(f"the new part {self.tmp_path(name)} is missing")
            renames.append((self.tmp_path(name), self.path / name))
            self.state.parts.append(PartInfo(name, self.state.uidvalidity or 0, uids[0],
                                             uids[-1], len(uids)))
            every.extend(uids)
            self._reserved.discard(name)
        if len(set(every)) != len(every):
            raise StoreError(f"duplicate UIDs in the new rows of {self.state.folder!r}")
        self.state.uids = sequence_set(sorted(every))
        self._commit(renames, deletes, **updates)

    def compact(self) -> bool:
        """Merge small parts when there are many (one commit); True if it did."""
        if len(self.state.parts) <= COMPACT_AFTER:
            return False
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mailhat_nb.sync.keys import without_derived

        groups: list[list[PartInfo]] = []
        for part in sorted(self.state.parts, key=lambda p: p.first):
            if (groups and groups[-1][0].uidvalidity == part.uidvalidity
                    and sum(p.rows for p in groups[-1]) + part.rows <= COMPACT_TARGET_ROWS):
                groups[-1].append(part)
            else:
                groups.append([part])
        renames: list[tuple[Path, Path]] = []
        deletes: list[Path] = []
        for group in groups:
            if len(group) == 1:
                continue
            try:
                # The derived columns are written afresh (sync.keys): parts written
                # before one of them existed merge with the newer ones.
                table = pa.concat_tables([without_derived(pq.read_table(self.path / p.file))
                                          for p in group])
            except (OSError, ValueError) as exc:
                raise damaged_part(self.path, exc) from exc
            first, last = group[0].first, group[-1].last
            name = self._part_name(group[0].uidvalidity, first, last)
            renames.append((self._write_part(table, name), self.path / name))
            for p in group:
                self.state.parts.remove(p)
                deletes.append(self.path / p.file)
            self.state.parts.append(PartInfo(name, group[0].uidvalidity, first, last,
                                             table.num_rows))
        self.state.parts.sort(key=lambda p: p.first)
        self._commit(renames, deletes)
        return True

    def files(self) -> list[Path]:
        """The committed Parquet files, in UID order."""
        return [self.path / p.file for p in sorted(self.state.parts, key=lambda p: p.first)]

