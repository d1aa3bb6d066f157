"""Where a password may come from, and what is refused before it reaches a server."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from mailhat_nb import cli
from mailhat_nb.errors import UsageError
from mailhat_nb.secrets import Secret, from_env, obtain

VALUE = "Xy9-unique-pw"


@pytest.mark.parametrize(("value", "words"), [
    (VALUE + "\udcff", "not valid UTF-8"),
    (VALUE + "\n", "a line break"),
    (VALUE + "\r\nQUIT", "a line break"),
    (VALUE + "\0", "a control character"),
])
def test_a_password_no_protocol_can_carry_is_refused_unseen(value: str, words: str) -> None:
    with pytest.raises(UsageError, match=words) as caught:
        Secret(value)
    assert VALUE not in str(caught.value)


def test_an_undecodable_environment_password_is_usage_for_every_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # What Python makes of `export PW=$'pw\xff'`: a lone surrogate.
    monkeypatch.setenv("MH_BAD", VALUE + "\udcff")
    with pytest.raises(UsageError, match="not valid UTF-8"):
        from_env("MH_BAD")
    for argv in (["diagnose", "--email", "a@example.com", "--server", "mail.example.com"],
                 ["sync", "--email", "a@example.com", "--server", "mail.example.com",
                  "--store", "/nonexistent/s"]):
        assert cli.main([*argv, "--password-env", "MH_BAD"]) == 2, argv
        err = capsys.readouterr().err
        assert "not valid UTF-8" in err
        assert VALUE not in err


def test_an_empty_password_env_is_an_error_not_a_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(VALUE + "\n"))
    with pytest.raises(UsageError, match="NAME of an environment variable"):
        obtain("")


def test_no_terminal_means_no_prompt() -> None:
    # A new session has no controlling terminal (a cron job, a CI step):
    # getpass would read stdin with echo; obtain refuses instead.
    code = ("from mailhat_nb.secrets import obtain\n"
            "try:\n    obtain(None)\nexcept Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], input=VALUE + "\n", text=True,
                          capture_output=True, start_new_session=True, timeout=60, check=False)
    assert proc.stdout.startswith("UsageError no terminal to ask for the password on")
    assert "--password-env" in proc.stdout
    assert VALUE not in proc.stdout + proc.stderr
