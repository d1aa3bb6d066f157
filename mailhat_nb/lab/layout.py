"""Where a lab keeps its files: everything under one short directory.

The root defaults to ``/tmp/mailhat-lab`` (or ``$MAILHAT_LAB_DIR``): Dovecot's
Unix sockets live under it and a socket path may not exceed 108 bytes, so the
root must stay short. Every directory above a Maildir must be traversable by
the ``mail`` user, so the root is 0755 (``mktemp -d`` would give 0700 and every
login would then fail with "Permission denied").
"""

from __future__ import annotations

import os
from pathlib import Path

from mailhat_nb.errors import LabError

DEFAULT_ROOT = "/tmp/mailhat-lab"  # noqa: S108 - short on purpose (socket path limit), 0755
#: Longest root we accept: the deepest Dovecot socket adds ~40 bytes.
MAX_ROOT_LEN = 60


def default_root() -> Path:
    """The lab root: ``$MAILHAT_LAB_DIR`` or ``/tmp/mailhat-lab``."""
    return Path(os.environ.get("MAILHAT_LAB_DIR") or DEFAULT_ROOT)


class LabPaths:
    """Every path of one lab, derived from its root."""

    def __init__(self, root: Path) -> None:
        if len(str(root)) > MAX_ROOT_LEN:
            raise LabError(
                f"lab directory {root} is too long ({len(str(root))} > "
                f"{MAX_ROOT_LEN} characters): Dovecot's socket paths would exceed "
                "the 108-byte limit. Set MAILHAT_LAB_DIR to a shorter path."
            )
        self.root = root
        #: Marks a directory as a lab's, so the lab never adopts a foreign one.
        self.marker = root / ".mailhat-lab"
        #: ``lab.json``: ports, pids, scenario, server name, CA path.
        self.info = root / "lab.json"
        #: The generated Dovecot configuration.
        self.dovecot_conf = root / "dovecot.conf"
        #: Dovecot passwd-file (hashes only).
        self.users = root / "users"
        #: Directory (0700) holding the lab password.
        self.secrets = root / "secrets"
        #: JSON of each lab user's password (0600).
        self.password_file = self.secrets / "password"
        #: Directory of the CA and server certificates.
        self.tls = root / "tls"
        #: The lab CA, for ``--ca-file``.
        self.ca_file = self.tls / "ca.pem"
        #: Dovecot's base_dir (sockets, master.pid).
        self.run = root / "run"
        #: Dovecot's state_dir.
        self.state = root / "state"
        #: Directory of every log the lab writes.
        self.log = root / "log"
        #: Dovecot's log file.
        self.dovecot_log = self.log / "dovecot.log"
        #: Parent of each user's home (``mail/<user>/Maildir``).
        self.mail = root / "mail"
        #: Exim's directory: its configuration, password file, spool and pid.
        self.exim = root / "exim"
        #: The generated Exim configuration, passed with ``-C``.
        self.exim_conf = self.exim / "exim.conf"
        #: ``user:crypt-hash`` lines Exim checks SMTP AUTH against (hashes only).
        self.exim_passwd = self.exim / "passwd"
        #: Exim's spool (queue, message logs, hints), owned by Debian-exim.
        self.exim_spool = self.exim / "spool"
        #: Pid file of the Exim daemon.
        self.exim_pid = self.exim / "exim.pid"
        #: The lab presets file, in the DESIGN.md presets format.
        self.presets = root / "presets.toml"
        #: Pid file of the sidecar process.
        self.sidecar_pid = self.run / "sidecar.pid"
        #: Pid file of the world's web server (:mod:`mailhat_nb.lab.web`).
        self.web_pid = self.run / "web.pid"
        #: The generated unbound configuration, the world's zone files beside it.
        self.unbound_conf = root / "dns" / "unbound.conf"

    def maildir(self, user: str) -> Path:
        """The Maildir of lab user ``user`` (local part only)."""
        return self.mail / user / "Maildir"
