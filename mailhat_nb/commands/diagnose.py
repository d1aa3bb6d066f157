"""``mailhat diagnose``: test every preset for an account and say what to enter.

Exit codes (DESIGN.md): 0 when at least one incoming (IMAP) preset works, 1
otherwise, 2 on bad usage. "Works" means the doctor logged in over it: an
unencrypted preset the doctor only judged from the server's offer (it does
not send the password in clear text unless ``--allow-plaintext-login`` is
given) is not proof of a working login. So when only such a preset is left
(an encrypted setting failing on its certificate, say), the verdict's summary
names it with its warning and the exit status is 1; with
``--allow-plaintext-login`` and a login that worked over it, 0. A script that
acts on exit 0 thus never acts on a login nobody tried. In the JSON, the
verdict's ``incoming``/``outgoing`` likewise name only presets whose login
worked; such an untried preset is named in ``usable_untested`` instead, and
each result's ``login_tried`` says whether the password was sent on it.

Bad input (an empty option value, an address with two @, text that is not
UTF-8 or holds a line break, a directory for a file) is exit 2 with one
sentence saying what to change, before any password is asked for.

The password comes from ``--password-env VAR`` or a no-echo prompt, never
from argv.

``--crm-error TEXT`` (or ``-`` for standard input) adds what the CRM said,
understood (:mod:`mailhat_nb.diagnose.crm`), to every output and to the
verdict's summary; ``--save DIR`` keeps the run and says what changed since
the last one for the address (:mod:`mailhat_nb.diagnose.history`). A folder
that cannot be used is said, with exit 2, before the password is asked for.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from mailhat_nb.checks import check_given, check_timeout
from mailhat_nb.commands import add_dns_server
from mailhat_nb.diagnose import Account, Report, builtin_names, crm, diagnose, history
from mailhat_nb.diagnose.certificate import verified_context
from mailhat_nb.diagnose.dns import Resolver, parse_dns_server
from mailhat_nb.diagnose.doctor import DEFAULT_TIMEOUT
from mailhat_nb.diagnose.presets import load_presets
from mailhat_nb.diagnose.results import SYMBOLS, PresetResult
from mailhat_nb.errors import UsageError
from mailhat_nb.secrets import obtain


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat diagnose``."""
    parser = sub.add_parser(
        "diagnose", help="test every mail preset for an account, layer by layer",
        description="Probe IMAP, POP3 and SMTP presets (DNS, TCP, TLS, greeting, "
        "capabilities, one login each, mailbox) at once and give a verdict: which settings "
        "to enter in the CRM, or why none work. Presets without encryption are judged from "
        "what the server advertises, without sending the password (see "
        "--allow-plaintext-login). Exit 0 when an incoming preset works (a login over it "
        "succeeded), 1 when none does (including when only an unencrypted preset the doctor "
        "did not log in over is left), 2 on bad usage.",
    )
    parser.add_argument("--email", required=True, help="the customer's email address")
    parser.add_argument("--server", help="server name from the welcome email / cPanel "
                        "(e.g. gator1234.hostgator.com); leave it out to find it (discovery "
                        "from the address: see `mailhat discover`)")
    parser.add_argument("--username", help="login name (default: the full email address)")
    parser.add_argument("--presets", metavar="NAME|FILE",
                        help="built-in presets (" + ", ".join(builtin_names()) + "; "
                        "comma-separated for several), 'auto' (the provider the domain's MX "
                        "reveals) or a presets TOML file; default: by email domain, else "
                        "the discovered provider's, else hostgator")
    parser.add_argument("--password-env", metavar="VAR",
                        help="environment variable holding the password (else a prompt)")
    parser.add_argument("--ca-file", metavar="PEM",
                        help="extra CA certificates to trust (corporate CA, the lab CA)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds any one wait may take (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--send-test", action="store_true",
                        help="also send a message to the account and confirm it arrives")
    parser.add_argument("--allow-plaintext-login", action="store_true",
                        help="really log in on presets without encryption, sending the "
                        "password in clear text (one attempt each, and only after the "
                        "encrypted presets of the same protocol have had theirs); by default "
                        "the doctor never does, and judges those presets from the server's "
                        "capabilities. Only for a CRM that supports nothing but 'none'")
    add_dns_server(parser)
    parser.add_argument("--crm-error", metavar="TEXT",
                        help="what the CRM (or the customer's mail app) said, as pasted, or - "
                        "to read it from standard input (a long paste, kept out of the process "
                        "list): the doctor says what it means and what it means beside its own "
                        "result. Anything shaped like a password is masked before it is kept "
                        "or printed")
    parser.add_argument("--save", metavar="DIR",
                        help="keep this run in DIR (redacted JSON, one file per run, the folder "
                        "private) and say what changed since the last saved run for the same "
                        "address")
    parser.add_argument("--verbose", action="store_true",
                        help="also print every preset's own line (by default identical "
                        "failures are said once, with the presets they stopped)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--markdown", action="store_true",
                        help="print the ticket-ready Markdown report")
    parser.set_defaults(func=run)


#: What to say for an option given empty (see :func:`~mailhat_nb.checks.check_given`).
_NOT_EMPTY = {
    "server": "give the server name from the welcome email or cPanel (e.g. "
              "gator1234.hostgator.com), or leave --server out",
    "username": "give the login name, or leave --username out to use the full email address",
    "presets": "give a built-in name (" + ", ".join(builtin_names()) + ") or a presets file, "
               "or leave --presets out to choose by email domain",
    "ca_file": "give a PEM file of CA certificates, or leave --ca-file out",
    "crm_error": "paste what the CRM said (in quotes), or - to read it from standard input, "
                 "or leave --crm-error out",
    "save": "give a folder for the history of this customer's runs, or leave --save out",
}


def run(args: argparse.Namespace) -> int:
    """Run the diagnosis; print a table (or JSON/Markdown) and return the exit code."""
    # Option values that cannot be meant are refused before the password is asked for.
    for name, hint in _NOT_EMPTY.items():
        check_given(getattr(args, name), "--" + name.replace("_", "-"), hint)
    check_timeout(args.timeout, "--timeout")
    account = Account.from_input(args.email, "placeholder", server=args.server,
                                 username=args.username)
    # A wrong presets name or file, or an unusable CA file, is said before
    # anyone types a password for nothing.
    if args.presets is None or args.presets.strip().lower() != "auto":
        load_presets(args.presets, account.domain)
    server = parse_dns_server(args.dns_server) if args.dns_server is not None else None
    verified_context(args.ca_file)
    history_dir = history.prepare(args.save) if args.save is not None else None
    crm_text = _crm_text(args.crm_error)
    password = obtain(args.password_env, prompt=f"Password for {account.username}: ")
    account = Account.from_input(args.email, password, server=args.server,
                                 username=args.username)
    live = not args.json and not args.markdown and sys.stderr.isatty()
    progress = Progress(sys.stderr) if live else None
    report = diagnose(account, presets=args.presets, ca_file=args.ca_file,
                      timeout=args.timeout, send_test=args.send_test,
                      on_result=progress,
                      allow_plaintext_login=args.allow_plaintext_login,
                      dns_server=Resolver(server, lifetime=args.timeout))
    if progress is not None:
        progress.clear()
    if crm_text is not None:
        crm.attach(report, crm_text, secrets=[password])
    if history_dir is not None:
        history.keep(report, history_dir)
    if args.json:
        print(report.to_json())
    elif args.markdown:
        print(report.to_markdown())
    else:
        print(report.to_text(verbose=args.verbose))
    return exit_code(report)


class Progress:
    """One status line on a terminal, rewritten as each preset finishes, gone at the end.

    The answer is printed after it: a line per preset here would push the
    verdict off the screen.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.counts = {"ok": 0, "warn": 0, "fail": 0}
        self.width = 0

    def __call__(self, result: PresetResult) -> None:
        """Count ``result`` and rewrite the line."""
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        line = (f"  testing: {sum(self.counts.values())} presets done ("
                + ", ".join(f"{n} {SYMBOLS[s]}" for s, n in self.counts.items() if n) + ")")
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def clear(self) -> None:
        """Remove the line."""
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def _crm_text(given: str | None) -> str | None:
    """The CRM's error as given: the option's value, or standard input for ``-``."""
    if given != "-":
        return given
    text = sys.stdin.read(crm.MAX_READ)
    if not text.strip():
        raise UsageError("--crm-error -: nothing came on standard input; paste what the CRM "
                         "said, then end with Ctrl-D")
    return text


def exit_code(report: Report) -> int:
    """0 when an incoming preset works (see :attr:`Report.incoming_ok`), else 1."""
    return 0 if report.incoming_ok else 1
