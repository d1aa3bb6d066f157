"""The demo report: the story of a run on its first page, then the notebooks behind it.

``mailhat report`` (and ``make demo``) starts the lab when it is not already
running, executes every notebook of ``notebooks/`` headless with papermill
(parameters pointing at the lab), renders each executed notebook to HTML
with nbconvert, writes ``<out>/report.html``, and stops the lab again if it
started it. The panels leave static HTML and PNG charts in their outputs,
so the pages read well without any widget JavaScript.

``report.html`` tells the story first: the doctor's verdict box, what was
synced (messages, folders, data health in a sentence) and the top-contacts
chart, then the links to the executed notebooks and the lab's ports. Each
of the three is the ``headline()`` of the notebook's own panel, shown by a
cell the report adds after the notebook's last one, in the same kernel, and
takes out again before the notebook is written (:data:`HEADLINES`): the
first page shows what the notebooks found, not a second run. The notebook
pages open with the code cells hidden; a button shows them.

Secrets, by construction:

* No password is a parameter (papermill writes parameters into the notebook).
  Each notebook's kernel gets ``MAILHAT_LAB_DIR`` in its environment, and the
  notebooks take the demo account's password from the lab's own file;
  a ``MAILHAT_PASSWORD`` of the user's shell is removed from that
  environment, so a real password can never meet the lab.
* papermill writes nothing (``output_path`` is None): widget state, where a
  Password widget's value would sit, is stripped from the executed notebook
  in memory, and the notebook is checked for every lab password
  (:func:`mailhat_nb.app.nbclean.problems`) before anything reaches the disk. A
  notebook that fails the check is withheld, and the index says so; the
  first page itself is checked before it is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailhat_nb import __version__
from mailhat_nb.app.nbclean import declared_parameters, problems, strip_widget_state
from mailhat_nb.errors import KernelFailed, MailhatError, UsageError
from mailhat_nb.lab import SCENARIOS, Lab, LabInfo
from mailhat_nb.secrets import DEFAULT_PASSWORD_ENV, redact

#: Where the notebooks live in a checkout of the project.
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: Execution order: the walkthrough switches the lab's scenarios, so it runs last;
#: the correspondence notebook reads what the sync notebook stored.
ORDER = ("01_connection_doctor", "02_sync_mailbox", "03_correspondence",
         "00_training_walkthrough")
KERNEL = "python3"
CELL_TIMEOUT = 180
#: Cells that need not produce output: papermill's parameter cells.
QUIET_TAGS = frozenset({"parameters", "injected-parameters"})
#: Per notebook, the call whose display is its part of the report's first page.
HEADLINES = {"01_connection_doctor": "doctor.headline()", "02_sync_mailbox": "sync.headline()",
             "03_correspondence": "explorer.headline()"}
#: The tag of the cell that runs it (added for the run, taken out before anything is written).
HEADLINE_TAG = "mailhat-headline"


@dataclass
class Context:
    """What every report stage receives: the running lab and the output directory."""

    lab: Lab
    info: LabInfo
    out: Path


@dataclass
class Page:
    """One executed notebook and what became of it."""

    name: str
    title: str = ""
    intro: str = ""
    seconds: float = 0.0
    error: str = ""
    silent: list[int] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    html: Path | None = None
    ipynb: Path | None = None
    #: The notebook's part of the first page (HTML), "" when it has none or did not run.
    headline: str = ""

    @property
    def ok(self) -> bool:
        """True when the notebook ran without error, every cell spoke, and it was written."""
        return not self.error and not self.silent and not self.withheld and self.html is not None


# --------------------------------------------------------------------------- parameters


def parameters(name: str, info: LabInfo, out: Path) -> dict[str, Any]:
    """Papermill parameters for notebook ``name``: the lab's account, files and ``out``.

    Only those the notebook declares (each reads only what it uses). Never a
    password: see the module docstring.
    """
    common: dict[str, Any] = {
        "email": info.email("alice"), "server": info.server, "presets": info.presets,
        "password_env": DEFAULT_PASSWORD_ENV, "ca_file": info.ca_file,
        "store": str(out / "store"),
    }
    extra: dict[str, dict[str, Any]] = {
        "01_connection_doctor": {"run_now": True, "timeout": 5.0,
                                 "export_dir": str(out / "tickets"),
                                 "history_dir": str(out / "history")},
        "02_sync_mailbox": {"sync_now": True},
        "03_correspondence": {"export_dir": str(out / "exports")},
        "00_training_walkthrough": {"timeout": 3.0},
    }
    declared = declared_parameters(json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(
        encoding="utf-8")))
    return {k: v for k, v in (common | extra.get(name, {})).items() if k in declared}


def kernel_env(lab_root: Path | str, password_env: str = DEFAULT_PASSWORD_ENV,
               extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a report kernel: ours, pointed at the lab, without a real password."""
    env = {k: v for k, v in os.environ.items() if k != password_env}
    env["MAILHAT_LAB_DIR"] = str(lab_root)
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- execution


@contextlib.contextmanager
def _kernel(env: Mapping[str, str], cwd: Path) -> Iterator[Any]:
    """A kernel we start (with ``env``) and always shut down.

    It talks over Unix sockets in a private directory rather than TCP: no
    port is opened, and nobody else on the machine can reach the kernel.
    What the kernel prints goes to a file there (jupyter_client interrupts
    a kernel before shutting it down, and ipykernel reports that on
    stderr); its tail is kept only to explain a kernel that failed.
    """
    import tempfile

    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory(prefix="mhk-") as tmp:
        log_path = Path(tmp) / "kernel.log"
        km = KernelManager(kernel_name=KERNEL, transport="ipc",
                           connection_file=str(Path(tmp) / "kernel.json"))
        with open(log_path, "wb") as log:
            km.start_kernel(env=dict(env), cwd=str(cwd), stdout=log, stderr=log)
            try:
                yield km
            except Exception as exc:
                tail = log_path.read_text(errors="replace")[-800:].strip()
                raise KernelFailed(f"{type(exc).__name__}: {exc}"
                                   + (f"; the kernel said: {tail}" if tail else "")) from exc
            finally:
                km.shutdown_kernel(now=False)


def run_notebook(path: Path, params: Mapping[str, Any], env: Mapping[str, str],
                 cwd: Path | None = None, timeout: int = CELL_TIMEOUT,
                 headline: str | None = None) -> Any:
    """Execute notebook ``path`` headless with papermill ``params``; return it, unsaved.

    papermill parameterizes (``prepare_only``, no output path: nothing is
    written), nbclient executes in our kernel; the notebook comes back with
    its widget state already stripped. A cell that raised leaves its error
    output in place (execution stops there), and :func:`first_error` finds it.
    With ``headline`` (code), a last cell runs it in the same kernel:
    :func:`take_headline` takes that cell out again, with what it showed.
    """
    import nbformat
    import papermill
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = papermill.execute_notebook(str(path), None, parameters=dict(params),
                                    kernel_name=KERNEL, language="python", prepare_only=True,
                                    progress_bar=False)
    if headline is not None:
        nb.cells.append(nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]  # untyped lib
            headline, metadata={"tags": [HEADLINE_TAG]}))
    workdir = cwd or path.parent
    with _kernel(env, workdir) as km:
        client = NotebookClient(nb, km=km, kernel_name=KERNEL, timeout=timeout,
                                startup_timeout=60, resources={"metadata": {"path": str(workdir)}})
        with contextlib.suppress(CellExecutionError):
            client.execute()
    return strip_widget_state(nb)


def take_headline(nb: Any) -> str:
    """Remove the cell :func:`run_notebook` added; return the HTML it showed ("" if none)."""
    shown = []
    for cell in [c for c in nb.cells if HEADLINE_TAG in c.get("metadata", {}).get("tags", [])]:
        nb.cells.remove(cell)
        shown += [str(o["data"]["text/html"]) for o in cell.get("outputs", [])
                  if "text/html" in o.get("data", {})]
    return "".join(shown)


def first_error(nb: Mapping[str, Any]) -> str:
    """``"cell N: Name: message"`` for the first error output, or ""."""
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") == "error":
                return f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
    return ""


def silent_cells(nb: Mapping[str, Any]) -> list[int]:
    """Indexes of code cells that produced nothing (papermill can exit 0 on those).

    Every code cell of these notebooks ends in something to show, so an
    empty one means output went somewhere it should not (e.g. into an
    Output widget's state, which is stripped).
    """
    return [index for index, cell in enumerate(nb.get("cells", []))
            if cell.get("cell_type") == "code"
            and not QUIET_TAGS & set(cell.get("metadata", {}).get("tags", []))
            and not any(o.get("output_type") in ("display_data", "execute_result", "stream")
                        for o in cell.get("outputs", []) or [])]


#: The notebook pages open with the code hidden (an agent reads results); the bar's
#: button shows it. Without JavaScript the code stays hidden and the results read the same.
_PAGE_CSS = """
body:not(.mh-code) .jp-CodeCell .jp-Cell-inputWrapper,
body:not(.mh-code) .jp-CodeCell.jp-mod-noOutputs { display: none; }
body:not(.mh-code) .jp-OutputPrompt { visibility: hidden; }
.mh-bar { position: sticky; top: 0; z-index: 10; display: flex; gap: 1.2rem;
          align-items: center; padding: 8px 16px; background: #f7f7f7;
          border-bottom: 1px solid #ddd; font: 14px system-ui, sans-serif; }
.mh-bar button { font: inherit; padding: 3px 10px; cursor: pointer; }
"""
_PAGE_BAR = (
    '<nav class="mh-bar"><a href="report.html">&larr; The report</a>'
    '<button type="button" aria-pressed="false" onclick="'
    "var on = document.body.classList.toggle('mh-code');"
    "this.setAttribute('aria-pressed', on);"
    "this.textContent = on ? 'Hide the code' : 'Show the code';"
    '">Show the code</button><small>The code cells are hidden: the results are what they '
    "showed.</small></nav>")


def to_html(nb: Any) -> str:
    """Render an executed notebook as a standalone HTML page (no CDN scripts).

    The code cells are hidden until the page's "Show the code" button shows them.
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    # The lab template loads require.js, MathJax and mermaid from CDNs; nothing here needs them.
    loader = DictLoader({"mailhat_report.html.j2": (
        "{% extends 'lab/index.html.j2' %}"
        "{% block html_head_js_requirejs %}{% endblock %}"
        "{% block html_head_js_mathjax %}{% endblock %}"
        "{% block html_head_js_mermaidjs %}{% endblock %}"
        "{% block extra_css %}<style>" + _PAGE_CSS + "</style>{% endblock extra_css %}"
        "{% block body_header %}{{ super() }}" + _PAGE_BAR + "{% endblock body_header %}")})
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]  # untyped lib
        template_name="lab", extra_loaders=[loader], template_file="mailhat_report.html.j2")
    body, _ = exporter.from_notebook_node(nb)
    return str(body)


def _heading(nb: Mapping[str, Any]) -> tuple[str, str]:
    """The first Markdown heading and the paragraph after it."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        blocks = "".join(cell.get("source", "")).strip().split("\n\n")
        title = blocks[0].lstrip("#").strip() if blocks[0].startswith("#") else ""
        paragraph = blocks[1] if title and len(blocks) > 1 else blocks[0]
        return title, " ".join(paragraph.split())
    return "", ""


def _inline_markdown(text: str) -> str:
    """Escape ``text``, then render its ``**bold**`` and ```code``` (what intros use)."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def render_page(name: str, ctx: Context, secrets: list[str], env: Mapping[str, str]) -> Page:
    """Execute one notebook, check it, and write its ``.ipynb`` and ``.html`` (if clean)."""
    path = NOTEBOOKS / f"{name}.ipynb"
    page = Page(name)
    start = time.monotonic()
    try:
        nb = run_notebook(path, parameters(name, ctx.info, ctx.out), env, cwd=NOTEBOOKS,
                          headline=HEADLINES.get(name))
    except Exception as exc:  # the kernel died, a timeout: the index says so
        page.error = redact(f"{type(exc).__name__}: {str(exc)[:300]}", secrets)
        return page
    finally:
        page.seconds = time.monotonic() - start
    headline = take_headline(nb)
    page.title, page.intro = _heading(nb)
    page.error = first_error(nb)
    page.silent = [] if page.error else silent_cells(nb)
    page.withheld = problems(nb, secrets, committed=False)
    if page.withheld:
        return page
    import nbformat

    text = to_html(nb)
    if any(s and s in text for s in secrets):
        page.withheld = ["the HTML page would contain a password"]
        return page
    (ctx.out / "notebooks").mkdir(parents=True, exist_ok=True)
    page.ipynb = ctx.out / "notebooks" / f"{name}.ipynb"
    page.ipynb.write_text(nbformat.writes(nb), encoding="utf-8")  # type: ignore[no-untyped-call]  # untyped lib
    page.html = ctx.out / f"{name}.html"
    page.html.write_text(text, encoding="utf-8")
    if not any(s and s in headline for s in secrets):
        page.headline = headline
    return page


# --------------------------------------------------------------------------- the index


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="mh-index"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def lab_section(ctx: Context) -> str:
    """The lab's services and what each port did when knocked."""
    expected = ctx.lab.expected(SCENARIOS[ctx.info.scenario])
    rows = [
        [html.escape(c.service), str(c.port), str(ctx.info.stands_for.get(c.service, "")),
         html.escape(c.behaviour), "✓" if c.behaviour == expected[c.service] else "✗",
         html.escape(c.detail[:70])]
        for c in ctx.lab.checks(ctx.info)
    ]
    folders = [[html.escape(name), str(count)] for name, count in sorted(ctx.info.folders.items())]
    return (
        "<h2>The lab server</h2>"
        f"<p>Server <code>{html.escape(ctx.info.server)}</code>, demo account "
        f"<code>{html.escape(ctx.info.email('alice'))}</code>, CA "
        f"<code>{html.escape(ctx.info.ca_file)}</code>.</p>"
        + _table(["service", "port", "stands for", "behaviour", "check", "greeting"], rows)
        + "<h3>Demo mailbox</h3>" + _table(["folder", "messages"], folders)
    )


def _link(path: Path | None, out: Path, text: str) -> str:
    """A link to ``path`` (relative to ``out``) reading ``text`` (markup); "" without a path."""
    if path is None:
        return ""
    return f'<a href="{html.escape(path.relative_to(out).as_posix())}">{text}</a>'


def _page_row(page: Page, out: Path) -> list[str]:
    if page.withheld:
        status = "✗ withheld: " + html.escape("; ".join(page.withheld))
    elif page.error:
        status = "✗ " + html.escape(page.error)
    elif page.silent:
        status = f"⚠ cells {page.silent} showed nothing"
    else:
        status = "✓ ran clean"
    title = html.escape(page.title or page.name)
    return [f"<b>{_link(page.html, out, title) or title}</b><br><small>"
            f"{_inline_markdown(page.intro)}</small>",
            f"{status}<br><small>{page.seconds:.1f} s</small>",
            _link(page.ipynb, out, f"{page.name}.ipynb")]


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222;
       padding: 0 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
.mh-index th, .mh-index td { border: 1px solid #ccc; padding: .35rem .6rem; text-align: left;
         font-size: .92rem; vertical-align: top; }
.mh-index th { background: #f3f3f3; } small { color: #555; }
h2 { margin: 1.6rem 0 .4rem; } .mh-more { margin: .2rem 0 0; font-size: .9rem; }
"""
#: The story's three parts: the notebook whose headline it is, and its heading.
STORY = (("01_connection_doctor", "Can {email} connect to the CRM?"),
         ("02_sync_mailbox", "What was synced"),
         ("03_correspondence", "Top contacts"))


def story_html(pages: list[Page], out: Path, email: str) -> str:
    """The first page's story: each notebook's headline under its heading, with its link."""
    by_name = {p.name: p for p in pages}
    parts = []
    for name, heading in STORY:
        page = by_name.get(name)
        if page is None:
            continue
        if page.headline:
            body = page.headline
        else:
            why = page.error or "; ".join(page.withheld) or "it showed nothing to summarise"
            body = f"<p>✗ Not shown: {html.escape(why)}</p>"
        link = _link(page.html, out, f"{html.escape(page.title or page.name)}: the whole page")
        more = f'<p class="mh-more">{link}</p>' if link else ""
        parts.append(f"<h2>{html.escape(heading.format(email=email))}</h2>{body}{more}")
    return "".join(parts)


def index_html(pages: list[Page], lab_html: str, seconds: float, out: Path,
               email: str = "the demo account", story: bool = True) -> str:
    """The report's front page: the story (:func:`story_html`), the notebooks, the lab.

    Links are relative to ``out``. ``story`` False leaves the story out (a
    headline that would show a password).
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [_page_row(p, out) for p in sorted(pages, key=lambda p: p.name)]
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>mailhat report</title>"
        f"<style>{_CSS}</style></head><body><h1>mailhat report</h1>"
        f"<p>mailhat {__version__}, {stamp}: the connection doctor, the sync and the "
        f"correspondence charts for the lab's demo account {html.escape(email)}, every notebook "
        f"executed against the built-in lab in {seconds:.0f} s.</p>"
        + (story_html(pages, out, email) if story else "")
        + "<h2>The notebooks</h2><p>Each page is the notebook as it ran, with its results and "
        "charts (the interactive panels as static snapshots; the code behind a button).</p>"
        + _table(["Notebook", "Run", "Executed notebook"], rows) + lab_html
        + "</body></html>")


# --------------------------------------------------------------------------- build


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build(out: Path, lab: Lab | None = None, names: tuple[str, ...] = ORDER) -> Path:
    """Execute the notebooks on the lab, write the pages and ``out/report.html``; return its path.

    Starts the lab when it is not running (and stops it again at the end);
    a lab that was running is put back in the scenario it was in.
    """
    if not NOTEBOOKS.is_dir():
        raise UsageError(f"no notebooks at {NOTEBOOKS}: the report runs from a checkout of "
                         "the project")
    lab = lab or Lab()
    started_here = not lab.is_running()
    info = lab.up()
    previous = info.scenario
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    pages: list[Page] = []
    try:
        if info.scenario != "normal":
            info = lab.set_scenario("normal")
        ctx = Context(lab=lab, info=info, out=out)
        secrets = [lab.password(u.partition("@")[0]) for u in info.users]
        env = kernel_env(info.root)
        for name in names:
            _say(f"report: running {name}…")
            page = render_page(name, ctx, secrets, env)
            _say(f"report: {name}: {'ok' if page.ok else 'PROBLEM'} in {page.seconds:.1f} s")
            pages.append(page)
        try:
            lab_html = lab_section(Context(lab=lab, info=lab.info(), out=out))
        except MailhatError as exc:
            lab_html = f"<h2>The lab server</h2><p>{html.escape(str(exc))}</p>"
    finally:
        if started_here:
            lab.down()
        elif lab.is_running() and lab.info().scenario != previous:
            lab.set_scenario(previous)
    path = out / "report.html"
    seconds, email = time.monotonic() - start, info.email("alice")
    front = index_html(pages, lab_html, seconds, out, email)
    if any(s and s in front for s in secrets):  # the notebooks' checks should make this moot
        front = index_html(pages, lab_html, seconds, out, email, story=False)
    path.write_text(front, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(
        [{"name": p.name, "ok": p.ok, "seconds": round(p.seconds, 1), "error": p.error,
          "silent_cells": p.silent, "withheld": p.withheld} for p in pages], indent=2),
        encoding="utf-8")
    return path
