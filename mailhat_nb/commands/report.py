"""``mailhat report [--out DIR]``: the notebooks, executed against the lab, as HTML pages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mailhat_nb.app.demo import build


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mailhat report``."""
    parser = sub.add_parser(
        "report", help="run every notebook against the lab server and write an HTML report",
        description="Starts the lab if needed, executes every notebook of notebooks/ against "
        "its demo mailbox (papermill; no password among the parameters, widget state stripped "
        "before anything is written), renders each to DIR/<notebook>.html, writes the index "
        "DIR/report.html, prints its path, and stops the lab if it started it. Exits 1 (the "
        "path printed all the same) when a notebook did not run clean. Progress goes to stderr.",
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="output directory")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    """Print the report's path; exit 1 (after printing it) when a notebook did not run clean."""
    path = build(args.out)
    print(path)
    pages = json.loads((path.parent / "report.json").read_text(encoding="utf-8"))
    return 0 if all(page["ok"] for page in pages) else 1
