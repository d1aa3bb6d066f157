"""The ``mailhat`` command: diagnose, sync, import, contacts, lab, report.

The subcommands live in the modules of :mod:`mailhat_nb.commands` (``sync``
and ``import`` share one), each exposing ``register(subparsers)``; this module
finds them, parses argv and maps
the package's one exception tree to exit codes and one-line messages, so no
user ever sees a traceback for something they can fix:

* 0 success (``diagnose``: an IMAP login worked);
* 1 the job ran and failed (``diagnose``: no IMAP login worked);
* 2 bad usage (argparse errors, :class:`~mailhat_nb.errors.UsageError`);
* 130 interrupted (Ctrl-C), 141 the reader of the output went away
  (``mailhat diagnose | head -1``), as a shell reports SIGPIPE.

A password is never accepted on the command line (it would sit in argv and
shell history): ``--password-env VAR`` names an environment variable, else a
no-echo prompt asks. Someone will still type ``--password hunter2``: it is
refused before parsing, without echoing the value, and abbreviations are off
so argparse cannot read ``--password`` as ``--password-env`` and print the
password back as a variable name.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import select
import sys
from collections.abc import Sequence
from typing import NoReturn

from mailhat_nb import __version__, commands
from mailhat_nb.errors import MailhatError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141  # as a shell reports SIGINT, SIGPIPE

#: Options someone might use to pass a password; ``--password-env`` is not one.
_PASSWORD_OPTION = re.compile(r"^--?(pas|pw|secret)[\w-]*(=.*)?$", re.IGNORECASE)
_INVALID_VALUE = re.compile(r"(invalid [\w ]*(?:value|choice)): (['\"]).*?\2(?= \(choose|$)",
                            re.DOTALL)
_REFUSED = ("a password is never taken on the command line (it would stay in the shell "
            "history and the process list): export it in an environment variable and pass "
            "--password-env VAR, or leave that out to be prompted")


class Parser(argparse.ArgumentParser):
    """argparse without abbreviations (``--password`` must not match ``--password-env``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # argparse's own arguments, passed on

    def error(self, message: str) -> NoReturn:
        """Report a usage error without echoing stray arguments (one may be a secret)."""
        if message.startswith("unrecognized arguments:"):
            names = [t.split("=", 1)[0] for t in message.split(":", 1)[1].split()
                     if t.startswith("-")]
            message = "unrecognized arguments" + (
                f" {', '.join(names)} (values not shown)" if names else " (not shown)")
        # "argument --timeout: invalid float value: 'S3cr3t'" -> value not shown.
        message = _INVALID_VALUE.sub(r"\1 (value not shown)", message)
        super().error(message)


def refuses_password(argv: Sequence[str]) -> bool:
    """True when ``argv`` tries to pass a password as an option."""
    return any(_PASSWORD_OPTION.match(arg) and not arg.startswith("--password-env")
               for arg in argv)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand found in :mod:`mailhat_nb.commands`."""
    parser = Parser(
        prog="mailhat",
        description="Diagnose mail connections, sync mailboxes, chart correspondence.",
    )
    parser.add_argument("--version", action="version", version=f"mailhat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    return parser


def _console_streams() -> None:
    """Let a terminal that cannot show ✓ or an accented name print a stand-in instead.

    ``PYTHONIOENCODING=ascii`` or a C locale would otherwise turn the first
    ✓ of a report into a ``UnicodeEncodeError`` traceback.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _stdout_gone() -> bool:
    """Whether our own output's reader went away (``| head``).

    Only then is a ``BrokenPipeError`` business as usual; one from anywhere
    else (a child process's pipe) is a fault to report. A pipe whose reader
    is gone polls as an error for its writer. When it is gone, stdout is
    pointed at /dev/null (Python's documented recipe), so the interpreter's
    final flush cannot raise again.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # captured, or closed
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    if not any(events & select.POLLERR for _, events in poller.poll(0)):
        return False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mailhat``; returns the exit code (see the module docstring)."""
    if argv is None:
        _console_streams()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "mailhat"
    try:
        parser = build_parser()  # imports every command: Ctrl-C may come in here too
        if refuses_password(argv):
            parser.print_usage(sys.stderr)
            print(f"mailhat: error: {_REFUSED}", file=sys.stderr)
            return EXIT_USAGE
        args = parser.parse_args(argv)
        command = f"mailhat {args.command}"
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError as exc:
        if _stdout_gone():
            return EXIT_BROKEN_PIPE
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except UsageError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MailhatError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
