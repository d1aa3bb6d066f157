"""Which processes belong to a lab, and stopping exactly those.

A pid in ``lab.json`` proves nothing: the file may have been copied from
another lab, edited by hand, or outlived its processes long enough for the
pid to be reused. A process counts as this lab's only when its command line
points into this lab's own root, exactly as :mod:`mailhat_nb.lab.server`
starts it:

=========  ======================================================
dovecot    ``dovecot -c <root>/dovecot.conf``
exim       ``exim4 -C <root>/exim/exim.conf -bd ...``
sidecar    ``python -m mailhat_nb.lab.sidecar --pid-file <root>/run/sidecar.pid ...``
unbound    ``unbound -d -c <root>/dns/unbound.conf``
web        ``python -m mailhat_nb.lab.web --config ... --pid-file <root>/run/web.pid``
=========  ======================================================

(Exim's daemon drops to ``Debian-exim`` once it listens; its command line
stays the one it was started with.)

The path on the command line must be absolute, and the directory it names
must be the lab root once symlinks are resolved on both sides (a root given
through a symlink or relatively is the same lab). The file part is compared
as written, so a ``dovecot.conf`` symlinked into another lab does not make
that lab's Dovecot this one's. Any other name is never signalled.

Signals go through a pidfd opened *before* the command line is read: if the
process exits and its pid is reused between the check and the signal, the
signal goes nowhere instead of to the newcomer.

Starting is the other half: :func:`await_pid` waits for the pid file a
server writes once it is up.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailhat_nb.errors import LabError
from mailhat_nb.lab.layout import LabPaths

SIDECAR_MODULE = "mailhat_nb.lab.sidecar"
#: The processes a lab starts; ``lab.json`` names nothing else. (``postfix``:
#: what a lab started before Exim took over its SMTP still has running.)
KNOWN = ("dovecot", "exim", "sidecar", "postfix", "unbound", "web")
WEB_MODULE = "mailhat_nb.lab.web"
STOP_TIMEOUT = 10.0
START_TIMEOUT = 10.0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; :class:`LabError` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")


def read_pid(path: Path) -> int | None:
    """The pid in ``path``, or None while the file is missing or half written."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def await_pid(path: Path, what: str) -> int:
    """The pid a starting server writes to ``path``, once it is there."""
    deadline = time.monotonic() + START_TIMEOUT
    while (pid := read_pid(path)) is None:
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {START_TIMEOUT:.0f}s waiting for {what}")
        time.sleep(0.05)
    return pid


def spawn(cmd: list[str], pid_file: Path, log_file: Path, what: str) -> int:
    """Start one of the lab's own Python servers; its pid, once it has written ``pid_file``.

    It runs in a session of its own (``lab down`` stops it by that pid), its
    output going to ``log_file``.
    """
    pid_file.unlink(missing_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        wait_until(lambda: read_pid(pid_file) is not None or proc.poll() is not None,
                   START_TIMEOUT, what)
    except LabError:
        proc.kill()
        raise
    if proc.poll() is not None:
        raise LabError(f"{what} exited; see {log_file}")
    return proc.pid


def read_argv(pid: int) -> list[str] | None:
    """The command line of ``pid``; None when it is gone or a zombie."""
    if pid <= 0:
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # zombies and kernel threads have none
        return None
    return [os.fsdecode(arg) for arg in raw.rstrip(b"\0").split(b"\0")]


def _option(argv: list[str], flag: str) -> str | None:
    """The value of the last ``flag VALUE`` (or ``--flag=VALUE``) in ``argv``."""
    value = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif flag.startswith("--") and arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
    return value


def _points_into(value: str | None, paths: LabPaths, target: Path) -> bool:
    """True when ``value`` is ``target`` of this lab: absolute, under the resolved root."""
    if value is None:
        return False
    path = Path(value)
    rel = target.relative_to(paths.root).parts
    if not path.is_absolute() or len(path.parts) <= len(rel) or path.parts[-len(rel):] != rel:
        return False
    base = Path(*path.parts[:-len(rel)])
    return os.path.realpath(base) == os.path.realpath(paths.root)


def owns(paths: LabPaths, name: str, argv: list[str] | None) -> bool:
    """True when a process with command line ``argv`` is this lab's ``name``."""
    # name -> (the program, or the module run with ``-m``; its option naming the file; the file)
    rule = {"dovecot": ("dovecot", "-c", paths.dovecot_conf),
            "exim": ("exim4", "-C", paths.exim_conf),
            "postfix": ("master", "-c", paths.root / "postfix"),
            "sidecar": (SIDECAR_MODULE, "--pid-file", paths.sidecar_pid),
            "unbound": ("unbound", "-c", paths.unbound_conf),
            "web": (WEB_MODULE, "--pid-file", paths.web_pid)}.get(name)
    if not argv or rule is None:
        return False
    program, flag, target = rule
    if program in (SIDECAR_MODULE, WEB_MODULE):
        runs = any(argv[i:i + 2] == ["-m", program] for i in range(1, len(argv)))
    else:
        runs = Path(argv[0]).name == program
    return runs and _points_into(_option(argv, flag), paths, target)


def is_running(paths: LabPaths, name: str, pid: int) -> bool:
    """True when ``pid`` runs and is this lab's ``name``."""
    return owns(paths, name, read_argv(pid))


def _exited(fd: int, timeout: float = 0.0) -> bool:
    """True when the process behind pidfd ``fd`` has exited (within ``timeout`` s)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


@dataclass
class _Claimed:
    """A process proven to be the lab's, held by a pidfd where the kernel has them."""

    name: str
    pid: int
    fd: int | None
    paths: LabPaths

    def send(self, sig: signal.Signals) -> None:
        """Signal the process (gone already: nothing to do).

        Raises
        ------
        LabError
            Not allowed: the lab was started by another user (root, as the
            Dovecot master must be).
        """
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise LabError(f"cannot stop {self.name} (pid {self.pid}): it runs as another "
                           "user; run `mailhat lab down` as the user who started the lab "
                           "(root)") from exc

    def wait(self, timeout: float) -> bool:
        """True when the process exited within ``timeout`` seconds."""
        if self.fd is not None:
            return _exited(self.fd, timeout)
        # No pidfd: poll the command line (a zombie has none).
        deadline = time.monotonic() + timeout
        while is_running(self.paths, self.name, self.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _claim(paths: LabPaths, name: str, pid: int,
           say: Callable[[str], None]) -> _Claimed | None:
    """Hold ``pid`` if it runs and is provably this lab's ``name``; else None."""
    if pid <= 0:
        return None
    try:
        fd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        return None  # not running: nothing to stop
    except OSError:
        fd = None  # no pidfd support: fall back to the pid (checked just before)
    argv = read_argv(pid)
    if fd is not None and _exited(fd):
        argv = None  # exited after the pidfd was opened: argv may be a newcomer's
    if argv is not None and owns(paths, name, argv):
        return _Claimed(name, pid, fd, paths)
    if fd is not None:
        os.close(fd)
    if argv is not None:
        say(f"{name}: pid {pid} runs {Path(argv[0]).name!r}, which is not this lab's "
            f"{name} (its command line does not point into {paths.root}): left alone")
    return None


def stop(paths: LabPaths, pids: Mapping[str, int], say: Callable[[str], None],
         timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop the processes of ``pids`` that are provably this lab's; return their names.

    SIGTERM to all of them first, then wait; one still running after
    ``timeout`` seconds gets SIGKILL. Names other than :data:`KNOWN`, and pids
    whose command line does not point into this lab, are reported through
    ``say`` and never signalled.
    """
    claimed: list[_Claimed] = []
    try:
        for name, pid in pids.items():
            if name not in KNOWN:
                say(f"lab.json names an unknown process {name!r} (pid {pid}): "
                    "ignored, not signalled")
                continue
            held = _claim(paths, name, pid, say)
            if held is not None:
                claimed.append(held)
        for held in claimed:
            held.send(signal.SIGTERM)
        for held in claimed:
            if not held.wait(timeout):
                held.send(signal.SIGKILL)
                held.wait(timeout)
        return [held.name for held in claimed]
    finally:
        for held in claimed:
            held.close()
