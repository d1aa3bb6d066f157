"""``mailhat sync`` (IMAP headers into the store) and ``mailhat import`` (mbox / Maildir).

The password comes from the environment variable named by ``--password-env``
or from a no-echo prompt, never from argv; it is held in a
:class:`~mailhat_nb.secrets.Secret` and revealed only to the server's LOGIN.
Progress goes to stderr as a tqdm bar when stderr is a terminal; the result
goes to stdout (one line per folder, or ``--json``).

``mailhat sync --accounts FILE`` syncs several accounts (a team) into one
store, concurrently (:mod:`mailhat_nb.sync.accounts` holds the file format
and the runner): one progress line per account, and an account that fails
fails alone (exit 1, the others complete).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailhat_nb import secrets
from mailhat_nb.checks import check_given, check_store_arg, check_timeout
from mailhat_nb.commands import add_dns_server
from mailhat_nb.errors import UsageError
from mailhat_nb.sync.imap import CONNECT_TIMEOUT


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat sync`` and ``mailhat import``."""
    sync = sub.add_parser(
        "sync", help="sync an IMAP account's headers into a local store",
        description="Fetch every folder's message headers over IMAP (read-only: no flag is "
        "ever changed) into a Parquet store. Incremental (only what changed since the last "
        "run) and resumable (an interrupted sync continues where it stopped).",
    )
    sync.add_argument("--email", metavar="ADDR", help="the account's address")
    sync.add_argument("--server", metavar="HOST",
                      help="IMAP server name (a pasted URL or host:port is understood)")
    sync.add_argument("--accounts", metavar="FILE",
                      help="sync several accounts into the store, concurrently: a TOML file "
                      "with one [[account]] table each (email, server, port, security, "
                      "username, password_env; never a password), instead of --email and "
                      "--server")
    sync.add_argument("--jobs", type=int, default=None, metavar="N",
                      help="with --accounts: accounts synced at the same time (default 4)")
    sync.add_argument("--port", type=int, metavar="N",
                      help="port (default 993 for ssl, 143 otherwise)")
    sync.add_argument("--security", choices=["ssl", "starttls", "none"], default=None,
                      help="ssl = implicit TLS (993, the default), starttls, or none (clear "
                      "text!)")
    sync.add_argument("--username", metavar="USER", help="login name (default: --email)")
    sync.add_argument("--password-env", metavar="VAR",
                      help="environment variable holding the password (else: prompt)")
    sync.add_argument("--ca-file", metavar="PEM",
                      help="also trust this CA (a corporate CA, the lab's)")
    sync.add_argument("--folders", nargs="+", metavar="NAME",
                      help="only these folders (as the server names them); default: all")
    add_dns_server(sync)
    sync.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    sync.add_argument("--timeout", type=float, default=CONNECT_TIMEOUT, metavar="S",
                      help="seconds to wait for each step of connecting: TCP, TLS, greeting "
                      f"(default {CONNECT_TIMEOUT:g})")
    sync.add_argument("--verify", action="store_true",
                      help="read every stored part whole; set aside a folder with a damaged "
                      "part and fetch it again (slower: reads the whole store)")
    sync.add_argument("--json", action="store_true", help="print the summary as JSON")
    sync.set_defaults(func=_sync)

    imp = sub.add_parser(
        "import", help="import an mbox file or a Maildir tree into a local store",
        description="Read messages offline (a Google Takeout mbox, a Maildir tree such as an "
        "Enron custodian's) into the same store and frames as `mailhat sync`. A second source "
        "adds its folders to the account; importing the same source again replaces what it "
        "imported before.",
    )
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--mbox", metavar="FILE", help="an mbox file")
    source.add_argument("--maildir", metavar="DIR", help="a Maildir tree (or Enron-style folders)")
    imp.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    imp.add_argument("--account", metavar="NAME",
                     help="account name in the store (default: from the source)")
    imp.add_argument("--replace", action="store_true",
                     help="replace folders of the same name that another file or tree "
                     "imported (the same mailbox exported again elsewhere)")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(func=_import)


def _server(raw: str, port: int | None) -> tuple[str, int | None, list[str]]:
    """``--server`` cleaned the way the doctor cleans it, and the port to use.

    The host rules (a pasted URL, a path, spaces, an address instead of a
    server, IDN) are :func:`mailhat_nb.diagnose.normalise.normalise_server`'s,
    so ``sync`` accepts exactly what ``diagnose`` accepts. A port typed into
    the server (``mail.example.com:993``, ``imaps://host:993``) is used when
    ``--port`` is not given: the doctor ignores it because each preset brings
    its own port, but a sync has only the one the user typed.

    Returns
    -------
    host, port, notes
        The notes say what was repaired (shown on stderr).
    """
    from mailhat_nb.diagnose.normalise import normalise_server

    host, notes = normalise_server(raw)
    if host is None:
        raise UsageError("--server is empty: give the IMAP server's name")
    typed = _typed_port(raw)
    if typed is not None:
        notes = [n for n in notes if "port" not in n]
        if port is not None and port != typed:
            raise UsageError(f"--server {raw.strip()} names port {typed} but --port says "
                             f"{port}: give one")
        if port is None:
            notes.append(f"server: using the port {typed} given with the server name")
        port = typed
    return host, port, notes


def _typed_port(raw: str) -> int | None:
    """The port in ``host:port``, ``[v6]:port`` or a URL, if the user typed one.

    A bare IPv6 address (``::1``) has colons but no port. A port that is not
    a number is refused here, where ``diagnose`` would ignore it (its presets
    bring their own ports): a sync would otherwise silently use the default.
    """
    text = raw.strip()
    netloc = urlsplit(text if "://" in text else f"//{text}").netloc
    if netloc.startswith("["):
        rest = netloc.partition("]")[2]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif netloc.count(":") == 1:
        port_text = netloc.partition(":")[2]
    else:
        return None
    if not port_text:
        return None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--server {text}: {port_text!r} after ':' is not a port number")
    return int(port_text)


def _sync(args: argparse.Namespace) -> int:
    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings

    if args.accounts is not None:
        return _sync_accounts(args)
    if args.jobs is not None:
        raise UsageError("--jobs goes with --accounts")
    if not args.email or not args.server:
        raise UsageError("give the account with --email and --server (or several with "
                         "--accounts FILE)")
    args.security = args.security or "ssl"
    check_given(args.username, "--username", "give the login name, or leave --username out "
                "to use the email address")
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {args.port}")
    _check_shared(args)
    host, port, notes = _server(args.server, args.port)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    settings = ImapSettings(email=args.email, host=host, port=port,
                            security=args.security, username=args.username,
                            ca_file=args.ca_file, connect_timeout=args.timeout,
                            dns_server=args.dns_server)
    password = secrets.obtain(args.password_env, f"Password for {settings.login}: ")
    if args.security == "none":
        print(f"warning: --security none sends the password for {settings.login} "
              "unencrypted (unless the server refuses that: then nothing is sent)",
              file=sys.stderr)
    with _progress_bar() or contextlib.nullcontext() as bar:
        summary = sync_account(settings, password, args.store, folders=args.folders,
                               progress=bar, verify=args.verify)
    status = 1 if summary.failed else 0
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        return status
    _print_summary(summary)
    print(f"store: {Path(args.store).resolve()}")
    return status


def _check_shared(args: argparse.Namespace) -> None:
    """``--store``, ``--ca-file``, ``--timeout`` and ``--dns-server``: one account or several.

    Checked before any password prompt, so a typo is said first.
    """
    check_store_arg(args.store)
    check_given(args.ca_file, "--ca-file", "give a PEM file of CA certificates, or leave "
                "--ca-file out")
    check_timeout(args.timeout, "--timeout")
    if args.ca_file and not Path(args.ca_file).is_file():
        raise UsageError(f"--ca-file {args.ca_file}: no such file")
    if args.dns_server is not None:
        from mailhat_nb.diagnose.dns import parse_dns_server

        parse_dns_server(args.dns_server)


def _print_summary(summary: Any) -> None:
    """One account's result: a line for the account, one per folder."""
    print(f"{summary.account}: {summary.new} new, {summary.flags_changed} flag changes, "
          f"{summary.expunged} expunged; {summary.rows} messages in {len(summary.folders)} "
          f"folders; {summary.seconds:.1f}s"
          + (f" ({summary.reconnects} reconnects)" if summary.reconnects else ""))
    for where in summary.set_aside:
        print(f"  set aside {where}: damaged (its state record or a part); fetched again")
    for f in summary.folders:
        extra = f" (retired {f.retired} rows)" if f.retired else ""
        if f.error:
            extra += f": {f.error}"
        print(f"  {f.folder:<40} {f.action:<9} {f.rows:>8} rows  +{f.new} "
              f"~{f.flags_changed} -{f.expunged}{extra}")


def _progress_bar(**where: Any) -> Any:
    if not sys.stderr.isatty():
        return None
    from mailhat_nb.sync.progress import TqdmProgress

    return TqdmProgress(file=sys.stderr, **where)


#: Options of one account: with --accounts they belong in the file.
_ONE_ACCOUNT = ("email", "server", "port", "security", "username", "password_env", "folders")


def _sync_accounts(args: argparse.Namespace) -> int:
    """``mailhat sync --accounts FILE``: every account of the file, side by side."""
    from mailhat_nb.errors import MailhatError
    from mailhat_nb.secrets import Secret
    from mailhat_nb.sync.accounts import DEFAULT_JOBS, AccountRun, load_accounts, sync_accounts

    given = [f"--{o.replace('_', '-')}" for o in _ONE_ACCOUNT if getattr(args, o) is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: with --accounts, each account's settings are "
                         "in the file")
    check_given(args.accounts, "--accounts", "give the TOML file of accounts")
    jobs = DEFAULT_JOBS if args.jobs is None else args.jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    _check_shared(args)

    def server(raw: str, port: int | None) -> tuple[str, int | None]:
        host, port, _ = _server(raw, port)
        return host, port

    entries = load_accounts(args.accounts, ca_file=args.ca_file, timeout=args.timeout,
                            dns_server=args.dns_server, server=server)
    # Every password first (prompts one after the other), then the syncs run
    # together; a password missing for one account fails that account alone.
    passwords: list[tuple[Any, Secret | MailhatError]] = []
    for entry in entries:
        try:
            passwords.append((entry, secrets.obtain(
                entry.password_env, f"Password for {entry.settings.login}: ")))
        except UsageError as exc:
            passwords.append((entry, exc))
        if entry.settings.security == "none":
            print(f"warning: security none sends the password for {entry.settings.login} "
                  "unencrypted", file=sys.stderr)
    width = max(len(e.settings.account) for e in entries)
    bars = {e.settings.account: _progress_bar(position=i, label=e.settings.account.ljust(width))
            for i, e in enumerate(entries)}

    def ended(run: AccountRun) -> None:
        if bars[run.account] is None:  # no live bars: one line per account as it ends
            print(f"{run.account}: {_outcome(run)}", file=sys.stderr)

    try:
        runs = sync_accounts(passwords, args.store, jobs=jobs, progress=bars.get,
                             finished=ended, verify=args.verify)
    finally:
        for bar in bars.values():
            if bar is not None:
                bar.close()
    status = 1 if any(r.failed for r in runs) else 0
    if args.json:
        print(json.dumps({"store": str(Path(args.store).resolve()),
                          "accounts": [r.to_dict() for r in runs],
                          "failed": [r.account for r in runs if r.failed]},
                         indent=2, ensure_ascii=False))
        return status
    for run in runs:
        if run.summary is not None:
            _print_summary(run.summary)
        else:
            print(f"{run.account}: {_outcome(run)}")
    failed = [r.account for r in runs if r.failed]
    print(f"{len(runs) - len(failed)} of {len(runs)} accounts synced"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    print(f"store: {Path(args.store).resolve()}")
    return status


def _outcome(run: Any) -> str:
    """One account's result in a few words."""
    if run.error is not None:
        return f"failed: {run.error}"
    summary = run.summary
    folders = f"; {len(summary.failed)} folder(s) failed" if summary.failed else ""
    return (f"{summary.new} new, {summary.rows} messages in {len(summary.folders)} folders"
            f"{folders}; {run.seconds:.1f}s")


def _import(args: argparse.Namespace) -> int:
    from mailhat_nb.sync.importer import Kind, import_source

    kind: Kind = "mbox" if args.mbox is not None else "maildir"
    given: str = args.mbox if args.mbox is not None else args.maildir
    check_given(given, f"--{kind}",
                f"give the {'file' if kind == 'mbox' else 'directory'} to import")
    path = Path(given)
    check_store_arg(args.store)
    if not path.exists():
        raise UsageError(f"--{kind} {path}: no such file or directory")
    summary = import_source(kind, path, args.store, account=args.account,
                            replace=args.replace)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"imported {summary['rows']} messages of {summary['account']} from {path} "
          f"into {len(summary['folders'])} folders")
    for folder, rows in summary["folders"].items():
        print(f"  {folder:<40} {rows:>8} rows")
    for where in summary["skipped"]:
        print(f"  skipped {where}: no file there starts like an email")
    for where in summary["set_aside"]:
        print(f"  set aside {where}: damaged (its state record or a part); imported again")
    print(f"store: {Path(args.store).resolve()}")
    return 0
