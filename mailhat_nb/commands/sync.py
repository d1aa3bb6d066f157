"""``mailhat sync`` (IMAP headers into the store) and ``mailhat import`` (mbox / Maildir).

The password comes from the environment variable named by ``--password-env``
or from a no-echo prompt, never from argv; it is held in a
:class:`~mailhat_nb.secrets.Secret` and revealed only to the server's LOGIN.
Progress goes to stderr as a tqdm bar when stderr is a terminal; the result
goes to stdout (one line per folder, or ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mailhat_nb import secrets
from mailhat_nb.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat sync`` and ``mailhat import``."""
    sync = sub.add_parser(
        "sync", help="sync an IMAP account's headers into a local store",
        description="Fetch every folder's message headers over IMAP (read-only: no flag is "
        "ever changed) into a Parquet store. Incremental (only what changed since the last "
        "run) and resumable (an interrupted sync continues where it stopped).",
    )
    sync.add_argument("--email", required=True, metavar="ADDR", help="the account's address")
    sync.add_argument("--server", required=True, metavar="HOST", help="IMAP server name")
    sync.add_argument("--port", type=int, metavar="N",
                      help="port (default 993 for ssl, 143 otherwise)")
    sync.add_argument("--security", choices=["ssl", "starttls", "none"], default="ssl",
                      help="ssl = implicit TLS (993), starttls, or none (clear text!)")
    sync.add_argument("--username", metavar="USER", help="login name (default: --email)")
    sync.add_argument("--password-env", metavar="VAR",
                      help="environment variable holding the password (else: prompt)")
    sync.add_argument("--ca-file", metavar="PEM",
                      help="also trust this CA (a corporate CA, the lab's)")
    sync.add_argument("--folders", nargs="+", metavar="NAME",
                      help="only these folders (as the server names them); default: all")
    sync.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    sync.add_argument("--json", action="store_true", help="print the summary as JSON")
    sync.set_defaults(func=_sync)

    imp = sub.add_parser(
        "import", help="import an mbox file or a Maildir tree into a local store",
        allow_abbrev=False,
        description="Read messages offline (a Google Takeout mbox, a Maildir tree such as an "
        "Enron custodian's) into the same store and frames as `mailhat sync`. Importing the "
        "same source again replaces what it imported before.",
    )
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--mbox", metavar="FILE", help="an mbox file")
    source.add_argument("--maildir", metavar="DIR", help="a Maildir tree (or Enron-style folders)")
    imp.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    imp.add_argument("--account", metavar="NAME",
                     help="account name in the store (default: from the source)")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(func=_import)


def _sync(args: argparse.Namespace) -> int:
    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings

    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {args.port}")
    if args.ca_file and not Path(args.ca_file).is_file():
        raise UsageError(f"--ca-file {args.ca_file}: no such file")
    settings = ImapSettings(email=args.email, host=args.server, port=args.port,
                            security=args.security, username=args.username,
                            ca_file=args.ca_file)
    password = secrets.obtain(args.password_env, f"Password for {settings.login}: ")
    if args.security == "none":
        print(f"warning: --security none sends the password for {settings.login} "
              "unencrypted", file=sys.stderr)
    bar = _progress_bar()
    try:
        summary = sync_account(settings, password, args.store, folders=args.folders,
                               progress=bar)
    finally:
        if bar is not None:
            bar.close()
    status = 1 if summary.failed else 0
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        return status
    print(f"{summary.account}: {summary.new} new, {summary.flags_changed} flag changes, "
          f"{summary.expunged} expunged; {summary.rows} messages in {len(summary.folders)} "
          f"folders; {summary.seconds:.1f}s"
          + (f" ({summary.reconnects} reconnects)" if summary.reconnects else ""))
    for f in summary.folders:
        extra = f" (retired {f.retired} rows)" if f.retired else ""
        if f.error:
            extra += f": {f.error}"
        print(f"  {f.folder:<40} {f.action:<9} {f.rows:>8} rows  +{f.new} "
              f"~{f.flags_changed} -{f.expunged}{extra}")
    print(f"store: {Path(args.store).resolve()}")
    return status


def _progress_bar() -> Any:
    if not sys.stderr.isatty():
        return None
    from mailhat_nb.sync.progress import TqdmProgress

    return TqdmProgress(file=sys.stderr)


def _import(args: argparse.Namespace) -> int:
    from mailhat_nb.sync.importer import Kind, import_source

    kind: Kind = "mbox" if args.mbox else "maildir"
    path = Path(args.mbox or args.maildir)
    if not path.exists():
        raise UsageError(f"--{kind} {path}: no such file or directory")
    summary = import_source(kind, path, args.store, account=args.account)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"imported {summary['rows']} messages of {summary['account']} from {path} "
          f"into {len(summary['folders'])} folders")
    for folder, rows in summary["folders"].items():
        print(f"  {folder:<40} {rows:>8} rows")
    print(f"store: {Path(args.store).resolve()}")
    return 0
