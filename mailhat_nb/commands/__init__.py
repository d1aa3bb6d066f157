"""One module per ``mailhat`` subcommand, each with ``register(subparsers)``.

:func:`mailhat_nb.cli.build_parser` discovers the modules here, so adding a
subcommand never touches the others.
"""

import argparse


def add_dns_server(parser: argparse.ArgumentParser) -> None:
    """The ``--dns-server IP[:PORT]`` option (diagnose, discover, sync share it)."""
    parser.add_argument("--dns-server", metavar="IP[:PORT]",
                        help="send every DNS query to this nameserver instead of the "
                        "system's (e.g. the lab's: see `mailhat lab status`)")
