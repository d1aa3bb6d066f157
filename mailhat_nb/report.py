"""The demo report: the main job run on the lab, written as one HTML page.

``mailhat report`` (and ``make demo``) starts the lab when it is not already
running, runs every stage of the pipeline that exists against the demo
mailbox, writes ``<out>/report.html`` and stops the lab again if it started it.
Each stage is a function returning an HTML section, so a failing stage is
reported in the page instead of aborting the others.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailhat_nb import __version__
from mailhat_nb.errors import MailhatError
from mailhat_nb.lab import SCENARIOS, Lab, LabInfo


@dataclass
class Context:
    """What every stage receives: the running lab and the output directory."""

    lab: Lab
    info: LabInfo
    out: Path


Stage = Callable[[Context], str]


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def lab_stage(ctx: Context) -> str:
    """The lab's services and what each port did when knocked."""
    expected = ctx.lab.expected(SCENARIOS[ctx.info.scenario])
    rows = [
        [c.service, str(c.port), str(ctx.info.stands_for.get(c.service, "")), c.behaviour,
         "✓" if c.behaviour == expected[c.service] else "✗", c.detail[:70]]
        for c in ctx.lab.checks(ctx.info)
    ]
    folders = [[name, str(count)] for name, count in sorted(ctx.info.folders.items())]
    return (
        "<h2>Lab server</h2>"
        f"<p>Scenario <b>{html.escape(ctx.info.scenario)}</b>, server "
        f"<code>{html.escape(ctx.info.server)}</code>, demo account "
        f"<code>{html.escape(ctx.info.email('alice'))}</code>.</p>"
        + _table(["service", "port", "stands for", "behaviour", "check", "greeting"], rows)
        + "<h3>Demo mailbox</h3>" + _table(["folder", "messages"], folders)
    )


STAGES: list[tuple[str, Stage]] = [("lab", lab_stage)]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; font-size: .9rem; }
th { background: #f3f3f3; } .error { color: #a00; }
"""


def build(out: Path, lab: Lab | None = None) -> Path:
    """Run every stage on the lab and write ``out/report.html``; return its path."""
    lab = lab or Lab()
    started_here = not lab.is_running()
    info = lab.up()
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(lab=lab, info=info, out=out)
    sections = []
    try:
        for name, stage in STAGES:
            start = time.monotonic()
            try:
                body = stage(ctx)
            except MailhatError as exc:
                body = f"<h2>{html.escape(name)}</h2><p class=error>{html.escape(str(exc))}</p>"
            sections.append(body + f"<p><small>{name}: {time.monotonic() - start:.1f}s</small></p>")
    finally:
        if started_here:
            lab.down()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>mailhat report</title>"
        f"<style>{_CSS}</style></head><body><h1>mailhat report</h1>"
        f"<p>mailhat {__version__}, {stamp}, against the built-in lab.</p>"
        + "".join(sections) + "</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path.resolve()
