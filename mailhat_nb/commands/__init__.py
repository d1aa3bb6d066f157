"""One module per ``mailhat`` subcommand, each with ``register(subparsers)``.

:func:`mailhat_nb.cli.build_parser` discovers the modules here, so adding a
subcommand never touches the others.
"""
