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
restart, network) is retried with exponential backoff from the last commit;
a first connection that fails is not (:class:`~mailhat_nb.errors.ConnectFailed`): that
is a wrong setting, and minutes of retries would only hide it.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailhat_nb.errors import (
    AuthFailed,
    ConnectFailed,
    ConnectionLost,
    MailServerError,
    StoreError,
    SyncError,
    UsageError,
)
from mailhat_nb.secrets import Secret
from mailhat_nb.sync import rows
from mailhat_nb.sync.folders import folder_role
from mailhat_nb.sync.imap import FolderInfo, FolderStatus, ImapSettings, ImapSource
from mailhat_nb.sync.memory import gc_paused
from mailhat_nb.sync.progress import ProgressCallback, Tracker
from mailhat_nb.sync.store import FolderState, FolderStore, Store, utc_now
from mailhat_nb.sync.uids import chunk_ranges
from mailhat_nb.sync.worker import Worker, WorkerPool

#: Messages per FETCH command (and per Parquet part on a first sync).
CHUNK_SIZE = 5000
#: Messages in the first FETCH of a run: the server answers 1,000 messages
#: sooner than 5,000, and nothing can be parsed before it has.
FIRST_CHUNK = 1000
#: Chunks fetched but not yet parsed, per worker (bounds memory: ~3 MB each).
MAX_IN_FLIGHT = 3
#: Jobs sent ahead to a worker; more chunks are held here (see _Pipeline).
SEND_AHEAD = 3
#: Runs with at least this many new messages count as big (see _auto_workers).
WORKER_THRESHOLD = 20_000
#: At most this many workers: each holds ~100 MB at its peak, and a sync with
#: its workers stays under 300 MB.
MAX_WORKERS = 2
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
    #: damaged folders (an unreadable state record, a missing or broken part):
    #: moved under ``_retired/`` (relative to the store) and fetched again
    set_aside: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def new(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.new for f in self.folders)

    @property
    def flags_changed(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.flags_changed for f in self.folders)

    @property
    def expunged(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.expunged for f in self.folders)

    @property
    def rows(self) -> int:  # noqa: D102 - totals over folders
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

    Measured on the lab (2 CPUs, server on the same machine, with
    ``benchmarks/bench_sync.py``): one worker is faster than parsing in this
    process for any run. For a *small* run the worker starts (pyarrow and
    the parser, never pandas) while this process logs in and asks STATUS,
    so this process never imports pyarrow and pandas just to add a few
    rows; for a big one, this process reads and lexes the socket while the
    worker parses, converts and writes (see ``_Pipeline``). From 4 CPUs up
    a big run uses half of them, at most :data:`MAX_WORKERS`.
    """
    if new_messages <= 0:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return 0
    if new_messages < WORKER_THRESHOLD or cpus < 4:
        return 1
    return min(cpus // 2, MAX_WORKERS)


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
    """One folder's sync on an open session (the numbered steps of the module doc).

    :meth:`run` fetches and hands the chunks to the account's
    :class:`_Pipeline`, then queues :meth:`finish` behind them: the next folder
    is EXAMINEd and fetched while this one's last chunks are still parsed.
    """

    def __init__(self, session: ImapSource, fstore: FolderStore, info: FolderInfo,
                 tracker: Tracker, chunk_size: int, pipeline: _Pipeline,
                 result: FolderResult) -> None:
        self.session = session
        self.fstore = fstore
        self.info = info
        self.tracker = tracker
        self.chunk_size = chunk_size
        self.pipeline = pipeline
        self.result = result
        self.sel: FolderStatus | None = None
        self.started = time.monotonic()
        self.lost_chunks = False  # a chunk was dropped on the way out of an error
        #: the store failed for this folder (a part it could not write): its
        #: later chunks are dropped, the other folders go on
        self.store_error: StoreError | None = None

    def run(self) -> None:
        """Steps 1-4; the folder's last commit is queued (see :meth:`finish`)."""
        session, fstore, info = self.session, self.fstore, self.info
        state = fstore.state
        role = _role(info, state)
        self.result.role = role
        sel = self.sel = session.examine(info.name)
        self.result.server_messages = sel.messages
        self.result.uidvalidity = sel.uidvalidity
        meta = {"role": role, "delimiter": info.delimiter, "flags": list(info.flags)}
        if state.uidvalidity is not None and state.uidvalidity != sel.uidvalidity:
            old = state.uidvalidity
            self.result.retired += fstore.retire("uidvalidity_changed", **meta)
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
            self.result.expunged += fstore.expunge(gone)
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
                self.result.flags_changed += fstore.update_flags(
                    flags, labels or None, highestmodseq=sel.highestmodseq)
        # 4. new messages
        missing = sorted(set(server).difference(stored))
        with gc_paused():
            self._fetch_chunks(missing, sel)
        self.pipeline.add(_Finish(self))

    def _fetch_chunks(self, missing: list[int], sel: FolderStatus) -> None:
        """Fetch ``missing`` UIDs chunk by chunk into the pipeline.

        Chunks are parsed by the workers (see :class:`_Pipeline`), or here
        without workers, and committed in order as they come back, at most :data:`MAX_IN_FLIGHT` per
        worker behind the socket. If the connection drops, the chunks already
        received are still parsed and committed before the error goes up
        (:meth:`_Pipeline.drain`), so a retry starts after them.
        """
        if not missing:
            return
        fstore, pipeline = self.fstore, self.pipeline
        wanted = set(missing)
        first = FIRST_CHUNK if pipeline.chunks == 0 else None
        for _, got in self.session.fetch_headers(
                chunk_ranges(missing, self.chunk_size, first), _header_fields()):
            msgs = [m for m in got if m.uid in wanted]
            if not msgs or self.store_error is not None:
                continue  # nothing new, or the folder failed: read the answer to its end
            wanted.difference_update(m.uid for m in msgs)
            name, tmp = fstore.reserve_part(msgs[0].uid, msgs[-1].uid)
            job = rows.ChunkJob.from_messages(msgs, self.result.role, sel.uidvalidity,
                                             str(tmp))
            pipeline.chunks += 1
            pipeline.add(_Pending(self, name, job.uids, pipeline.start(job)))
            pipeline.commit_ready(keep=pipeline.keep)

    def commit_chunk(self, pending: _Pending, done: rows.ChunkDone) -> None:
        """Commit one parsed chunk (the pipeline calls this in UID order)."""
        assert self.sel is not None  # noqa: S101 - set by run() before any chunk
        self.fstore.append_written(pending.name, pending.uids,
                                   highestmodseq=self.sel.highestmodseq)
        self.result.new += done.rows
        self.tracker.advance(self.info.name, "fetch", done.rows)

    def finish(self, error: MailServerError | StoreError | None = None) -> FolderResult:
        """The folder's last commit, once all its chunks are in (or its failure)."""
        fstore = self.fstore
        if error is not None:
            # The server refused this folder (EXAMINE or FETCH answered NO),
            # or the store could not take it: what was committed stays; the
            # other folders still sync.
            self.result.action, self.result.error = "failed", str(error)
        else:
            sel = self.sel
            assert sel is not None  # noqa: S101 - run() completed
            fstore.commit_state(
                complete=True, uidnext=sel.uidnext, highestmodseq=sel.highestmodseq,
                messages=len(fstore.state.uid_list()), last_sync=utc_now(),
            )
            fstore.compact()
        self.result.rows = fstore.state.messages
        self.result.seconds = time.monotonic() - self.started
        return self.result


@dataclass
class _Pending:
    """A chunk not yet committed: held, handed to a worker, or already done in-process."""

    folder: _FolderSync
    name: str
    uids: list[int]
    item: Worker | rows.ChunkJob | rows.ChunkDone | StoreError | None  # see _Pipeline


@dataclass
class _Finish:
    """A folder's last commit, queued behind its chunks.

    ``error``: the server refused the folder, or the store could not take
    its changes; either way that folder is reported ``failed`` (and stays
    incomplete, so the next run resumes it) while the others go on.
    """

    folder: _FolderSync
    error: MailServerError | StoreError | None = None


class _Pipeline:
    """Chunks of every folder of a session: parsed, then committed strictly in order.

    One queue for the whole account rather than one per folder, so a
    folder's last chunks are still being parsed while the next folder is
    EXAMINEd and its first chunk produced by the server (waiting at each
    folder's end made the lab's first sync measurably slower).

    With workers, a chunk is sent to one only when it has room
    (:data:`SEND_AHEAD` jobs); the others are *held* here. This process
    never parses while there are workers: it keeps reading the socket, which
    the server waits for.
    """

    def __init__(self, workers: WorkerPool | None,
                 finished: dict[str, FolderResult], tracker: Tracker) -> None:
        self.workers = workers
        self.finished = finished
        self.tracker = tracker
        self.queue: deque[_Pending | _Finish] = deque()
        self.waiting = 0  # chunks queued and not parsed yet (held or in a worker)
        #: how many may wait before fetching waits for them
        self.keep = MAX_IN_FLIGHT * max(1, len(workers.workers) if workers else 1)
        self.chunks = 0  # chunks queued so far

    def start(self, job: rows.ChunkJob) -> rows.ChunkJob | rows.ChunkDone | StoreError:
        """Parse ``job`` here and now without workers, else hold it for :meth:`_feed`.

        A part that cannot be written is returned, not raised: the FETCH
        answer is still arriving on the socket, and the folder's failure is
        decided when its chunks are committed.
        """
        if self.workers is None:
            try:
                return rows.process_chunk(job)
            except StoreError as exc:
                return exc
        return job

    def add(self, entry: _Pending | _Finish) -> None:
        """Queue a chunk, or a folder's end (which runs once the chunks before it are in)."""
        self.queue.append(entry)
        if isinstance(entry, _Pending) and not isinstance(entry.item, rows.ChunkDone):
            self.waiting += 1
        self._feed()
        if isinstance(entry, _Finish):
            self.commit_ready(keep=self.keep)

    def _feed(self, quiet: bool = False) -> None:
        """Send held chunks to the workers, oldest first, while one has room."""
        if self.workers is None:
            return
        for entry in self.queue:
            if not isinstance(entry, _Pending) or not isinstance(entry.item, rows.ChunkJob):
                continue
            if self.workers.busy() >= SEND_AHEAD:
                return
            try:
                entry.item = self.workers.submit(entry.item)
            except SyncError:
                if not quiet:
                    raise
                entry.item = None  # a dead worker on the way out: dropped

    def commit_ready(self, keep: int, quiet: bool = False) -> None:
        """Commit parsed chunks in order; wait while more than ``keep`` are outstanding.

        ``quiet`` (on the way out of an error): a chunk whose worker failed is
        skipped instead of raising over the original error, and its folder is
        not closed (its state stays incomplete: the next run resumes it after
        the committed chunks); a folder fetched completely before the error
        is closed as usual.
        """
        queue = self.queue
        while queue:
            self._feed(quiet)
            entry = queue[0]
            if isinstance(entry, _Finish):
                queue.popleft()
                if not entry.folder.lost_chunks:
                    result = entry.folder.finish(entry.error or entry.folder.store_error)
                    self.finished[result.folder] = result
                    self.tracker.advance(result.folder, "folder done")
                continue
            item = entry.item
            done: rows.ChunkDone | StoreError | None
            if isinstance(item, Worker):
                if not item.ready() and self.waiting <= keep:
                    return
                self.waiting -= 1
                try:
                    done = item.receive()
                except StoreError as exc:  # this folder's part could not be written
                    done = exc
                except Exception:
                    if not quiet:
                        raise
                    done = None
            elif isinstance(item, rows.ChunkDone):
                done = item
            elif isinstance(item, StoreError):  # parsed here, and the write failed
                self.waiting -= 1
                done = item
            else:  # held when the error came and no worker took it (see _feed)
                self.waiting -= 1
                done = None
            queue.popleft()
            self._commit(entry, done)

    @staticmethod
    def _commit(entry: _Pending, done: rows.ChunkDone | StoreError | None) -> None:
        """Commit one chunk; a store failure fails its folder only (see :class:`_Finish`)."""
        folder = entry.folder
        if done is None:
            folder.lost_chunks = True
        elif isinstance(done, StoreError):
            folder.store_error = folder.store_error or done
        elif folder.store_error is None:
            try:
                folder.commit_chunk(entry, done)
            except StoreError as exc:
                folder.store_error = exc

    def drain(self, quiet: bool = False) -> None:
        """Commit everything queued (waiting for the workers)."""
        self.commit_ready(keep=0, quiet=quiet)


def _doctor_hint(settings: ImapSettings) -> str:
    """Where to turn when the first connection fails: the doctor tries every usual setting."""
    return (f"To find settings that work, run `mailhat diagnose --email {settings.email} "
            f"--server {settings.host}` (or the connection doctor notebook)")


def _choose_folders(session: ImapSource, listed: list[FolderInfo],
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
                 backoff: float = BACKOFF, workers: int | None = None,
                 verify: bool = False) -> SyncSummary:
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
        Only a connection that worked (logged in) and then dropped is
        retried: a first connection that fails is a setting to fix, and is
        reported at once (:class:`~mailhat_nb.errors.ConnectFailed`).
    workers:
        Parse worker processes; None decides from the work and the CPUs
        (none on one CPU, one below 4 CPUs or for a small run, else half the
        CPUs, at most :data:`MAX_WORKERS`), 0 parses in this process.
    verify:
        Read every stored part whole; a folder with a part damaged inside is
        set aside and fetched again (a plain run only checks that each part
        is there, and whole at both ends).

    Raises
    ------
    ConnectFailed
        The first connection failed before the login (wrong server, port or
        security, a firewall, an untrusted certificate): not retried, the
        message says what happened and suggests the connection doctor.
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
    run = _Run(root, folders, tracker, finished, chunk_size, workers, verify)
    attempt = 0
    logged_in = False  # has any connection of this run worked?
    with root.lock(account):
        try:
            while True:
                session = ImapSource(settings, password)
                try:
                    try:
                        session.open()
                    except MailServerError as exc:
                        if logged_in or isinstance(exc, AuthFailed):
                            raise
                        raise ConnectFailed(f"{exc}. {_doctor_hint(settings)}") from exc
                    logged_in = True
                    run.sync(session)
                    break
                except ConnectionLost as exc:
                    attempt += 1
                    if attempt > retries:
                        raise SyncError(
                            f"gave up after {retries} reconnects: {exc}; what was fetched is "
                            "stored, run the sync again to continue") from exc
                    summary.reconnects += 1
                    tracker.advance("", "retry")
                    time.sleep(min(backoff * 2 ** (attempt - 1), MAX_BACKOFF))
                finally:
                    session.close()
        finally:
            run.close()
    summary.folders = list(finished.values())
    summary.set_aside = run.set_aside
    summary.seconds = time.monotonic() - start
    tracker.advance("", "done")
    return summary


class _Run:
    """One sync_account call: survives reconnects, remembers finished folders."""

    def __init__(self, root: Store, folders: Sequence[str] | None, tracker: Tracker,
                 finished: dict[str, FolderResult], chunk_size: int,
                 workers: int | None, verify: bool = False) -> None:
        self.root = root
        self.folders = folders
        self.tracker = tracker
        self.finished = finished
        self.chunk_size = chunk_size
        self.want_workers = workers
        self.verify = verify
        self.workers: WorkerPool | None = None
        #: per folder, the counts of attempts that a dropped connection cut short
        self.partial: dict[str, FolderResult] = {}
        #: damaged folders, moved to ``_retired/`` (see Store.set_aside_damaged)
        self.set_aside: list[str] = []

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
            self.workers = None

    def sync(self, session: ImapSource) -> None:
        root, finished, tracker = self.root, self.finished, self.tracker
        account = session.settings.account
        listed = session.folders()
        chosen = _choose_folders(session, listed, self.folders)
        self.set_aside += root.set_aside_damaged(account, deep=self.verify)
        self.verify = False  # read whole once, not again after a reconnect
        known = root.states(account)
        if self.folders is None:
            _retire_vanished(root, known, {f.name for f in listed if f.selectable}, finished)
        # A folder just retired is not on the server's list, so never looked up here.
        states = {s.folder: s for s in known}
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
        tracker.advance("", "start")
        count = self.want_workers if self.want_workers is not None else _auto_workers(total)
        if count > 0 and self.workers is None:
            self.workers = WorkerPool(count)
        pipeline = _Pipeline(self.workers, finished, tracker)
        try:
            for info in todo:
                try:
                    fstore = root.open_folder(account, info.name)
                except StoreError as exc:  # e.g. a part it cannot move into place
                    finished[info.name] = FolderResult(folder=info.name, action="failed",
                                                       error=str(exc))
                    continue
                # A retry after a dropped connection goes on counting where the
                # dropped attempt stopped (what it committed is in the store).
                result = self.partial.setdefault(info.name, FolderResult(folder=info.name))
                folder_sync = _FolderSync(session, fstore, info, tracker, self.chunk_size,
                                          pipeline, result)
                try:
                    folder_sync.run()
                except (ConnectionLost, AuthFailed):
                    raise
                except (MailServerError, StoreError) as exc:
                    # The server refused this folder, or the store could not
                    # take its changes: it fails, the other folders go on.
                    pipeline.add(_Finish(folder_sync, exc))
        except BaseException:
            pipeline.drain(quiet=True)
            raise
        pipeline.drain()


def _retire_vanished(root: Store, states: list[FolderState], listed: set[str],
                     finished: dict[str, FolderResult]) -> None:
    """Folders deleted on the server leave the frame (their rows are retired)."""
    for state in states:
        if state.source != "imap" or state.folder in listed or not state.parts:
            continue
        fstore = root.open_folder(state.account, state.folder)
        rows = fstore.retire("folder_deleted_on_server")
        finished[state.folder] = FolderResult(folder=state.folder, role=state.role,
                                              action="retired", retired=rows)
