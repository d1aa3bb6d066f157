"""Install the Debian packages the lab needs, when they are missing.

Installing Debian's Dovecot on a systemd host also starts the system service
on the standard ports, and Postfix asks debconf questions. The lab never uses
or stops those services: it only needs the binaries. We preseed Postfix with
"No configuration", run apt non-interactively, and wait for the dpkg lock
rather than failing when another apt is running.
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
    "dovecot-submissiond": "/usr/lib/dovecot/submission",
    "dovecot-lmtpd": "/usr/lib/dovecot/lmtp",
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
    lacking = missing()
    if not lacking:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        require()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["debconf-set-selections"],
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=False, env=env, capture_output=True,
    )
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    steps = [
        ["apt-get", *lock, "update", "-qq"],
        ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *lacking],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                              timeout=1800)
        if proc.returncode != 0:
            raise LabError(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-2000:]}")
    require()
