"""Memory helpers shared by the hot paths (parsing, the sync, building frames)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector; restored afterwards, whatever happens.

    Parsing headers, streaming FETCH chunks and building frames allocate
    many small acyclic objects, freed by reference counting; the collector
    would only walk them again and again on every generation-0 pass (a
    quarter of a bulk fetch or parse, and long pauses building a large
    frame, measured with ``benchmarks/bench_parse.py`` and ``bench_sync.py``).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
