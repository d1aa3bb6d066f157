"""Progress of a sync: one callback shape for the terminal, notebooks and tests.

The engine tells after every stored chunk through a plain callable
``progress(Progress)``, so it never imports tqdm or ipywidgets: the CLI wraps
the callback in a tqdm bar (:class:`TqdmProgress`), a notebook widget wraps
the same callback, and a test collects the events in a list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class Progress:
    """Where a sync stands: one event for the progress callback.

    ``done`` and ``total`` count messages fetched in this run (``total`` is
    what STATUS promised when the run started, so it may be exceeded by mail
    arriving meanwhile); ``rate`` is messages per second since the start;
    ``eta`` is seconds left at that rate (None until there is a rate).
    """

    done: int
    total: int
    rate: float
    eta: float | None
    folder: str
    phase: str  # "start" | "fetch" | "folder done" | "done" | "retry"
    elapsed: float

    @property
    def fraction(self) -> float:
        """``done / total`` in [0, 1] (1 when there is nothing to do)."""
        return min(1.0, self.done / self.total) if self.total else 1.0


ProgressCallback = Callable[[Progress], None]


class Tracker:
    """Turns counts into :class:`Progress` events for a callback (or none)."""

    def __init__(self, callback: ProgressCallback | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._callback = callback
        self._clock = clock
        self._start = clock()
        self.done = 0
        self.total = 0

    def advance(self, folder: str, phase: str, added: int = 0) -> None:
        """Count ``added`` messages and tell the callback."""
        self.done += added
        if self._callback is None:
            return
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        eta = left / rate if rate > 0 else None
        self._callback(Progress(self.done, self.total, rate, eta, folder, phase, elapsed))


class TqdmProgress:
    """A progress callback drawing a tqdm bar (for the terminal).

    Use as a context manager so the bar is closed even when the sync fails.
    """

    def __init__(self, file: TextIO | None = None, *, label: str = "",
                 **tqdm_args: Any) -> None:
        from tqdm import tqdm

        self._label = label  # e.g. the account, when several bars share the terminal
        self._bar = tqdm(total=0, unit="msg", unit_scale=True, file=file, dynamic_ncols=True,
                         desc=label or None, **tqdm_args)

    def __call__(self, event: Progress) -> None:
        """Move the bar to ``event``."""
        bar = self._bar
        if event.total != bar.total:
            bar.total = max(event.total, event.done)
        where = event.folder[-30:] or ("done" if event.phase == "done" else "sync")
        bar.set_description_str(f"{self._label} {where}".strip(), refresh=False)
        bar.update(event.done - bar.n)

    def close(self) -> None:
        """Finish the bar."""
        self._bar.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
