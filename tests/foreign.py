"""Foreign mail servers for the tests: Debian's Cyrus IMAP, unpacked, never installed.

The lab runs what cPanel runs (Dovecot, Exim). The doctor also meets servers
this project did not configure, whose answers differ: Cyrus answers a POP3
login too soon after the last with ``-ERR [LOGIN-DELAY]`` (RFC 2449), knows
users by a short name, and words its refusals its own way. To test against
the real thing without touching the system, the Debian packages are fetched
with ``apt-get download`` and unpacked with ``dpkg -x`` into a cache
directory (no maintainer scripts, no conflict with anything installed), and
an instance runs from there with its own configuration, state and users, on
a 127.0.0.x address, as the ``mail`` user (Cyrus's master drops root to
``cyrus_user``).

``python tests/foreign.py fetch DIR`` fills the cache (``make test`` runs
it); a test that finds no usable cache is skipped with the reason the fetch
wrote.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The packages of a Cyrus instance, and of the tool that writes its users.
CYRUS_PACKAGES = ("cyrus-common", "cyrus-imapd", "cyrus-pop3d", "sasl2-bin")
#: Libraries the packages depend on that the instance does not load (the virus
#: scanner's, Zephyr notifications'): not fetched.
NOT_NEEDED = frozenset({"libclamav12", "libzephyr4"})
#: The binaries an instance runs; each must find all its libraries.
BINARIES = ("usr/lib/cyrus/bin/master", "usr/lib/cyrus/bin/imapd", "usr/lib/cyrus/bin/pop3d",
            "usr/lib/cyrus/bin/ctl_cyrusdb", "usr/sbin/saslpasswd2")
#: Cyrus SASL's plugin for the users' database (sasldb), found through ``SASL_PATH``
#: when it comes from the cache rather than the system.
SASLDB = "libsasl2-modules-db"
#: The user the instance runs as (exists on every Debian system: base-passwd).
RUN_AS = "mail"
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "foreign"


def _installed(package: str) -> bool:
    found = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                           capture_output=True, text=True, check=False)
    return "ok installed" in found.stdout


def _library_dependencies(packages: tuple[str, ...]) -> list[str]:
    """The ``lib*`` packages ``packages`` depend on that this system lacks."""
    out = subprocess.run(["apt-cache", "depends", *packages], capture_output=True, text=True,
                         check=True).stdout
    names = {line.split(":", 1)[1].strip() for line in out.splitlines()
             if line.strip().startswith("Depends: lib")}
    return sorted(n for n in names if n not in NOT_NEEDED and not _installed(n))


def library_path(root: Path) -> str:
    """``LD_LIBRARY_PATH`` for binaries unpacked under ``root``."""
    return ":".join(str(root / d) for d in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"))


def _missing_libraries(root: Path) -> list[str]:
    env = {**os.environ, "LD_LIBRARY_PATH": library_path(root)}
    missing: set[str] = set()
    for binary in BINARIES:
        path = root / binary
        if not path.exists():
            missing.add(f"{binary} (not unpacked)")
            continue
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env,
                             check=False).stdout
        missing |= {line.split()[0] for line in out.splitlines() if "not found" in line}
    return sorted(missing)


def fetch(cache: Path = DEFAULT_CACHE) -> str | None:
    """Fetch and unpack Cyrus into ``cache``; None when usable, else why not.

    Done once: a stamp marks a usable cache, a ``reason`` file an unusable one
    (removed on the next call, which tries again).
    """
    root, stamp, reason = cache / "root", cache / "ok", cache / "reason"
    if stamp.exists():
        return None
    reason.unlink(missing_ok=True)
    why: str | None = None
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        why = "no apt-get/dpkg on this machine"
    else:
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        try:
            wanted = [*CYRUS_PACKAGES, *_library_dependencies(CYRUS_PACKAGES)]
            if not _installed(SASLDB):
                wanted.append(SASLDB)  # the users' database plugin; used from the cache
            got = subprocess.run(["apt-get", "download", "-q", *wanted], cwd=debs,
                                 capture_output=True, text=True, timeout=300, check=False)
            if got.returncode != 0:
                why = f"apt-get download {' '.join(wanted)} failed: {got.stderr.strip()[-300:]}"
            else:
                shutil.rmtree(root, ignore_errors=True)
                for deb in sorted(debs.glob("*.deb")):
                    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
                missing = _missing_libraries(root)
                if missing:
                    why = f"unpacked Cyrus lacks libraries: {', '.join(missing)}"
        except (OSError, subprocess.SubprocessError) as exc:
            why = f"fetching Cyrus failed: {exc}"
    if why is None:
        stamp.write_text("ok\n")
    else:
        cache.mkdir(parents=True, exist_ok=True)
        reason.write_text(why + "\n")
    return why


def free_port(address: str) -> int:
    """A TCP port free on ``address`` (bound, then released)."""
    with socket.create_server((address, 0)) as sock:
        return int(sock.getsockname()[1])


@dataclass
class Cyrus:
    """One Cyrus instance under ``state``, on ``address``, serving ``services``.

    ``services`` maps ``imap``/``pop3`` to a port; a protocol left out is not
    served (its port refuses, as on a POP-only account). ``users`` maps a
    short login name to its password: Cyrus without virtual domains knows
    ``alice``, not ``alice@domain``.
    """

    root: Path
    state: Path
    address: str
    services: dict[str, int]
    users: dict[str, str]
    servername: str = "cyrus.test"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        """The environment of the unpacked binaries."""
        plugins = self.root / "usr/lib/x86_64-linux-gnu/sasl2"
        return {**os.environ, "LD_LIBRARY_PATH": library_path(self.root),
                **({"SASL_PATH": str(plugins)} if plugins.is_dir() else {})}

    def start(self) -> Cyrus:
        """Write the configuration and users, start the master, wait for its ports."""
        s, bin_dir = self.state, self.root / "usr/lib/cyrus/bin"
        for sub in ("conf", "spool", "proc", "lock", "socket", "sieve"):
            (s / sub).mkdir(parents=True, exist_ok=True)
        conf = s / "imapd.conf"
        conf.write_text("\n".join([
            f"configdirectory: {s / 'conf'}", f"proc_path: {s / 'proc'}",
            f"mboxname_lockpath: {s / 'lock'}", "defaultpartition: default",
            f"partition-default: {s / 'spool'}", f"sievedir: {s / 'sieve'}",
            f"lmtpsocket: {s / 'socket/lmtp'}", f"idlesocket: {s / 'socket/idle'}",
            f"notifysocket: {s / 'socket/notify'}", f"servername: {self.servername}",
            f"cyrus_user: {RUN_AS}",
            # Debian's defaults where they make Cyrus what it is to the doctor:
            "popminpoll: 1", "allowplaintext: yes", "autocreate_quota: 0",
            "sasl_pwcheck_method: auxprop", "sasl_auxprop_plugin: sasldb",
            f"sasl_sasldb_path: {s / 'sasldb2'}", "sasl_mech_list: PLAIN LOGIN",
            "syslog_prefix: cyrus-test", ""]))
        lines = [f'  {name} cmd="{bin_dir / (name + "d")} -C {conf}" '
                 f'listen="{self.address}:{port}" prefork=0'
                 for name, port in self.services.items()]
        (s / "cyrus.conf").write_text(
            f'START {{\n  recover cmd="{bin_dir / "ctl_cyrusdb"} -r -C {conf}"\n}}\n'
            "SERVICES {\n" + "\n".join(lines) + "\n}\nEVENTS {\n}\n")
        for user, password in self.users.items():
            # The password on stdin (-p): never in argv.
            subprocess.run([str(self.root / "usr/sbin/saslpasswd2"), "-p", "-c", "-f",
                            str(s / "sasldb2"), "-u", self.servername, user],
                           input=password.encode(), env=self.env, check=True,
                           capture_output=True)
        mail = pwd.getpwnam(RUN_AS)
        for path in [s, *s.rglob("*")]:
            os.chown(path, mail.pw_uid, mail.pw_gid)
        self.proc = subprocess.Popen(
            [str(bin_dir / "master"), "-C", str(conf), "-M", str(s / "cyrus.conf"), "-D",
             "-p", str(s / "master.pid")],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 15
        for port in self.services.values():
            while True:
                try:
                    socket.create_connection((self.address, port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"Cyrus did not start on {self.address}:{port}") from None
                    time.sleep(0.1)
        return self

    def stop(self) -> None:
        """Stop the master and the services it started (its own process group)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "fetch":
        cache = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_CACHE
        problem = fetch(cache)
        print(f"foreign servers: {problem or 'Cyrus ready in ' + str(cache)}")
        sys.exit(0)  # never fails the build: the tests skip, saying why
    sys.exit("usage: python tests/foreign.py fetch [DIR]")
