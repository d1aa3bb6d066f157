"""Committed notebooks carry no outputs, no widget state and no secret."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbstripout import strip_output

from mailhat_nb.app.nbclean import declared_parameters, problems

ROOT = Path(__file__).resolve().parents[1]


def unread_parameters(nb: dict[str, Any]) -> list[str]:
    """Parameters no later code cell reads: a value the agent could edit to no effect.

    A parameter is read when a code cell after the ``parameters`` cell uses
    its name as a value (``DoctorPanel(store=store)`` reads ``store``).
    """
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    at = next((i for i, c in enumerate(cells)
               if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if at is None:
        return []
    read: set[str] = set()
    for cell in cells[at + 1:]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        tree = ast.parse("".join(cell.get("source", "")))
        read |= {n.id for n in ast.walk(tree)
                 if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [name for name in declared_parameters(nb) if name not in read]


def _committed_notebooks() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if line]


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: p.name)
def test_committed_notebook_is_clean(path: Path) -> None:
    assert problems(json.loads(path.read_text())) == []


def test_nbstripout_is_the_git_filter_for_notebooks() -> None:
    attributes = (ROOT / ".gitattributes").read_text()
    assert "*.ipynb filter=nbstripout" in attributes


def _dirty() -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
        "cells": [
            {"cell_type": "code", "execution_count": 3, "source": 'password = "hunter2hunter2"\n',
             "outputs": [{"output_type": "stream", "text": "lab-s3cret-value"}]},
        ],
    }


def test_the_checker_finds_every_kind_of_dirt() -> None:
    found = problems(_dirty(), secrets=["lab-s3cret-value"])
    assert any("widget state" in p for p in found)
    assert any("outputs" in p for p in found)
    assert any("execution count" in p for p in found)
    assert any("literal credential" in p for p in found)
    assert any("known password" in p for p in found)


def test_stripping_leaves_only_the_credential_in_source() -> None:
    # nbstripout as the git filter runs it (`metadata.widgets` is one of its default keys)
    stripped = strip_output(nbformat.from_dict(_dirty()), keep_output=False, keep_count=False,
                            keep_id=True, extra_keys=["metadata.widgets"])
    found = problems(stripped, secrets=["lab-s3cret-value"])
    assert len(found) == 1
    assert found[0].startswith("a cell assigns a literal credential")


def test_a_password_env_parameter_is_not_a_credential() -> None:
    nb = {"metadata": {}, "cells": [{"cell_type": "code", "execution_count": None, "outputs": [],
                                     "source": 'password_env = "MAILHAT_PASSWORD"\n'}]}
    assert problems(nb) == []


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("path", _committed_notebooks(), ids=lambda p: p.name)
def test_every_parameter_is_read_by_a_later_cell(path: Path) -> None:
    # An agent who edits a parameter must see an effect: none may be declared for nothing.
    nb = json.loads(path.read_text())
    assert declared_parameters(nb), "no parameters cell"
    assert unread_parameters(nb) == []


def test_the_parameter_check_finds_one_nobody_reads() -> None:
    def cell(source: str, tags: list[str] | None = None) -> dict[str, object]:
        return {"cell_type": "code", "source": source, "metadata": {"tags": tags or []},
                "outputs": [], "execution_count": None}

    nb = {"metadata": {}, "cells": [
        cell("email = 'a@example.com'\nserver = 'x'  # for the sync\nstore: str = 's'\n",
             ["parameters"]),
        cell("server = 'overwritten, not read'\n"),
        {"cell_type": "markdown", "source": "server is mentioned here", "metadata": {}},
        cell("Panel(email=email, store=store)\n")]}
    assert declared_parameters(nb) == ["email", "server", "store"]
    assert unread_parameters(nb) == ["server"]


def test_no_page_asks_the_agent_to_switch_kernels() -> None:
    # The doctor syncs in place ("Sync this mailbox"); a kernel switch is an expert's move.
    pages = [*_committed_notebooks(), *ROOT.glob("docs/*.md"), ROOT / "README.md"]
    for path in pages:
        assert "change kernel" not in path.read_text().lower(), path
