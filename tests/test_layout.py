"""The package's shape: which wing may import which, and what the front doors offer."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import mailhat_nb.sync

PACKAGE = Path(mailhat_nb.sync.__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_storage_layer_never_imports_the_analysis() -> None:
    # "You" (direction, self, aliases) is the analysis's business: the sync
    # stores what the server holds, whoever reads it.
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(m for m in imported_modules(path)
                                               if m.startswith("mailhat_nb.analysis"))
        for path in (PACKAGE / "sync").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_sync_module_loads_no_analysis_module() -> None:
    names = sorted(
        "mailhat_nb." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        .removesuffix(".__init__")
        for p in (PACKAGE / "sync").rglob("*.py"))
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names)
            + "print(sorted(m for m in sys.modules if m.startswith('mailhat_nb.analysis')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", mailhat_nb.sync.__all__)
def test_every_name_the_sync_offers_is_there(name: str) -> None:
    assert getattr(mailhat_nb.sync, name) is not None


def test_the_sync_package_loads_its_modules_only_when_asked() -> None:
    code = ("import sys, mailhat_nb.sync\n"
            "print(sorted(m for m in sys.modules if m.startswith('mailhat_nb.sync.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_the_top_level_holds_few_modules() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert modules == ["checks.py", "cli.py", "contacts.py", "errors.py", "secrets.py"]
    for name in ("errors", "checks", "secrets"):  # the core: no third-party imports
        third_party = {m.split(".")[0] for m in imported_modules(PACKAGE / f"{name}.py")} \
            - set(sys.stdlib_module_names) - {"mailhat_nb", "__future__"}
        assert third_party == set(), name


def test_the_contacts_facade_is_the_analysis() -> None:
    contacts = importlib.import_module("mailhat_nb.contacts")
    for name in contacts.__all__:
        assert getattr(contacts, name).__module__.startswith("mailhat_nb.analysis."), name


def test_the_parse_workers_modules_never_load_pandas() -> None:
    # A worker refuses pandas (mailhat_nb.sync.worker._NoPandas): a module it
    # loads that imports pandas would kill every worker of every sync.
    code = """
import sys
import mailhat_nb.sync.worker
from mailhat_nb.sync.rows import ChunkJob, process_chunk, warm_up
warm_up()
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "pandas")
sys.meta_path.insert(0, mailhat_nb.sync.worker._NoPandas())
job = ChunkJob("inbox", 1, sys.argv[1], uids=[1], headers=[b"From: a@b.example\\r\\n\\r\\n"],
               internaldates=[None], sizes=[10], flags=[()])
print(loaded, process_chunk(job).rows)
"""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", code, f"{tmp}/part.parquet"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "[] 1"), out.stderr


def test_a_module_importing_pandas_in_a_worker_is_named() -> None:
    code = ("import sys\nfrom mailhat_nb.sync.worker import _NoPandas\n"
            "sys.meta_path.insert(0, _NoPandas())\nimport mailhat_nb.analysis.frames\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 1
    assert ("ModuleNotFoundError: mailhat_nb.analysis.frames imports pandas, which a sync "
            "parse worker must not load") in out.stderr


def test_the_repository_stands_alone() -> None:
    # A fresh clone has nothing beside it: no code, Makefile or doc may point there.
    from mailhat_nb.lab.corpus import archives

    root = PACKAGE.parent
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()
    # Spelled in parts, so this test holds none of the paths it looks for.
    beside, machine = "shared", "work"
    outside = (f"/{machine}/", f"../{beside}", f"{beside}/corpus")
    found = [name for name in tracked
             if not name.endswith((".xz", ".png", ".ipynb"))
             and any(p in (root / name).read_text("utf-8", "replace") for p in outside)]
    assert found == []
    assert [a.name for a in archives()] == ["enron-cuilla-m.tar.xz", "corpus.tar.xz"]
    assert sum(a.stat().st_size for a in archives()) < 5_000_000


def test_one_exception_tree_drawn_where_it_is_defined() -> None:
    # Every exception the package raises on purpose is a MailhatError, and the
    # tree in errors.py's docstring names it (private control flow excepted).
    import mailhat_nb.errors as errors

    names = sorted(
        "mailhat_nb." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        .removesuffix(".__init__") for p in PACKAGE.rglob("*.py"))
    found = {}
    for name in names:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) \
                    and value.__module__ == name and not value.__name__.startswith("_"):
                found[value.__name__] = value
    assert {n for n, c in found.items() if not issubclass(c, errors.MailhatError)} == set()
    assert [n for n in found if n not in (errors.__doc__ or "")] == []


def test_no_docstring_embeds_a_timing() -> None:
    # Timings drift with every machine and change: they belong to the benchmarks'
    # output (benchmarks/results, the README's table), never to a docstring.
    timing = re.compile(r"\b\d+(\.\d+)?\s?(µs|ms)\b|\b\d+\.\d+\s?s\b|~\d+(\.\d+)?\s?s\b")
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False) or ""
                found += [f"{path.name}:{m.group(0)}" for m in timing.finditer(doc)]
    assert found == []
