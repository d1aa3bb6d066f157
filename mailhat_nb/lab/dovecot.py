"""The lab's Dovecot: its configuration, and starting it.

The config stands in for a cPanel/HostGator server: Maildir++ folders under an
``INBOX.`` namespace with ``.`` as the hierarchy delimiter, IMAP and POP3 on
every standard security mode, and LMTP on 127.0.0.1 for the lab's Exim
(:mod:`mailhat_nb.lab.exim`) to deliver into. The lab's own quirks:

* every path (base_dir, state_dir, logs, users, mail) lives under the lab
  root, and every dovecot/doveadm call passes ``-c`` so the system config is
  never read;
* mail belongs to Debian's ``mail`` user (uid 8): Dovecot refuses root;
* the auth penalty is off (``anvil-auth-penalty`` mode 0) and
  ``auth_failure_delay`` is short, so a wrong-password test does not slow the
  tests after it by seconds;
* listeners bind 127.0.0.1 and 127.0.0.2 (see :data:`scenarios.INSECURE_HOST`);
* the passwd-file holds SHA512-CRYPT hashes, the ones Exim checks SMTP AUTH
  against too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mailhat_nb.errors import LabError
from mailhat_nb.lab import procs
from mailhat_nb.lab import world as world_mod
from mailhat_nb.lab.certs import CERT_NAMES
from mailhat_nb.lab.layout import LabPaths
from mailhat_nb.lab.scenarios import STANDS_FOR, TLS_SERVICES, Scenario, bound_services
from mailhat_nb.lab.world import World

LISTEN = "127.0.0.1, 127.0.0.2"
#: The lab's own addresses (the world of :mod:`mailhat_nb.lab.world` lives in 127.0.N.0/24).
LAB_NETWORK = "127.0.0.0/24"

#: Dovecot's login services and the lab listeners each serves.
_LISTENERS = {"imap-login": ("imap", "imaps"), "pop3-login": ("pop3", "pop3s")}

_TEMPLATE = """\
# Written by `mailhat lab`; rewritten on every `mailhat lab scenario`.
# Scenario: {scenario}
instance_name = {instance}
base_dir = {run}
state_dir = {state}
log_path = {log}
info_log_path = {log}
protocols = {protocols}
listen = {listen}
hostname = lab.localhost
login_greeting = mailhat lab ready.

ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
{ssl_dh}
disable_plaintext_auth = {disable_plaintext}
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
auth_cache_size = 0
mail_max_userip_connections = 200

passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {users}
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={mail}/%n
}}
mail_location = maildir:~/Maildir
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
last_valid_uid = 8
first_valid_gid = 8

namespace inbox {{
  inbox = yes
  prefix = INBOX.
  separator = .
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox spam {{
    special_use = \\Junk
    auto = subscribe
  }}
}}

service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{listeners}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
"""


#: What Dovecot 2.3 (Debian's) advertises after login, in its order. Dovecot can
#: only replace the list (``imap_capability``), not take from it, so a scenario
#: that drops a capability (:attr:`Scenario.imap_without`) gives this list
#: without it; the same list then serves before login, where Dovecot adds
#: STARTTLS, LOGINDISABLED and the AUTH= mechanisms itself.
IMAP_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
)


def _capabilities(scenario: Scenario) -> str:
    """The ``imap_capability`` line of a scenario that drops some; empty otherwise."""
    if not scenario.imap_without:
        return ""
    kept = [c for c in IMAP_CAPABILITIES.split() if c not in scenario.imap_without]
    return f"\nimap_capability = {' '.join(kept)}\n"


#: On the lab's own addresses (never the world's), IMAP and POP3 serve ``{key}``
#: instead of the certificate's own key.
_WRONG_KEY = """
local {network} {{
  protocol imap {{
    ssl_key = <{key}
  }}
  protocol pop3 {{
    ssl_key = <{key}
  }}
}}
"""


def render(paths: LabPaths, ports: dict[str, int], scenario: Scenario,
           world: World | None = None) -> str:
    """Return the dovecot.conf text for ``scenario``.

    Listeners of services that the scenario takes away (closed, silent,
    blackholed, or IMAP on a POP-only account) get ``port = 0``, which frees the
    port for the lab's sidecar to hold. With ``world``, the shared server of
    :mod:`mailhat_nb.lab.world` also listens on its address, on the standard
    ports, serving the certificate of its own name whatever the scenario. A
    ``broken_key`` scenario gives IMAP and POP3 on the lab's addresses another
    certificate's key: Dovecot reads it at start and fails each handshake at
    connection time.
    """
    bound = set(bound_services(scenario))
    blocks = []
    for service, names in _LISTENERS.items():
        lines = [f"service {service} {{"]
        for name in names:
            ssl = ["    ssl = yes"] if name in TLS_SERVICES else []
            lines += [f"  inet_listener {name} {{",
                      f"    port = {ports[name] if name in bound else 0}", *ssl, "  }"]
            if world is not None:
                lines += [f"  inet_listener world_{name} {{",
                          f"    address = {world.ip(world_mod.SHARED)}",
                          f"    port = {STANDS_FOR[name]}", *ssl, "  }"]
        lines.append("}")
        blocks.append("\n".join(lines))
    if world is not None:
        shared_cert = paths.tls / world_mod.SHARED_CERT
        blocks.append(f"local {world.ip(world_mod.SHARED)} {{\n"
                      f"  ssl_cert = <{shared_cert}.pem\n  ssl_key = <{shared_cert}.key\n}}")
    protocols = ["pop3", "lmtp"]
    if scenario.imap:
        protocols.insert(0, "imap")
    dh = Path("/usr/share/dovecot/dh.pem")
    text = _TEMPLATE.format(
        scenario=scenario.name,
        instance=f"mailhat-lab-{ports['imaps']}",
        run=paths.run, state=paths.state, log=paths.dovecot_log,
        protocols=" ".join(protocols), listen=LISTEN,
        cert=paths.tls / f"{scenario.cert}.pem", key=paths.tls / f"{scenario.cert}.key",
        ssl_dh=f"ssl_dh = <{dh}" if dh.exists() else "",
        disable_plaintext="no" if scenario.plaintext_auth else "yes",
        mechanisms="plain login" if scenario.auth_plain else "login",
        users=paths.users, mail=paths.mail,
        listeners="\n".join(blocks),
        lmtp=ports["lmtp"],
    ) + _capabilities(scenario)
    if not scenario.broken_key:
        return text
    other = next(stem for stem in CERT_NAMES if stem != scenario.cert)
    return text + _WRONG_KEY.format(network=LAB_NETWORK, key=paths.tls / f"{other}.key")


def write_config(paths: LabPaths, ports: dict[str, int], scenario: Scenario,
                 world: World | None = None) -> None:
    """Write dovecot.conf for ``scenario`` (atomically: a reload may read it any time)."""
    tmp = paths.dovecot_conf.with_suffix(".tmp")
    tmp.write_text(render(paths, ports, scenario, world))
    os.replace(tmp, paths.dovecot_conf)


def start(paths: LabPaths) -> int:
    """Start Dovecot's master on the written config; return its pid."""
    pid_file = paths.run / "master.pid"
    pid_file.unlink(missing_ok=True)
    start_log = paths.log / "dovecot-start.log"
    # The master keeps the stderr it was started with open for ever: a pipe
    # would hang us, so its output goes to a log file.
    with open(start_log, "ab") as log:
        proc = subprocess.run(
            ["dovecot", "-c", str(paths.dovecot_conf)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30, check=False,
        )
    if proc.returncode != 0:
        tail = start_log.read_text(errors="replace")[-2000:]
        raise LabError(f"Dovecot did not start:\n{tail}")
    return procs.await_pid(pid_file, "Dovecot's master.pid")
