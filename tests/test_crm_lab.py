"""The CRM's error beside the doctor's own result, against the real lab.

Three real sweeps stand for what the doctor can find: a normal lab (it logs
in), the ``ip-blocked`` scenario (every port drops packets: it cannot
connect) and a wrong password (its login is rejected). Each CRM message
family is set beside each, and the verdict must say what the two together
mean. Then: the messages real clients print against the lab's real servers
are understood, and the command line carries the CRM's error into its text,
JSON and Markdown without the password.
"""

from __future__ import annotations

import imaplib
import io
import json
import poplib
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhat_nb.cli import main
from mailhat_nb.diagnose import Account, Report, diagnose
from mailhat_nb.diagnose.crm import attach, beside, understand
from mailhat_nb.lab import Lab, LabInfo

pytestmark = pytest.mark.lab

FAST = 1.5  # seconds a silent port is given


def sweep(lab: Lab, info: LabInfo, password: str | None = None) -> Report:
    account = Account.from_input(info.email("alice"), password or lab.password("alice"),
                                 server=info.server)
    return diagnose(account, presets=info.presets, ca_file=info.ca_file, timeout=FAST)


@pytest.fixture(scope="module")
def logged_in(lab: Lab, lab_info: LabInfo) -> Report:
    report = sweep(lab, lab_info)
    assert report.verdict.incoming_working is not None
    return report


@pytest.fixture(scope="module")
def blocked(lab: Lab, lab_info: LabInfo) -> Report:
    lab.set_scenario("ip-blocked")
    try:
        report = sweep(lab, lab_info)
    finally:
        lab.set_scenario("normal")
    assert report.verdict.code == "connect_timeout"
    return report


@pytest.fixture(scope="module")
def rejected(lab: Lab, lab_info: LabInfo) -> Report:
    report = sweep(lab, lab_info, password="not-the-password-9")
    assert report.verdict.code == "auth_failed"
    return report


#: A real message per family, and what the verdict must say beside each doctor outcome.
COMBINATIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("TimeoutError: [Errno 110] Connection timed out", "logged_in",
     ("logs in from here", "times out", "CRM's path to the server is blocked", "cPHulk",
      "CSF", "Ask the host", "IP addresses")),
    ("ConnectionRefusedError: [Errno 111] Connection refused", "logged_in",
     ("CRM's path to the server is blocked", "is refused", "Ask the host")),
    ("Cannot authenticate to IMAP server: [ALERT] LOGIN DENIED -- TOO MANY FAILURES",
     "logged_in", ("CRM's path to the server is blocked", "is blocked", "unblock")),
    ("Connection timed out.", "blocked",
     ("cannot connect from here either", "server is down", "cPHulk and CSF")),
    ("Connection timed out.", "rejected",
     ("password is wrong", "failed retries", "reset the password", "unblock")),
    ("a1 NO [AUTHENTICATIONFAILED] Authentication failed.", "logged_in",
     ("CRM holds an old or mistyped password", "alice@localhost", "cPHulk")),
    ("a1 NO [AUTHENTICATIONFAILED] Authentication failed.", "rejected",
     ("login is rejected too", "reset it in cPanel")),
    ("a1 NO [AUTHENTICATIONFAILED] Authentication failed.", "blocked",
     ("did not get as far as a login",)),
    ("[ALERT] Application-specific password required: https://support.google.com/accounts/"
     "answer/185833 (Failure)", "logged_in", ("same one in the CRM",)),
    ("[ALERT] Please log in via your web browser", "logged_in",
     ("browser sign-in", "confirm the security alert")),
    ("certificate verify failed: certificate has expired", "logged_in",
     ("another server name", "exactly as localhost")),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number", "logged_in",
     ("security setting does not match its port", "IMAP option 1")),
    ("a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) "
     "connections.", "logged_in", ("set the CRM to IMAP option 1",)),
    ("socket.gaierror: [Errno -2] Name or service not known", "logged_in",
     ("misspelt", "Enter localhost")),
    ("[ALERT] Too many simultaneous connections. (Failure)", "logged_in",
     ("mail_max_userip_connections",)),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", "logged_in",
     ("hung up on the CRM",)),
    ("Mail server localhost is not an IMAP4 server.", "logged_in", ("IMAP works from here",)),
    ("a3 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)", "logged_in",
     ("quota",)),
    ("554 5.7.1 <someone@example.org>: Relay access denied", "logged_in",
     ("turn on SMTP authentication", "SMTP option 1")),
]


@pytest.mark.parametrize(("said", "outcome", "expected"), COMBINATIONS,
                         ids=[f"{c[1]}-{c[0][:30]}" for c in COMBINATIONS])
def test_the_crms_error_beside_the_doctors_result(
        said: str, outcome: str, expected: tuple[str, ...],
        request: pytest.FixtureRequest) -> None:
    report: Report = request.getfixturevalue(outcome)
    sentence = beside(understand(said), report)
    for words in expected:
        assert words in sentence, (words, sentence)
    assert "{" not in sentence


def test_an_unknown_message_changes_nothing(logged_in: Report) -> None:
    assert beside(understand("Something went wrong"), logged_in) == ""


def test_attach_leads_the_verdict_with_it(lab: Lab, lab_info: LabInfo) -> None:
    report = sweep(lab, lab_info)
    summary = report.verdict.summary
    found = attach(report, "Connection timed out", [lab.password("alice")])
    assert report.crm_error is found
    assert report.verdict.summary == f"{found.beside} {summary}"
    assert report.verdict.code == "ok"  # the doctor's own finding stands
    data = report.to_dict()
    assert data["crm_error"] == {"text": "Connection timed out", "code": "connect_timeout",
                                 "summary": found.summary, "matched": "connection-timed-out"}


def test_the_ip_blocked_lab_with_a_crm_timeout_on_the_command_line(
        lab: Lab, lab_info: LabInfo, scenario: Callable[[str], LabInfo],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    scenario("ip-blocked")
    password = lab.password("alice")
    monkeypatch.setenv("MH_TEST_PW", password)
    code = main(["diagnose", "--email", lab_info.email("alice"), "--server", lab_info.server,
                 "--presets", str(lab_info.presets), "--ca-file", str(lab_info.ca_file),
                 "--password-env", "MH_TEST_PW", "--timeout", str(FAST), "--json",
                 "--crm-error", f"Connection timed out (login alice / {password})"])
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["crm_error"]["code"] == "connect_timeout"
    assert password not in json.dumps(data)
    assert data["verdict"]["code"] == "connect_timeout"
    assert data["verdict"]["summary"].startswith("The doctor cannot connect from here either")


@pytest.mark.parametrize("form", ["--json", "--markdown", None])
def test_the_crms_error_in_every_output_without_the_password(
        form: str | None, lab: Lab, lab_info: LabInfo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    password = lab.password("alice")
    monkeypatch.setenv("MH_TEST_PW", password)
    pasted = (f"C: a1 LOGIN alice@localhost {password}\n"
              "S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(pasted))
    args = ["diagnose", "--email", lab_info.email("alice"), "--server", lab_info.server,
            "--presets", str(lab_info.presets), "--ca-file", str(lab_info.ca_file),
            "--password-env", "MH_TEST_PW", "--timeout", str(FAST), "--crm-error", "-"]
    assert main(args + ([form] if form else [])) == 0
    out = capsys.readouterr().out
    assert password not in out
    assert "LOGIN alice@localhost ***" in out
    assert "CRM holds an old or mistyped password" in " ".join(out.split())  # wrapped text
    if form == "--json":
        assert json.loads(out)["crm_error"]["code"] == "auth_failed"
    elif form == "--markdown":
        assert "### What the CRM said" in out
    else:
        assert "The CRM said: C: a1 LOGIN alice@localhost ***" in out


def test_empty_crm_error_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--email", "a@example.com", "--crm-error", "  "]) == 2
    assert "--crm-error is empty" in capsys.readouterr().err


# --------------------------------------------------------------------------- real clients


def _said(action: Callable[[], object]) -> str:
    """What a client library says when ``action`` fails, as a CRM's log would show it."""
    try:
        action()
    except Exception as exc:  # any client error is the point here
        return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    raise AssertionError("the action did not fail")


def test_what_real_clients_say_to_the_lab_is_understood(lab: Lab, lab_info: LabInfo) -> None:
    ports = lab_info.ports
    ctx = ssl.create_default_context(cafile=str(lab_info.ca_file))

    def imap_login(user: str, password: str) -> None:
        imaplib.IMAP4_SSL("localhost", ports["imaps"], ssl_context=ctx, timeout=5).login(
            user, password)

    def pop_login() -> None:
        client = poplib.POP3_SSL("localhost", ports["pop3s"], context=ctx, timeout=5)
        client.user("alice@localhost")
        client.pass_("not-the-password-9")

    def smtp_login() -> None:
        smtplib.SMTP_SSL("localhost", ports["submissions"], context=ctx, timeout=5).login(
            "alice@localhost", "not-the-password-9")

    def relay() -> None:
        smtplib.SMTP("localhost", ports["smtp"], timeout=5).sendmail(
            "sales@example.org", ["someone@example.org"], "Subject: x\r\n\r\nx")

    cases = {
        "auth_failed": [lambda: imap_login("alice@localhost", "not-the-password-9"), pop_login,
                        smtp_login],
        "password_not_ascii": [lambda: imap_login("chloe@localhost", lab.password("chloe"))],
        "plain_on_tls_port": [lambda: imaplib.IMAP4_SSL("localhost", ports["imap"],
                                                        ssl_context=ctx, timeout=5)],
        "wrong_protocol": [lambda: imaplib.IMAP4("localhost", ports["smtp"], timeout=5)],
        "connection_refused": [lambda: imaplib.IMAP4("localhost", ports["closed"], timeout=5)],
        "connect_timeout": [lambda: imaplib.IMAP4("localhost", ports["blackhole"], timeout=1)],
        "relay_denied": [relay],
    }
    for code, actions in cases.items():
        for action in actions:
            said = _said(action)
            assert understand(said).code == code, said


def test_a_certificate_problem_as_a_client_sees_it(lab_info: LabInfo,
                                                   scenario: Callable[[str], LabInfo]) -> None:
    ctx = ssl.create_default_context(cafile=str(lab_info.ca_file))
    for name, code in (("expired-cert", "cert_expired"),
                       ("wrong-host-cert", "cert_hostname_mismatch"),
                       ("self-signed", "cert_untrusted")):
        scenario(name)
        said = _said(lambda: imaplib.IMAP4_SSL("localhost", lab_info.ports["imaps"],
                                               ssl_context=ctx, timeout=5))
        assert understand(said).code == code, said


# --------------------------------------------------------------------------- the panel


def test_the_doctor_panel_understands_the_crm_and_keeps_history(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ipywidgets as w

    from mailhat_nb.widgets import DoctorPanel

    monkeypatch.setenv("MAILHAT_LAB_DIR", lab_info.root)
    password = lab.password("alice")
    folder = tmp_path / "history"
    panel = DoctorPanel(email=lab_info.email("alice"), server=lab_info.server, password_env="",
                        timeout=FAST, history_dir=folder)
    panel.password.value = password
    panel.crm_error.value = f"a1 LOGIN alice@localhost {password}\nConnection timed out"
    assert panel.run() is not None
    # the box is left holding only what is kept, the password masked
    assert panel.crm_error.value == "a1 LOGIN alice@localhost ***\nConnection timed out"
    shown = panel.verdict.value
    assert "What the CRM said: Connection timed out" in shown
    assert "Beside the doctor's result:" in shown
    assert "First saved run for this address." in shown
    state = json.dumps(w.Widget.get_manager_state(drop_defaults=False))
    for text in (shown, panel.static_html(), state):
        assert password not in text
    again = DoctorPanel(email=lab_info.email("alice"), server=lab_info.server, password_env="",
                        timeout=FAST, history_dir=folder)
    again.password.value = password
    assert again.run() is not None
    assert "Since the last run" in again.verdict.value
    assert len(list(folder.iterdir())) == 2


def test_the_doctor_panel_says_when_its_history_folder_cannot_be_used(
        lab_info: LabInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailhat_nb.widgets import DoctorPanel

    monkeypatch.setenv("MAILHAT_LAB_DIR", lab_info.root)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    panel = DoctorPanel(email=lab_info.email("alice"), server=lab_info.server, timeout=FAST,
                        history_dir=a_file, run_now=True)
    assert panel.report is None
    assert "the history folder" in panel.error
    assert "is a file, not a folder" in panel.error
