"""The sync engine: IMAP folders -> parsed rows -> the store, incrementally and resumably.

One call, :func:`sync_account`, does a whole account::

    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings
    summary = sync_account(ImapSettings("me@example.com", "mail.example.com"),
                           password, "store/")

Every folder's state comes first, in one round trip where the server offers
LIST-STATUS (else LIST and STATUS pipelined); a folder whose UIDVALIDITY,
UIDNEXT, MESSAGES and HIGHESTMODSEQ all match the stored state is skipped (a
re-sync of an unchanged mailbox costs the login and that one round trip,
whatever the number of folders). Every other folder's commands are planned
from its STATUS and sent together, all folders at once (pipelined:
:mod:`mailhat_nb.sync.wire`), and their answers applied in the order sent:

1. EXAMINE (read-only); UIDVALIDITY changed: the folder's rows are retired
   and it is fetched anew (as when STATUS said so already);
2. flag changes of stored messages: ``CHANGEDSINCE`` the stored
   HIGHESTMODSEQ (CONDSTORE), else every message's FLAGS;
3. new messages: UID ranges from the highest stored UID to UIDNEXT (the
   last range open), no SEARCH needed to know their UIDs; each range is
   parsed and committed before the next is stored, so a sync killed at any
   point resumes from the last commit;
4. expunges: the stored count plus the new messages must equal EXAMINE's
   EXISTS; only when it does not is ``UID SEARCH`` sent (compact with
   ESEARCH), and stored UIDs it does not list leave the store, while UIDs it
   lists that the store lacks are fetched. A folder a run left half-done,
   or whose UIDs are too sparse for ranges, is SEARCHed in step 1's write.

A folder STATUS calls empty is neither EXAMINEd nor SEARCHed.

Why this order: the HIGHESTMODSEQ taken at EXAMINE is the point as of which
the stored flags are current once step 2 is done, and new rows fetched
after it are at least as fresh; the flag changes are committed before any
new chunk of the folder (their answer is sent, and so handed back, first),
and the first commit of a run marks the folder incomplete until its last,
so however the run ends the next one trusts nothing it did not finish. A
dropped connection (server restart, network) is retried with exponential
backoff from the last commit; a first connection that fails is not
(:class:`~mailhat_nb.errors.ConnectFailed`): that is a wrong setting, and
minutes of retries would only hide it.
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
from mailhat_nb.sync.fetch import FetchedMessage
from mailhat_nb.sync.folders import folder_role
from mailhat_nb.sync.imap import ImapSettings, ImapSource
from mailhat_nb.sync.memory import gc_paused
from mailhat_nb.sync.progress import ProgressCallback, Tracker
from mailhat_nb.sync.store import FolderState, FolderStore, Store, utc_now
from mailhat_nb.sync.uids import chunk_ranges, uid_ranges
from mailhat_nb.sync.wire import Command, Examine, Fetch, FolderInfo, FolderStatus, Search
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
#: Rounds of commands per folder and run, at most: the first, a SEARCH where
#: the count shows expunges, the messages it found missing (and one spare).
MAX_ROUNDS = 4


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
    the parser, never pandas) while this process connects and logs in
    (:meth:`_Run.prestart`), so this process never imports pyarrow and
    pandas just to add a few rows; for a big one, this process reads and
    lexes the socket while the worker parses, converts and writes (see
    ``_Pipeline``). From 4 CPUs up a big run uses half of them, at most
    :data:`MAX_WORKERS`.
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


class _FolderJob:
    """One changed folder's sync: rounds of pipelined commands, and what each answer does.

    :meth:`start` plans the first round from the folder's state and its
    STATUS (see the module docstring); the session sends it with every other
    folder's, and hands each completed command to :meth:`handle`, in the
    order sent. When a round's last answer is in, :meth:`next_round` says
    what else the folder needs (a SEARCH where the count shows expunges,
    the messages a SEARCH found missing), or nothing: then its last commit,
    :meth:`finish`, is queued behind its chunks in the account's
    :class:`_Pipeline`, so the next folder is fetched while this one's last
    chunks are still parsed.
    """

    def __init__(self, session: ImapSource, fstore: FolderStore, info: FolderInfo,
                 status: FolderStatus, run: _Run, pipeline: _Pipeline,
                 result: FolderResult) -> None:
        self.session = session
        self.fstore = fstore
        self.info = info
        self.status = status
        self.run = run
        self.pipeline = pipeline
        self.result = result
        self.role = _role(info, fstore.state)
        result.role = self.role
        #: the first round's EXAMINE (or the STATUS of an empty folder): the
        #: snapshot whose UIDNEXT and HIGHESTMODSEQ the folder's commits record
        self.sel: FolderStatus | None = None
        self.stored: set[int] = set()
        self.server: list[int] | None = None  # every UID, once a SEARCH said
        self.fetched: set[int] = set()
        self.pending = 0  # this round's commands not yet handed back
        self.rounds = 0
        self.stale = False  # UIDVALIDITY changed between STATUS and EXAMINE
        self.error: MailServerError | StoreError | None = None
        self.started = time.monotonic()
        self.lost_chunks = False  # a chunk was dropped on the way out of an error
        #: the store failed for this folder (a part it could not write): its
        #: later chunks are dropped, the other folders go on
        self.store_error: StoreError | None = None
        self._marked = False

    # ------------------------------------------------------------------ planning

    def start(self) -> list[Command]:
        """The first round's commands, all planned from STATUS and sent at once.

        A folder STATUS calls empty needs none (it is done here).
        """
        state, status = self.fstore.state, self.status
        same = state.uidvalidity == status.uidvalidity
        self.stored = set(state.uid_list()) if same else set()
        if status.messages == 0:
            self._examined(status)  # nothing to EXAMINE, SEARCH or fetch
            if self.stored:  # all of them expunged
                self.result.expunged += self.fstore.expunge(self.stored, **self._first())
                self.stored = set()
            return []
        return self._round([self.session.examine(self.info.name, self),
                            *self._plan(status)])

    def _round(self, commands: list[Command]) -> list[Command]:
        self.rounds += 1
        self.pending = len(commands)
        return commands

    def _first(self) -> dict[str, Any]:
        """``complete=False`` for the run's first change to the folder, nothing after.

        A run killed after it changed the folder leaves it incomplete, so the
        next run SEARCHes instead of trusting counts (see :meth:`next_round`).
        """
        if self._marked:
            return {}
        self._marked = True
        return {"complete": False}

    def _plan(self, status: FolderStatus) -> list[Command]:
        """What follows the first EXAMINE: SEARCH if needed, flag changes, new headers.

        New messages are asked for by UID range, from the highest stored UID
        to STATUS's UIDNEXT (the last range open, ``n:*``, so what arrives
        meanwhile comes too): no SEARCH is needed to know their UIDs unless
        the UIDs are too sparse for ranges (:func:`uid_ranges`).
        """
        session, state = self.session, self.fstore.state
        top = max(self.stored, default=0)
        # Where the store may lack messages below its highest UID (a run that
        # ended half-way), only a SEARCH says which.
        search = bool(self.stored) and not state.complete
        ranges = uid_ranges(top + 1, status.uidnext - 1,
                            max(status.messages - len(self.stored), 0),
                            self.run.chunk_size, self.run.range_width)
        if ranges is None:  # UIDs too sparse to cover by ranges: ask for them
            search, ranges = True, []
        commands: list[Command] = []
        if search:
            commands.append(session.search(self, status.messages))
        if self.stored:
            since = state.highestmodseq if session.capabilities.condstore else None
            commands.append(session.flags(self, top, since))
        commands += [session.headers(self, lo, hi, weight, _header_fields())
                     for lo, hi, weight in ranges]
        return commands

    # ------------------------------------------------------------------ answers

    def handle(self, command: Command) -> None:
        """One completed command of this folder's, in the order sent."""
        self.pending -= 1
        if self.error is not None or self.stale:
            return  # the rest of a failed or outdated round: nothing to use
        if not command.ok:
            # The server refused this folder (EXAMINE or FETCH answered NO): what
            # was committed stays; the other folders still sync.
            self.error = command.failure()
            return
        try:
            if isinstance(command, Examine):
                self._examined(command.result)
            elif isinstance(command, Search):
                self.server = command.result
            elif isinstance(command, Fetch) and not command.headers:
                self._flags(command.result)
            elif isinstance(command, Fetch):
                self._chunk(command.result)
        except StoreError as exc:
            self.error = exc

    def _examined(self, sel: FolderStatus) -> None:
        """The folder as EXAMINE (or, empty, STATUS) found it: retire, record, or stop."""
        if self.sel is not None:  # a later round: still the folder the first one read?
            if sel.uidvalidity != self.sel.uidvalidity:
                self.error = MailServerError(
                    f"{self.info.name!r} was replaced on the server during the sync (its "
                    "UIDVALIDITY changed); run the sync again")
            return
        if sel.uidvalidity != self.status.uidvalidity:
            # Replaced between STATUS and EXAMINE: plan again from what EXAMINE says.
            self.stale, self.status = True, sel
            return
        self.sel = sel
        fstore, result = self.fstore, self.result
        result.server_messages, result.uidvalidity = sel.messages, sel.uidvalidity
        meta = {"role": self.role, "delimiter": self.info.delimiter,
                "flags": list(self.info.flags)}
        old = fstore.state.uidvalidity
        if old is not None and old != sel.uidvalidity:
            result.retired += fstore.retire("uidvalidity_changed", **meta)
            fstore.state.events[-1]["new_uidvalidity"] = sel.uidvalidity
            fstore.state.events[-1]["old_uidvalidity"] = old
            result.action = "reset"
            self._marked = True  # retire() left the folder incomplete
        if fstore.state.uidvalidity != sel.uidvalidity or any(
                getattr(fstore.state, k) != v for k, v in meta.items()):
            fstore.commit_state(uidvalidity=sel.uidvalidity, **meta)
        if result.action == "unchanged":
            result.action = "synced"

    def _flags(self, changes: list[FetchedMessage]) -> None:
        """Flag changes of stored messages; then HIGHESTMODSEQ says they are current."""
        assert self.sel is not None  # noqa: S101 - EXAMINE came first
        fstore, stored = self.fstore, self.stored
        flags = {m.uid: m.flags for m in changes if m.uid in stored}
        labels = {m.uid: m.gm_labels for m in changes
                  if m.uid in stored and m.gm_labels is not None}
        if flags or labels or fstore.state.highestmodseq != self.sel.highestmodseq:
            self.result.flags_changed += fstore.update_flags(
                flags, labels or None, highestmodseq=self.sel.highestmodseq, **self._first())

    def _chunk(self, got: list[FetchedMessage]) -> None:
        """New messages of one FETCH range, handed to the pipeline (parsed, then committed)."""
        assert self.sel is not None  # noqa: S101 - EXAMINE came first
        msgs = [m for m in got if m.uid not in self.stored and m.uid not in self.fetched]
        self.fetched.update(m.uid for m in msgs)
        if not msgs or self.store_error is not None:
            return  # nothing new, or the folder's store failed
        pipeline = self.pipeline
        name, tmp = self.fstore.reserve_part(msgs[0].uid, msgs[-1].uid)
        job = rows.ChunkJob.from_messages(msgs, self.role, self.sel.uidvalidity, str(tmp))
        pipeline.chunks += 1
        pipeline.add(_Pending(self, name, job.uids, pipeline.start(job)))
        pipeline.commit_ready(keep=pipeline.keep)

    def next_round(self) -> list[Command]:
        """What the folder needs once a round's answers are all in; [] when it is done.

        Expunges: a SEARCH's UIDs say which stored messages are gone. Without
        one, the count does: the folder held ``len(stored)`` messages and
        gained those fetched below EXAMINE's UIDNEXT, so EXISTS equals their
        sum exactly when nothing was expunged (UIDs only grow, and a complete
        folder's store holds every UID below its highest). Only when the
        count differs is SEARCH sent.
        """
        if self.error is not None:
            return []
        if self.stale:
            self.stale, self.rounds = False, 0
            return self.start()
        sel = self.sel
        assert sel is not None  # noqa: S101 - a round always starts with EXAMINE
        if self.server is None:
            gained = sum(1 for uid in self.fetched if uid < sel.uidnext)
            if sel.messages == len(self.stored) + gained:
                return []
            return self._again([self.session.search(self, sel.messages)])
        on_server = set(self.server)
        gone = self.stored - on_server
        if gone:
            self.result.expunged += self.fstore.expunge(gone, **self._first())
            self.stored -= gone
        missing = sorted(on_server - self.stored - self.fetched)
        if not missing:
            return []
        self.fetched.update(missing)  # asked once: a message expunged meanwhile is not asked again
        return self._again([self.session.headers(self, lo, hi, hi - lo + 1, _header_fields())
                            for lo, hi in chunk_ranges(missing, self.run.chunk_size)])

    def _again(self, commands: list[Command]) -> list[Command]:
        """Another round (EXAMINE first: another folder is selected by now), if one is left.

        A folder that still needs more after :data:`MAX_ROUNDS` kept changing
        under the sync: it fails for this run and stays incomplete (what was
        committed stays), and the next run takes it from there.
        """
        if self.rounds >= MAX_ROUNDS:
            self.error = MailServerError(
                f"{self.info.name!r} kept changing on the server during the sync; what was "
                "fetched is stored: run the sync again")
            return []
        return self._round([self.session.examine(self.info.name, self), *commands])

    # ------------------------------------------------------------------ commits

    def commit_chunk(self, pending: _Pending, done: rows.ChunkDone) -> None:
        """Commit one parsed chunk (the pipeline calls this in UID order)."""
        assert self.sel is not None  # noqa: S101 - set before any chunk
        self.fstore.append_written(pending.name, pending.uids,
                                   highestmodseq=self.sel.highestmodseq, **self._first())
        self.result.new += done.rows
        self.run.tracker.advance(self.info.name, "fetch", done.rows)

    def finish(self, error: MailServerError | StoreError | None = None) -> FolderResult:
        """The folder's last commit, once all its chunks are in (or its failure)."""
        fstore = self.fstore
        if error is not None:
            # The server refused this folder, or the store could not take it:
            # what was committed stays; the other folders still sync.
            self.result.action, self.result.error = "failed", str(error)
        else:
            sel = self.sel
            assert sel is not None  # noqa: S101 - every round started from one
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

    folder: _FolderJob
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

    folder: _FolderJob
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
            run.prestart()
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
        self._first_taken = False
        #: new messages the run still has to plan FETCH ranges for (see range_width)
        self.left = 0

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
            self.workers = None

    def prestart(self) -> None:
        """Start the parse workers now, before connecting.

        A worker takes a while to start (an interpreter, pyarrow, the
        parser), far longer than the round trips that tell whether the run
        has anything to parse: started once STATUS has shown the work, it
        would make even a handful of new messages wait for it. Started now,
        that happens while the session connects and logs in; a run with
        nothing new stops it unused (:meth:`WorkerPool.close` does not wait
        for a worker that never had a job).
        """
        if self.want_workers is None and self.workers is None and _auto_workers(1):
            self.workers = WorkerPool(1)

    def range_width(self, left: int) -> int:
        """How many UIDs the run's next FETCH range spans (``left``: its folder's still to ask).

        :data:`FIRST_CHUNK` for the first range of the run (nothing is parsed
        before it is in) and for the last :attr:`chunk_size` messages of the
        run (nothing is committed before a range is in, so the last range is
        parsed after the last byte arrived: a small one ends the run
        sooner); :attr:`chunk_size` between.
        """
        small = min(FIRST_CHUNK, self.chunk_size)
        wide = self.left - min(self.chunk_size, left) >= self.chunk_size
        step = self.chunk_size if self._first_taken and wide else small
        self._first_taken = True
        self.left -= min(step, left)
        return step

    def sync(self, session: ImapSource) -> None:
        root, finished, tracker = self.root, self.finished, self.tracker
        account = session.settings.account
        self.set_aside += root.set_aside_damaged(account, deep=self.verify)
        self.verify = False  # read whole once, not again after a reconnect
        known = root.states(account)
        # The folders to expect: a server without LIST-STATUS gets their STATUS
        # in the same write as the LIST.
        expect = self.folders if self.folders is not None \
            else [st.folder for st in known if st.source == "imap"]
        listing = session.folder_states([n for n in expect if n not in finished])
        listed = [entry.info for entry in listing]
        chosen = _choose_folders(session, listed, self.folders)
        if self.folders is None:
            _retire_vanished(root, known, {f.name for f in listed if f.selectable}, finished)
        # A folder just retired is not on the server's list, so never looked up here.
        states = {st.folder: st for st in known}
        by_name = {entry.info.name: entry for entry in listing}
        todo: list[tuple[FolderInfo, FolderStatus]] = []
        total = 0
        for info in chosen:
            if info.name in finished:
                continue
            state, entry = states.get(info.name), by_name[info.name]
            if entry.status is None:  # the server refused its STATUS: this folder only
                finished[info.name] = FolderResult(
                    folder=info.name, role=state.role if state else "", action="failed",
                    rows=state.messages if state else 0, error=str(entry.error))
                continue
            status = entry.status
            if state is not None and _unchanged(state, status):
                finished[info.name] = FolderResult(
                    folder=info.name, role=state.role, rows=state.messages,
                    server_messages=status.messages, uidvalidity=status.uidvalidity)
                continue
            todo.append((info, status))
            have = state.messages if state is not None \
                and state.uidvalidity == status.uidvalidity else 0
            total += max(status.messages - have, 0)
        tracker.total = tracker.done + total
        tracker.advance("", "start")
        self.left = total
        count = self.want_workers if self.want_workers is not None else _auto_workers(total)
        if count > 0 and self.workers is None:
            self.workers = WorkerPool(count)
        elif self.workers is not None and count > len(self.workers.workers):
            self.workers.grow(count)  # a big run
        pipeline = _Pipeline(self.workers, finished, tracker)
        try:
            for info, status in todo:
                self._start(session, pipeline, info, status)
            with gc_paused():
                for command in session.results():
                    job = command.group
                    assert isinstance(job, _FolderJob)  # noqa: S101 - only jobs submit here
                    job.handle(command)
                    if job.pending == 0:
                        self._next(session, pipeline, job)
        except BaseException:
            pipeline.drain(quiet=True)
            raise
        pipeline.drain()

    def _start(self, session: ImapSource, pipeline: _Pipeline, info: FolderInfo,
               status: FolderStatus) -> None:
        """Plan a changed folder's first round and queue it (every folder's go out together)."""
        account = session.settings.account
        try:
            fstore = self.root.open_folder(account, info.name)
        except StoreError as exc:  # e.g. a part it cannot move into place
            self.finished[info.name] = FolderResult(folder=info.name, action="failed",
                                                    error=str(exc))
            return
        # A retry after a dropped connection goes on counting where the
        # dropped attempt stopped (what it committed is in the store).
        result = self.partial.setdefault(info.name, FolderResult(folder=info.name))
        job = _FolderJob(session, fstore, info, status, self, pipeline, result)
        try:
            commands = job.start()
        except StoreError as exc:  # the store could not take its changes: it fails
            pipeline.add(_Finish(job, exc))
            return
        if commands:
            session.submit(*commands)
        else:
            pipeline.add(_Finish(job))

    @staticmethod
    def _next(session: ImapSource, pipeline: _Pipeline, job: _FolderJob) -> None:
        """A folder's round is answered: queue its next one, or its last commit."""
        try:
            more = job.next_round()
        except StoreError as exc:
            job.error, more = exc, []
        if more:
            session.submit(*more)
        else:
            pipeline.add(_Finish(job, job.error))


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
