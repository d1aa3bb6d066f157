"""The ``mailhat`` command: diagnose, sync, import, contacts, lab, report.

Each subcommand lives in its own module under :mod:`mailhat_nb.commands` and
exposes ``register(subparsers)``; this module finds them, parses argv and maps
the package's one exception tree to exit codes and one-line messages, so no
user ever sees a traceback for something they can fix:

* 0 success (``diagnose``: at least one incoming preset works);
* 1 the job ran and failed (``diagnose``: nothing incoming works);
* 2 bad usage (argparse errors, :class:`~mailhat_nb.errors.UsageError`).

A password is never accepted on the command line (it would sit in argv and
shell history): ``--password-env VAR`` names an environment variable, else a
no-echo prompt asks.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from mailhat_nb import __version__, commands
from mailhat_nb.errors import MailhatError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand found in :mod:`mailhat_nb.commands`."""
    parser = argparse.ArgumentParser(
        prog="mailhat",
        description="Diagnose mail connections, sync mailboxes, chart correspondence.",
    )
    parser.add_argument("--version", action="version", version=f"mailhat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mailhat``; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"mailhat {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MailhatError as exc:
        print(f"mailhat {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"mailhat {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
