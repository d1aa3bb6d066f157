"""The lab's SMTP server: a private Exim, set up as cPanel ships it.

cPanel (and so HostGator) runs Exim. The lab runs Debian's
``exim4-daemon-light`` the same way on its stand-in ports:

* implicit TLS on the 465 stand-in, STARTTLS on the 25, 26 and 587 ones;
* AUTH PLAIN and LOGIN offered only after TLS (cPanel's "Require SSL/TLS for
  authentication"), unless the scenario allows passwords in clear text;
  a wrong password gets Exim's ``535 Incorrect authentication data``;
* the banner names the server's host name as cPanel's does
  (``220-<host> ESMTP Exim 4.96 #2 <date>``, then its two lines about bulk mail);
* relay without authentication is refused with cPanel's sentence; mail for
  a lab user is delivered into the lab's Dovecot over LMTP;
* an extra port (``relay``, 127.0.0.1 only) offers neither STARTTLS nor AUTH,
  like a bare MTA.

Debian's light daemon has no ``dovecot`` authenticator (``exim -bV`` lists
cram_md5, external and plaintext), so AUTH is the ``plaintext`` driver with
``crypteq`` against the lab users' SHA512-CRYPT hashes: Debian's own
``/etc/exim4/passwd`` scheme, fed from the same hashes as Dovecot's
passwd-file (:func:`mailhat_nb.lab.mailboxes.write_users`).

Everything lives under the lab root: the config (``-C``), spool, pid file and
logs (``log/exim-main.log`` and friends). The system's exim4 service and
config are never used. Exim keeps root, which it needs to re-exec itself for
deliveries, only for a ``-C`` file listed in ``/etc/exim4/trusted_configs``:
``up`` adds this lab's path there and ``down`` removes it again, under a lock,
leaving every other line alone. The daemon runs as ``Debian-exim``, so the
keys it serves are group-readable by it; a scenario's "unreadable key" is a
root-only copy.

The config is a fixed body plus a header of Exim macros (``LAB_*``) that
carry everything a scenario or the port block changes.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from mailhat_nb.errors import LabError
from mailhat_nb.lab import procs
from mailhat_nb.lab import world as world_mod
from mailhat_nb.lab.certs import CERT_NAMES
from mailhat_nb.lab.layout import LabPaths
from mailhat_nb.lab.mailboxes import DOMAIN
from mailhat_nb.lab.ports import ADDRESSES
from mailhat_nb.lab.scenarios import SMTP_SERVICES, STANDS_FOR, Scenario, bound_services
from mailhat_nb.lab.world import World

EXIM = Path("/usr/sbin/exim4")
TRUSTED_CONFIGS = Path("/etc/exim4/trusted_configs")
USER = "Debian-exim"
#: How often the daemon retries a deferred delivery (Dovecot restarting).
QUEUE_INTERVAL = "2s"
LOG_FILES = ("main", "reject", "panic")

_BODY = r"""
# ---------------------------------------------------------------- main
primary_hostname = LAB_HOST_NAME
# The world's shared server (mailhat_nb.lab.world) greets with its own name.
smtp_banner = ${if eq{$received_ip_address}{LAB_WORLD_IP}{LAB_WORLD_NAME}{$primary_hostname}} \
  ESMTP Exim $version_number #$compile_number $tod_full\n\
  We do not authorize the use of this system to transport unsolicited, \n\
  and/or bulk e-mail.
spool_directory = LAB_SPOOL
log_file_path = LAB_LOG_DIR/exim-%s.log
pid_file_path = LAB_PID_FILE
local_interfaces = LAB_INTERFACES
tls_on_connect_ports = LAB_SMTPS_PORT
tls_advertise_hosts = ${if eq{$received_port}{LAB_RELAY_PORT}{}{*}}
tls_certificate = ${if eq{$received_ip_address}{LAB_WORLD_IP}{LAB_WORLD_CERT}{LAB_TLS_CERT}}
# Read per connection, by Debian-exim (an expansion is never preloaded by the
# daemon): on the ports a scenario lists, the copy it cannot read.
tls_privatekey = ${if eq{$received_ip_address}{LAB_WORLD_IP}{LAB_WORLD_KEY}\
                   {${if inlist{$received_port}{LAB_KEYLESS_PORTS}\
                     {LAB_KEY_ROOT_ONLY}{LAB_KEY_READABLE}}}}
tls_verify_certificates =
# AUTH after TLS (cPanel's default); before it too where the scenario allows
# passwords in clear. Never on the relay port.
auth_advertise_hosts = ${if eq{$received_port}{LAB_RELAY_PORT}{}\
                         {${if or{{def:tls_in_cipher}{bool{LAB_AUTH_IN_CLEAR}}}{*}{}}}}
domainlist local_domains = LAB_DOMAIN
acl_smtp_auth = acl_check_auth
acl_smtp_rcpt = acl_check_rcpt
never_users = root
host_lookup =
# Exim looks up the client's name whenever its EHLO names this server (helo_lookup_domains
# defaults to "@ : @[]"), and a probe on loopback says "EHLO [127.0.0.1]": without a
# reachable nameserver that lookup stalls the EHLO for the resolver's timeout.
helo_lookup_domains =
rfc1413_hosts =
rfc1413_query_timeout = 0s
keep_environment =
smtp_accept_max = 200
smtp_connect_backlog = 128
# The queue runner starts every few seconds: not worth a log line each time.
log_selector = -queue_run

# ---------------------------------------------------------------- ACLs
begin acl

acl_check_auth:
  # Whether a password is about to cross in clear; never what follows AUTH.
  accept  logwrite = AUTH attempt ${if def:tls_in_cipher{with TLS}{without TLS}} \
                     on port $received_port

acl_check_rcpt:
  deny    !domains = +local_domains
          !authenticated = *
          message = Please turn on SMTP Authentication in your mail client. \
                    [$sender_host_address]:$sender_host_port is not permitted \
                    to relay through this server without authentication.
  require verify = recipient
  accept

# ---------------------------------------------------------------- delivery
begin routers

lab_users:
  driver = accept
  domains = +local_domains
  condition = ${lookup{$local_part@$domain}lsearch{LAB_PASSWD}{yes}{no}}
  transport = dovecot_lmtp

begin transports

dovecot_lmtp:
  driver = smtp
  protocol = lmtp
  hosts = 127.0.0.1
  port = LAB_LMTP_PORT
  allow_localhost
  hosts_avoid_tls = *

begin retry

*   *   F,1h,2s

# ---------------------------------------------------------------- AUTH
begin authenticators

PLAIN:
  driver = plaintext
  public_name = PLAIN
  # Not offered where a scenario takes SASL PLAIN away (LOGIN alone is left).
  server_advertise_condition = LAB_AUTH_PLAIN
  server_prompts = :
  server_condition = ${if crypteq{$auth3}{${lookup{$auth2}lsearch{LAB_PASSWD}{$value}{*}}}}
  server_set_id = $auth2

LOGIN:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if crypteq{$auth2}{${lookup{$auth1}lsearch{LAB_PASSWD}{$value}{*}}}}
  server_set_id = $auth1
"""


def _key(paths: LabPaths, stem: str) -> Path:
    return paths.tls / f"{stem}.key"


def _root_only_key(paths: LabPaths, stem: str) -> Path:
    """A copy of ``stem``'s key that only root can read: Exim (Debian-exim) cannot."""
    return paths.tls / f"{stem}.root-only.key"


def _macros(paths: LabPaths, ports: dict[str, int], scenario: Scenario,
            world: World | None) -> dict[str, str]:
    bound = [s for s in bound_services(scenario) if s in SMTP_SERVICES]
    listeners = [f"{address}.{ports[s]}" for s in bound for address in ADDRESSES]
    listeners.append(f"127.0.0.1.{ports['relay']}")
    smtps = [str(ports["submissions"])] if "submissions" in bound else []
    domains = [DOMAIN]
    if world is not None:
        # The shared server: every SMTP port, standard numbers, whatever the scenario.
        shared = world.ip(world_mod.SHARED)
        listeners += [f"{shared}.{STANDS_FOR[s]}" for s in SMTP_SERVICES]
        smtps.append(str(STANDS_FOR["submissions"]))
        domains += sorted(set(world_mod.USERS.values()))
    return {
        "LAB_HOST_NAME": CERT_NAMES[scenario.cert][0],
        "LAB_DOMAIN": " : ".join(domains),
        "LAB_SPOOL": str(paths.exim_spool),
        "LAB_LOG_DIR": str(paths.log),
        "LAB_PID_FILE": str(paths.exim_pid),
        "LAB_PASSWD": str(paths.exim_passwd),
        "LAB_INTERFACES": "<; " + " ; ".join(listeners),
        "LAB_SMTPS_PORT": " : ".join(smtps),
        "LAB_RELAY_PORT": str(ports["relay"]),
        "LAB_LMTP_PORT": str(ports["lmtp"]),
        "LAB_TLS_CERT": str(paths.tls / f"{scenario.cert}.pem"),
        "LAB_KEY_READABLE": str(_key(paths, scenario.cert)),
        "LAB_KEY_ROOT_ONLY": str(_root_only_key(paths, scenario.cert)),
        "LAB_KEYLESS_PORTS": ":".join(str(ports[s]) for s in scenario.tls_key_unreadable),
        "LAB_AUTH_IN_CLEAR": "yes" if scenario.smtp_plaintext_auth else "no",
        "LAB_AUTH_PLAIN": "yes" if scenario.auth_plain else "no",
        # No world: an address no connection comes in on.
        "LAB_WORLD_IP": world.ip(world_mod.SHARED) if world is not None else "0.0.0.0",
        "LAB_WORLD_NAME": world_mod.SHARED_NAME,
        "LAB_WORLD_CERT": str(paths.tls / f"{world_mod.SHARED_CERT}.pem"),
        "LAB_WORLD_KEY": str(_key(paths, world_mod.SHARED_CERT)),
    }


def render(paths: LabPaths, ports: dict[str, int], scenario: Scenario,
           world: World | None = None) -> str:
    """Return the exim.conf text for ``scenario``.

    Services the scenario takes away (closed, silent, blackholed) are simply
    not listened on, which frees their ports for the sidecar. With ``world``,
    the shared server's address gets every SMTP port too, its own banner
    name and certificate, and the customer domains are local.
    """
    header = ["# Written by `mailhat lab`; rewritten on every `mailhat lab scenario`.",
              f"# Scenario: {scenario.name}"]
    header += [f"{name} = {value}"
               for name, value in _macros(paths, ports, scenario, world).items()]
    return "\n".join(header) + "\n" + _BODY


def write_config(paths: LabPaths, ports: dict[str, int], scenario: Scenario,
                 world: World | None = None) -> bool:
    """Write exim.conf for ``scenario``; True when its text changed.

    Root-owned and not writable by others: Exim refuses a trusted config
    anyone else could edit.
    """
    text = render(paths, ports, scenario, world)
    conf = paths.exim_conf
    if conf.exists() and conf.read_text() == text:
        return False
    tmp = conf.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, conf)
    return True


def prepare(paths: LabPaths) -> None:
    """Create Exim's spool and logs; make the served keys readable by Debian-exim.

    Each key also gets a root-only copy, for the scenarios in which Exim cannot
    read its key. Run on every ``up``: cheap, and it mends a lab directory made
    before.
    """
    exim_uid, exim_gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid
    paths.exim.mkdir(exist_ok=True)
    paths.exim.chmod(0o755)
    paths.exim_spool.mkdir(exist_ok=True)
    os.chown(paths.exim_spool, exim_uid, exim_gid)
    paths.exim_spool.chmod(0o750)
    for name in LOG_FILES:
        log = paths.log / f"exim-{name}.log"
        log.touch()
        os.chown(log, exim_uid, exim_gid)
        log.chmod(0o640)
    for stem in CERT_NAMES:
        os.chown(_key(paths, stem), 0, exim_gid)
        _key(paths, stem).chmod(0o640)
        locked = _root_only_key(paths, stem)
        if not locked.exists():
            tmp = locked.with_suffix(".tmp")
            shutil.copyfile(_key(paths, stem), tmp)
            os.chown(tmp, 0, 0)
            tmp.chmod(0o600)
            os.replace(tmp, locked)


def write_passwd(paths: LabPaths, hashes: dict[str, str]) -> None:
    """Write ``address:hash`` lines for the AUTH check: root-owned, readable by Debian-exim."""
    paths.exim.mkdir(exist_ok=True)
    tmp = paths.exim_passwd.with_suffix(".tmp")
    tmp.write_text("".join(f"{address}:{digest}\n" for address, digest in hashes.items()))
    os.chown(tmp, 0, grp.getgrnam(USER).gr_gid)
    tmp.chmod(0o640)
    os.replace(tmp, paths.exim_passwd)


def command(paths: LabPaths) -> list[str]:
    """How ``up`` starts the daemon (and what :func:`procs.owns` recognises)."""
    return [str(EXIM), "-C", str(paths.exim_conf), "-bd", f"-q{QUEUE_INTERVAL}"]


def start(paths: LabPaths) -> int:
    """Start the daemon on the written config; return its pid.

    It forks into the background; its pid file appears once it listens.
    """
    paths.exim_pid.unlink(missing_ok=True)
    start_log = paths.log / "exim-start.log"
    with open(start_log, "ab") as log:
        proc = subprocess.run(command(paths), stdin=subprocess.DEVNULL, stdout=log,
                              stderr=log, timeout=30, check=False)
    if proc.returncode != 0:
        said = [start_log.read_text(errors="replace")[-1000:],
                (paths.log / "exim-panic.log").read_text(errors="replace")[-1000:]]
        raise LabError("Exim did not start:\n" + "\n".join(s for s in said if s.strip()))
    return procs.await_pid(paths.exim_pid, "Exim's pid file")


# --------------------------------------------------------------------------- trust


def _edit_trusted(paths: LabPaths, add: bool) -> None:
    """Add or remove this lab's config in ``trusted_configs``, keeping every other line.

    Several labs start and stop side by side: the read-modify-write holds an
    exclusive lock on ``/etc/exim4`` itself, and the new list replaces the
    old one in a single rename, so Exim never reads half a file.
    """
    line = str(paths.exim_conf)
    directory = TRUSTED_CONFIGS.parent
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            lines = TRUSTED_CONFIGS.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        kept = [ln for ln in lines if ln.strip() != line]
        wanted = [*kept, line] if add else kept
        if wanted == lines:
            return
        tmp = directory / f".{TRUSTED_CONFIGS.name}.mailhat-{os.getpid()}"
        tmp.write_text("".join(f"{ln}\n" for ln in wanted))
        tmp.chmod(0o644)
        os.replace(tmp, TRUSTED_CONFIGS)
    except OSError as exc:
        raise LabError(f"cannot update {TRUSTED_CONFIGS}: {exc}") from exc
    finally:
        os.close(fd)  # releases the lock


def trust(paths: LabPaths) -> None:
    """List this lab's config in ``trusted_configs`` (idempotent)."""
    _edit_trusted(paths, add=True)


def distrust(paths: LabPaths) -> None:
    """Take this lab's config out of ``trusted_configs`` again (once Exim is stopped)."""
    if TRUSTED_CONFIGS.parent.is_dir():
        _edit_trusted(paths, add=False)

