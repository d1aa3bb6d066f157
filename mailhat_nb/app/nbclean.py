"""Keep notebooks clean: no outputs or widget state committed, no secret saved.

A Password widget's value is written into a saved notebook's widget state by
nbclient, ``jupyter execute``, nbconvert and papermill with default settings,
and ``papermill -p password ...`` writes a secret into the notebook twice. So
every notebook this package writes goes through :func:`strip_widget_state`
before it touches disk, and the tests run :func:`problems` over every
committed and every executed notebook.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Any

#: Assignments that look like a literal credential: a name such as password,
#: secret, token or api_key, then ``=`` or ``:``, then a quoted value of six or
#: more characters (not a placeholder like ``{x}`` or ``$VAR``).
_SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)(pass(word|wd)?|secret|token|api[_-]?key)\s*[:=]\s*["'][^"'\s{}$]{6,}["']"""
)
_WIDGET_MIME = "application/vnd.jupyter.widget-state+json"


def _code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]


def _tags(cell: dict[str, Any]) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def declared_parameters(nb: dict[str, Any]) -> list[str]:
    """The names the notebook's ``parameters`` cell assigns, in order ([] without one)."""
    cell = next((c for c in _code_cells(nb) if "parameters" in _tags(c)), None)
    if cell is None:
        return []
    names: list[str] = []
    for node in ast.parse("".join(cell.get("source", ""))).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def strip_widget_state(nb: dict[str, Any]) -> dict[str, Any]:
    """Remove saved widget state (notebook- and output-level) in place; return ``nb``."""
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data")
            if isinstance(data, dict):
                data.pop(_WIDGET_MIME, None)
    return nb


def _text(nb: dict[str, Any]) -> str:
    import json

    return json.dumps(nb, ensure_ascii=False)


def problems(nb: dict[str, Any], secrets: Iterable[str] = (), committed: bool = True
             ) -> list[str]:
    """What is wrong with notebook ``nb``; empty when it is clean.

    Parameters
    ----------
    nb:
        The notebook as parsed JSON.
    secrets:
        Known passwords that must appear nowhere (tests pass the lab's).
    committed:
        Also require no outputs and no execution counts (a committed notebook);
        executed notebooks may keep their outputs.
    """
    found = []
    if "widgets" in nb.get("metadata", {}):
        found.append("notebook metadata holds widget state")
    text = _text(nb)
    if _WIDGET_MIME in text and committed:
        found.append("an output holds widget state")
    for secret in secrets:
        if secret and secret in text:
            found.append("a known password appears in the notebook")
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        if _SECRET_ASSIGNMENT.search(source):
            found.append(f"a cell assigns a literal credential: {source[:60]!r}")
        if committed and cell.get("outputs"):
            found.append("a code cell has outputs")
        if committed and cell.get("execution_count") is not None:
            found.append("a code cell has an execution count")
    return found
