"""Packaging contracts: one source of truth, and the public surface pinned."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_requirements() -> dict[str, str]:
    """Conda dependencies of environment.yml (a tiny reader: no YAML dependency)."""
    deps: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text().split("\ndependencies:\n", 1)[1]
    for line in text.splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+[^#]*?)\s*(#.*)?$", line)
        if m and not line.startswith("  - pip:"):
            spec = m.group(1).strip()
            name = _name(spec)
            if name not in {"python", "pip"}:
                deps[name] = spec.replace(" ", "")
    return deps


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    assert _environment_requirements() == _pyproject_requirements()


def test_environment_yml_installs_the_package_itself() -> None:
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+- pip:\n\s+- -e \.$", text, re.MULTILINE)


def test_console_script_runs_and_every_subcommand_has_help() -> None:
    exe = Path(sys.executable).with_name("mailhat")
    assert exe.exists(), "the mailhat console script is not installed"
    top = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    commands = re.search(r"\{([^}]*)\}", top)
    names = commands.group(1).split(",") if commands else re.findall(r"^    (\w+)\s", top, re.M)
    assert "lab" in names
    for name in names:
        out = subprocess.run([exe, name, "--help"], capture_output=True, text=True, check=False)
        assert out.returncode == 0, (name, out.stderr)
        assert "usage: mailhat " + name in out.stdout


def test_bad_usage_exits_2() -> None:
    out = subprocess.run([sys.executable, "-m", "mailhat_nb.cli", "no-such-command"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2


def test_tool_configuration_lives_in_pyproject() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"ruff", "mypy", "pytest"} <= set(data["tool"])
    for stray in ("setup.cfg", "mypy.ini", "ruff.toml", ".ruff.toml", "pytest.ini", "tox.ini"):
        assert not (ROOT / stray).exists(), stray
    # Every lint ignore carries its reason beside it.
    block = (ROOT / "pyproject.toml").read_text().split("[tool.ruff.lint]", 1)[1]
    for line in block.splitlines():
        if re.match(r'^\s+"[A-Z]+[0-9]*",', line):
            assert "#" in line, f"lint ignore without a reason: {line.strip()}"


def test_readme_numbers_are_the_benchmarks_results() -> None:
    # The table between the README's markers is written by benchmarks/readme_table.py
    # from benchmarks/results/*.json (`make bench`); a hand edit fails here.
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_table.py"), "--check"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
