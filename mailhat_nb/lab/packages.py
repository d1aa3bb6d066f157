"""Install the Debian packages the lab needs, when they are missing.

Dovecot serves IMAP, POP3 and LMTP; Exim (``exim4-daemon-light``, what cPanel
runs) serves SMTP. Installing them on a systemd host also starts the system
services on the standard ports; the lab never uses or stops those: it only
needs the binaries. Debian's exim4 and postfix packages conflict (each is the
system MTA), so installing Exim removes Postfix; every lab package is named in
the one apt transaction, so apt can never resolve a conflict by removing the
lab's Dovecot. apt runs non-interactively and waits for the dpkg lock rather
than failing when another apt is running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from mailhat_nb.errors import LabError

#: Debian package -> a file it provides that the lab runs.
PACKAGES: dict[str, str] = {
    "dovecot-core": "/usr/sbin/dovecot",
    "dovecot-imapd": "/usr/lib/dovecot/imap",
    "dovecot-pop3d": "/usr/lib/dovecot/pop3",
    "dovecot-lmtpd": "/usr/lib/dovecot/lmtp",
    "exim4-daemon-light": "/usr/sbin/exim4",
    # The world's resolver (mailhat_nb.lab.dns).
    "unbound": "/usr/sbin/unbound",
}


def missing() -> list[str]:
    """Packages whose binaries are not on this machine."""
    return [pkg for pkg, path in PACKAGES.items() if not Path(path).exists()]


def require() -> None:
    """Raise :class:`LabError` naming what to install, if anything is missing."""
    lacking = missing()
    if lacking:
        raise LabError(
            "the lab needs Debian packages that are not installed: "
            + " ".join(lacking)
            + " (run `mailhat lab up` as root to install them)"
        )


def ensure() -> None:
    """Install missing packages with apt-get (root only)."""
    if not missing():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        require()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    steps = [
        ["apt-get", *lock, "update", "-qq"],
        # Every lab package, installed or not: apt keeps what it is asked to install.
        ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                              timeout=1800)
        if proc.returncode != 0:
            raise LabError(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-2000:]}")
    require()
