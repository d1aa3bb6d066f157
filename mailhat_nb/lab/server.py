"""Start, stop, inspect and switch the lab: Dovecot + Postfix + sidecar.

``Lab.up()`` brings up a private mail server on 127.0.0.1 (and 127.0.0.2) high
ports that stands in for a customer's HostGator server:

* Dovecot serves IMAP (plain + STARTTLS, and implicit TLS), POP3 (both) and
  SMTP submission (plain + STARTTLS on the 25/26/587 stand-ins, implicit TLS
  on the 465 stand-in), authenticating the lab users;
* a private Postfix takes what submission relays and delivers it through
  Dovecot's LMTP into the recipient's INBOX;
* the sidecar holds the ports that misbehave at the TCP level.

Everything lives under one directory (:mod:`mailhat_nb.lab.layout`), marked
as a lab's by its ``.mailhat-lab`` file; the lab never acts on a directory
without it. The process ids ``up`` started are recorded in ``lab.json``, and
``down`` stops exactly those that are provably this lab's: their command line
must point into this lab's root (:mod:`mailhat_nb.lab.procs`). A ``lab.json``
of the wrong shape is a :class:`~mailhat_nb.errors.LabError`, never a
traceback, and ``down`` then stops nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailhat_nb.errors import LabError, LabNotRunning, reason
from mailhat_nb.lab import certs, dovecot, mailboxes, packages, postfix, procs
from mailhat_nb.lab.check import PortCheck, knock
from mailhat_nb.lab.check import starttls as starttls_check
from mailhat_nb.lab.layout import LabPaths, default_root
from mailhat_nb.lab.scenarios import (
    INSECURE_HOST,
    PROTOCOL_OF,
    SCENARIOS,
    STANDS_FOR,
    TLS_SERVICES,
    Scenario,
    bound_services,
)
from mailhat_nb.lab.scenarios import get as get_scenario

#: Internal and extra ports, as offsets from the lab's port base.
EXTRA_OFFSETS = {"lmtp": 24, "relay": 525, "silent": 1, "blackhole": 2, "closed": 3}
ADDRESSES = ("127.0.0.1", "127.0.0.2")
START_TIMEOUT = 10.0


@dataclass
class LabInfo:
    """What ``lab.json`` holds: enough for any client to use the lab."""

    root: str
    scenario: str
    server: str
    domain: str
    ports: dict[str, int]
    stands_for: dict[str, int]
    ca_file: str
    presets: str
    users: list[str]
    pids: dict[str, int] = field(default_factory=dict)
    folders: dict[str, int] = field(default_factory=dict)
    started: str = ""

    def email(self, user: str = "alice") -> str:
        """The full address of lab user ``user``."""
        return f"{user}@{self.domain}"

    def to_json(self) -> str:
        """Serialise for ``lab.json`` and ``mailhat lab status --json``."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _port_free(port: int) -> bool:
    """True when a server could bind ``port`` on every lab address now.

    SO_REUSEADDR as every server sets it: connections in TIME-WAIT from a
    previous scenario do not make a port busy.
    """
    for address in ADDRESSES:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def allocate_ports(rng: random.Random | None = None) -> dict[str, int]:
    """Pick a free block of ports: ``base + 993`` stands for 993, and so on.

    The base is a random multiple of 1000 between 20000 and 59000, so two labs
    (a demo and a test run) can run side by side, and the ports stay readable.
    """
    rng = rng or random.Random()  # noqa: S311 - port choice, not security
    bases = list(range(20000, 60000, 1000))
    rng.shuffle(bases)
    for base in bases:
        ports = {name: base + std for name, std in STANDS_FOR.items()}
        ports |= {name: base + off for name, off in EXTRA_OFFSETS.items()}
        if all(_port_free(p) for p in ports.values()):
            return ports
    raise LabError("no free block of ports between 20000 and 60000 on 127.0.0.1/127.0.0.2")


def _read_pid(path: Path) -> int | None:
    """The pid in ``path``, or None while the file is missing or half written."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _await_pid(path: Path, what: str) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while (pid := _read_pid(path)) is None:
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {START_TIMEOUT:.0f}s waiting for {what}")
        time.sleep(0.05)
    return pid


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")


def _say_stderr(message: str) -> None:
    print(f"mailhat lab: {message}", file=sys.stderr)


_TEXT_FIELDS = ("root", "scenario", "server", "domain", "ca_file", "presets", "started")
_COUNT_FIELDS = ("ports", "stands_for", "pids", "folders")
_OPTIONAL = {"pids", "folders", "started"}


def _shape_problem(data: object) -> str | None:
    """What is wrong with ``data`` as the content of ``lab.json``; None when it fits."""
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        return f"it holds {kind.get(type(data), 'a number')}, not an object"
    fields = set(LabInfo.__dataclass_fields__)
    missing = sorted(fields - _OPTIONAL - data.keys())
    if missing:
        return "it lacks " + ", ".join(missing)
    for key in _TEXT_FIELDS:
        if key in data and not isinstance(data[key], str):
            return f"{key} is not a string"
    for key in _COUNT_FIELDS:
        value = data.get(key, {})
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and type(v) is int for k, v in value.items()):
            return f"{key} is not an object of whole numbers"
    if not isinstance(data["users"], list) or not all(isinstance(u, str) for u in data["users"]):
        return "users is not a list of strings"
    if data["scenario"] not in SCENARIOS:
        return f"scenario {data['scenario']!r} is not a lab scenario"
    lacking = sorted((set(STANDS_FOR) | set(EXTRA_OFFSETS)) - data["ports"].keys())
    if lacking:
        return "ports lacks " + ", ".join(lacking)
    if not all(0 < port < 65536 for port in data["ports"].values()):
        return "ports holds a number that is not a TCP port"
    if not all(pid > 0 for pid in data.get("pids", {}).values()):
        return "pids holds a number that is not a process id"
    return None


def load_info(path: Path) -> LabInfo | None:
    """Read and validate the lab state file ``path``; None when there is none.

    Raises
    ------
    LabError
        When it cannot be read or does not have the shape ``up`` writes.
    """
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise LabError(f"cannot read the lab state file {path}: {reason(exc)}") \
            from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise LabError(f"{path} is not a lab state file: it is not JSON ({exc})") from None
    problem = _shape_problem(data)
    if problem:
        raise LabError(f"{path} is not a lab state file: {problem}")
    return LabInfo(**{k: v for k, v in data.items() if k in LabInfo.__dataclass_fields__})


class Lab:
    """One lab instance, identified by its root directory."""

    def __init__(self, root: Path | str | None = None) -> None:
        # Absolute, so every command line the lab starts names its root in full
        # (procs.owns needs that); symlinks are kept: the path stays short.
        self.paths = LabPaths(Path(os.path.abspath(root or default_root())))

    # ------------------------------------------------------------------ queries

    def info(self) -> LabInfo:
        """The running lab's ``lab.json``.

        Raises
        ------
        LabNotRunning
            When the lab is not up (no ``lab.json``, or its Dovecot is gone or
            is not this lab's).
        LabError
            When the directory is not a lab's or ``lab.json`` is malformed.
        """
        info = self._state()
        if info is None:
            raise LabNotRunning(
                f"no lab is running in {self.paths.root}: start it with `mailhat lab up`")
        if not procs.is_running(self.paths, "dovecot", info.pids.get("dovecot", -1)):
            raise LabNotRunning(
                f"the lab in {self.paths.root} is not running: start it with `mailhat lab up`"
            )
        return info

    def is_running(self) -> bool:
        """True when this lab's Dovecot is up.

        A malformed ``lab.json`` or a directory that is not a lab's raises
        :class:`LabError`: whether a lab runs there cannot be told.
        """
        try:
            self.info()
        except LabNotRunning:
            return False
        return True

    def password(self, user: str = "alice") -> str:
        """The password of lab user ``user`` (never printed by the package)."""
        return mailboxes.read_passwords(self.paths)[user]

    def checks(self, info: LabInfo | None = None, timeout: float = 1.0) -> list[PortCheck]:
        """Knock on every client-facing and extra port and report what each did."""
        info = info or self.info()
        jobs = [(name, PROTOCOL_OF[name], info.server, info.ports[name], name in TLS_SERVICES)
                for name in STANDS_FOR]
        jobs += [(name, "imap", "127.0.0.1", info.ports[name], False)
                 for name in ("silent", "blackhole", "closed")]
        # Knock in parallel: silent and filtered ports each cost a full timeout.
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(knock, *job, timeout) for job in jobs]
            return [f.result() for f in futures]

    def expected(self, scenario: Scenario) -> dict[str, str]:
        """Service -> the behaviour :func:`check.knock` should see in ``scenario``."""
        expect = {name: "closed" for name in STANDS_FOR}
        expect |= {name: "greets" for name in bound_services(scenario)}
        expect |= {name: "tls_fails" for name in _broken_tls(scenario) & TLS_SERVICES}
        expect |= {name: "silent" for name in scenario.silent}
        expect |= {name: "blackhole" for name in scenario.blackhole}
        expect |= {"silent": "silent", "blackhole": "blackhole", "closed": "closed"}
        return expect

    # ------------------------------------------------------------------ lifecycle

    def up(self, scenario: str = "normal", install: bool = True) -> LabInfo:
        """Start the lab (idempotent: a running lab is returned as it is).

        Parameters
        ----------
        scenario:
            The scenario to start in (see :mod:`mailhat_nb.lab.scenarios`).
        install:
            Install Debian's Dovecot and Postfix packages when missing (needs
            root and apt).
        """
        if self.is_running():
            return self.info()
        if install:
            packages.ensure()
        else:
            packages.require()
        if os.geteuid() != 0:
            raise LabError("the lab must be started as root: Dovecot's master runs as root")
        chosen = get_scenario(scenario)
        self._prepare()
        ports = allocate_ports()
        folders = self._mailboxes()
        info = LabInfo(
            root=str(self.paths.root), scenario=chosen.name, server=chosen.server,
            domain=mailboxes.DOMAIN, ports=ports, stands_for=dict(STANDS_FOR),
            ca_file=str(self.paths.ca_file), presets=str(self.paths.presets),
            users=[f"{u}@{mailboxes.DOMAIN}" for u in mailboxes.USERS],
            folders=folders, started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        self._write_dovecot_conf(info, chosen)
        # Transitional: the lab's SMTP moves to Exim; Postfix runs only where
        # it is still installed (sending then fails, everything else works).
        relay = postfix.MASTER.exists()
        if relay:
            postfix.write_config(self.paths, ports)
        write_presets(self.paths.presets, ports)
        try:
            info.pids["dovecot"] = self._start_dovecot()
            if relay:
                info.pids["postfix"] = self._start_postfix()
            info.pids["sidecar"] = self._start_sidecar(info, chosen)
            self._write_info(info)
            self._await(info, chosen)
        except BaseException:
            self._stop_pids(info.pids)
            self.paths.info.unlink(missing_ok=True)
            raise
        return info

    def down(self, say: Callable[[str], None] | None = None) -> list[str]:
        """Stop exactly the processes ``up`` started; return what was stopped.

        A pid in ``lab.json`` is stopped only when its command line points
        into this lab's root; any other, and any name ``up`` does not write,
        is left alone and reported through ``say`` (default: stderr).

        Raises
        ------
        LabError
            When ``lab.json`` is malformed or the directory is not a lab's;
            nothing is stopped then.
        """
        try:
            info = self._state()
        except LabError as exc:
            raise LabError(f"{exc}; stopped nothing") from exc
        if info is None:
            return []
        stopped = self._stop_pids(info.pids, say)
        self.paths.info.unlink(missing_ok=True)
        return stopped

    def set_scenario(self, name: str) -> LabInfo:
        """Switch the running lab to scenario ``name`` and wait until it holds."""
        chosen = get_scenario(name)
        info = self.info()
        before = get_scenario(info.scenario)
        self._stop_pids({"sidecar": info.pids.pop("sidecar", -1)})
        self._write_dovecot_conf(info, chosen)
        if bound_services(before) == bound_services(chosen):
            # Same ports: a reload switches certificates and auth settings, and
            # connections already open keep going.
            self.doveadm("reload")
        else:
            # Ports move between Dovecot and the sidecar. A reload is not enough:
            # the login processes still proxying TLS connections keep the old
            # listening sockets open, so the ports would never come free.
            self._stop_pids({"dovecot": info.pids.pop("dovecot", -1)})
            info.pids["dovecot"] = self._start_dovecot()
        info.scenario, info.server = chosen.name, chosen.server
        freed = [info.ports[s] for s in (*chosen.silent, *chosen.blackhole)]
        try:
            _wait(lambda: all(_port_free(p) for p in freed), START_TIMEOUT,
                  "Dovecot to release the scenario's ports")
        except LabError as exc:
            raise LabError(f"{exc}; still held: {_holders(freed)}") from None
        info.pids["sidecar"] = self._start_sidecar(info, chosen)
        self._write_info(info)
        self._await(info, chosen)
        return info

    def purge(self) -> None:
        """Stop the lab and delete its directory (mail, keys, state).

        Refused (:class:`LabError`) for a directory that is not a lab's.
        """
        if self.paths.root.exists():
            self.require_lab_dir("delete it")
        self.down()
        shutil.rmtree(self.paths.root, ignore_errors=True)

    def require_lab_dir(self, action: str) -> None:
        """Raise :class:`LabError` unless the root holds the lab marker.

        ``action`` completes "refusing to ...", for the message.
        """
        if not self.paths.marker.is_file():
            raise LabError(
                f"{self.paths.root} is not a lab directory (it has no "
                f"{self.paths.marker.name} marker): refusing to {action}")

    # ------------------------------------------------------------------ helpers

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm -c <lab config> ARGS`` and return its output.

        Pass ``-u USER`` inside ``args`` after the full sub-command
        (``"mailbox", "status", "-u", "bob@localhost", ...``): doveadm only
        accepts it there.
        """
        cmd = ["doveadm", "-c", str(self.paths.dovecot_conf), *args]
        # A pipe is safe here: doveadm exits (unlike the master, which keeps stderr).
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise LabError(f"doveadm {' '.join(args[:2])} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _prepare(self) -> None:
        """Create (or adopt) the lab directory and its first-time material.

        An existing directory is adopted only when it is empty or already a
        lab: ``MAILHAT_LAB_DIR=/tmp`` must not chmod /tmp (dropping its
        sticky bit) or scatter lab files through someone else's directory.
        """
        root = self.paths.root
        try:
            if root.exists() and not root.is_dir():
                raise LabError(f"lab directory {root} exists and is not a directory")
            if root.is_dir() and any(root.iterdir()) and not self.paths.marker.exists():
                raise LabError(
                    f"{root} is not empty and is not a lab directory: choose another "
                    "MAILHAT_LAB_DIR (the lab creates and owns its directory)")
            root.mkdir(parents=True, exist_ok=True)
            self.paths.marker.touch()
            root.chmod(0o755)  # the mail user must traverse it
            self._make_material()
        except OSError as exc:
            raise LabError(f"cannot prepare the lab directory {root}: {exc}") from exc

    def _make_material(self) -> None:
        for d in (self.paths.run, self.paths.state, self.paths.log, self.paths.tls,
                  self.paths.mail):
            d.mkdir(exist_ok=True)
            d.chmod(0o755)
        if not (self.paths.tls / "server.pem").exists():
            certs.make_tls_material(self.paths.tls)
        if not self.paths.password_file.exists():
            mailboxes.write_users(self.paths, mailboxes.new_passwords())

    def _mailboxes(self) -> dict[str, int]:
        marker = self.paths.mail / "demo.json"
        if marker.exists():
            counts: dict[str, int] = json.loads(marker.read_text())
            return counts
        counts = mailboxes.import_enron(self.paths, "alice")
        for user in ("bob", "chloe", "bench"):
            mailboxes.empty_mailbox(self.paths, user)
        marker.write_text(json.dumps(counts, indent=1, sort_keys=True))
        return counts

    def _write_dovecot_conf(self, info: LabInfo, scenario: Scenario) -> None:
        files = {"server": "server", "wrong-host": "wrong-host", "expired": "expired",
                 "self-signed": "self-signed"}
        stem = files[scenario.cert]
        # Any other certificate's key does not belong to this one.
        other = next(f for f in files.values() if f != stem)
        wrong_key = self.paths.tls / f"{other}.key" if scenario.broken_key else None
        text = dovecot.render(self.paths, info.ports, scenario,
                              self.paths.tls / f"{stem}.pem", self.paths.tls / f"{stem}.key",
                              wrong_key)
        tmp = self.paths.dovecot_conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.paths.dovecot_conf)

    def _write_info(self, info: LabInfo) -> None:
        tmp = self.paths.info.with_suffix(".tmp")
        tmp.write_text(info.to_json())
        os.replace(tmp, self.paths.info)

    def _start_dovecot(self) -> int:
        pid_file = self.paths.run / "master.pid"
        pid_file.unlink(missing_ok=True)
        # The master keeps the stderr it was started with open for ever: a pipe
        # would hang us, so its output goes to a log file.
        with open(self.paths.log / "dovecot-start.log", "ab") as log:
            proc = subprocess.run(
                ["dovecot", "-c", str(self.paths.dovecot_conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30, check=False,
            )
        if proc.returncode != 0:
            tail = (self.paths.log / "dovecot-start.log").read_text(errors="replace")[-2000:]
            raise LabError(f"Dovecot did not start:\n{tail}")
        return _await_pid(pid_file, "Dovecot's master.pid")

    def _start_postfix(self) -> int:
        pid_file = postfix.pid_file(self.paths)
        pid_file.unlink(missing_ok=True)
        with open(self.paths.log / "postfix-start.log", "ab") as log:
            proc = subprocess.run(
                [str(postfix.MASTER), "-c", str(self.paths.postfix), "-w"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30, check=False,
            )
        if proc.returncode != 0:
            raise LabError(f"Postfix did not start; see {self.paths.log / 'postfix.log'}")
        return _await_pid(pid_file, "Postfix's master.pid")

    def _start_sidecar(self, info: LabInfo, scenario: Scenario) -> int:
        silent = [info.ports["silent"]] + [info.ports[s] for s in scenario.silent]
        blackhole = [info.ports["blackhole"]] + [info.ports[s] for s in scenario.blackhole]
        pid_file = self.paths.sidecar_pid
        pid_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "mailhat_nb.lab.sidecar", "--pid-file", str(pid_file),
               "--silent", *map(str, silent), "--blackhole", *map(str, blackhole)]
        with open(self.paths.log / "sidecar.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        try:
            _wait(lambda: _read_pid(pid_file) is not None or proc.poll() is not None,
                  START_TIMEOUT, "the sidecar")
        except LabError:
            proc.kill()
            raise
        if proc.poll() is not None:
            raise LabError(f"the sidecar exited; see {self.paths.log / 'sidecar.log'}")
        return proc.pid

    def _await(self, info: LabInfo, scenario: Scenario) -> None:
        """Wait until every port behaves as ``scenario`` says.

        TLS ports must also serve the scenario's certificate: after a reload,
        a login process of the old configuration may still answer.
        """
        expected = self.expected(scenario)
        want_cert = _cert_sha256(self.paths.tls / f"{scenario.cert}.pem")
        # Beyond the greeting: whether STARTTLS comes up, and whether the plain
        # IMAP port refuses passwords (LOGINDISABLED) as the scenario says.
        starttls = {s: "fails" if s in _broken_tls(scenario) else "ok"
                    for s in ("imap", "pop3") if s in bound_services(scenario)}
        refuses = not scenario.plaintext_auth and scenario.server == INSECURE_HOST
        last: list[PortCheck] = []
        deeper: list[str] = []

        def holds() -> bool:
            nonlocal last, deeper
            last = self.checks(info, timeout=0.5)
            ok = all(c.behaviour == expected[c.service] for c in last)
            certs_ok = all(c.cert_sha256 == want_cert for c in last
                           if c.service in TLS_SERVICES and c.behaviour == "greets")
            deeper = [f"{c.service}:{c.port} LOGINDISABLED {'missing' if refuses else 'shown'}"
                      for c in last if c.service == "imap" and c.behaviour == "greets"
                      and ("LOGINDISABLED" in c.detail) != refuses]
            if ok and certs_ok and not deeper:
                deeper = [f"{s}:{info.ports[s]} STARTTLS {got} (want {want})"
                          for s, want in starttls.items()
                          if (got := starttls_check(PROTOCOL_OF[s], info.server, info.ports[s],
                                                    0.5)) != want]
            return ok and certs_ok and not deeper

        try:
            _wait(holds, START_TIMEOUT, f"scenario {scenario.name!r} to hold")
        except LabError as exc:
            wrong = [f"{c.service}:{c.port} {c.behaviour} (want {expected[c.service]}) {c.detail}"
                     for c in last if c.behaviour != expected[c.service]] + deeper
            raise LabError(f"{exc}: " + "; ".join(wrong or ["certificate not switched yet"])) \
                from None

    def _state(self) -> LabInfo | None:
        """``lab.json``, validated; None when there is none.

        A ``lab.json`` in a directory without the lab marker is refused: it
        may have been copied there, and its pids are someone else's.
        """
        info_file = self.paths.info
        if not (info_file.exists() or info_file.is_symlink()):
            return None
        self.require_lab_dir(f"use its {info_file.name}")
        return load_info(info_file)

    def _stop_pids(self, pids: dict[str, int],
                   say: Callable[[str], None] | None = None) -> list[str]:
        return procs.stop(self.paths, pids, say or _say_stderr)


def _broken_tls(scenario: Scenario) -> set[str]:
    """Dovecot's IMAP and POP3 services whose TLS the scenario breaks (``broken_key``)."""
    if not scenario.broken_key:
        return set()
    return {s for s in bound_services(scenario) if PROTOCOL_OF[s] in ("imap", "pop3")}


def _holders(ports: list[int]) -> str:
    """Which processes hold ``ports`` (from ``ss``), for error messages."""
    out = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True, check=False).stdout
    wanted = tuple(f":{p} " for p in ports)
    return "; ".join(" ".join(ln.split()) for ln in out.splitlines()
                     if any(w in ln + " " for w in wanted)) or "nothing visible"


def _cert_sha256(pem_path: Path) -> str:
    import hashlib
    import ssl

    der = ssl.PEM_cert_to_DER_cert(pem_path.read_text())
    return hashlib.sha256(der).hexdigest()


# The lab presets file: the HostGator presets (same ids and labels as the
# built-in ones), pointed at the lab's stand-in ports.
_LAB_PRESETS = (
    ("hostgator-imap-ssl", "IMAP option 1", "imap", "imaps", "ssl"),
    ("hostgator-imap-none", "IMAP option 2", "imap", "imap", "none"),
    ("hostgator-smtp-ssl", "SMTP option 1", "smtp", "submissions", "ssl"),
    ("hostgator-smtp-none-25", "SMTP option 2", "smtp", "smtp", "none"),
    ("hostgator-smtp-none-26", "SMTP option 2 (port 26)", "smtp", "smtp_alt", "none"),
    ("imap-starttls-143", "IMAP 143 with STARTTLS", "imap", "imap", "starttls"),
    ("smtp-starttls-587", "SMTP 587 with STARTTLS", "smtp", "submission", "starttls"),
    ("smtp-starttls-25", "SMTP 25 with STARTTLS", "smtp", "smtp", "starttls"),
    ("smtp-starttls-26", "SMTP 26 with STARTTLS", "smtp", "smtp_alt", "starttls"),
    ("pop3-ssl-995", "POP3 995 SSL/TLS", "pop3", "pop3s", "ssl"),
    ("pop3-none-110", "POP3 110 (no encryption)", "pop3", "pop3", "none"),
)


def write_presets(path: Path, ports: dict[str, int]) -> None:
    """Write the lab presets file (DESIGN.md format plus ``stands_for``)."""
    out = [
        "# The lab's stand-ins for the HostGator presets, written by `mailhat lab up`.",
        "# `stands_for` is the standard port each lab port plays; ids match the",
        "# built-in presets so verdicts read the same against the lab.",
    ]
    for pid, label, protocol, service, security in _LAB_PRESETS:
        out += [
            "", "[[preset]]", f'id = "{pid}"', f'label = "{label}"',
            f'protocol = "{protocol}"', 'host = "{server}"', f"port = {ports[service]}",
            f'security = "{security}"', f"stands_for = {STANDS_FOR[service]}",
        ]
    path.write_text("\n".join(out) + "\n")


def scenario_names() -> list[str]:
    """All scenario names, for the CLI's choices."""
    return list(SCENARIOS)


def as_dict(info: LabInfo, checks: list[PortCheck]) -> dict[str, Any]:
    """``lab status --json``: the info plus each port's behaviour."""
    data = asdict(info)
    data["checks"] = [asdict(c) for c in checks]
    return data
