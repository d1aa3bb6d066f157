"""What the notebooks share: their parameters, the password's source, the working connection.

Kept apart from :mod:`mailhat_nb.widgets` (and free of ipywidgets) because
every decision here is a rule a support agent relies on, and a rule is
easiest to trust when a plain unit test pins it:

* **Parameters** point at the built-in lab by default. ``"lab"`` as the
  ``presets`` or ``ca_file`` parameter means "the running lab's file", found
  through :class:`~mailhat_nb.lab.Lab` (which honours ``$MAILHAT_LAB_DIR``),
  so a notebook's defaults work whichever directory the lab runs from.
* **The password** is never a parameter (papermill writes parameters into the
  saved notebook). It comes from, in this order: what the agent typed into
  the Password box; the environment variable named by ``password_env``; and,
  only for a lab account while the lab runs, the lab's own password file.
* **The working connection** (the IMAP settings the connection doctor found,
  and the password that worked) is remembered in this kernel's memory, so
  the sync panel connects without the password being typed again. It lives
  only in memory: :class:`~mailhat_nb.secrets.Secret` refuses to be pickled,
  and nothing here writes it anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from mailhat_nb.errors import LabError, LabNotRunning, UsageError

# DEFAULT_PASSWORD_ENV (the variable the notebooks read by default) lives with
# the other password rules, so the report can name it without this module.
from mailhat_nb.secrets import DEFAULT_PASSWORD_ENV as DEFAULT_PASSWORD_ENV
from mailhat_nb.secrets import Secret, check_env_name, from_env
from mailhat_nb.sync.imap import ImapSettings, Security

if TYPE_CHECKING:
    from mailhat_nb.diagnose import Report
    from mailhat_nb.lab import Lab

#: The parameter value that means "the running lab's file".
LAB = "lab"


# --------------------------------------------------------------------------- the lab


def running_lab() -> Lab | None:
    """The lab of ``$MAILHAT_LAB_DIR`` (default ``/tmp/mailhat-lab``) when it runs, else None.

    An unusable ``$MAILHAT_LAB_DIR`` counts as "no lab": the lab is a
    convenience here, never a reason for a customer's diagnosis to fail.
    """
    from mailhat_nb.lab import Lab

    try:
        lab = Lab()
        return lab if lab.is_running() else None
    except LabError:
        return None


def _lab_or_explain(what: str) -> Lab:
    lab = running_lab()
    if lab is None:
        raise UsageError(
            f"the {what} parameter says \"lab\", but the lab server is not running: start it "
            "with `make lab` (or `mailhat lab up`), or give a real value instead of \"lab\"")
    return lab


def resolve_presets(presets: str | None) -> str | None:
    """Turn the ``presets`` parameter into what :func:`~mailhat_nb.diagnose.diagnose` takes.

    ``"lab"`` becomes the running lab's presets file (the HostGator presets
    pointed at the lab's ports); ``""``, ``"auto"`` and None let the doctor
    choose by the email's domain; anything else (a built-in name such as
    ``"hostgator"``, or a file path) passes through.

    Raises
    ------
    UsageError
        ``"lab"`` while no lab runs.
    """
    text = (presets or "").strip()
    if text.lower() in ("", "auto"):
        return None
    if text.lower() == LAB:
        return _lab_or_explain("presets").info().presets
    return text


def resolve_dns_server(dns_server: str | None) -> str | None:
    """Turn the ``dns_server`` parameter into ``IP[:PORT]`` or None (the system's).

    ``"lab"`` is the running lab's resolver (its world of customer domains).

    Raises
    ------
    UsageError
        ``"lab"`` while no lab runs.
    """
    text = (dns_server or "").strip()
    if text.lower() == LAB:
        return _lab_or_explain("dns_server").info().dns_server
    return text or None


def resolve_ca_file(ca_file: str | None) -> str | None:
    """Turn the ``ca_file`` parameter into a path or None (``"lab"``: the lab's CA).

    Raises
    ------
    UsageError
        ``"lab"`` while no lab runs, or a path that is not a file (said now,
        in words, rather than as an SSL error later).
    """
    text = (ca_file or "").strip()
    if not text:
        return None
    if text.lower() == LAB:
        return _lab_or_explain("ca_file").info().ca_file
    if not os.path.isfile(os.path.expanduser(text)):
        raise UsageError(f"the CA file {text} does not exist (leave ca_file empty to trust "
                         "only the usual certificate authorities)")
    return os.path.expanduser(text)


def lab_user(email: str, lab: Lab | None) -> str | None:
    """The lab user name (``alice``) when ``email`` is an account of the running ``lab``."""
    if lab is None:
        return None
    try:
        info = lab.info()
    except LabNotRunning:
        return None
    address = email.strip().lower()
    return address.partition("@")[0] if address in {u.lower() for u in info.users} else None


# --------------------------------------------------------------------------- the password


@dataclass(frozen=True)
class Password:
    """A password and, in words, where it came from (shown to the agent, never the value)."""

    secret: Secret = field(repr=False)
    source: str


def shown_env_name(password_env: str | None) -> str:
    """``password_env`` when it may be shown on a page (a variable *name*), else "".

    The parameter is sometimes the password itself, pasted where its
    variable's name belongs: it must never become a placeholder or a hint
    on the page (:func:`find_password` says what is wrong, unseen).
    """
    name = (password_env or "").strip()
    try:
        return check_env_name(name) if name else ""
    except UsageError:
        return ""


def find_password(email: str, typed: str = "", password_env: str | None = DEFAULT_PASSWORD_ENV,
                  lab: Lab | None = None) -> Password:
    """Find the password for ``email``: typed, else the environment, else the lab's file.

    Parameters
    ----------
    email:
        The account's address (decides whether the lab fallback applies).
    typed:
        What is in the Password box ("" when empty).
    password_env:
        The NAME of the environment variable to read (None or "" to skip).
    lab:
        The running lab, if any (see :func:`running_lab`); only its own
        accounts ever get their password from it.

    Raises
    ------
    UsageError
        When there is no password anywhere; the message says where to put one
        and never contains a value.
    """
    if typed:
        return Password(Secret(typed), "from the form")
    # A password pasted where its variable's name belongs is refused unseen.
    name = (password_env or "").strip()
    if name:
        check_env_name(name)
    if name and os.environ.get(name):
        return Password(from_env(name), f"from the environment variable {name}")
    user = lab_user(email, lab)
    if user is not None and lab is not None:
        return Password(Secret(lab.password(user)),
                        f"from the lab's password file, {email} being a lab account")
    where = f" or set the environment variable {name} before starting Jupyter" if name else ""
    raise UsageError(f"no password for {email or 'this account'}: type it into the Password "
                     f"box{where}")


# --------------------------------------------------------------------------- the connection


@dataclass(frozen=True)
class Connection:
    """IMAP settings that worked, with the password that worked, for the sync.

    Attributes
    ----------
    settings:
        Host, port, security, login and CA file, as the sync takes them.
    password:
        Kept in memory only.
    label:
        What the doctor called the setting ("IMAP option 1: host, port 993, SSL/TLS").
    found_by:
        Where the settings come from, in words, for the panel to say.
    """

    settings: ImapSettings
    password: Secret = field(repr=False)
    label: str
    found_by: str

    @property
    def email(self) -> str:
        """The account's address, lower-cased (the key it is remembered under)."""
        return self.settings.account


def connection_from_report(report: Report, ca_file: str | None,
                           found_by: str = "the connection doctor",
                           dns_server: str | None = None) -> Connection | None:
    """The IMAP settings the doctor recommends, as a :class:`Connection`.

    None when no IMAP setting works cleanly: a setting that works only with
    a warning (the password unencrypted, say) is shown to the agent, but
    never handed to a sync that would use it unattended, again and again.
    """
    incoming = report.verdict.incoming
    if incoming is None or incoming.status != "ok":
        return None
    account = report.account
    settings = ImapSettings(email=account.email, host=incoming.host, port=incoming.port,
                            # the presets loader validates it: one of Security's values
                            security=cast(Security, incoming.security),
                            username=account.username, ca_file=ca_file, dns_server=dns_server)
    return Connection(settings=settings, password=account.password, label=incoming.setting(),
                      found_by=found_by)


_REMEMBERED: dict[str, Connection] = {}


def remember(connection: Connection) -> None:
    """Keep ``connection`` for this kernel's later panels (memory only)."""
    _REMEMBERED[connection.email] = connection


def recall(email: str) -> Connection | None:
    """The connection remembered for ``email`` in this kernel, if any."""
    return _REMEMBERED.get(email.strip().lower())


def forget(email: str | None = None) -> None:
    """Drop the remembered connection of ``email`` (all of them when None)."""
    if email is None:
        _REMEMBERED.clear()
    else:
        _REMEMBERED.pop(email.strip().lower(), None)
