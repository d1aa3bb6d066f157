"""Parse-and-write worker processes of a sync (``python -m mailhat_nb.sync.worker``).

A worker parses header blocks and writes Parquet parts while the sync's own
process keeps the socket busy; when and how many: ``pipeline.auto_workers``.

Why not :mod:`multiprocessing`: its ``spawn`` and ``forkserver`` start methods
re-import the caller's ``__main__``, so a user's script without an
``if __name__ == "__main__"`` guard would start a sync inside every worker;
and ``fork`` copies a parent that may hold an SSL socket, a notebook
kernel's threads or pyarrow's thread pool (not fork-safe). A worker here is
a plain ``python -m`` child that reads jobs on stdin and writes answers on
stdout, length-prefixed pickles, nothing else: the parent is the only one
who ever writes to it. It exits at end of input, and on Linux the kernel
kills it when its parent dies (``PR_SET_PDEATHSIG``), so a sync killed with
SIGKILL leaves no worker finishing a file behind it.

Answers are a few bytes (the part is written to disk by the worker), so a
worker never blocks on a full pipe while the parent is busy writing it the
next job.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any

from mailhat_nb.errors import StoreError, SyncError
from mailhat_nb.sync.rows import ChunkDone, ChunkJob, process_chunk

_LEN = struct.Struct("!Q")


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(data)))
    stream.write(data)
    stream.flush()


def _recv(stream: IO[bytes]) -> Any:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError
    (size,) = _LEN.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - our own parent process, over a private pipe


class Worker:
    """One child process; jobs are answered in the order they were sent.

    Jobs (megabytes of header blocks) go through a writer thread: the pipe
    holds 64 KB, the child reads the next job only when it finished the
    last, and the fetching thread must not stand still meanwhile.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailhat_nb.sync.worker", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_worker_env(),
            # Its own process group: Ctrl-C in a terminal goes to the terminal's
            # group, and the parent decides what an interrupt means (the end of
            # input, or its death, ends the worker); a KeyboardInterrupt
            # traceback from a worker would only confuse the user.
            process_group=0,
        )
        self.pending = 0
        self.used = False  # ever given a job
        self._jobs: queue.SimpleQueue[ChunkJob | None] = queue.SimpleQueue()
        self._write_error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_jobs, name="mailhat-worker-feed",
                                        daemon=True)
        self._writer.start()
        #: the end of what the worker wrote to stderr (a traceback, when it died)
        self._said: deque[str] = deque(maxlen=40)
        self._listener = threading.Thread(target=self._read_stderr, daemon=True,
                                          name="mailhat-worker-stderr")
        self._listener.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None  # noqa: S101 - Popen with PIPE
        with contextlib.suppress(OSError, ValueError):  # closed under it: nothing more to hear
            for line in self.proc.stderr:
                self._said.append(line.decode("utf-8", "replace").rstrip())

    def died(self) -> SyncError:
        """The error for a worker that is gone, saying what happened to it."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._listener.join(timeout=5)  # its last words
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
            if code == -signal.SIGKILL:
                how += " (out of memory? the kernel's log says)"
        else:
            how = f"exited (code {code})"
        said = [line.strip() for line in self._said if line.strip()]
        return SyncError(f"a parse worker {how}" + (f": {said[-1]}" if said else ""))

    def _write_jobs(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None  # noqa: S101 - Popen with PIPE
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    stdin.close()
                    return
                _send(stdin, job)
            except (BrokenPipeError, OSError) as exc:
                self._write_error = exc
                return

    def send(self, job: ChunkJob) -> None:
        """Queue one job (returns at once)."""
        if self._write_error is not None or self.proc.poll() is not None:
            raise self.died() from self._write_error
        self._jobs.put(job)
        self.pending += 1
        self.used = True

    def ready(self) -> bool:
        """Whether an answer can be read without waiting."""
        assert self.proc.stdout is not None  # noqa: S101 - Popen with PIPE
        readable, _, _ = select.select([self.proc.stdout], [], [], 0)
        return bool(readable)

    def receive(self) -> ChunkDone:
        """The answer to the oldest pending job (waits for it)."""
        assert self.proc.stdout is not None  # noqa: S101 - Popen with PIPE
        try:
            answer = _recv(self.proc.stdout)
        except (EOFError, OSError) as exc:
            raise self.died() from exc
        self.pending -= 1
        if isinstance(answer, StoreError):
            raise answer
        if isinstance(answer, str):
            raise SyncError(f"a parse worker failed: {answer}")
        if not isinstance(answer, ChunkDone):
            raise SyncError(f"a parse worker answered {type(answer).__name__}")
        return answer

    def close(self) -> None:
        """End its input; it exits after the jobs already sent (at once if it never had one)."""
        if not self.used:  # still starting, or idle: nothing of it to wait for
            self.proc.kill()
        self._jobs.put(None)
        self._writer.join(timeout=30)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._listener.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _worker_env() -> dict[str, str]:
    """The worker's environment: ours, plus two settings measured on the lab (2 CPUs).

    - numpy's BLAS kept to one thread: pyarrow imports numpy, whose OpenBLAS
      starts (and spins) one thread per CPU at import although a worker never
      multiplies a matrix; that nearly doubles the CPU a worker needs to
      start, taken from the sync's own process and the server.
    - Arrow's system allocator instead of mimalloc: mimalloc keeps ~25 MB of
      arenas after the first chunk (worker peak RSS ~125 MB instead of ~100
      MB) and is no faster for tables of a few thousand rows.

    A value the user set is kept.
    """
    env = dict(os.environ)
    for name, value in (("OPENBLAS_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"),
                        ("ARROW_DEFAULT_MEMORY_POOL", "system")):
        env.setdefault(name, value)
    return env


class WorkerPool:
    """A few :class:`Worker` processes, each job to the least busy one."""

    def __init__(self, count: int) -> None:
        self.workers: Sequence[Worker] = [Worker() for _ in range(count)]

    def grow(self, count: int) -> None:
        """Start more workers, up to ``count`` in all."""
        self.workers = [*self.workers, *(Worker() for _ in range(count - len(self.workers)))]

    def busy(self) -> int:
        """Jobs pending in the least busy worker."""
        return min(w.pending for w in self.workers)

    def submit(self, job: ChunkJob) -> Worker:
        """Send ``job`` to the least busy worker; read its answer from the returned worker."""
        worker = min(self.workers, key=lambda w: w.pending)
        worker.send(job)
        return worker

    def close(self) -> None:
        """Stop every worker."""
        for worker in self.workers:
            worker.close()


class _NoPandas:
    """Import hook making ``import pandas`` fail in a worker.

    ``pyarrow.array()`` imports pandas the first time it runs (to ask whether
    its argument is a pandas object; pyarrow carries on without it), which
    would cost every worker pandas' start-up time and memory for nothing: a
    worker only turns Python lists into Arrow arrays. Our own modules must
    not import it either (``tests/test_layout.py`` loads them in a fresh
    interpreter to check); if one does, the worker dies at start and the
    sync's error names the module. Only ever installed in a worker process.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            frame: FrameType | None = sys._getframe(1)
            while frame is not None and not frame.f_globals.get("__name__", "").startswith(
                    "mailhat_nb"):
                frame = frame.f_back
            who = frame.f_globals["__name__"] if frame is not None else "a library"
            raise ModuleNotFoundError(f"{who} imports pandas, which a sync parse worker "
                                      "must not load", name=name)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (``PR_SET_PDEATHSIG``).

    A sync killed with SIGKILL must not leave a worker finishing a part
    behind it; end of input alone would only stop it after the current job.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: end of input still stops it
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main() -> int:
    """The child's loop: job in, part written, small answer out, until end of input."""
    import gc

    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        _die_with_parent(int(sys.argv[1]))

    sys.meta_path.insert(0, _NoPandas())

    from mailhat_nb.sync.rows import warm_up

    # Every object a job makes is acyclic and freed by reference counting; the
    # cycle collector would only walk 100,000s of young dicts again and again.
    gc.disable()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by accident must not corrupt the pipe
    warm_up()  # imports now, while the parent waits for the server's first chunk
    while True:
        try:
            job = _recv(stdin)
        except EOFError:
            # Every part is written, fsynced and answered: nothing is left to
            # clean up, and skipping the interpreter's teardown (pyarrow's
            # modules) ends the worker sooner, which the sync waits for.
            stdout.flush()
            os._exit(0)
        try:
            answer: Any = process_chunk(job)
        except StoreError as exc:  # the part could not be written: its folder fails
            answer = exc
        except Exception as exc:
            answer = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
            with contextlib.suppress(OSError):
                os.unlink(job.tmp_path)
        _send(stdout, answer)


if __name__ == "__main__":
    raise SystemExit(main())
