"""``diagnose`` without ``--server``: discovery first, against the lab's real DNS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailhat_nb.cli import main
from mailhat_nb.diagnose import Account, diagnose
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.world import SHARED_NAME

pytestmark = pytest.mark.lab

FAST = 1.5


def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            lab_info: LabInfo, email: str, password: str, *extra: str,
            dns: str | None = None) -> tuple[int, dict[str, Any]]:
    monkeypatch.setenv("MAILHAT_TEST_PW", password)
    code = main(["diagnose", "--email", email, "--dns-server", dns or lab_info.dns_server,
                 "--ca-file", lab_info.ca_file, "--password-env", "MAILHAT_TEST_PW",
                 "--timeout", str(FAST), "--json", *extra])
    out = capsys.readouterr().out
    assert password not in out
    return code, json.loads(out)


def test_no_server_names_the_shared_server_with_a_working_verdict(
        lab: Lab, lab_info: LabInfo, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, data = run_cli(capsys, monkeypatch, lab_info, "info@bakery.example",
                         lab.password("info"))
    assert code == 0
    assert data["verdict"]["code"] == "ok"
    assert data["verdict"]["incoming"] == "hostgator-imap-ssl"
    assert data["account"]["server"] == SHARED_NAME
    best = data["discovery"]["candidates"][0]
    assert best["host"] == SHARED_NAME
    assert best["recommended"]
    assert {s["kind"] for s in best["sources"]} >= {"ptr", "certificate"}
    working = [r for r in data["results"] if r["protocol"] == "imap" and r["code"] == "ok"]
    assert working
    assert all(r["host"] == SHARED_NAME for r in working)
    # The customer's own mail.<domain> fails on the certificate and gets no password.
    typed = [r for r in data["results"] if r["host"] == "mail.bakery.example"
             and r["security"] != "none"]
    assert typed
    assert all(r["code"] == "cert_hostname_mismatch" and not r["login_tried"] for r in typed)
    # The name the certificate covers leads to the same server: it is recommended (D4's
    # other half: one that does not resolve never is, test_diagnose_lab).
    assert all(r["certificate"]["recommended_host"] == SHARED_NAME for r in typed)
    assert all(f"; use {SHARED_NAME}" in step["detail"]
               for r in typed for step in r["steps"] if step["name"] == "tls")
    assert any("SPF" in note for note in data["outgoing_health"])


def test_a_discovered_host_never_gets_the_password_in_clear_text(
        lab: Lab, lab_info: LabInfo) -> None:
    account = Account.from_input("info@bakery.example", lab.password("info"))
    report = diagnose(account, ca_file=lab_info.ca_file, timeout=FAST,
                      allow_plaintext_login=True, dns_server=lab_info.dns_server)
    assert report.account.server == SHARED_NAME
    plain = [r for r in report.results if r.security == "none" and r.host == SHARED_NAME]
    assert plain
    assert not any(r.login_tried for r in plain)
    assert report.incoming_ok


@pytest.mark.parametrize(("email", "extra", "code"), [
    ("d@gone.example", (), "dns_not_found"),
    ("e@broken.example", (), "dns_servfail"),
    ("c@moved.example", (), "mail_host_elsewhere"),
    ("b@bigcorp.example", ("--presets", "hostgator"), "mx_elsewhere"),
])
def test_dns_scenarios_get_their_codes(lab_info: LabInfo, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch, email: str,
                                       extra: tuple[str, ...], code: str) -> None:
    exit_code, data = run_cli(capsys, monkeypatch, lab_info, email, "wrong-password", *extra)
    assert exit_code == 1
    assert data["verdict"]["code"] == code, data["verdict"]["summary"]
    assert code in [p["code"] for p in data["discovery"]["problems"]]


def test_mx_elsewhere_names_the_provider(lab_info: LabInfo, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _, data = run_cli(capsys, monkeypatch, lab_info, "b@bigcorp.example", "pw",
                      "--presets", "hostgator")
    summary = data["verdict"]["summary"]
    assert "Google Workspace" in summary
    assert "not HostGator" in summary
    assert "app password or OAuth" in summary
    assert data["discovery"]["provider"]["id"] == "google"


def test_presets_auto_picks_the_providers_presets(
        lab_info: LabInfo, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, data = run_cli(capsys, monkeypatch, lab_info, "b@bigcorp.example", "pw",
                      "--presets", "auto")
    assert {r["preset"] for r in data["results"]} <= {
        "gmail-imap-ssl", "gmail-smtp-ssl", "gmail-smtp-starttls", "gmail-pop3-ssl"}


def test_a_resolver_that_never_answers_is_dns_timeout(
        lab_info: LabInfo, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, data = run_cli(capsys, monkeypatch, lab_info, "info@bakery.example", "pw",
                      dns=lab_info.world["silent_resolver"])
    assert data["verdict"]["code"] == "dns_timeout"
    assert {r["code"] for r in data["results"]} == {"dns_timeout"}


def test_the_walkthrough_tells_every_world_story(lab: Lab, monkeypatch: pytest.MonkeyPatch) \
        -> None:
    from pathlib import Path

    from mailhat_nb.widgets.training import WORLD_STORIES, Walkthrough

    source = (Path(__file__).resolve().parents[1] / "notebooks"
              / "00_training_walkthrough.ipynb").read_text()
    monkeypatch.setenv("MAILHAT_LAB_DIR", str(lab.paths.root))
    walk = Walkthrough("alice@localhost", timeout=FAST)
    for name in WORLD_STORIES:
        assert f'walk.world(\\"{name}\\"' in source, name
        run = walk.world(name)
        assert getattr(run, "as_expected", False), repr(run)
    html = walk.world("find-the-server")._repr_html_()
    assert "How the server was found" in html
    assert SHARED_NAME in html
