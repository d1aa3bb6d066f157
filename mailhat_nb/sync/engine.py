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

import time
from collections.abc import Sequence
from pathlib import Path

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
from mailhat_nb.sync.folderjob import FolderJob, unchanged
from mailhat_nb.sync.imap import ImapSettings, ImapSource
from mailhat_nb.sync.memory import gc_paused
from mailhat_nb.sync.pipeline import Finish, Pipeline, auto_workers
from mailhat_nb.sync.progress import ProgressCallback, Tracker
from mailhat_nb.sync.store import FolderState, Store
from mailhat_nb.sync.summary import FolderResult, SyncSummary
from mailhat_nb.sync.wire import FolderInfo, FolderStatus
from mailhat_nb.sync.worker import WorkerPool

#: Messages per FETCH command (and per Parquet part on a first sync).
CHUNK_SIZE = 5000
#: Messages in the first FETCH of a run: the server answers 1,000 messages
#: sooner than 5,000, and nothing can be parsed before it has.
FIRST_CHUNK = 1000
RETRIES = 5
BACKOFF = 0.5
MAX_BACKOFF = 30.0


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
        CPUs, at most :data:`~mailhat_nb.sync.pipeline.MAX_WORKERS`), 0 parses in this process.
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
        if self.want_workers is None and self.workers is None and auto_workers(1):
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
            if state is not None and unchanged(state, status):
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
        count = self.want_workers if self.want_workers is not None else auto_workers(total)
        if count > 0 and self.workers is None:
            self.workers = WorkerPool(count)
        elif self.workers is not None and count > len(self.workers.workers):
            self.workers.grow(count)  # a big run
        pipeline = Pipeline(self.workers, finished, tracker)
        try:
            for info, status in todo:
                self._start(session, pipeline, info, status)
            with gc_paused():
                for command in session.results():
                    job = command.group
                    assert isinstance(job, FolderJob)  # noqa: S101 - only jobs submit here
                    job.handle(command)
                    if job.pending == 0:
                        self._next(session, pipeline, job)
        except BaseException:
            pipeline.drain(quiet=True)
            raise
        pipeline.drain()

    def _start(self, session: ImapSource, pipeline: Pipeline, info: FolderInfo,
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
        job = FolderJob(session, fstore, info, status, self, pipeline, result)
        try:
            commands = job.start()
        except StoreError as exc:  # the store could not take its changes: it fails
            pipeline.add(Finish(job, exc))
            return
        if commands:
            session.submit(*commands)
        else:
            pipeline.add(Finish(job))

    @staticmethod
    def _next(session: ImapSource, pipeline: Pipeline, job: FolderJob) -> None:
        """A folder's round is answered: queue its next one, or its last commit."""
        try:
            more = job.next_round()
        except StoreError as exc:
            job.error, more = exc, []
        if more:
            session.submit(*more)
        else:
            pipeline.add(Finish(job, job.error))


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
