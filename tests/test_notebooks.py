"""Every notebook, executed headless against the lab: no error, every cell speaks, no secret.

The notebooks run as the report runs them (papermill parameters pointing at
the lab, no output path, widget state stripped in memory), except that the
password reaches each kernel through an environment variable named by the
``password_env`` parameter, as it would for a real account. Then everything
a run leaves behind (the executed notebooks, their HTML, the ticket Markdown,
the exports, the store) is searched for the password, in clear and in the
base64 forms a login sends.

Two traps of the tools are checked for here rather than trusted away:
papermill exits 0 with silently empty cells when an Output widget swallows
what a cell shows (so every code cell must have shown something), and
nbclient records widget state, Password values included, unless it is
stripped (so no executed notebook may hold any).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailhat_nb.app import demo as report
from mailhat_nb.app.nbclean import declared_parameters, problems
from mailhat_nb.lab import SCENARIOS, Lab, LabInfo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
PASSWORD_VAR = "MAILHAT_NB_TEST_PASSWORD"

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _committed() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.fixture(scope="module")
def run(lab: Lab, lab_info: LabInfo, lab_password: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Execute every notebook once (in the report's order); yield the results."""
    out = tmp_path_factory.mktemp("notebooks")
    env = report.kernel_env(lab_info.root, extra={PASSWORD_VAR: lab_password})
    executed: dict[str, Any] = {"out": out}
    try:
        for name in report.ORDER:
            params = report.parameters(name, lab_info, out)
            if "password_env" in params:
                params["password_env"] = PASSWORD_VAR
            nb = report.run_notebook(NOTEBOOK_DIR / f"{name}.ipynb", params, env)
            executed[name] = nb
            (out / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
            (out / f"{name}.html").write_text(report.to_html(nb), encoding="utf-8")
        yield executed
    finally:
        if lab.info().scenario != "normal":
            lab.set_scenario("normal")


def _outputs(nb: dict[str, Any], source_contains: str) -> str:
    """Everything the cell whose source contains ``source_contains`` showed, as text."""
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"
             and source_contains in "".join(c["source"])]
    assert len(cells) == 1, f"one cell should contain {source_contains!r}"
    return json.dumps(cells[0]["outputs"], ensure_ascii=False)


def _secret_forms(password: str, username: str) -> list[str]:
    raw = password.encode()
    return [password, base64.b64encode(raw).decode(),
            base64.b64encode(b"\0" + username.encode() + b"\0" + raw).decode()]


# --------------------------------------------------------------------------- committed


@pytest.mark.parametrize("path", _committed(), ids=lambda p: p.name)
def test_one_parameters_cell_with_the_lab_defaults(path: Path) -> None:
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    source = "".join(tagged[0]["source"])
    names = declared_parameters(nb)
    assert "email" in names
    assert not {n for n in names if "pass" in n} - {"password_env"}
    if "password_env" in names:
        assert re.search(r'^password_env = "[A-Z_][A-Z0-9_]*"', source, re.M)
    assert 'email = "alice@localhost"' in source
    for name in {"presets", "ca_file"} & set(names):
        assert f'{name} = "lab"' in source
    assert problems(nb) == []


@pytest.mark.parametrize("path", _committed(), ids=lambda p: p.name)
def test_cells_are_short_and_import_no_widgets(path: Path) -> None:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert len(source.splitlines()) <= 15, source[:80]
            assert "ipywidgets" not in source
            assert "IPython" not in source


#: The scenarios an agent will meet (the hostile servers are for the clients' tests).
TRAINING = [name for name, s in SCENARIOS.items() if s.training]


def test_the_walkthrough_covers_every_scenario() -> None:
    source = (NOTEBOOK_DIR / "00_training_walkthrough.ipynb").read_text()
    for name in TRAINING:
        assert f'walk.scenario(\\"{name}\\")' in source, name


def test_report_parameters_never_carry_a_password(lab_info: LabInfo, lab_password: str,
                                                  tmp_path: Path) -> None:
    for name in report.ORDER:
        params = report.parameters(name, lab_info, tmp_path)
        assert lab_password not in json.dumps(params)
        assert {k for k in params if "pass" in k} <= {"password_env"}


# --------------------------------------------------------------------------- executed


@pytest.mark.parametrize("name", report.ORDER)
def test_notebook_runs_clean_and_every_cell_shows_something(run: dict[str, Any],
                                                            name: str) -> None:
    nb = run[name]
    assert report.first_error(nb) == ""
    assert report.silent_cells(nb) == []


def test_doctor_notebook_shows_the_verdict(run: dict[str, Any], lab_info: LabInfo) -> None:
    shown = _outputs(run["01_connection_doctor"], "DoctorPanel(")
    assert "application/vnd.jupyter.widget-view+json" in shown  # the live panel ...
    assert "Use IMAP option 1: localhost, port " + str(lab_info.ports["imaps"]) in shown
    assert f"from the environment variable {PASSWORD_VAR}" in shown
    assert "Certificate helper" in shown
    assert "Transcripts (passwords redacted)" in shown


def test_sync_notebook_fills_the_store(run: dict[str, Any], lab_info: LabInfo) -> None:
    shown = _outputs(run["02_sync_mailbox"], "SyncPanel(")
    total = sum(lab_info.folders.values())
    assert f"Stored {total:,} messages" in shown
    assert "every folder matches the server" in shown
    assert "data:image/png;base64," in shown  # the data-health chart


def test_correspondence_notebook_draws_and_exports(run: dict[str, Any]) -> None:
    nb = run["03_correspondence"]
    assert _outputs(nb, "explorer.charts").count("data:image/png;base64,") == 4
    assert "distinct messages" in _outputs(nb, "CorrespondencePanel(")
    saved = run["out"] / "exports" / "contacts.csv"
    assert saved.read_text().startswith("contact,name,sent,received,total,first,last")


def test_walkthrough_shows_each_fault_as_expected(run: dict[str, Any], lab: Lab) -> None:
    nb = run["00_training_walkthrough"]
    for name in TRAINING:
        shown = _outputs(nb, f'walk.scenario("{name}")')
        assert "as this scenario is built to" in shown, name
    assert "The lab is back to the normal scenario" in _outputs(nb, "walk.restore()")
    assert lab.info().scenario == "normal"


def test_nothing_written_holds_the_password_or_widget_state(run: dict[str, Any],
                                                            lab_info: LabInfo,
                                                            lab_password: str) -> None:
    secrets = _secret_forms(lab_password, lab_info.email("alice"))
    for name in report.ORDER:
        nb = run[name]
        assert problems(nb, secrets, committed=False) == [], name
        assert "widgets" not in nb["metadata"]
        assert "application/vnd.jupyter.widget-state+json" not in json.dumps(nb)
    written = [p for p in run["out"].rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".ipynb", ".html", ".md", ".csv", ".parquet", ".json"} <= kinds
    for path in written:
        data = path.read_bytes()
        for form in secrets:
            assert form.encode() not in data, f"{path} holds the password"
