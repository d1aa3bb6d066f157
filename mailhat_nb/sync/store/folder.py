r"""The local store: Parquet parts plus one small state record per folder.

Layout (readable by pandas, DuckDB, Spark or Dask without this package)::

    <store>/
      account=<account>/                      hive partition: the login address
        folder=<folder>/                      hive partition: the decoded folder name
          part-v<uidvalidity>-<first>-<last>-g<n>.parquet    the rows
          _state.json                         this folder's sync state (below)
          _damaged-<part>.bad                 a part found damaged, set aside
      _retired/account=.../folder=.../v<uidvalidity>-<time>/part-*.parquet
                                              rows retired by a UIDVALIDITY change
      _retired/account=.../folder=...-damaged-<time>/
                                              a folder whose state was unreadable

``account`` and ``folder`` live only in the directory names (percent-encoded
where a character is unsafe in a path: ``/ \ % = : * ? " < > | # { } [ ] ^ '``
and control characters; non-ASCII stays as it is), so ``pd.read_parquet(store)``
(pyarrow's hive partitioning, which also decodes the ``%XX``) returns them as
columns; DuckDB and Spark read ``store/*/*/*.parquet`` with hive
partitioning the same way. Files whose names start with ``_`` or ``.`` are
ignored by those readers, which is why the state, temporary files and
retired rows are named so. (The files do not repeat ``account`` and
``folder`` as columns: pyarrow refuses a dataset where a file column and a
partition have the same name.) Each row's key is (account, folder, uidvalidity,
uid). The Parquet files carry no pandas metadata (pandas cannot read back
its own metadata for Arrow list columns): use :func:`read_messages` for the
typed ``messages`` frame, or any Parquet reader for the raw columns.

``_state.json`` holds the folder's real name, role, delimiter, UIDVALIDITY,
UIDNEXT, HIGHESTMODSEQ, the UIDs stored (as a compact IMAP sequence set),
the list of committed parts, the last sync time, and an event log (e.g. a
UIDVALIDITY change and how many rows it retired).

Every change is one atomic commit, so a sync killed at any instant leaves
the folder either before or after it: new files are written under a
temporary ``_tmp-*`` name and fsynced; then the state is replaced
atomically (write, fsync, ``os.replace``, fsync the directory) naming the new
parts and listing the file moves still to do; then the moves run. That
state write is the commit point. Opening a folder replays any moves a crash
interrupted and deletes files no committed state names. :func:`read_messages`
reads exactly the parts the committed states name, so it never sees a half
written file nor a row twice, even while a sync runs; a plain Parquet reader
of the directory can, after a crash in the middle of a flag/expunge rewrite,
see the old and the new copy of a part until the next sync or import opens
that folder.

Damage from outside (a disk fault, a "clean-up" by hand) is healed, never
read around. Before a folder is called unchanged, and whenever one is
opened for writing, each part it names is checked (there, and ``PAR1`` at
both ends; ``mailhat sync --verify`` reads each whole): a damaged part is
set aside and its UIDs leave the state, so the sync fetches those messages
again (:meth:`FolderStore.repair`). A folder whose ``_state.json`` cannot be
read is moved to ``_retired/`` whole and fetched again
(:meth:`Store.set_aside_damaged`). Readers fail with the file's name and
that way out; a part that vanishes under a reader (a sync compacting right
then) is read again from the new state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailhat_nb.checks import check_text
from mailhat_nb.errors import StoreError, UsageError, reason

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

STATE_FILE = "_state.json"
STATE_VERSION = 1
RETIRED_DIR = "_retired"
MAX_EVENTS = 200
_UNSAFE = frozenset('/\\%=:*?"<>|#{}[]^\'')
_MAX_COMPONENT = 200
#: Merge parts when a folder has more than this many (many small incremental syncs).
COMPACT_AFTER = 24
COMPACT_TARGET_ROWS = 50_000
_PART_INTS = ("uidvalidity", "first", "last", "rows")
#: Reads of a store whose parts a running sync replaced under the reader.
READ_ATTEMPTS = 3


# --------------------------------------------------------------------------- names


def escape_component(name: str) -> str:
    """A folder or account name as a safe path component (reversible by URI decoding).

    Names too long for a file name are cut and given a hash suffix; the real
    name is always in ``_state.json``.

    Raises
    ------
    UsageError
        For a name that is not text (bytes that are not UTF-8, e.g. an
        ``--account`` typed in a terminal of another encoding).
    """
    check_text(name, "account or folder name")
    out = "".join(
        "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        if ch in _UNSAFE or ord(ch) < 0x20 or ord(ch) == 0x7F else ch
        for ch in name
    )
    if not out:
        out = "%00"
    if len(out.encode("utf-8")) > _MAX_COMPONENT:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]  # noqa: S324 - a name, not security
        cut = out.encode("utf-8")[: _MAX_COMPONENT - 20].decode("utf-8", "ignore")
        if "%" in cut[-2:]:
            cut = cut[: cut.rfind("%")]
        out = f"{cut}~{digest}"
    return out


def load_state(state_file: Path) -> FolderState:
    """Read one ``_state.json``.

    Raises
    ------
    StoreError
        Unreadable, not JSON, or of the wrong shape; the message names the
        file and the way out.
    """
    try:
        return FolderState.from_json(json.loads(state_file.read_text("utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise StoreError(f"cannot read {state_file}: {reason(exc)}; the next sync or import of "
                         "that account sets the folder aside and fetches it again") from exc


def utc_now() -> str:
    """Now, as the store records times: ISO-8601 UTC to the second.

    The one clock of the state records (``last_sync``, event times), shared
    by the sync and the imports so their records compare as strings.
    """
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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


# --------------------------------------------------------------------------- state


@dataclass
class PartInfo:
    """One committed Parquet file of a folder."""

    file: str
    uidvalidity: int
    first: int
    last: int
    rows: int


@dataclass
class FolderState:
    """What ``_state.json`` holds for one folder.

    ``highestmodseq`` is the modification sequence as of which the flags of
    every stored row are known to be current; ``complete`` is False while a
    sync of the folder is under way (a crash leaves it False, and the next
    run resumes from ``uids`` instead of trusting ``uidnext``).
    """

    account: str
    folder: str
    role: str = ""
    delimiter: str | None = None
    flags: list[str] = field(default_factory=list)
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    messages: int = 0
    uids: str = ""
    complete: bool = False
    source: str = "imap"
    last_sync: str | None = None
    parts: list[PartInfo] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[str, list[list[str]]] = field(default_factory=dict)
    version: int = STATE_VERSION

    @classmethod
    def from_json(cls, data: Any) -> FolderState:
        """Read a state record (unknown keys from newer versions are ignored).

        Raises
        ------
        ValueError, TypeError
            When ``data`` is valid JSON of the wrong shape (a file overwritten
            by hand or by another program); :func:`load_state` reports the file.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("account"), str) \
                or not isinstance(data.get("folder"), str) \
                or not isinstance(data.get("parts", []), list) \
                or not isinstance(data.get("uids", ""), str):
            raise ValueError("not a folder state record")
        for part in data.get("parts", []):
            if not isinstance(part, Mapping) or not isinstance(part.get("file"), str) \
                    or not all(type(part.get(k)) is int for k in _PART_INTS):
                raise ValueError("not a folder state record (a part entry is malformed)")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["parts"] = [PartInfo(**p) for p in data.get("parts", [])]
        return cls(**known)

    def to_json(self) -> bytes:
        """Serialise for ``_state.json``."""
        return json.dumps(asdict(self), indent=1, ensure_ascii=False).encode("utf-8")

    def uid_list(self) -> list[int]:
        """The stored UIDs, sorted."""
        from mailhat_nb.sync.fetch import parse_sequence_set

        return parse_sequence_set(self.uids) if self.uids else []

    @property
    def uid_high(self) -> int:
        """The highest stored UID (0 when none)."""
        if not self.uids:
            return 0
        last = self.uids.rsplit(",", 1)[-1]
        return int(last.rsplit(":", 1)[-1])

    def log(self, event: str, **details: Any) -> None:
        """Append to the event log (bounded)."""
        self.events.append({"at": utc_now(), "event": event, **details})
        del self.events[:-MAX_EVENTS]


# --------------------------------------------------------------------------- folders


class FolderStore:
    """One folder's parts and state; every method that changes them is one commit."""

    def __init__(self, root: Path, path: Path, state: FolderState) -> None:
        self.root = root
        self.path = path
        self.state = state
        self._reserved: set[str] = set()
        #: parts :meth:`repair` set aside when this folder was opened
        self.repaired: list[str] = []

    # ------------------------------------------------------------------ commit

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

    def repair(self, *, deep: bool = False) -> None:
        """Set aside parts whose file is missing or damaged (named in :attr:`repaired`).

        A part deleted or truncated behind the store's back (a disk fault, a
        hand-made "clean-up") would otherwise stay in the state: the sync
        would call the folder unchanged and every reader would fail or, worse,
        count without those rows. Its UIDs leave the state and the folder is
        marked incomplete, so the sync that opened it fetches them again (an
        import rewrites every part anyway). ``deep``: read every part whole
        (see :func:`part_intact`). The damaged file is kept as
        ``_damaged-<name>.bad`` (ignored by Parquet readers) and the event is
        logged; one commit.
        """
        from mailhat_nb.sync.fetch import sequence_set

        bad = [p for p in self.state.parts
               if not part_intact(self.path / p.file, p.rows, deep=deep)]
        if not bad:
            return
        good = [p for p in self.state.parts if p not in bad]
        stored = self.state.uid_list()
        lost = {u for u in stored if any(p.first <= u <= p.last for p in bad)}
        for part in good:  # an intact part whose UID range meets a damaged one
            if lost and any(b.first <= part.last and part.first <= b.last for b in bad):
                lost.difference_update(_part_uids(self.path / part.file))
        renames = [(self.path / p.file, self.path / f"_damaged-{p.file}.bad")
                   for p in bad if (self.path / p.file).exists()]
        self.state.log("parts_damaged", files=[p.file for p in bad], refetch=len(lost))
        self.state.parts = good
        remaining = [u for u in stored if u not in lost]
        self.state.uids = sequence_set(remaining)
        self.state.messages = len(remaining)
        self.state.complete = False
        self._commit(renames)
        self.repaired = [p.file for p in bad]

    def commit_state(self, **updates: Any) -> None:
        """Change state fields only (e.g. UIDNEXT and ``complete`` at the end)."""
        self._commit(**updates)

    # ------------------------------------------------------------------ changes

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
            if _overlaps(self.state.uids, uids):
                raise StoreError(f"UIDs already stored in {self.state.folder!r}: refusing "
                                 "to duplicate rows")
            renames.append((self.tmp_path(name), self.path / name))
            self.state.parts.append(PartInfo(name, self.state.uidvalidity, uids[0], uids[-1],
                                             len(uids)))
            self.state.uids = _merge_uids(self.state.uids, uids)
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
            import bisect

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
            from mailhat_nb.sync.fetch import sequence_set

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
        from mailhat_nb.sync.fetch import sequence_set

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
                table = pa.concat_tables([pq.read_table(self.path / p.file) for p in group])
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


def damaged_part(path: Path, exc: Exception) -> StoreError:
    """The error for a part that exists but cannot be read, with the way out."""
    return StoreError(f"cannot read {path}: {reason(exc)}; the file is damaged: `mailhat sync "
                      "--verify` sets it aside and fetches its messages again (for an "
                      "import: import the source again)")


def part_intact(path: Path, rows: int | None = None, *, deep: bool = False) -> bool:
    """Whether a part file is there and whole.

    By default two 4-byte reads (Parquet starts and ends with ``PAR1``),
    cheap enough to run on every part before a folder is called unchanged;
    catches a deleted, truncated or replaced file. ``deep`` reads the whole
    part and checks its row count (``rows``): it also catches damage inside
    the file, at the price of reading the store (``mailhat sync --verify``).
    """
    if deep:
        import pyarrow.parquet as pq

        try:
            found = pq.read_table(path).num_rows
        except (OSError, ValueError):
            return False
        return rows is None or found == rows
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(-4, os.SEEK_END)  # OSError on a file shorter than 4 bytes
            tail = f.read(4)
    except OSError:
        return False
    return head == tail == b"PAR1"


def _part_uids(path: Path) -> list[int]:
    import pyarrow.parquet as pq

    try:
        return [int(u) for u in pq.read_table(path, columns=["uid"]).column("uid").to_pylist()]
    except (OSError, ValueError) as exc:
        raise damaged_part(path, exc) from exc


def _overlaps(existing: str, new: Sequence[int]) -> bool:
    """Whether sorted ``new`` shares a UID with the sequence set ``existing``."""
    import bisect

    if not existing or not new:
        return False
    for piece in existing.split(","):
        lo, _, hi = piece.partition(":")
        a, b = int(lo), int(hi or lo)
        i = bisect.bisect_left(new, a)
        if i < len(new) and new[i] <= b:
            return True
    return False


def _merge_uids(existing: str, new: Sequence[int]) -> str:
    """Add sorted ``new`` UIDs to the sequence set ``existing``.

    The common case (all new UIDs above the stored ones) only touches the
    tail of the string; anything else falls back to a full merge.
    """
    from mailhat_nb.sync.fetch import parse_sequence_set, sequence_set, to_ranges

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


# --------------------------------------------------------------------------- store


class Store:
    """A store directory: accounts, their folders, and their state records."""

    def __init__(self, root: Path | str) -> None:
        check_text(str(root), "store directory name")
        self.root = Path(root)

    def folder_path(self, account: str, folder: str) -> Path:
        """Directory of one folder's parts and state."""
        return self.account_dir(account) / f"folder={escape_component(folder)}"

    def open_folder(self, account: str, folder: str, *, create: bool = True,
                    verify: bool = False) -> FolderStore:
        """The folder's store, recovered from any interrupted commit, damaged parts set aside.

        ``verify`` reads every part whole to find damage (see :meth:`FolderStore.repair`).

        Raises
        ------
        StoreError
            When the state record is unreadable (the message says which file).
        """
        path = self.folder_path(account, folder)
        state_file = path / STATE_FILE
        if state_file.exists():
            state = load_state(state_file)
        elif not create:
            raise StoreError(f"no folder {folder!r} of {account!r} in {self.root}")
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
            store.repair(deep=verify)
        except OSError as exc:
            raise StoreError(f"cannot recover {path}: {reason(exc)}") from exc
        return store

    def intact(self, state: FolderState) -> bool:
        """Whether every part ``state`` names is on disk and whole (see :meth:`FolderStore.repair`).

        A state with moves still pending (a crash mid-commit) is not
        trusted either: opening the folder finishes them first.
        """
        if any(state.pending.values()):
            return False
        path = self.folder_path(state.account, state.folder)
        return all(part_intact(path / p.file) for p in state.parts)

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
        return self.root / f"account={escape_component(account)}"

    def set_aside_damaged(self, account: str) -> list[str]:
        """Move folders of ``account`` whose state record is unreadable out of the store.

        One damaged ``_state.json`` (a disk fault, an edit by hand) must not
        stop the account's other folders nor every reader: the writer that
        holds the lock moves that folder's directory to ``_retired/`` (kept,
        not read) and the sync then fetches the folder again as new. Returns
        where each went, relative to the store.
        """
        moved: list[str] = []
        home = self.account_dir(account)
        for state_file in sorted(home.glob(f"folder=*/{STATE_FILE}")):
            try:
                load_state(state_file)
                continue
            except StoreError:
                pass
            folder_dir = state_file.parent
            dest = (self.root / RETIRED_DIR / home.name
                    / f"{folder_dir.name}-damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(folder_dir, dest)
            except OSError as exc:
                raise StoreError(f"cannot set aside {folder_dir}: {reason(exc)}") from exc
            moved.append(str(dest.relative_to(self.root)))
        return moved

    def accounts(self) -> list[str]:
        """The accounts the store holds (those with a readable folder record)."""
        found = set()
        for state_file in self.root.glob(f"account=*/folder=*/{STATE_FILE}"):
            with contextlib.suppress(StoreError):
                found.add(load_state(state_file).account)
        return sorted(found)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
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

        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"the store {self.root} is a file, not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "_lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {self.root}: {reason(exc)}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(f"another sync or import is writing to {self.root}; "
                                 "wait for it to finish") from None
            yield
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- reading


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


def read_messages(store_dir: Path | str, account: str | None = None,
                  folders: Iterable[str] | None = None) -> pd.DataFrame:
    """The ``messages`` frame (DESIGN.md) of a store: all accounts, or one, or some folders.

    ``direction`` is computed here, per account, from who "self" is
    (:func:`mailhat_nb.identity.self_addresses`: the login, the From of sent
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
    import pandas as pd
    import pyarrow as pa

    from mailhat_nb.frames import add_direction, conform, messages_frame
    from mailhat_nb.identity import self_addresses

    if not Path(store_dir).is_dir():
        raise UsageError(f"no store at {store_dir}: run `mailhat sync` or `mailhat import` first")
    table = read_table(store_dir, account, folders)
    if table.num_rows == 0:
        return messages_frame([])

    def arrow_lists(dtype: pa.DataType) -> Any:
        if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
            return pd.ArrowDtype(dtype)
        return None

    df = conform(table.to_pandas(types_mapper=arrow_lists))
    parts = []
    for acct, rows in df.groupby("account", observed=True, sort=False):
        parts.append(add_direction(rows, self_addresses(rows, login=str(acct))))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return out.reset_index(drop=True)
