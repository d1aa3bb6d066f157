"""Start, stop, inspect and switch the lab: Dovecot + Exim + sidecar.

``Lab.up()`` brings up a private mail server on 127.0.0.1 (and 127.0.0.2) high
ports that stands in for a customer's HostGator server:

* Dovecot serves IMAP (plain + STARTTLS, and implicit TLS) and POP3 (both),
  and LMTP for delivery (:mod:`mailhat_nb.lab.dovecot`);
* Exim serves SMTP as cPanel ships it (STARTTLS on the 25/26/587 stand-ins,
  implicit TLS on the 465 stand-in, AUTH after TLS) and delivers mail for lab
  users into Dovecot over LMTP (:mod:`mailhat_nb.lab.exim`);
* the sidecar holds the ports that misbehave at the TCP level.

Everything lives under one directory (:mod:`mailhat_nb.lab.layout`), marked
as a lab's by its ``.mailhat-lab`` file; the lab never acts on a directory
without it. The process ids ``up`` started are recorded in ``lab.json``
(:mod:`mailhat_nb.lab.state`), and ``down`` stops exactly those that are
provably this lab's: their command line must point into this lab's root
(:mod:`mailhat_nb.lab.procs`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailhat_nb.errors import LabError, LabNotRunning
from mailhat_nb.lab import certs, dns, dovecot, exim, mailboxes, packages, procs
from mailhat_nb.lab import world as world_mod
from mailhat_nb.lab.check import PortCheck, knock
from mailhat_nb.lab.layout import LabPaths, default_root
from mailhat_nb.lab.ports import allocate_ports, holders, port_free
from mailhat_nb.lab.presets import write_presets
from mailhat_nb.lab.scenarios import (
    IMAP_SERVICES,
    INSECURE_HOST,
    PROTOCOL_OF,
    SMTP_SERVICES,
    STANDS_FOR,
    TLS_SERVICES,
    Scenario,
    bound_services,
)
from mailhat_nb.lab.scenarios import get as get_scenario
from mailhat_nb.lab.state import LabInfo, load_info, write_info
from mailhat_nb.lab.world import World


def _say_stderr(message: str) -> None:
    print(f"mailhat lab: {message}", file=sys.stderr)


def _dovecot_services(scenario: Scenario) -> list[str]:
    return [s for s in bound_services(scenario) if s not in SMTP_SERVICES]


def _hostile_services(scenario: Scenario) -> tuple[str, ...]:
    """The IMAP services the sidecar's hostile server holds in ``scenario``."""
    return IMAP_SERVICES if scenario.hostile else ()


def _broken_key(scenario: Scenario) -> list[str]:
    """Dovecot's services whose TLS the scenario breaks (``broken_key``: IMAP and POP3)."""
    return _dovecot_services(scenario) if scenario.broken_key else []


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
        """Knock on every client-facing and extra port and report what each did.

        Plain ports are also asked for STARTTLS: whether it works is part of
        what a scenario sets (not of the sidecar's hostile server: its
        misbehaviour may start right after the greeting).
        """
        info = info or self.info()
        hostile = _hostile_services(get_scenario(info.scenario))
        jobs = [(name, PROTOCOL_OF[name], info.server, info.ports[name], name in TLS_SERVICES,
                 name not in TLS_SERVICES and name not in hostile)
                for name in STANDS_FOR]
        jobs.append(("relay", "smtp", "127.0.0.1", info.ports["relay"], False, True))
        jobs += [(name, "imap", "127.0.0.1", info.ports[name], False, False)
                 for name in ("silent", "blackhole", "closed")]
        # Knock in parallel: silent and filtered ports each cost a full timeout.
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(knock, name, protocol, host, port, tls, timeout, starttls)
                       for name, protocol, host, port, tls, starttls in jobs]
            return [f.result() for f in futures]

    def expected(self, scenario: Scenario) -> dict[str, str]:
        """Service -> the behaviour :func:`check.knock` should see in ``scenario``."""
        expect = {name: "closed" for name in STANDS_FOR}
        expect |= {name: "greets" for name in (*bound_services(scenario),
                                                *_hostile_services(scenario))}
        expect |= {name: "tls_fails" if name in TLS_SERVICES else "starttls_fails"
                   for name in (*scenario.tls_key_unreadable, *_broken_key(scenario))}
        expect |= {name: "silent" for name in scenario.silent}
        expect |= {name: "blackhole" for name in scenario.blackhole}
        expect |= {"relay": "greets", "silent": "silent", "blackhole": "blackhole",
                   "closed": "closed"}
        return expect

    # ------------------------------------------------------------------ lifecycle

    def up(self, scenario: str = "normal", install: bool = True) -> LabInfo:
        """Start the lab (idempotent: a running lab is returned as it is).

        Parameters
        ----------
        scenario:
            The scenario to start in (see :mod:`mailhat_nb.lab.scenarios`).
        install:
            Install Debian's Dovecot and Exim packages when missing (needs
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
        world = world_mod.allocate()
        folders = self._mailboxes()
        info = LabInfo(
            root=str(self.paths.root), scenario=chosen.name, server=chosen.server,
            domain=mailboxes.DOMAIN, ports=ports, stands_for=dict(STANDS_FOR),
            ca_file=str(self.paths.ca_file), presets=str(self.paths.presets),
            users=[mailboxes.address(u) for u in [*mailboxes.USERS, *world_mod.USERS]],
            folders=folders, started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            world=world.to_dict(),
        )
        dovecot.write_config(self.paths, ports, chosen, world)
        exim.write_config(self.paths, ports, chosen, world)
        write_presets(self.paths.presets, ports)
        try:
            exim.trust(self.paths)
            info.pids["dovecot"] = dovecot.start(self.paths)
            info.pids["exim"] = exim.start(self.paths)
            info.pids["sidecar"] = self._start_sidecar(info, chosen)
            info.pids["unbound"] = dns.start(self.paths, world)
            info.pids["web"] = world_mod.start_web(self.paths, world)
            write_info(self.paths.info, info)
            self._await(info, chosen)
        except BaseException:
            self._stop_pids(info.pids)
            exim.distrust(self.paths)
            self.paths.info.unlink(missing_ok=True)
            raise
        return info

    def down(self, say: Callable[[str], None] | None = None) -> list[str]:
        """Stop exactly the processes ``up`` started; return what was stopped.

        A pid in ``lab.json`` is stopped only when its command line points
        into this lab's root; any other, and any name ``up`` does not write,
        is left alone and reported through ``say`` (default: stderr). This
        lab's line in Exim's ``trusted_configs`` goes too.

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
        exim.distrust(self.paths)
        self.paths.info.unlink(missing_ok=True)
        return stopped

    def set_scenario(self, name: str) -> LabInfo:
        """Switch the running lab to scenario ``name`` and wait until it holds."""
        chosen = get_scenario(name)
        info = self.info()
        before = get_scenario(info.scenario)
        self._stop_pids({"sidecar": info.pids.pop("sidecar", -1)})
        world = World.from_dict(info.world)
        dovecot.write_config(self.paths, info.ports, chosen, world)
        if _dovecot_services(before) == _dovecot_services(chosen):
            # Same ports: a reload switches certificates and auth settings, and
            # connections already open keep going.
            self.doveadm("reload")
        else:
            # Ports move between Dovecot and the sidecar. A reload is not enough:
            # the login processes still proxying TLS connections keep the old
            # listening sockets open, so the ports would never come free.
            self._stop_pids({"dovecot": info.pids.pop("dovecot", -1)})
            info.pids["dovecot"] = dovecot.start(self.paths)
        if exim.write_config(self.paths, info.ports, chosen, world):
            # Exim reads its config once, at start; connections already open
            # finish on the old one.
            self._stop_pids({"exim": info.pids.pop("exim", -1)})
            info.pids["exim"] = exim.start(self.paths)
        # Recorded before anything below can fail: a restarted Dovecot or Exim
        # that lab.json did not name would outlive `lab down`.
        write_info(self.paths.info, info)
        info.scenario, info.server = chosen.name, chosen.server
        freed = [info.ports[s]
                 for s in (*chosen.silent, *chosen.blackhole, *_hostile_services(chosen))]
        try:
            procs.wait_until(lambda: all(port_free(p) for p in freed), procs.START_TIMEOUT,
                             "Dovecot and Exim to release the scenario's ports")
        except LabError as exc:
            raise LabError(f"{exc}; still held: {holders(freed)}") from None
        info.pids["sidecar"] = self._start_sidecar(info, chosen)
        write_info(self.paths.info, info)
        self._await(info, chosen)
        return info

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
        known = (mailboxes.read_passwords(self.paths) if self.paths.password_file.exists()
                 else {})
        fresh = mailboxes.new_passwords()
        if set(fresh) - set(known) or not self.paths.exim_passwd.exists():
            # New users (a new lab, or one made before some users existed), or a
            # lab directory made before Exim: both servers get the same hashes of
            # the same passwords, and known users keep theirs.
            hashes = mailboxes.write_users(self.paths, fresh | known)
            exim.write_passwd(self.paths, hashes)
        exim.prepare(self.paths)

    def _mailboxes(self) -> dict[str, int]:
        marker = self.paths.mail / "demo.json"
        if marker.exists():
            counts: dict[str, int] = json.loads(marker.read_text())
            return counts
        counts = mailboxes.import_enron(self.paths, "alice")
        for user in ("bob", "chloe", "bench", *world_mod.USERS):
            mailboxes.empty_mailbox(self.paths, user)
        marker.write_text(json.dumps(counts, indent=1, sort_keys=True))
        return counts

    def _start_sidecar(self, info: LabInfo, scenario: Scenario) -> int:
        silent = [info.ports["silent"]] + [info.ports[s] for s in scenario.silent]
        blackhole = [info.ports["blackhole"]] + [info.ports[s] for s in scenario.blackhole]
        cmd = [sys.executable, "-m", procs.SIDECAR_MODULE, "--pid-file",
               str(self.paths.sidecar_pid), "--silent", *map(str, silent),
               "--blackhole", *map(str, blackhole)]
        if scenario.hostile:
            cmd += ["--hostile", scenario.hostile, str(info.ports["imap"]),
                    str(info.ports["imaps"]), "--cert", str(self.paths.tls / "server.pem"),
                    "--key", str(self.paths.tls / "server.key")]
        return procs.spawn(cmd, self.paths.sidecar_pid, self.paths.log / "sidecar.log",
                           "the sidecar")

    def _await(self, info: LabInfo, scenario: Scenario) -> None:
        """Wait until every port behaves as ``scenario`` says.

        TLS (and STARTTLS) ports must also serve the scenario's certificate:
        after a reload, a login process of the old configuration may still
        answer.
        """
        expected = self.expected(scenario)
        want_cert = _cert_sha256(self.paths.tls / f"{scenario.cert}.pem")
        # Dovecot's plain IMAP port lists LOGINDISABLED exactly when it refuses
        # clear-text passwords from the scenario's client address, or has no SASL
        # PLAIN (its LOGIN command is PLAIN underneath).
        refuses = (not scenario.plaintext_auth and scenario.server == INSECURE_HOST) \
            or not scenario.auth_plain
        last: list[PortCheck] = []
        auth: list[str] = []

        def holds() -> bool:
            nonlocal last, auth
            last = self.checks(info, timeout=0.5)
            ok = all(c.behaviour == expected[c.service] for c in last)
            certs_ok = all(c.cert_sha256 == want_cert for c in last
                           if c.cert_sha256 and c.behaviour == "greets")
            auth = [f"{c.service}:{c.port} LOGINDISABLED {'missing' if refuses else 'listed'}"
                    for c in last if c.service == "imap" and c.behaviour == "greets"
                    and "imap" in _dovecot_services(scenario)
                    and ("LOGINDISABLED" in c.detail) != refuses]
            # the sidecar's hostile server names its misbehaviour in its greeting
            auth += [f"{c.service}:{c.port} greets without '{scenario.hostile}'"
                     for c in last if c.service in _hostile_services(scenario)
                     and f"sidecar: {scenario.hostile}" not in c.detail]
            return ok and certs_ok and not auth

        try:
            procs.wait_until(holds, procs.START_TIMEOUT, f"scenario {scenario.name!r} to hold")
        except LabError as exc:
            wrong = [f"{c.service}:{c.port} {c.behaviour} (want {expected[c.service]}) {c.detail}"
                     for c in last if c.behaviour != expected[c.service]] + auth
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


def _cert_sha256(pem_path: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(pem_path.read_text())
    return hashlib.sha256(der).hexdigest()
