"""Several accounts in one sync: the accounts file, and the syncs run side by side.

``mailhat sync --accounts FILE --store DIR`` syncs a team's mailboxes into
one store (the team view of ``mailhat contacts`` reads them together). The
file is TOML, one table per account::

    [[account]]
    email = "alice@example.com"
    server = "mail.example.com"
    port = 993                       # optional: 993 for ssl, 143 otherwise
    security = "ssl"                 # optional: ssl (default) | starttls | none
    username = "alice"               # optional: the email address
    password_env = "ALICE_PASSWORD"  # optional: else a no-echo prompt
    ca_file = "lab-ca.pem"           # optional, relative to the file
    folders = ["INBOX", "Sent"]      # optional: every folder

A password never comes from the file (a ``password`` key is refused, its
value never shown): from the environment variable ``password_env`` names,
else from a prompt before the syncs start. Each account is one
:func:`~mailhat_nb.sync.engine.sync_account` call in a thread of its own,
at most ``jobs`` at a time (the work is mostly waiting on servers; each sync
starts its own parse workers when it has much to parse). An account that
fails (no password, a wrong server, a refused login, a dropped connection)
fails alone: the others finish, and its error is reported with their results.
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailhat_nb.errors import MailhatError, UsageError
from mailhat_nb.secrets import Secret
from mailhat_nb.sync.imap import ImapSettings
from mailhat_nb.sync.progress import Progress, ProgressCallback

#: Accounts synced at the same time unless told otherwise.
DEFAULT_JOBS = 4
_KEYS = frozenset({"email", "server", "port", "security", "username", "password_env",
                   "ca_file", "folders"})


@dataclass(frozen=True)
class AccountEntry:
    """One account of the accounts file: where to sync from, and where the password is."""

    settings: ImapSettings
    password_env: str | None = None
    folders: tuple[str, ...] | None = None


def load_accounts(path: Path | str, *, ca_file: str | None = None,
                  timeout: float | None = None, dns_server: str | None = None,
                  server: Callable[[str, int | None], tuple[str, int | None]] | None = None,
                  ) -> list[AccountEntry]:
    """Read and check the accounts file (module docstring) before anything connects.

    Parameters
    ----------
    path
        The TOML file.
    ca_file
        The CA file for accounts that name none (``--ca-file``).
    timeout
        The connect timeout of every account (``--timeout``).
    dns_server
        The nameserver every account's server name is looked up with
        (``--dns-server``).
    server
        Cleans a typed server name and port into (host, port), e.g. the
        command's own rules for ``--server``; default: taken as written.

    Raises
    ------
    UsageError
        An unreadable file, TOML that does not parse, no account, an unknown
        or missing key, a value of the wrong type, a ``password`` key, the
        same account twice: the message names the file and the account.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the accounts file {file}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the accounts file {file} is not valid TOML: {exc}") from exc
    tables = data.get("account")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict)
                                                             for t in tables):
        raise UsageError(f"the accounts file {file} holds no [[account]] table")
    extra = sorted(set(data) - {"account"})
    if extra:
        raise UsageError(f"the accounts file {file}: unknown key {extra[0]!r} (only "
                         "[[account]] tables)")
    out: list[AccountEntry] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, start=1):
        entry = _entry(table, f"{file}, account {number}", file.parent, ca_file,
                       {} if timeout is None else {"connect_timeout": timeout}, dns_server,
                       server)
        if entry.settings.account in seen:
            raise UsageError(f"{file}: {entry.settings.account} is listed twice")
        seen.add(entry.settings.account)
        out.append(entry)
    return out


def _entry(table: dict[str, Any], where: str, base: Path, ca_file: str | None,
           timeout: dict[str, float], dns_server: str | None,
           server: Callable[[str, int | None], tuple[str, int | None]] | None) -> AccountEntry:
    if any("pass" in str(k).lower() and k != "password_env" for k in table):
        raise UsageError(f"{where}: a password is never read from the accounts file (it "
                         "would sit on disk): name an environment variable with "
                         "password_env, or leave it out to be prompted")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; known: "
                         + ", ".join(sorted(_KEYS)))

    def needed(key: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{where}: {key} must be a non-empty string")
        return value.strip()

    def text(key: str) -> str | None:
        return None if table.get(key) is None else needed(key)

    email = needed("email")
    host = needed("server")
    port = table.get("port")
    if port is not None and (type(port) is not int or not 0 < port < 65536):
        raise UsageError(f"{where}: port must be a number between 1 and 65535")
    security = text("security") or "ssl"
    folders = table.get("folders")
    if folders is not None and (not isinstance(folders, list) or not folders
                                or not all(isinstance(f, str) and f for f in folders)):
        raise UsageError(f"{where}: folders must be a list of folder names")
    own_ca = text("ca_file")
    if own_ca is not None:
        own_ca = str(base / own_ca)  # relative to the file, as a config file means it
    ca = own_ca or ca_file
    if ca is not None and not Path(ca).is_file():
        raise UsageError(f"{where}: ca_file {ca}: no such file")
    if server is not None:
        host, port = server(host, port)
    try:
        settings = ImapSettings(email=email, host=host, port=port,
                                security=security,  # type: ignore[arg-type] # checked there
                                username=text("username"), ca_file=ca,
                                dns_server=dns_server, **timeout)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return AccountEntry(settings=settings, password_env=text("password_env"),
                        folders=tuple(folders) if folders is not None else None)


# --------------------------------------------------------------------------- running


@dataclass
class AccountRun:
    """What one account's sync did: its summary, or the error it failed with."""

    account: str
    summary: Any = None  # summary.SyncSummary (imported lazily with the engine)
    error: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether the account failed, or any of its folders did."""
        return self.error is not None or bool(self.summary is not None and self.summary.failed)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``: the account's sync summary plus ``error``."""
        base: dict[str, Any] = (self.summary.to_dict() if self.summary is not None
                                else {"account": self.account, "seconds": self.seconds})
        return {**base, "error": self.error}


class _Stopped(KeyboardInterrupt):
    """Raised inside an account's sync, at its next progress report, after Ctrl-C."""


def sync_accounts(
    entries: Sequence[tuple[AccountEntry, Secret | MailhatError]],
    store: Path | str,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Callable[[str], ProgressCallback | None] | None = None,
    finished: Callable[[AccountRun], None] | None = None,
    verify: bool = False,
) -> list[AccountRun]:
    """Sync every account into ``store``, at most ``jobs`` at a time; one failure fails alone.

    Parameters
    ----------
    entries
        Each account with its password, or the error obtaining it raised
        (that account then fails with it, without connecting).
    store
        The store directory (each account writes only its own part of it,
        under its own lock).
    jobs
        Accounts synced at the same time.
    progress
        Per account, the progress callback of its sync (or None).
    finished
        Called with each account's result as soon as it ends.
    verify
        As for :func:`~mailhat_nb.sync.engine.sync_account`.

    Returns
    -------
    list[AccountRun]
        In the order of ``entries``.

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C: each running sync stops at its next commit (what it
        committed stays), those not started never start.
    """
    from mailhat_nb.sync.engine import sync_account

    if jobs < 1:
        raise UsageError("the number of accounts synced at once must be at least 1")
    stop = threading.Event()
    lock = threading.Lock()

    def run(entry: AccountEntry, password: Secret | MailhatError) -> AccountRun:
        account = entry.settings.account
        start = time.monotonic()
        result = AccountRun(account=account)
        shown = progress(account) if progress is not None else None

        def report(event: Progress) -> None:
            if stop.is_set():
                raise _Stopped
            if shown is not None:
                shown(event)

        try:
            if stop.is_set():
                raise _Stopped
            if isinstance(password, MailhatError):
                raise password
            result.summary = sync_account(entry.settings, password, store,
                                          folders=entry.folders, progress=report,
                                          verify=verify)
        except _Stopped:
            result.error = "interrupted"
        except MailhatError as exc:
            result.error = str(exc)
        result.seconds = time.monotonic() - start
        if finished is not None:
            with lock:
                finished(result)
        return result

    pool = ThreadPoolExecutor(max_workers=min(jobs, max(len(entries), 1)),
                              thread_name_prefix="mailhat-sync")
    futures = [pool.submit(run, entry, password) for entry, password in entries]
    try:
        wait(futures)
    except KeyboardInterrupt:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [f.result() for f in futures]  # every account ended: a fault of one is raised now
