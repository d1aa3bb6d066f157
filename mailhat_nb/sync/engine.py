"""The sync engine: IMAP folders -> parsed rows -> the store, incrementally and resumably.

One call, :func:`sync_account`, does a whole account::

    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings
    summary = sync_account(ImapSettings("me@example.com", "mail.example.com"),
                           password, "store/")

Per folder it asks STATUS first and skips a folder whose UIDVALIDITY,
UIDNEXT, MESSAGES and HIGHESTMODSEQ all match the stored state (a re-sync of
an unchanged mailbox is a LIST and one STATUS per folder). Otherwise it
EXAMINEs the folder (read-only) and, in this order:

1. UIDVALIDITY changed: the folder's rows are retired and it is fetched anew;
2. expunges: stored UIDs the server no longer lists (one ``UID SEARCH``,
   compact with ESEARCH) leave the store;
3. flag changes: ``CHANGEDSINCE`` the stored HIGHESTMODSEQ (CONDSTORE), else
   every message's FLAGS, applied to the stored rows;
4. new messages: the UIDs the server has and the store lacks, in chunks of
   UID ranges, each parsed and committed before the next is stored, so a
   sync killed at any point resumes from the last chunk.

Why this order: the HIGHESTMODSEQ taken at EXAMINE is the point as of which
the stored flags are current once step 3 is done, and new rows fetched
after it are at least as fresh; recording it with the first commit of the
run keeps that true however the run ends. A dropped connection (server
restart, network) is retried with exponential backoff from the last commit.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailhat_nb.errors import AuthFailed, ConnectionLost, MailServerError, SyncError, UsageError
from mailhat_nb.folders import folder_role
from mailhat_nb.secrets import Secret
from mailhat_nb.sync import rows
from mailhat_nb.sync.fetch import chunk_ranges
from mailhat_nb.sync.imap import FolderInfo, FolderStatus, ImapSession, ImapSettings
from mailhat_nb.sync.progress import ProgressCallback, Tracker
from mailhat_nb.sync.store import FolderState, FolderStore, Store
from mailhat_nb.sync.worker import Worker, WorkerPool

#: Messages per FETCH command (and per Parquet part on a first sync).
CHUNK_SIZE = 5000
#: Chunks parsed or queued but not yet committed (bounds memory).
MAX_IN_FLIGHT = 3
#: Runs with at least this many new messages count as big (see _auto_workers).
WORKER_THRESHOLD = 20_000
RETRIES = 5
BACKOFF = 0.5
MAX_BACKOFF = 30.0


@dataclass
class FolderResult:
    """What one folder's sync did."""

    folder: str
    role: str = ""
    action: str = "unchanged"  # unchanged | synced | reset | retired | failed
    new: int = 0
    flags_changed: int = 0
    expunged: int = 0
    retired: int = 0
    rows: int = 0
    server_messages: int = 0
    uidvalidity: int | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SyncSummary:
    """What :func:`sync_account` did, per folder and in total (JSON-ready via ``to_dict``)."""

    account: str
    store: str
    folders: list[FolderResult] = field(default_factory=list)
    reconnects: int = 0
    seconds: float = 0.0

    @property
    def new(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.new for f in self.folders)

    @property
    def flags_changed(self) -> int:  # noqa: D102
        return sum(f.flags_changed for f in self.folders)

    @property
    def expunged(self) -> int:  # noqa: D102
        return sum(f.expunged for f in self.folders)

    @property
    def rows(self) -> int:  # noqa: D102
        return sum(f.rows for f in self.folders)

    @property
    def failed(self) -> list[FolderResult]:
        """Folders the server refused (their ``error`` says why)."""
        return [f for f in self.folders if f.action == "failed"]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        out = asdict(self)
        out.update(new=self.new, flags_changed=self.flags_changed, expunged=self.expunged,
                   rows=self.rows, failed=[f.folder for f in self.failed])
        return out


def _header_fields() -> tuple[str, ...]:
    from mailhat_nb.sync.parse import FETCH_HEADER_FIELDS

    return tuple(FETCH_HEADER_FIELDS)


# --------------------------------------------------------------------------- workers


def _auto_workers(new_messages: int) -> int:
    """How many parse worker processes a run with ``new_messages`` to fetch deserves.

    Measured on the lab (2 CPUs, server on the same machine): a *small* run
    is faster with one worker, which starts (pyarrow and the parser, never
    pandas: ~0.15 s) while this process logs in and asks STATUS, so this
    process never imports pyarrow and pandas (~0.4 s, ~90 MB) just to add a
    few rows. A *big* run is CPU-bound: the worker's pickling costs ~20% more
    CPU, which only pays when spare CPUs run it, so below 4 CPUs it parses
    in-process, and from 4 CPUs up it uses half of them.
    """
    if new_messages <= 0:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return 0
    if new_messages < WORKER_THRESHOLD:
        return 1
    return 0 if cpus < 4 else min(cpus // 2, 3)


# --------------------------------------------------------------------------- folders


def _unchanged(state: FolderState, status: FolderStatus) -> bool:
    return (state.complete and state.uidvalidity == status.uidvalidity
            and state.uidnext == status.uidnext and state.messages == status.messages
            and status.highestmodseq is not None
            and state.highestmodseq == status.highestmodseq)


def _role(info: FolderInfo, state: FolderState) -> str:
    """The folder's role, from the state when LIST says the same as last time."""
    if state.last_sync is not None and state.flags == list(info.flags):
        return state.role
    return folder_role(info.name, info.flags)


class _FolderSync:
    """One folder's sync on an open session (the numbered steps of the module doc)."""

    def __init__(self, session: ImapSession, fstore: FolderStore, info: FolderInfo,
                 tracker: Tracker, chunk_size: int, workers: WorkerPool | None) -> None:
        self.session = session
        self.fstore = fstore
        self.info = info
        self.tracker = tracker
        self.chunk_size = chunk_size
        self.workers = workers
        self.result = FolderResult(folder=info.name)

    def run(self) -> FolderResult:
        session, fstore, info = self.session, self.fstore, self.info
        state = fstore.state
        role = _role(info, state)
        self.result.role = role
        sel = session.examine(info.name)
        self.result.server_messages = sel.messages
        self.result.uidvalidity = sel.uidvalidity
        meta = {"role": role, "delimiter": info.delimiter, "flags": list(info.flags)}
        if state.uidvalidity is not None and state.uidvalidity != sel.uidvalidity:
            old = state.uidvalidity
            self.result.retired = fstore.retire("uidvalidity_changed", **meta)
            fstore.state.events[-1]["new_uidvalidity"] = sel.uidvalidity
            fstore.state.events[-1]["old_uidvalidity"] = old
            self.result.action = "reset"
        if fstore.state.uidvalidity != sel.uidvalidity or any(
                getattr(fstore.state, k) != v for k, v in meta.items()):
            fstore.commit_state(uidvalidity=sel.uidvalidity, **meta)
        if self.result.action == "unchanged":
            self.result.action = "synced"
        server = session.uids()
        stored = set(fstore.state.uid_list())
        # 2. expunges
        gone = stored.difference(server)
        if gone:
            self.result.expunged = fstore.expunge(gone)
            stored -= gone
        # 3. flag changes, then the modseq snapshot as of which stored flags are current
        modseq_known = fstore.state.highestmodseq
        if stored:
            since = modseq_known if session.capabilities.condstore else None
            changes = session.changed_flags(max(stored), since)
            flags = {m.uid: m.flags for m in changes if m.uid in stored}
            labels = {m.uid: m.gm_labels for m in changes
                      if m.uid in stored and m.gm_labels is not None}
            if flags or labels or fstore.state.highestmodseq != sel.highestmodseq:
                self.result.flags_changed = fstore.update_flags(
                    flags, labels or None, highestmodseq=sel.highestmodseq)
        # 4. new messages
        missing = sorted(set(server).difference(stored))
        self._fetch(missing, sel)
        fstore.commit_state(
            complete=True, uidnext=sel.uidnext, highestmodseq=sel.highestmodseq,
            messages=len(fstore.state.uid_list()), last_sync=_now(),
        )
        fstore.compact()
        self.result.rows = fstore.state.messages
        return self.result

    def _fetch(self, missing: list[int], sel: FolderStatus) -> None:
        with _no_cycle_gc():
            self._fetch_chunks(missing, sel)

    def _fetch_chunks(self, missing: list[int], sel: FolderStatus) -> None:
        """Fetch, parse and commit ``missing`` UIDs chunk by chunk.

        Parsing runs in the workers when there are any; chunks are committed
        in order as they come back, at most :data:`MAX_IN_FLIGHT` behind the
        socket. If the connection drops, the chunks already received are
        still parsed and committed before the error goes up, so a retry
        starts after them.
        """
        if not missing:
            return
        fstore = self.fstore
        wanted = set(missing)
        in_flight: deque[_Pending] = deque()
        try:
            for _, got in self.session.fetch_headers(chunk_ranges(missing, self.chunk_size),
                                                     _header_fields()):
                msgs = [m for m in got if m.uid in wanted]
                if not msgs:
                    continue
                wanted.difference_update(m.uid for m in msgs)
                name, tmp = fstore.reserve_part(msgs[0].uid, msgs[-1].uid)
                job = rows.ChunkJob(msgs, self.result.role, sel.uidvalidity, str(tmp))
                uids = [m.uid for m in msgs]
                if self.workers is not None:
                    in_flight.append(_Pending(name, uids, self.workers.submit(job)))
                else:
                    in_flight.append(_Pending(name, uids, rows.process_chunk(job)))
                self._commit_ready(in_flight, sel, keep=MAX_IN_FLIGHT)
        except BaseException:
            self._commit_ready(in_flight, sel, keep=0, quiet=True)
            raise
        self._commit_ready(in_flight, sel, keep=0)

    def _commit_ready(self, in_flight: deque[_Pending], sel: FolderStatus, keep: int,
                      quiet: bool = False) -> None:
        """Commit finished chunks in order; wait while more than ``keep`` are pending.

        ``quiet`` (on the way out of an error): a chunk whose worker failed is
        skipped instead of raising over the original error.
        """
        while in_flight:
            pending = in_flight[0]
            item = pending.item
            if isinstance(item, Worker):
                if len(in_flight) <= keep and not item.ready():
                    return
                try:
                    done = item.receive()
                except Exception:
                    if not quiet:
                        raise
                    in_flight.popleft()
                    continue
            else:
                done = item
            in_flight.popleft()
            self.fstore.append_written(pending.name, pending.uids,
                                       highestmodseq=sel.highestmodseq)
            self.result.new += done.rows
            self.tracker.report(self.info.name, "fetch", done.rows)


@dataclass
class _Pending:
    """A chunk handed to a worker (or already done in-process), not yet committed."""

    name: str
    uids: list[int]
    item: Worker | rows.ChunkDone


@contextlib.contextmanager
def _no_cycle_gc() -> Iterator[None]:
    """Pause the cycle collector while chunks stream in.

    A chunk is thousands of acyclic objects freed by reference counting; the
    collector would traverse them again on every generation-0 pass (~25% of
    the time of a bulk fetch). Restored afterwards, whatever happens.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _choose_folders(session: ImapSession, listed: list[FolderInfo],
                    wanted: Sequence[str] | None) -> list[FolderInfo]:
    selectable = [f for f in listed if f.selectable]
    if wanted is not None:
        by_name = {f.name: f for f in selectable}
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            raise UsageError(
                f"no such folder(s) on the server: {', '.join(unknown)}; the server has: "
                + ", ".join(sorted(by_name)))
        return [by_name[w] for w in dict.fromkeys(wanted)]
    if session.capabilities.gmail:
        # Gmail shows every message once in \All; labels say where else it "is".
        every = [f for f in selectable if any(fl.lower() == "\\all" for fl in f.flags)]
        if every:
            return every
    return selectable


# --------------------------------------------------------------------------- account


def sync_account(settings: ImapSettings, password: Secret, store: Path | str,
                 folders: Sequence[str] | None = None,
                 progress: ProgressCallback | None = None, *,
                 chunk_size: int = CHUNK_SIZE, retries: int = RETRIES,
                 backoff: float = BACKOFF, workers: int | None = None) -> SyncSummary:
    r"""Sync an IMAP account's headers into ``store``; safe to interrupt and run again.

    Parameters
    ----------
    settings:
        Server, port, security, login, CA file.
    password:
        Revealed only to the server's LOGIN.
    store:
        The store directory (created when missing).
    folders:
        Folder names as the server lists them (decoded), or None for every
        selectable folder (on Gmail: the ``\All`` folder, with labels).
        Without ``folders``, folders the server no longer has are retired.
    progress:
        Called after each stored chunk with a :class:`~.progress.Progress`.
    chunk_size:
        Messages per FETCH command and per commit.
    retries, backoff:
        A dropped connection is retried ``retries`` times, waiting
        ``backoff * 2**n`` seconds (at most 30 s) before the n-th retry.
    workers:
        Parse worker processes; None decides from the work and the CPUs
        (one for small runs, none for big ones below 4 CPUs, half the CPUs
        above), 0 parses in this process.

    Raises
    ------
    AuthFailed
        The server refused the login (never retried).
    SyncError
        The connection kept dropping after ``retries`` attempts.
    MailServerError, StoreError, UsageError
        Other failures; what was committed stays committed.
    """
    start = time.monotonic()
    root = Store(store)
    account = settings.account
    summary = SyncSummary(account=account, store=str(root.root))
    tracker = Tracker(progress)
    finished: dict[str, FolderResult] = {}
    run = _Run(root, folders, tracker, finished, chunk_size, workers)
    attempt = 0
    with root.lock():
        try:
            while True:
                try:
                    with ImapSession(settings, password) as session:
                        run.sync(session)
                    break
                except ConnectionLost as exc:
                    attempt += 1
                    if attempt > retries:
                        raise SyncError(
                            f"gave up after {retries} reconnects: {exc}; what was fetched is "
                            "stored, run the sync again to continue") from exc
                    summary.reconnects += 1
                    tracker.report("", "retry")
                    time.sleep(min(backoff * 2 ** (attempt - 1), MAX_BACKOFF))
        finally:
            run.close()
    summary.folders = list(finished.values())
    summary.seconds = time.monotonic() - start
    tracker.report("", "done")
    return summary


class _Run:
    """One sync_account call: survives reconnects, remembers finished folders."""

    def __init__(self, root: Store, folders: Sequence[str] | None, tracker: Tracker,
                 finished: dict[str, FolderResult], chunk_size: int,
                 workers: int | None) -> None:
        self.root = root
        self.folders = folders
        self.tracker = tracker
        self.finished = finished
        self.chunk_size = chunk_size
        self.want_workers = workers
        self.workers: WorkerPool | None = None

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
            self.workers = None

    def sync(self, session: ImapSession) -> None:
        root, finished, tracker = self.root, self.finished, self.tracker
        account = session.settings.account
        listed = session.folders()
        chosen = _choose_folders(session, listed, self.folders)
        if self.folders is None:
            _retire_vanished(root, account, {f.name for f in listed if f.selectable}, finished)
        states = {s.folder: s for s in root.states(account)}
        todo: list[FolderInfo] = []
        total = 0
        for info in chosen:
            if info.name in finished:
                continue
            t0 = time.monotonic()
            state = states.get(info.name)
            try:
                status = session.status(info.name)
            except (ConnectionLost, AuthFailed):
                raise
            except MailServerError as exc:  # this folder only, as below
                finished[info.name] = FolderResult(
                    folder=info.name, role=state.role if state else "", action="failed",
                    rows=state.messages if state else 0, error=str(exc))
                continue
            if state is not None and _unchanged(state, status):
                finished[info.name] = FolderResult(
                    folder=info.name, role=state.role, rows=state.messages,
                    server_messages=status.messages, uidvalidity=status.uidvalidity,
                    seconds=time.monotonic() - t0)
                continue
            todo.append(info)
            have = state.messages if state is not None \
                and state.uidvalidity == status.uidvalidity else 0
            total += max(status.messages - have, 0)
        tracker.total = tracker.done + total
        tracker.report("", "start")
        count = self.want_workers if self.want_workers is not None else _auto_workers(total)
        if count > 0 and self.workers is None:
            self.workers = WorkerPool(count)
        for info in todo:
            t0 = time.monotonic()
            fstore = root.open_folder(account, info.name)
            folder_sync = _FolderSync(session, fstore, info, tracker, self.chunk_size,
                                      self.workers)
            try:
                result = folder_sync.run()
            except (ConnectionLost, AuthFailed):
                raise
            except MailServerError as exc:
                # The server refused this folder (EXAMINE or FETCH answered NO):
                # what it gave is committed; the other folders still sync.
                result = folder_sync.result
                result.action, result.error = "failed", str(exc)
                result.rows = fstore.state.messages
            result.seconds = time.monotonic() - t0
            finished[info.name] = result
            tracker.report(info.name, "folder done")


def _retire_vanished(root: Store, account: str, listed: set[str],
                     finished: dict[str, FolderResult]) -> None:
    """Folders deleted on the server leave the frame (their rows are retired)."""
    for state in root.states(account):
        if state.source != "imap" or state.folder in listed or not state.parts:
            continue
        fstore = root.open_folder(account, state.folder)
        rows = fstore.retire("folder_deleted_on_server")
        finished[state.folder] = FolderResult(folder=state.folder, role=state.role,
                                              action="retired", retired=rows)
