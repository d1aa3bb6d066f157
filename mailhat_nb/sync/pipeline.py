"""Parsed chunks committed strictly in order, with or without parse workers.

The sync reads the socket while worker processes parse, convert and write
(:mod:`mailhat_nb.sync.worker`); this module holds the queue between them,
decides how many workers a run deserves, and commits each chunk only once
every chunk before it is in, so a run killed at any point resumes from its
last commit.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailhat_nb.errors import MailServerError, StoreError, SyncError
from mailhat_nb.sync import rows
from mailhat_nb.sync.progress import Tracker
from mailhat_nb.sync.summary import FolderResult
from mailhat_nb.sync.worker import Worker, WorkerPool

if TYPE_CHECKING:
    from mailhat_nb.sync.folderjob import FolderJob

#: Chunks fetched but not yet parsed, per worker (bounds memory: ~3 MB each).
MAX_IN_FLIGHT = 3
#: Jobs sent ahead to a worker; more chunks are held here (see Pipeline).
SEND_AHEAD = 3
#: Runs with at least this many new messages count as big (see auto_workers).
WORKER_THRESHOLD = 20_000
#: At most this many workers: each holds ~100 MB at its peak, and a sync with
#: its workers stays under 300 MB.
MAX_WORKERS = 2


def auto_workers(new_messages: int) -> int:
    """How many parse worker processes a run with ``new_messages`` to fetch deserves.

    Measured on the lab (2 CPUs, server on the same machine, with
    ``benchmarks/bench_sync.py``): one worker is faster than parsing in this
    process for any run. For a *small* run the worker starts (pyarrow and
    the parser, never pandas) while this process connects and logs in
    (:meth:`mailhat_nb.sync.engine._Run.prestart`), so this process never imports pyarrow and
    pandas just to add a few rows; for a big one, this process reads and
    lexes the socket while the worker parses, converts and writes (see
    ``Pipeline``). From 4 CPUs up a big run uses half of them, at most
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


@dataclass
class Pending:
    """A chunk not yet committed: held, handed to a worker, or already done in-process."""

    folder: FolderJob
    name: str
    uids: list[int]
    item: Worker | rows.ChunkJob | rows.ChunkDone | StoreError | None  # see Pipeline


@dataclass
class Finish:
    """A folder's last commit, queued behind its chunks.

    ``error``: the server refused the folder, or the store could not take
    its changes; either way that folder is reported ``failed`` (and stays
    incomplete, so the next run resumes it) while the others go on.
    """

    folder: FolderJob
    error: MailServerError | StoreError | None = None


class Pipeline:
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
        self.queue: deque[Pending | Finish] = deque()
        self.waiting = 0  # chunks queued and not parsed yet (held or in a worker)
        #: how many may wait before fetching waits for them
        self.keep = MAX_IN_FLIGHT * max(1, len(workers.workers) if workers else 1)

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

    def add(self, entry: Pending | Finish) -> None:
        """Queue a chunk, or a folder's end (which runs once the chunks before it are in)."""
        self.queue.append(entry)
        if isinstance(entry, Pending) and not isinstance(entry.item, rows.ChunkDone):
            self.waiting += 1
        self._feed()
        if isinstance(entry, Finish):
            self.commit_ready(keep=self.keep)

    def _feed(self, quiet: bool = False) -> None:
        """Send held chunks to the workers, oldest first, while one has room."""
        if self.workers is None:
            return
        for entry in self.queue:
            if not isinstance(entry, Pending) or not isinstance(entry.item, rows.ChunkJob):
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
            if isinstance(entry, Finish):
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
    def _commit(entry: Pending, done: rows.ChunkDone | StoreError | None) -> None:
        """Commit one chunk; a store failure fails its folder only (see :class:`Finish`)."""
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
