"""The password never leaves the protocol boundary; and the CLI end to end."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhat_nb.diagnose import Account, Report, diagnose
from mailhat_nb.errors import MailhatError
from mailhat_nb.lab import Lab, LabInfo

pytestmark = pytest.mark.lab


def forms(username: str, password: str) -> list[str]:
    """The password and every base64 form it takes on the wire."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    return [password, b64(password), b64(f"\0{username}\0{password}"),
            b64(f"{username}\0{username}\0{password}")]


def everything(report: Report) -> list[str]:
    """Every text a report can show: JSON, Markdown, text, frames, transcripts."""
    texts = [report.to_json(), report.to_markdown(), report.to_text(), repr(report)]
    for frame in (report.to_frame(), report.steps_frame()):
        texts += [str(cell) for cell in frame.to_numpy().ravel()]
        texts.append(frame.to_string())
    texts += [str(line) for r in report.results for line in r.transcript]
    texts += [r.detail + r.remedy + r.explanation for r in report.results]
    return texts


@pytest.mark.parametrize(("user", "wrong", "plain"), [
    ("alice", False, False), ("chloe", False, False), ("alice", True, False),
    ("alice", False, True),  # with the clear-text logins too
])
def test_no_password_in_any_output_or_log(user: str, wrong: bool, plain: bool, lab: Lab,
                                          lab_info: LabInfo,
                                          caplog: pytest.LogCaptureFixture) -> None:
    email = f"{user}@{lab_info.domain}"
    password = lab.password(user) + ("-wrong" if wrong else "")
    caplog.set_level(logging.DEBUG, logger="mailhat_nb")
    account = Account.from_input(email, password, server=lab_info.server)
    report = diagnose(account, presets=lab_info.presets, ca_file=lab_info.ca_file, timeout=3,
                      allow_plaintext_login=plain)
    assert report.verdict.code == ("auth_failed" if wrong else "ok")
    # the probes really logged in (or tried): the transcripts show masked credentials,
    # the initial responses (SASL-IR, RFC 4954/5034) carrying the password in base64
    shown = [ln.text for r in report.results for ln in r.transcript if ln.direction == "C"]
    assert any(t.endswith("AUTHENTICATE PLAIN ***") for t in shown)
    assert any(t == "AUTH PLAIN ***" for t in shown)
    # IMAP over SSL/TLS logs in with its first command: the greeting listed SASL-IR (a
    # wrong password is tried once per protocol, maybe on 143 first)
    imaps = next(r for r in report.results if r.preset.id == "hostgator-imap-ssl")
    if not wrong:
        assert next(ln.text for ln in imaps.transcript if ln.direction == "C") == \
            "M001 AUTHENTICATE PLAIN ***"
    # (the lab's Exim, as cPanel's, offers no AUTH without TLS: nothing to try in clear)
    assert all(r.login_tried == (plain and r.protocol != "smtp")
               for r in report.results if r.security == "none")
    assert caplog.records  # the transcript is logged at DEBUG
    texts = [*everything(report), caplog.text, repr(account), str(account.to_dict())]
    for secret in forms(email, password):
        for text in texts:
            assert secret not in text


@pytest.mark.parametrize(("wrong", "plain"), [(False, False), (True, False), (False, True)])
def test_no_password_in_the_longer_logins(wrong: bool, plain: bool, lab: Lab,
                                          scenario: Callable[[str], LabInfo],
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Without SASL PLAIN: SASL LOGIN's username and password, each its own line, masked."""
    info = scenario("no-auth-plain")
    password = lab.password("alice") + ("-wrong" if wrong else "")
    caplog.set_level(logging.DEBUG, logger="mailhat_nb")
    account = Account.from_input("alice@localhost", password, server=info.server)
    report = diagnose(account, presets=info.presets, ca_file=info.ca_file, timeout=3,
                      allow_plaintext_login=plain)
    assert report.verdict.code == ("auth_failed" if wrong else "ok")
    for result in report.results:
        if not result.login_tried:
            continue
        shown = [ln.text for ln in result.transcript if ln.direction == "C"]
        at = next(i for i, t in enumerate(shown) if t.endswith(("AUTHENTICATE LOGIN",
                                                                 "AUTH LOGIN")))
        assert shown[at + 1:at + 3] == ["***", "***"], (result.preset.id, shown)
    texts = [*everything(report), caplog.text]
    for secret in forms("alice@localhost", password):
        for text in texts:
            assert secret not in text


def test_no_password_in_error_texts(lab: Lab, lab_info: LabInfo, tmp_path: Path) -> None:
    password = lab.password("alice")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[preset]]\nid = "x"\n')
    for call in (
        lambda: Account.from_input("not an address", password),
        lambda: Account.from_input("a@b.example", password, server="https://"),
        lambda: diagnose(Account.from_input("alice@localhost", password), presets=str(bad)),
        lambda: diagnose(Account.from_input("alice@localhost", password), timeout=-1),
        lambda: diagnose(Account.from_input("alice@localhost", password),
                         ca_file=tmp_path / "missing.pem"),
    ):
        with pytest.raises(MailhatError) as info:
            call()
        for secret in forms("alice@localhost", password):
            assert secret not in str(info.value)
            assert secret not in repr(info.value.__cause__)


# ------------------------------------------------------------------ CLI end to end


def _cli(args: list[str], password: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MAILHAT_DIAG_PW=password)
    return subprocess.run([sys.executable, "-m", "mailhat_nb.cli", "diagnose", *args,
                           "--password-env", "MAILHAT_DIAG_PW"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli_json_exit_0_and_no_password(lab: Lab, lab_info: LabInfo) -> None:
    password = lab.password("alice")
    proc = _cli(["--email", "alice@localhost", "--server", lab_info.server, "--presets",
                 lab_info.presets, "--ca-file", lab_info.ca_file, "--timeout", "3", "--json"],
                password)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"]["code"] == "ok"
    assert data["verdict"]["incoming"] == "hostgator-imap-ssl"
    assert data["account"]["email"] == "alice@localhost"
    assert "password" not in data["account"]
    for secret in forms("alice@localhost", password):
        assert secret not in proc.stdout + proc.stderr


def test_cli_table_and_exit_1_when_no_incoming_works(lab: Lab, lab_info: LabInfo,
                                                     tmp_path: Path) -> None:
    presets = tmp_path / "p.toml"
    presets.write_text(
        '[[preset]]\nid = "closed"\nlabel = "IMAP closed"\nprotocol = "imap"\n'
        f'host = "127.0.0.1"\nport = {lab_info.ports["closed"]}\nsecurity = "ssl"\n\n'
        '[[preset]]\nid = "smtp"\nlabel = "SMTP option 1"\nprotocol = "smtp"\n'
        f'host = "{{server}}"\nport = {lab_info.ports["submissions"]}\nsecurity = "ssl"\n')
    proc = _cli(["--email", "alice@localhost", "--server", lab_info.server, "--presets",
                 str(presets), "--ca-file", lab_info.ca_file, "--timeout", "2"],
                lab.password("alice"))
    assert proc.returncode == 1, proc.stderr
    assert "connection_refused" in proc.stdout
    assert "✗" in proc.stdout
    assert "✓" in proc.stdout
    assert "Verdict [connection_refused]" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_bad_usage_exit_2_without_traceback(lab_info: LabInfo) -> None:
    proc = _cli(["--email", "alice@localhost", "--server", "https://", "--presets",
                 lab_info.presets], "pw-value-x")
    assert proc.returncode == 2
    assert "URL without a host" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _cli(["--email", "alice@localhost", "--timeout", "0"], "pw-value-x")
    assert proc.returncode == 2
