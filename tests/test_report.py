"""The demo report: executed notebooks as HTML pages, an index, the lab left as found."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from mailhat_nb.app import demo as report
from mailhat_nb.lab import Lab, LabInfo


def _nb(*cells: dict[str, Any]) -> dict[str, Any]:
    return {"cells": list(cells), "metadata": {}}


def _code(source: str, outputs: list[dict[str, Any]] | None = None,
          tags: list[str] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "source": source, "outputs": outputs or [],
            "metadata": {"tags": tags or []}}


# --------------------------------------------------------------------------- pure parts


def test_silent_cells_flags_code_cells_that_showed_nothing() -> None:
    shown = [{"output_type": "display_data", "data": {"text/html": "x"}}]
    nb = _nb(_code("email = 'a'", tags=["parameters"]), _code("panel", shown),
             {"cell_type": "markdown", "source": "# t"}, _code("panel2"))
    assert report.silent_cells(nb) == [3]


def test_first_error_names_the_cell() -> None:
    err = [{"output_type": "error", "ename": "UsageError", "evalue": "no password"}]
    assert report.first_error(_nb(_code("a"), _code("b", err))) == (
        "cell 1: UsageError: no password")
    assert report.first_error(_nb(_code("a"))) == ""


def test_kernel_env_points_at_the_lab_and_drops_a_real_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILHAT_PASSWORD", "a-real-customer-password")
    env = report.kernel_env("/tmp/somelab", extra={"X_TEST": "1"})
    assert "MAILHAT_PASSWORD" not in env
    assert env["MAILHAT_LAB_DIR"] == "/tmp/somelab"
    assert env["X_TEST"] == "1"


def test_index_intro_renders_only_bold_and_code() -> None:
    assert report._inline_markdown("**a** `b` <i>") == "<b>a</b> <code>b</code> &lt;i&gt;"


class FakeLab:
    """A lab that records what the report asks of it."""

    def __init__(self, running: bool, scenario: str = "normal") -> None:
        self.running, self.scenario, self.calls = running, scenario, []

    def is_running(self) -> bool:
        return self.running

    def up(self) -> LabInfo:
        self.calls.append("up")
        self.running = True
        return self.info()

    def down(self) -> list[str]:
        self.calls.append("down")
        self.running = False
        return []

    def info(self) -> LabInfo:
        return LabInfo(root="/tmp/fake", scenario=self.scenario, server="localhost",
                       domain="localhost", ports={}, stands_for={}, ca_file="/tmp/fake/ca.pem",
                       presets="/tmp/fake/presets.toml", users=["alice@localhost"])

    def set_scenario(self, name: str) -> LabInfo:
        self.calls.append(f"scenario {name}")
        self.scenario = name
        return self.info()

    def password(self, user: str) -> str:
        return "fake-password"

    def expected(self, scenario: Any) -> dict[str, str]:
        return {}

    def checks(self, info: Any = None) -> list[Any]:
        return []


def test_report_stops_the_lab_only_if_it_started_it(tmp_path: Path) -> None:
    cold = FakeLab(running=False)
    assert report.build(tmp_path / "a", lab=cold, names=()).name == "report.html"  # type: ignore[arg-type]
    assert cold.calls == ["up", "down"]
    warm = FakeLab(running=True, scenario="ip-blocked")
    report.build(tmp_path / "b", lab=warm, names=())  # type: ignore[arg-type]
    # switched to normal for the notebooks, then back to where it was; never stopped
    assert warm.calls == ["up", "scenario normal", "scenario ip-blocked"]


# --------------------------------------------------------------------------- the tools' traps


@pytest.mark.slow
def test_output_widget_capture_is_caught_as_a_silent_cell(tmp_path: Path) -> None:
    """Output captured by an Output widget leaves the cell empty; the check must see it."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import ipywidgets as w\nout = w.Output()\n"
                                  "with out:\n    print('captured-text')"),
        nbformat.v4.new_code_cell("print('shown-text')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    path = tmp_path / "trap.ipynb"
    nbformat.write(nb, path)
    ran = report.run_notebook(path, {"x": 2}, report.kernel_env("/tmp/none"))
    assert report.first_error(ran) == ""
    assert report.silent_cells(ran) == [2]  # the injected parameters cell is index 1
    shown = json.dumps([c.get("outputs", []) for c in ran["cells"]])
    assert "shown-text" in shown
    assert "captured-text" not in shown  # it sat in widget state, now stripped
    assert "widgets" not in ran["metadata"]


@pytest.mark.slow
def test_a_headline_cell_runs_in_the_notebooks_kernel_and_leaves_no_trace(
        tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("from mailhat_nb.widgets.render import Html\n"
                                  "panel = Html(f'<b>x is {x}</b>')\npanel"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    path = tmp_path / "story.ipynb"
    nbformat.write(nb, path)
    ran = report.run_notebook(path, {"x": 2}, report.kernel_env("/tmp/none"),
                              headline="panel")
    assert len(ran["cells"]) == 4  # the injected parameters and the headline cell
    assert report.take_headline(ran) == "<b>x is 2</b>"  # the kernel's own state
    assert len(ran["cells"]) == 3
    assert report.HEADLINE_TAG not in json.dumps(ran)


def test_notebook_pages_hide_the_code_behind_a_button() -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("DoctorPanel(email=email)", outputs=[
            nbformat.v4.new_output("display_data", data={"text/html": "<b>verdict</b>"})]),
    ])
    page = report.to_html(nb)
    assert "DoctorPanel" in page  # hidden, not removed: the button shows it
    assert "<b>verdict</b>" in page
    assert ".jp-CodeCell .jp-Cell-inputWrapper" in page
    assert "body:not(.mh-code)" in page
    assert ">Show the code</button>" in page
    assert 'href="report.html"' in page


def test_parameters_are_only_those_a_notebook_declares(tmp_path: Path) -> None:
    info = FakeLab(running=True).info()
    assert "server" not in report.parameters("03_correspondence", info, tmp_path)
    assert "store" in report.parameters("03_correspondence", info, tmp_path)
    assert "store" in report.parameters("01_connection_doctor", info, tmp_path)


# --------------------------------------------------------------------------- the whole report


@pytest.mark.lab
@pytest.mark.slow
def test_report_renders_every_notebook_against_the_lab(lab: Lab, lab_info: LabInfo,
                                                       lab_password: str,
                                                       tmp_path: Path) -> None:
    before = lab.info().scenario
    index = report.build(tmp_path / "out", lab=lab)
    out = index.parent
    assert index == (tmp_path / "out" / "report.html").resolve()
    summary = json.loads((out / "report.json").read_text())
    assert [p["name"] for p in summary] == list(report.ORDER)
    assert all(p["ok"] for p in summary), summary
    page = index.read_text()
    # the first page tells the story before the links: the verdict box, what was
    # synced (messages, folders, data health), the top-contacts chart
    flat = html.unescape(" ".join(page.split()))
    story = [flat.index(f"Can {lab_info.email('alice')} connect to the CRM?"),
             flat.index("✓ Use IMAP option 1: localhost, port"),
             flat.index(f"username {lab_info.email('alice')} (IMAP option 1)"),
             flat.index("What was synced"),
             flat.index(f"{sum(lab_info.folders.values()):,} messages in "),
             flat.index("every folder matches the server's count"),
             flat.index("Top contacts"), flat.index("data:image/png;base64,"),
             flat.index("The notebooks"), flat.index('href="notebooks/01_connection_doctor')]
    assert story == sorted(story)
    for name in report.ORDER:
        assert f'href="{name}.html"' in page
        assert f'href="notebooks/{name}.ipynb"' in page
        text = (out / f"{name}.html").read_text()
        assert "cdnjs" not in text
        assert "mathjax" not in text.lower()
        assert "application/vnd.jupyter.widget-state+json" not in text
        assert ">Show the code</button>" in text
        assert report.HEADLINE_TAG not in text
    doctor = html.unescape((out / "01_connection_doctor.html").read_text())
    assert "Use IMAP option 1" in doctor
    assert "from the lab's password file" in doctor
    charts = (out / "03_correspondence.html").read_text()
    assert len(re.findall(r"data:image/png;base64,", charts)) >= 4
    assert list((out / "tickets").glob("diagnosis-*.md"))
    forms = [lab_password, base64.b64encode(lab_password.encode()).decode()]
    for path in (p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not any(f.encode() in data for f in forms), path
    assert lab.info().scenario == before
