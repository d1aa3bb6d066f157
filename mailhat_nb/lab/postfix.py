"""The lab's internal MTA: a private Postfix instance behind Dovecot submission.

Dovecot's submission service is what clients talk to (SMTP AUTH, STARTTLS,
implicit TLS on the 465 stand-in); it relays every accepted message to this
Postfix, which delivers to Dovecot's LMTP, so a message sent to a lab user
lands in that user's INBOX exactly as on a real server. Dovecot cannot relay
to LMTP directly (its LMTP server answers ``EHLO`` with "500 Unknown command").

The instance has its own ``config_directory``, queue and data directory under
the lab root, listens on 127.0.0.1 only, and is started by running Postfix's
``master`` directly (``postfix start`` spends seconds in its checks and logs
through a syslog socket this machine may not have).
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from mailhat_nb.lab.layout import LabPaths

MASTER = Path("/usr/lib/postfix/sbin/master")

_MAIN = """\
# Written by `mailhat lab`.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
syslog_name = mailhat-lab
maillog_file = {log}
maillog_file_prefixes = {root}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = lab.localhost
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
virtual_mailbox_domains = localhost
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
biff = no
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 10s
"""

_MASTER_CF = """\
# Written by `mailhat lab`. Nothing runs chrooted: the queue is private.
127.0.0.1:{relay} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

# Queue sub-directories and their owner/mode, as Postfix's postfix-files has them.
_QUEUE_DIRS = {
    "active": 0o700, "bounce": 0o700, "corrupt": 0o700, "defer": 0o700,
    "deferred": 0o700, "flush": 0o700, "hold": 0o700, "incoming": 0o700,
    "private": 0o700, "saved": 0o700, "trace": 0o700,
    "maildrop": 0o730, "public": 0o710,
}


def write_config(paths: LabPaths, ports: dict[str, int]) -> None:
    """Write main.cf and master.cf and create the queue with Postfix's ownership."""
    root = paths.postfix
    queue, data = root / "queue", root / "data"
    for d in (root, queue, queue / "pid"):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    postfix_uid = pwd.getpwnam("postfix").pw_uid
    postdrop_gid = grp.getgrnam("postdrop").gr_gid
    for name, mode in _QUEUE_DIRS.items():
        d = queue / name
        d.mkdir(exist_ok=True)
        os.chown(d, postfix_uid, postdrop_gid if name in ("maildrop", "public") else -1)
        d.chmod(mode)
    data.mkdir(exist_ok=True)
    os.chown(data, postfix_uid, -1)
    data.chmod(0o700)
    (root / "main.cf").write_text(
        _MAIN.format(queue=queue, data=data, log=paths.log / "postfix.log",
                     root=paths.root, lmtp=ports["lmtp"])
    )
    (root / "master.cf").write_text(_MASTER_CF.format(relay=ports["relay"]))


def pid_file(paths: LabPaths) -> Path:
    """Where Postfix's master writes its pid."""
    return paths.postfix / "queue" / "pid" / "master.pid"
