"""The connection doctor against the real lab (Dovecot + Postfix on loopback)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhat_nb.diagnose import Account, Report, diagnose
from mailhat_nb.lab import SCENARIOS, Lab, LabInfo

pytestmark = pytest.mark.lab

FAST = 1.5  # seconds: the per-probe timeout for silent/filtered ports in tests


def presets_file(tmp_path: Path, entries: list[tuple[str, str, int, str]],
                 host: str = "{server}") -> Path:
    """Write a presets file: (id, protocol, port, security) per preset."""
    out = []
    for pid, protocol, port, security in entries:
        out += ["[[preset]]", f'id = "{pid}"', f'label = "{pid}"', f'protocol = "{protocol}"',
                f'host = "{host}"', f"port = {port}", f'security = "{security}"', ""]
    path = tmp_path / "presets.toml"
    path.write_text("\n".join(out))
    return path


def run(lab: Lab, info: LabInfo, presets: str | Path, user: str = "alice",
        password: str | None = None, timeout: float = FAST, **kwargs: object) -> Report:
    acct = Account.from_input(f"{user}@{info.domain}", password or lab.password(user),
                              server=info.server)
    return diagnose(acct, presets=presets, ca_file=info.ca_file, timeout=timeout,
                    **kwargs)  # type: ignore[arg-type]


def by_id(report: Report) -> dict[str, str]:
    return {r.preset.id: r.code for r in report.results}


# ------------------------------------------------------------------ normal


def test_normal_lab_everything_works_and_verdict_names_option_1(lab: Lab,
                                                                lab_info: LabInfo) -> None:
    report = run(lab, lab_info, lab_info.presets)
    codes = by_id(report)
    assert codes["hostgator-imap-ssl"] == "ok"
    assert codes["imap-starttls-143"] == "ok"
    assert codes["pop3-ssl-995"] == "ok"
    assert codes["hostgator-smtp-ssl"] == "ok"
    # "none" presets work, with the warning that the password went in clear text
    for pid in ("hostgator-imap-none", "hostgator-smtp-none-25", "hostgator-smtp-none-26",
                "pop3-none-110"):
        assert codes[pid] == "plaintext_password_exposed"
        assert next(r for r in report.results if r.preset.id == pid).status == "warn"
    v = report.verdict
    assert v.code == "ok"
    assert v.incoming is not None
    assert v.incoming.preset.id == "hostgator-imap-ssl"
    assert v.outgoing is not None
    assert v.outgoing.preset.id == "hostgator-smtp-ssl"
    assert (f"IMAP option 1: {lab_info.server}, port {lab_info.ports['imaps']} "
            "(standing for 993), SSL/TLS") in v.summary
    assert report.incoming_ok


def test_mailbox_step_lists_folders_and_counts_inbox(lab: Lab, lab_info: LabInfo,
                                                     tmp_path: Path) -> None:
    presets = presets_file(tmp_path, [("imaps", "imap", lab_info.ports["imaps"], "ssl"),
                                      ("pop3s", "pop3", lab_info.ports["pop3s"], "ssl")])
    report = run(lab, lab_info, presets)
    imap, pop = report.results
    mailbox = imap.step("mailbox")
    assert mailbox is not None
    assert mailbox.status == "ok"
    inbox = lab_info.folders["INBOX"]
    listed = lab.doveadm("mailbox", "list", "-u", "alice@localhost").split()
    assert f"{len(listed)} folders" in mailbox.detail
    assert f"INBOX: {inbox} messages" in mailbox.detail
    assert "namespace prefix 'INBOX.'" in mailbox.detail
    assert "delimiter '.'" in mailbox.detail
    assert any("EXAMINE INBOX" in ln.text for ln in imap.transcript)  # read-only
    stat = pop.step("mailbox")
    assert stat is not None
    assert stat.detail.startswith(f"STAT: {inbox} messages")
    tls = imap.step("tls")
    assert tls is not None
    assert "TLSv1" in tls.detail
    assert imap.certificate
    assert "localhost" in imap.certificate["names"]


def test_steps_are_recorded_with_status_and_time(lab: Lab, lab_info: LabInfo) -> None:
    report = run(lab, lab_info, lab_info.presets)
    starttls = next(r for r in report.results if r.preset.id == "imap-starttls-143")
    assert [s.name for s in starttls.steps] == ["dns", "tcp", "greeting", "capabilities", "tls",
                                                "capabilities_tls", "auth", "mailbox"]
    caps, caps_tls = starttls.step("capabilities"), starttls.step("capabilities_tls")
    assert caps
    assert "STARTTLS" in caps.detail
    assert caps_tls
    assert "STARTTLS" not in caps_tls.detail.split()
    assert all(s.status == "ok" and s.elapsed_ms >= 0 for s in starttls.steps)
    none = next(r for r in report.results if r.preset.id == "hostgator-imap-none")
    tls = none.step("tls")
    assert tls is not None
    assert tls.status == "skip"
    auth = none.step("auth")
    assert auth is not None
    assert auth.status == "warn"
    assert "unencrypted" in auth.detail


def test_report_outputs_have_the_design_shape(lab: Lab, lab_info: LabInfo) -> None:
    report = run(lab, lab_info, lab_info.presets)
    data = report.to_dict()
    assert set(data) == {"account", "results", "verdict"}
    assert set(data["verdict"]) == {"code", "summary", "incoming", "outgoing"}
    assert data["verdict"]["incoming"] == "hostgator-imap-ssl"
    for result in data["results"]:
        assert set(result) == {"preset", "protocol", "host", "port", "security", "status",
                               "code", "title", "remedy", "elapsed_ms", "steps", "transcript",
                               "certificate"}
        assert result["status"] in ("ok", "warn", "fail")
        for step in result["steps"]:
            assert set(step) == {"name", "status", "elapsed_ms", "detail"}
            assert step["status"] in ("ok", "warn", "fail", "skip")
        assert all(set(t) == {"ms", "dir", "line"} for t in result["transcript"])
    frame = report.to_frame()
    assert len(frame) == len(report.results)
    assert {"preset", "host", "port", "security", "status", "code", "remedy"} <= set(frame)
    steps = report.steps_frame()
    assert len(steps) == sum(len(r.steps) for r in report.results)
    md = report.to_markdown()
    assert "### Verdict: Works (`ok`)" in md
    assert "| IMAP option 1 |" in md
    text = report.to_text()
    assert "✓" in text
    assert "⚠" in text
    assert "Verdict [ok]" in text


def test_on_result_streams_each_preset_in_the_callers_thread(lab: Lab,
                                                             lab_info: LabInfo) -> None:
    seen: list[tuple[str, int]] = []
    report = run(lab, lab_info, lab_info.presets,
                 on_result=lambda r: seen.append((r.preset.id, threading.get_ident())))
    assert sorted(pid for pid, _ in seen) == sorted(r.preset.id for r in report.results)
    assert {tid for _, tid in seen} == {threading.get_ident()}


# ------------------------------------------------------------------ scenarios

#: Scenario -> the IMAP presets that must carry the scenario's expected code.
SCENARIO_PRESETS = {
    "wrong-host-cert": ("hostgator-imap-ssl", "imap-starttls-143"),
    "expired-cert": ("hostgator-imap-ssl", "imap-starttls-143"),
    "self-signed": ("hostgator-imap-ssl", "imap-starttls-143"),
    "pop-only": ("hostgator-imap-ssl", "hostgator-imap-none", "imap-starttls-143"),
    "plaintext-disabled": ("hostgator-imap-none",),
    "plaintext-allowed": ("hostgator-imap-none",),
    "no-greeting": ("hostgator-imap-ssl", "hostgator-imap-none", "imap-starttls-143"),
    "firewalled": ("hostgator-imap-ssl", "hostgator-imap-none", "imap-starttls-143"),
    "ip-blocked": ("hostgator-imap-ssl", "hostgator-imap-none", "imap-starttls-143"),
    "closed-port": ("hostgator-imap-ssl",),
}


def test_every_scenario_is_covered() -> None:
    assert set(SCENARIO_PRESETS) == set(SCENARIOS) - {"normal"}


@pytest.mark.parametrize("name", list(SCENARIO_PRESETS))
def test_scenario_gives_its_expected_code(name: str, lab: Lab,
                                          scenario: Callable[[str], LabInfo]) -> None:
    info = scenario(name)
    start = time.monotonic()
    report = run(lab, info, info.presets)
    elapsed = time.monotonic() - start
    expect = SCENARIOS[name].expect
    codes = by_id(report)
    for pid in SCENARIO_PRESETS[name]:
        assert codes[pid] == expect, (pid, codes[pid], report.to_text())
        result = next(r for r in report.results if r.preset.id == pid)
        assert result.title
        assert result.remedy
    assert elapsed < FAST + 1.5  # concurrent: one timeout, never the sum
    # Every text a person reads has its fields filled: no "{recommended}" left over.
    for text in (report.to_text(), report.to_markdown(), report.verdict.remedy,
                 report.verdict.explanation):
        assert not re.search(r"\{[a-z_]+\}", text), text


def test_cert_mismatch_names_what_the_certificate_covers(
        lab: Lab, scenario: Callable[[str], LabInfo]) -> None:
    info = scenario("wrong-host-cert")
    report = run(lab, info, info.presets)
    result = next(r for r in report.results if r.preset.id == "hostgator-imap-ssl")
    assert result.code == "cert_hostname_mismatch"
    cert = result.certificate
    assert cert is not None
    assert cert["names"] == ["gator4321.hostgator.com", "*.hostgator.com"]
    assert cert["covers_host"] is False
    assert cert["recommended_host"] == "gator4321.hostgator.com"
    assert cert["issuer"] == "mailhat lab CA"
    assert "gator4321.hostgator.com, *.hostgator.com" in result.detail
    assert "gator4321.hostgator.com" in result.explanation
    assert "gator4321.hostgator.com" in result.remedy
    # the certificate was read over a separate connection, with no credentials
    assert not any("AUTH" in ln.text or "LOGIN" in ln.text for ln in result.transcript)
    assert report.verdict.code == "cert_hostname_mismatch"
    assert report.verdict.summary.startswith(
        "The encrypted settings fail: the server's certificate covers gator4321.hostgator.com, "
        "*.hostgator.com, not localhost. Enter server gator4321.hostgator.com with IMAP option 1")
    starttls = next(r for r in report.results if r.preset.id == "imap-starttls-143")
    assert starttls.certificate
    assert starttls.certificate["names"] == cert["names"]


def test_expired_and_self_signed_certificates_are_described(
        lab: Lab, scenario: Callable[[str], LabInfo]) -> None:
    info = scenario("expired-cert")
    report = run(lab, info, info.presets)
    result = report.results[0]
    assert result.code == "cert_expired"
    assert result.certificate
    assert result.certificate["expired"] is True
    expired_on = result.certificate["not_after"][:10]
    assert report.verdict.summary.startswith(
        f"The encrypted settings fail: the server's certificate expired on {expired_on}.")
    info = scenario("self-signed")
    report = run(lab, info, info.presets)
    result = report.results[0]
    assert result.code == "cert_untrusted"
    assert result.certificate
    assert result.certificate["self_signed"] is True
    assert "no trusted authority vouches for" in report.verdict.summary


def test_pop_only_verdict(lab: Lab, scenario: Callable[[str], LabInfo]) -> None:
    info = scenario("pop-only")
    report = run(lab, info, info.presets)
    assert report.verdict.code == "pop_only"
    assert report.verdict.incoming is None
    assert "POP-only" in report.verdict.summary
    assert "enable IMAP" in report.verdict.summary
    assert by_id(report)["pop3-ssl-995"] == "ok"
    imap = next(r for r in report.results if r.preset.id == "hostgator-imap-ssl")
    tcp = imap.step("tcp")
    assert tcp is not None
    assert "refused" in tcp.detail
    assert not report.incoming_ok


def test_ip_blocked_verdict(lab: Lab, scenario: Callable[[str], LabInfo]) -> None:
    info = scenario("ip-blocked")
    start = time.monotonic()
    report = run(lab, info, info.presets)
    assert time.monotonic() - start < FAST + 1.0
    assert all(r.code == "connect_timeout" for r in report.results)
    assert report.verdict.code == "connect_timeout"
    assert report.verdict.summary.startswith("Every port timed out: the IP may be blocked")


def test_plaintext_disabled_sends_no_password(lab: Lab,
                                              scenario: Callable[[str], LabInfo]) -> None:
    info = scenario("plaintext-disabled")
    report = run(lab, info, info.presets)
    for pid in ("hostgator-imap-none", "hostgator-smtp-none-25", "pop3-none-110"):
        result = next(r for r in report.results if r.preset.id == pid)
        assert result.code == "plaintext_auth_disabled"
        assert not any(ln.direction == "C" and ("AUTH" in ln.text or "LOGIN" in ln.text
                                                or "PASS" in ln.text)
                       for ln in result.transcript)
    assert report.verdict.code == "ok"  # SSL/TLS still works


# ------------------------------------------------------------------ credentials


def _auth_lines(report: Report) -> list[tuple[str, str]]:
    return [(r.protocol, ln.text) for r in report.results for ln in r.transcript
            if ln.direction == "C" and any(w in ln.text.split()[:2] for w in
                                           ("AUTHENTICATE", "AUTH", "LOGIN", "PASS"))]


def test_wrong_password_one_attempt_per_protocol_and_verdict(lab: Lab,
                                                             lab_info: LabInfo) -> None:
    # Logins queue behind the one-at-a-time gate and a rejection costs Dovecot
    # ~0.5 s: give a loaded machine room (no silent port is involved here).
    report = run(lab, lab_info, lab_info.presets, password="definitely-wrong-1", timeout=8)
    attempts = _auth_lines(report)
    assert sorted(p for p, _ in attempts) == ["imap", "pop3", "smtp"]
    assert all(r.code == "auth_failed" for r in report.results)
    skipped = [r for r in report.results if (s := r.step("auth")) and s.status == "skip"]
    assert len(skipped) == len(report.results) - 3
    assert all("not tried" in (r.step("auth") or r.steps[0]).detail for r in skipped)
    assert report.verdict.code == "auth_failed"
    assert "rejected on every protocol (IMAP, POP3, SMTP)" in report.verdict.summary
    assert not report.incoming_ok


def test_wrong_password_single_preset_exactly_one_login(lab: Lab, lab_info: LabInfo,
                                                        tmp_path: Path) -> None:
    presets = presets_file(tmp_path, [("imaps", "imap", lab_info.ports["imaps"], "ssl")])
    report = run(lab, lab_info, presets, password="definitely-wrong-2")
    (result,) = report.results
    assert result.code == "auth_failed"
    assert len(_auth_lines(report)) == 1
    auth = result.step("auth")
    assert auth is not None
    assert "AUTHENTICATIONFAILED" in auth.detail


def test_non_ascii_password_works_with_authenticate_plain(lab: Lab, lab_info: LabInfo) -> None:
    assert not lab.password("chloe").isascii()
    report = run(lab, lab_info, lab_info.presets, user="chloe")
    codes = by_id(report)
    assert codes["hostgator-imap-ssl"] == "ok"
    assert codes["pop3-ssl-995"] == "ok"
    assert codes["hostgator-smtp-ssl"] == "ok"
    imap = next(r for r in report.results if r.preset.id == "hostgator-imap-ssl")
    auth = imap.step("auth")
    assert auth is not None
    assert "AUTHENTICATE PLAIN" in auth.detail


# ------------------------------------------------------------------ send test


def test_send_test_delivers_and_measures_the_delay(lab: Lab, lab_info: LabInfo,
                                                   tmp_path: Path) -> None:
    before = int(lab.doveadm("mailbox", "status", "-u", "bob@localhost", "messages", "INBOX")
                 .split("=")[1])
    presets = presets_file(tmp_path, [
        ("imaps", "imap", lab_info.ports["imaps"], "ssl"),
        ("submissions", "smtp", lab_info.ports["submissions"], "ssl")])
    report = run(lab, lab_info, presets, user="bob", timeout=5, send_test=True)
    smtp = next(r for r in report.results if r.protocol == "smtp")
    send, arrival = smtp.step("send"), smtp.step("arrival")
    assert send is not None
    assert send.status == "ok"
    assert "queued" in send.detail
    assert arrival is not None
    assert arrival.status == "ok", arrival
    delay = float(arrival.detail.split("INBOX ")[1].split(" s")[0])
    assert 0 <= delay < 5
    assert "test message removed" in arrival.detail
    assert any("X-Mailhat-Test" in ln.text for ln in smtp.transcript)
    after = int(lab.doveadm("mailbox", "status", "-u", "bob@localhost", "messages", "INBOX")
                .split("=")[1])
    assert after == before  # exactly our message was removed again


# ------------------------------------------------------------------ ports that misbehave


def test_silent_blackhole_closed_ports_within_one_timeout(lab: Lab, lab_info: LabInfo,
                                                          tmp_path: Path) -> None:
    ports = lab_info.ports
    presets = presets_file(tmp_path, [
        ("silent-plain", "imap", ports["silent"], "none"),
        ("silent-ssl", "imap", ports["silent"], "ssl"),
        ("blackhole", "imap", ports["blackhole"], "ssl"),
        ("closed", "imap", ports["closed"], "ssl"),
        ("good", "imap", ports["imaps"], "ssl"),
    ], host="127.0.0.1")
    start = time.monotonic()
    report = run(lab, lab_info, presets)
    elapsed = time.monotonic() - start
    assert by_id(report) == {"silent-plain": "no_greeting", "silent-ssl": "no_greeting",
                             "blackhole": "connect_timeout", "closed": "connection_refused",
                             "good": "ok"}
    assert FAST - 0.1 < elapsed < FAST + 1.0
    start = time.monotonic()
    sequential = run(lab, lab_info, presets, concurrent=False)
    assert by_id(sequential) == by_id(report)
    assert time.monotonic() - start > 3 * FAST - 0.3  # the sum, for contrast


def test_tls_spoken_to_a_plain_port_and_vice_versa(lab: Lab, lab_info: LabInfo,
                                                   tmp_path: Path) -> None:
    ports = lab_info.ports
    presets = presets_file(tmp_path, [
        ("ssl-on-imap", "imap", ports["imap"], "ssl"),
        ("none-on-imaps", "imap", ports["imaps"], "none"),
        ("ssl-on-pop3", "pop3", ports["pop3"], "ssl"),
        ("none-on-submissions", "smtp", ports["submissions"], "none"),
    ])
    report = run(lab, lab_info, presets)
    assert by_id(report) == {"ssl-on-imap": "plain_on_tls_port",
                             "none-on-imaps": "tls_on_plain_port",
                             "ssl-on-pop3": "plain_on_tls_port",
                             "none-on-submissions": "tls_on_plain_port"}
    plain = report.results[0]
    tls = plain.step("tls")
    assert tls is not None
    assert "* OK" in tls.detail


def test_wrong_protocol_dns_and_smtp_without_auth(lab: Lab, lab_info: LabInfo,
                                                  tmp_path: Path) -> None:
    ports = lab_info.ports
    entries = [
        ("imap-on-pop3", "imap", ports["pop3"], "none"),
        ("pop3-on-smtp", "pop3", ports["smtp"], "none"),
        ("smtp-on-imap", "smtp", ports["imap"], "none"),
        ("smtp-on-lmtp", "smtp", ports["lmtp"], "none"),
        ("smtp-no-auth", "smtp", ports["relay"], "none"),
        ("smtp-no-starttls", "smtp", ports["relay"], "starttls"),
    ]
    presets = presets_file(tmp_path, entries)
    report = run(lab, lab_info, presets)
    assert by_id(report) == {"imap-on-pop3": "wrong_protocol", "pop3-on-smtp": "wrong_protocol",
                             "smtp-on-imap": "wrong_protocol", "smtp-on-lmtp": "wrong_protocol",
                             "smtp-no-auth": "smtp_auth_unavailable",
                             "smtp-no-starttls": "starttls_unavailable"}
    first = report.results[0]
    assert "POP3" in first.detail
    missing = presets_file(tmp_path, [("x", "imap", 993, "ssl")], host="nonexistent.invalid")
    (result,) = run(lab, lab_info, missing).results
    assert result.code == "dns_not_found"
    assert report.verdict.incoming is None
