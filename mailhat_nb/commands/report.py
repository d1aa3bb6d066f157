"""``mailhat report [--out DIR]``: the main job on the lab, as an HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailhat_nb.report import build


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat report``."""
    parser = sub.add_parser(
        "report", help="run the main job on the lab server and write an HTML report",
        description="Starts the lab if needed, runs the pipeline against its demo mailbox, "
        "writes DIR/report.html, prints its path and stops the lab if it started it.",
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="output directory")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    path = build(args.out)
    print(path)
    return 0
