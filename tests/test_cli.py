"""The ``mailhat`` command refuses passwords on the command line and never echoes them."""

from __future__ import annotations

import subprocess
import sys

import pytest

SECRET = "hunter2-Zq9"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailhat_nb.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("args", [
    ("diagnose", "--email", "a@example.com", "--password", SECRET),
    ("diagnose", "--email", "a@example.com", f"--pw={SECRET}"),
    ("diagnose", "--email", "a@example.com", "--passw", SECRET),  # not an abbreviation
    ("sync", "--email", "a@example.com", "--server", "x", "--store", "/tmp/s", "--pass", SECRET),
    ("diagnose", "--email", "a@example.com", "--unknown", SECRET),
    ("diagnose", "--email", "a@example.com", SECRET),
])
def test_password_like_arguments_are_refused_without_echo(args: tuple[str, ...]) -> None:
    proc = _run(*args)
    assert proc.returncode == 2
    assert SECRET not in proc.stdout + proc.stderr
    assert "error" in proc.stderr


def test_password_env_is_not_mistaken_for_a_password_option() -> None:
    proc = _run("diagnose", "--email", "a@example.com", "--password-env", "MAILHAT_NO_SUCH_VAR")
    assert proc.returncode == 2
    assert "MAILHAT_NO_SUCH_VAR is not set" in proc.stderr


@pytest.mark.parametrize("args", [
    ("diagnose", "--email", "a@example.com", "--password-env", SECRET),  # value, not name
    ("sync", "--email", "a@example.com", "--server", "x", "--store", "/tmp/s",
     "--password-env", f"{SECRET} "),
    ("diagnose", "--email", "a@example.com", "--timeout", SECRET),       # invalid float
    ("diagnose", "--email", "a@example.com", "--timeout", f"it's {SECRET}"),  # repr "..."
    ("lab", "scenario", SECRET),                                         # invalid choice
])
def test_values_typed_in_the_wrong_place_are_never_echoed(args: tuple[str, ...]) -> None:
    proc = _run(*args)
    assert proc.returncode == 2
    assert SECRET not in proc.stdout + proc.stderr
    assert "not shown" in proc.stderr
