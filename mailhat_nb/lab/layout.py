"""Where a lab keeps its files: everything under one short directory.

The root defaults to ``/tmp/mailhat-lab`` (or ``$MAILHAT_LAB_DIR``): Dovecot's
Unix sockets live under it and a socket path may not exceed 108 bytes, so the
root must stay short. Every directory above a Maildir must be traversable by
the ``mail`` user, so the root is 0755 (``mktemp -d`` would give 0700 and every
login would then fail with "Permission denied").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mailhat_nb.errors import LabError

DEFAULT_ROOT = "/tmp/mailhat-lab"  # noqa: S108 - short on purpose (socket path limit), 0755
#: Longest root we accept: the deepest Dovecot socket adds ~40 bytes.
MAX_ROOT_LEN = 60


def default_root() -> Path:
    """The lab root: ``$MAILHAT_LAB_DIR`` or ``/tmp/mailhat-lab``."""
    return Path(os.environ.get("MAILHAT_LAB_DIR") or DEFAULT_ROOT)


@dataclass(frozen=True)
class LabPaths:
    """Every path of one lab, derived from its root."""

    root: Path

    def __post_init__(self) -> None:
        if len(str(self.root)) > MAX_ROOT_LEN:
            raise LabError(
                f"lab directory {self.root} is too long ({len(str(self.root))} > "
                f"{MAX_ROOT_LEN} characters): Dovecot's socket paths would exceed "
                "the 108-byte limit. Set MAILHAT_LAB_DIR to a shorter path."
            )

    @property
    def marker(self) -> Path:
        """Marks a directory as a lab's, so the lab never adopts a foreign one."""
        return self.root / ".mailhat-lab"

    @property
    def info(self) -> Path:
        """``lab.json``: ports, pids, scenario, server name, CA path."""
        return self.root / "lab.json"

    @property
    def dovecot_conf(self) -> Path:
        """The generated Dovecot configuration."""
        return self.root / "dovecot.conf"

    @property
    def users(self) -> Path:
        """Dovecot passwd-file (hashes only)."""
        return self.root / "users"

    @property
    def secrets(self) -> Path:
        """Directory (0700) holding the lab password."""
        return self.root / "secrets"

    @property
    def password_file(self) -> Path:
        """JSON of each lab user's password (0600)."""
        return self.secrets / "password"

    @property
    def tls(self) -> Path:
        """Directory of the CA and server certificates."""
        return self.root / "tls"

    @property
    def ca_file(self) -> Path:
        """The lab CA, for ``--ca-file``."""
        return self.tls / "ca.pem"

    @property
    def run(self) -> Path:
        """Dovecot's base_dir (sockets, master.pid)."""
        return self.root / "run"

    @property
    def state(self) -> Path:
        """Dovecot's state_dir."""
        return self.root / "state"

    @property
    def log(self) -> Path:
        """Directory of every log the lab writes."""
        return self.root / "log"

    @property
    def dovecot_log(self) -> Path:
        """Dovecot's log file."""
        return self.log / "dovecot.log"

    @property
    def mail(self) -> Path:
        """Parent of each user's home (``mail/<user>/Maildir``)."""
        return self.root / "mail"

    @property
    def exim(self) -> Path:
        """Exim's directory: its configuration, password file, spool and pid."""
        return self.root / "exim"

    @property
    def exim_conf(self) -> Path:
        """The generated Exim configuration, passed with ``-C``."""
        return self.exim / "exim.conf"

    @property
    def exim_passwd(self) -> Path:
        """``user:crypt-hash`` lines Exim checks SMTP AUTH against (hashes only)."""
        return self.exim / "passwd"

    @property
    def exim_spool(self) -> Path:
        """Exim's spool (queue, message logs, hints), owned by Debian-exim."""
        return self.exim / "spool"

    @property
    def exim_pid(self) -> Path:
        """Pid file of the Exim daemon."""
        return self.exim / "exim.pid"

    @property
    def presets(self) -> Path:
        """The lab presets file, in the DESIGN.md presets format."""
        return self.root / "presets.toml"

    @property
    def sidecar_pid(self) -> Path:
        """Pid file of the sidecar process."""
        return self.run / "sidecar.pid"

    def maildir(self, user: str) -> Path:
        """The Maildir of lab user ``user`` (local part only)."""
        return self.mail / user / "Maildir"
