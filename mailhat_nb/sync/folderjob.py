"""One changed folder's sync: rounds of pipelined commands, and what each answer does.

The plan and its order are the engine's (:mod:`mailhat_nb.sync.engine`'s
docstring); this module carries them out for one folder.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mailhat_nb.errors import MailServerError, StoreError
from mailhat_nb.sync import rows
from mailhat_nb.sync.fetch import FetchedMessage
from mailhat_nb.sync.folders import folder_role
from mailhat_nb.sync.imap import ImapSource
from mailhat_nb.sync.pipeline import Pending, Pipeline
from mailhat_nb.sync.store import FolderState, FolderStore, utc_now
from mailhat_nb.sync.summary import FolderResult
from mailhat_nb.sync.uids import chunk_ranges, uid_ranges
from mailhat_nb.sync.wire import Command, Examine, Fetch, FolderInfo, FolderStatus, Search

if TYPE_CHECKING:
    from mailhat_nb.sync.engine import _Run

#: Rounds of commands per folder and run, at most: the first, a SEARCH where
#: the count shows expunges, the messages it found missing (and one spare).
MAX_ROUNDS = 4


def _header_fields() -> tuple[str, ...]:
    from mailhat_nb.sync.parse import FETCH_HEADER_FIELDS

    return tuple(FETCH_HEADER_FIELDS)


def unchanged(state: FolderState, status: FolderStatus) -> bool:
    """Whether STATUS shows the folder exactly as the complete stored state left it."""
    return (state.complete and state.uidvalidity == status.uidvalidity
            and state.uidnext == status.uidnext and state.messages == status.messages
            and status.highestmodseq is not None
            and state.highestmodseq == status.highestmodseq)


def _role(info: FolderInfo, state: FolderState) -> str:
    """The folder's role, from the state when LIST says the same as last time."""
    if state.last_sync is not None and state.flags == list(info.flags):
        return state.role
    return folder_role(info.name, info.flags)


class FolderJob:
    """One changed folder's sync: rounds of pipelined commands, and what each answer does.

    :meth:`start` plans the first round from the folder's state and its
    STATUS (see the module docstring); the session sends it with every other
    folder's, and hands each completed command to :meth:`handle`, in the
    order sent. When a round's last answer is in, :meth:`next_round` says
    what else the folder needs (a SEARCH where the count shows expunges,
    the messages a SEARCH found missing), or nothing: then its last commit,
    :meth:`finish`, is queued behind its chunks in the account's
    :class:`Pipeline`, so the next folder is fetched while this one's last
    chunks are still parsed.
    """

    def __init__(self, session: ImapSource, fstore: FolderStore, info: FolderInfo,
                 status: FolderStatus, run: _Run, pipeline: Pipeline,
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
        return self._round([Examine(self.info.name, self),
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
            fstore.state.events[-1].update(new_uidvalidity=sel.uidvalidity, old_uidvalidity=old)
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
        pipeline.add(Pending(self, name, job.uids, pipeline.start(job)))
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
        return self._round([Examine(self.info.name, self), *commands])

    # ------------------------------------------------------------------ commits

    def commit_chunk(self, pending: Pending, done: rows.ChunkDone) -> None:
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
