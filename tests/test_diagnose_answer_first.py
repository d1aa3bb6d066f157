"""The answer first: the verdict and the setting to type lead, identical failures are said once.

What was seen (issue 14): ``mailhat diagnose`` for a customer whose names do
not resolve printed 22 grid rows, then 22 near-identical lines, then the
verdict with its remedy twice; the answer was at the bottom. Reproduced here
on the lab's world (a real DNS server where ``gone.example`` does not exist),
then the grouping checked over every order of its input.
"""

from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhat_nb.cli import main
from mailhat_nb.diagnose import Account, Preset, PresetResult, Report, Step, Target
from mailhat_nb.diagnose.grouping import group, shape
from mailhat_nb.diagnose.verdict import decide, sentences
from mailhat_nb.lab import Lab, LabInfo

PW_VAR = "MAILHAT_TEST_ANSWER_PW"
GONE = ("info@gone.example", "gator1234.gone.example")


def _diagnose(lab_info: LabInfo, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str], email: str, server: str, password: str,
              *extra: str) -> tuple[int, str]:
    monkeypatch.setenv(PW_VAR, password)
    code = main(["diagnose", "--email", email, "--server", server, "--dns-server",
                 lab_info.dns_server, "--ca-file", lab_info.ca_file, "--timeout", "3",
                 "--password-env", PW_VAR, *extra])
    return code, capsys.readouterr().out


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.lab
def test_names_that_do_not_resolve_give_the_verdict_first_and_one_sentence(
        lab_info: LabInfo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, data_text = _diagnose(lab_info, monkeypatch, capsys, *GONE, "any", "--json")
    assert code == 1
    data = json.loads(data_text)
    total = len(data["results"])
    assert total >= 20
    assert {r["code"] for r in data["results"]} == {"dns_not_found"}
    remedy = data["verdict"]["remedy"]

    code, text = _diagnose(lab_info, monkeypatch, capsys, *GONE, "any")
    lines = text.splitlines()
    # the verdict is the first line, and the remedy follows within the first few
    assert lines[0].startswith("✗ Verdict [dns_not_found] for info@gone.example: "
                               "Server name does not exist")
    head = _flat("\n".join(lines[:8]))
    assert f"Remedy: {remedy}" in head
    # each sentence of the remedy is said once, in the whole output
    for sentence in sentences(remedy):
        assert _flat(text).count(sentence) == 1, sentence
    # one sentence for the 22 identical failures
    assert (f"✗ gator1234.gone.example and mail.gone.example do not exist in DNS: all {total} "
            "presets stopped there.") in _flat(text)
    # the grid stays: one line per preset; no line of the output repeats
    grid = [ln for ln in lines if re.match(r"^✗ .+ (gator1234|mail)\.gone\.example:\d+ ", ln)]
    assert len(grid) == total
    said = [ln.strip() for ln in lines if ln.strip()]
    assert len(said) == len(set(said)), [ln for ln in said if said.count(ln) > 1]
    # no line per preset in prose, unless asked for
    assert "does not exist (NXDOMAIN" not in text.split("What failed:")[1]

    code, verbose = _diagnose(lab_info, monkeypatch, capsys, *GONE, "any", "--verbose")
    every = verbose.split("Every preset:\n")[1].split("\n\n")[0].splitlines()
    assert len(every) == total
    assert all("Server name does not exist. " in ln for ln in every)


@pytest.mark.lab
def test_the_ticket_markdown_has_the_same_order(
        lab_info: LabInfo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, md = _diagnose(lab_info, monkeypatch, capsys, *GONE, "any", "--markdown")
    order = [md.index(h) for h in ("### Verdict: Server name does not exist", "**Agent remedy:**",
                                   "### What failed", "### Presets tested", "### Details",
                                   "### Transcripts")]
    assert order == sorted(order)
    assert "do not exist in DNS: all" in md
    assert md.count("**Agent remedy:**") == 1
    remedy = md.split("**Agent remedy:** ")[1].split("\n")[0]
    assert md.count(remedy) == 1
    details = md.split("### Details")[1].split("### Transcripts")[0]
    assert details.count("**Server name does not exist**") == 1  # one group, not 22 entries


@pytest.mark.lab
def test_a_working_account_leads_with_every_field_to_type(
        lab: Lab, lab_info: LabInfo, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _diagnose(lab_info, monkeypatch, capsys, "info@bakery.example",
                           "gator4321.hostgator.com", lab.password("info"))
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == ("✓ Verdict [ok] for info@bakery.example: it works; type this in the "
                        "CRM")
    assert lines[1].strip() == ("Incoming (IMAP): server gator4321.hostgator.com, port 993, "
                                "security SSL/TLS, username info@bakery.example (IMAP option 1)")
    assert lines[2].strip().startswith("Outgoing (SMTP): server gator4321.hostgator.com, port ")
    assert "Remedy:" not in text
    # the customer's mail.<domain> fails on the certificate on every port: one sentence
    assert _flat(text).count("Certificate for another name on mail.bakery.example ports") == 1


# --------------------------------------------------------------------------- pure


def _row(protocol: str, port: int, security: str, code: str, host: str,
         step: str, detail: str) -> PresetResult:
    preset = Preset(f"{protocol}-{port}-{security}", f"{protocol.upper()} {port}", protocol,
                    "{server}", port, security)
    return PresetResult(Target(preset, host), code, [Step(step, "fail", detail=detail)])


def _sweep() -> list[PresetResult]:
    rows = []
    for host in ("gator1.example.net", "mail.example.com"):
        for protocol, port, security in (("imap", 993, "ssl"), ("imap", 143, "none"),
                                         ("pop3", 995, "ssl"), ("smtp", 465, "ssl")):
            if host == "mail.example.com":
                rows.append(_row(protocol, port, security, "dns_not_found", host, "dns",
                                 f"{host} does not exist (NXDOMAIN from nameserver 192.0.2.53)"))
            else:
                rows.append(_row(protocol, port, security, "connect_timeout", host, "tcp",
                                 f"198.51.100.7 port {port}: no answer to the connection "
                                 "attempt"))
    return rows


def test_a_detail_shape_leaves_out_host_port_and_address() -> None:
    a, b = _sweep()[0], _sweep()[4]
    assert shape(a) == "{addr} port {port}: no answer to the connection attempt"
    assert shape(b) == "{host} does not exist (NXDOMAIN from nameserver {addr})"


def test_groups_name_every_host_and_port_once() -> None:
    rows = _sweep()
    groups = group(rows)
    assert [g.code for g in groups] == ["connect_timeout", "dns_not_found"]
    timeout, missing = groups
    assert timeout.sentence(len(rows)) == (
        "Connection timed out on gator1.example.net ports 993, 143, 995 and 465 (4 presets "
        "stopped there): no answer to the connection attempt.")
    assert missing.sentence(len(rows)) == ("mail.example.com does not exist in DNS: 4 presets "
                                           "stopped there.")
    assert missing.detail() == "mail.example.com does not exist (NXDOMAIN from nameserver " \
                               "192.0.2.53)"


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_grouping_never_depends_on_the_order_of_the_presets(rnd: random.Random) -> None:
    rows = _sweep()
    expected = [(g.sentence(len(rows)), g.detail()) for g in group(rows)]
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    assert [(g.sentence(len(rows)), g.detail()) for g in group(shuffled)] == expected
    report = Report(Account.from_input("a@example.com", "pw"), shuffled, decide(shuffled))
    first = report.to_text().split("What failed:")[1].split("\n\n")[0]
    assert first == Report(Account.from_input("a@example.com", "pw"), rows,
                           decide(rows)).to_text().split("What failed:")[1].split("\n\n")[0]


def test_the_remedy_is_never_said_twice_in_any_view() -> None:
    rows = _sweep()
    report = Report(Account.from_input("a@example.com", "pw"), rows, decide(rows))
    remedy = report.verdict.remedy
    assert set(sentences(remedy)) & set(sentences(report.verdict.summary))  # the JSON's
    for view in (report.to_text(), report.to_markdown()):
        for sentence in sentences(remedy):
            assert _flat(view).count(sentence) == 1, (sentence, view)
