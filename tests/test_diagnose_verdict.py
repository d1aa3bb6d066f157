"""The verdict and the ticket Markdown, from results built by hand (no server needed).

The lab tests drive the same rules end to end; these pin each rule on its own,
with exactly the mix of results that used to fool it.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import mistune
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhat_nb.commands.diagnose import exit_code
from mailhat_nb.diagnose import Account, Preset, PresetResult, Report, Step, Target, codes
from mailhat_nb.diagnose.classify import classify_error, starttls_refused
from mailhat_nb.diagnose.probe import CERT_CODES, planned_steps
from mailhat_nb.diagnose.transcript import Line
from mailhat_nb.diagnose.verdict import Verdict, decide
from mailhat_nb.diagnose.wire import CLOSED, NotTLS, ReadTimeout, TLSHandshakeError

#: The check of the ``recommends_no_failed_setting`` fixture.
Check = Callable[[Verdict, list[PresetResult]], None]

#: The step a code fails at (None: every step passes; warn codes warn at auth).
FAILS_AT = {"ok": None, "plaintext_password_exposed": None, "dns_not_found": "dns",
            "dns_failure": "dns", "connection_refused": "tcp", "connect_timeout": "tcp",
            "auth_failed": "auth", "password_not_ascii": "auth", "account_locked": "auth",
            "login_delayed": "auth", "server_unavailable": "auth",
            "plaintext_auth_disabled": "auth", "smtp_auth_unavailable": "auth",
            "mailbox_unavailable": "mailbox", "cert_hostname_mismatch": "tls",
            "cert_untrusted": "tls", "cert_expired": "tls", "tls_handshake_failed": "tls",
            "starttls_failed": "tls", "starttls_unavailable": "tls", "plain_on_tls_port": "tls",
            "no_greeting": "greeting", "tls_on_plain_port": "greeting",
            "wrong_protocol": "greeting", "server_disconnected": "capabilities",
            "server_misbehaved": "capabilities", "unknown": "capabilities"}
#: Codes whose row sent the password (unless said otherwise).
LOGGED_IN = ("ok", "auth_failed", "password_not_ascii", "mailbox_unavailable", "login_delayed",
             "server_unavailable", "account_locked")


def result(protocol: str, port: int, security: str, code: str, host: str = "gator1.example.net",
           login_tried: bool | None = None, detail: str = "", alternate: bool = False,
           certificate: dict[str, object] | None = None) -> PresetResult:
    """A result as the probe would leave it: steps up to the failing one, the rest skipped."""
    preset = Preset(id=f"{protocol}-{port}-{security}",
                    label=f"{protocol.upper()} {port}",
                    protocol=protocol, host="{server}", port=port, security=security)
    if login_tried is None:
        login_tried = code in LOGGED_IN
    steps, failed = [], False
    for name in planned_steps(protocol, security):
        if failed:
            steps.append(Step(name, "skip"))
        elif name == FAILS_AT.get(code):
            steps.append(Step(name, "fail", detail=detail or code, code=code))
            failed = True
        elif name == "auth" and code == "plaintext_password_exposed":
            steps.append(Step(name, "warn", detail=detail or "not sent", code=code))
        elif name == "tls" and security == "none":
            steps.append(Step(name, "skip"))
        else:
            steps.append(Step(name, "ok"))
    return PresetResult(Target(preset, host, alternate), code=code, steps=steps,
                        login_tried=login_tried, certificate=certificate)


def report_of(results: list[PresetResult]) -> Report:
    account = Account.from_input("alice@example.com", "pw-x", server="gator1.example.net")
    return Report(account=account, results=results, verdict=decide(results, account=account))


# ------------------------------------------------------------------ unresolvable alternates

ALT = "mail.example.com.invalid"


def test_pop_only_is_seen_past_an_alternate_host_that_does_not_resolve() -> None:
    results = [
        result("imap", 993, "ssl", "connection_refused"),
        result("imap", 993, "ssl", "dns_not_found", host=ALT),
        result("imap", 143, "none", "connection_refused"),
        result("imap", 143, "none", "dns_not_found", host=ALT),
        result("pop3", 995, "ssl", "ok"),
        result("pop3", 995, "ssl", "dns_not_found", host=ALT),
    ]
    verdict = decide(results)
    assert verdict.code == "pop_only"
    assert "login works" in verdict.summary
    # only the ports that answered "closed" are re-read; the missing name stays what it is
    assert [r.code for r in results[:4]] == ["pop_only", "dns_not_found", "pop_only",
                                              "dns_not_found"]


def test_ip_blocked_is_seen_past_an_alternate_host_that_does_not_resolve() -> None:
    results = [result(p, port, sec, code, host=host)
               for p, port, sec in (("imap", 993, "ssl"), ("pop3", 995, "ssl"),
                                    ("smtp", 465, "ssl"))
               for code, host in (("connect_timeout", "gator1.example.net"),
                                  ("dns_not_found", ALT))]
    verdict = decide(results)
    assert verdict.code == "connect_timeout"
    assert verdict.summary.startswith("Every port timed out: the IP may be blocked")


def test_no_host_resolving_is_not_an_ip_block() -> None:
    results = [result("imap", 993, "ssl", "dns_not_found", host=ALT),
               result("pop3", 995, "ssl", "dns_not_found", host=ALT)]
    assert decide(results).code == "dns_not_found"


def test_filtered_imap_ports_are_seen_past_an_alternate_host_that_does_not_resolve() -> None:
    results = [result("imap", 993, "ssl", "connect_timeout"),
               result("imap", 993, "ssl", "dns_not_found", host=ALT),
               result("smtp", 465, "ssl", "ok")]
    verdict = decide(results)
    assert verdict.code == "connect_timeout"
    assert verdict.summary.startswith("No IMAP preset answers (connection timed out) while "
                                      "other mail ports do")


# ------------------------------------------------------------------ untested clear text


def test_an_untested_unencrypted_preset_is_recommended_with_its_warning_not_as_working() -> None:
    results = [result("imap", 993, "ssl", "cert_hostname_mismatch"),
               result("imap", 143, "none", "plaintext_password_exposed"),
               result("smtp", 465, "ssl", "ok")]
    report = report_of(results)
    v = report.verdict
    assert v.code == "cert_hostname_mismatch"
    assert v.incoming is results[1]  # shown to the agent (summary, panel) ...
    assert v.incoming_untested is results[1]
    assert v.incoming_working is None
    # ... but the JSON's "incoming" names only a preset whose login worked
    data = v.to_dict()
    assert data["incoming"] is None
    assert data["outgoing"] == "smtp-465-ssl"
    assert data["usable_untested"] == {
        "incoming": "imap-143-none", "outgoing": None, "outgoing_setting": None,
        "incoming_setting": {"preset": "imap-143-none", "host": "gator1.example.net",
                             "port": 143, "security": "none"}}
    assert data["incoming_setting"] is None
    assert data["outgoing_setting"] == {"preset": "smtp-465-ssl", "host": "gator1.example.net",
                                        "port": 465, "security": "ssl"}
    md = report.to_markdown()
    assert "**Incoming (IMAP):**" not in md
    assert ("usable now but untested (unencrypted, login not tried):** server "
            "gator1.example.net, port 143, security no encryption") in md
    assert ("the server accepts the password without encryption here; the doctor did not "
            "send it") in v.summary
    assert "works" not in v.summary.split("Outgoing")[0]
    assert not results[1].works
    assert results[1].usable
    assert results[1].title == "Unencrypted login offered (not tried)"
    assert "did not send the password" in results[1].explanation
    assert not report.incoming_ok
    assert exit_code(report) == 1


def test_the_same_preset_with_a_login_that_worked_counts() -> None:
    results = [result("imap", 993, "ssl", "cert_hostname_mismatch"),
               result("imap", 143, "none", "plaintext_password_exposed", login_tried=True)]
    report = report_of(results)
    assert report.verdict.incoming is results[1]
    assert report.verdict.to_dict()["incoming"] == "imap-143-none"  # it worked: named
    assert report.verdict.to_dict()["usable_untested"]["incoming"] is None
    assert report.verdict.to_dict()["incoming_setting"] == {
        "preset": "imap-143-none", "host": "gator1.example.net", "port": 143, "security": "none"}
    assert "only an unencrypted setting works" in report.verdict.summary
    assert results[1].title == "Works, but unencrypted"
    assert report.incoming_ok
    assert exit_code(report) == 0


def test_only_untested_clear_text_left_gives_the_exposure_warning() -> None:
    results = [result("imap", 993, "ssl", "connection_refused"),
               result("imap", 143, "none", "plaintext_password_exposed"),
               result("smtp", 25, "none", "plaintext_password_exposed")]
    v = decide(results)
    assert v.code == "plaintext_password_exposed"
    assert v.to_dict()["incoming"] is None
    assert v.to_dict()["outgoing"] is None
    untested = v.to_dict()["usable_untested"]
    assert (untested["incoming"], untested["outgoing"]) == ("imap-143-none", "smtp-25-none")
    assert untested["outgoing_setting"]["port"] == 25
    assert v.summary.startswith("Incoming: the only usable setting is IMAP 143")
    assert "the doctor did not send it" in v.summary


def test_wrong_password_counts_only_logins_actually_attempted() -> None:
    results = [result("imap", 993, "ssl", "auth_failed"),
               result("imap", 143, "none", "plaintext_password_exposed"),
               result("pop3", 995, "ssl", "auth_failed"),
               result("pop3", 110, "none", "plaintext_password_exposed"),
               result("smtp", 465, "ssl", "auth_failed"),
               result("smtp", 25, "none", "plaintext_password_exposed")]
    report = report_of(results)
    v = report.verdict
    assert v.code == "auth_failed"
    assert "rejected on every protocol tried (IMAP, POP3, SMTP)" in v.summary
    # after a rejection an untested clear-text preset is no recommendation
    assert v.incoming is None
    assert v.outgoing is None
    assert exit_code(report) == 1


def test_rejection_on_one_protocol_with_another_protocol_untried_is_still_named() -> None:
    results = [result("imap", 993, "ssl", "auth_failed"),
               result("smtp", 465, "ssl", "cert_hostname_mismatch"),
               result("smtp", 25, "none", "plaintext_password_exposed")]
    v = decide(results)
    assert v.code == "auth_failed"
    assert "(IMAP)" in v.summary


def test_json_results_say_whether_the_password_was_sent() -> None:
    offered = result("imap", 143, "none", "plaintext_password_exposed", detail="not sent: x")
    tried = result("imap", 143, "none", "plaintext_password_exposed", login_tried=True)
    ok = result("imap", 993, "ssl", "ok")
    data = [r.to_dict() for r in (offered, tried, ok)]
    assert [d["login_tried"] for d in data] == [False, True, True]
    assert data[0]["code"] == data[1]["code"] == "plaintext_password_exposed"
    assert data[0]["title"] == "Unencrypted login offered (not tried)"


def test_no_greeting_is_not_blamed_on_a_firewall() -> None:
    results = [result("imap", 993, "ssl", "no_greeting"),
               result("imap", 143, "none", "no_greeting"),
               result("smtp", 465, "ssl", "ok")]
    v = decide(results)
    assert v.code == "no_greeting"
    assert "accepted the connection but never greeted" in v.summary
    assert "firewall filters" not in v.summary
    mixed = decide([result("imap", 993, "ssl", "no_greeting"),
                    result("imap", 143, "none", "connect_timeout"),
                    result("smtp", 465, "ssl", "ok")])
    assert "never greeted" in mixed.summary
    assert "drops the packets" in mixed.summary


def _not_tried(protocol: str, port: int, security: str, by: str) -> PresetResult:
    """A preset the gate did not let log in: its auth step skipped with the rejection."""
    r = result(protocol, port, security, "auth_failed", login_tried=False)
    for step in r.steps:
        if step.name == "auth":
            step.status, step.code = "skip", "auth_failed"
            step.detail = (f"not tried: {by} already rejected these credentials over "
                           f"{protocol.upper()}, so the password was not sent here")
        elif step.status == "fail":
            step.status = "ok"
    return r


def test_a_preset_not_tried_after_a_rejection_says_so() -> None:
    skipped = _not_tried("imap", 143, "none", "IMAP 993")
    results = [result("imap", 993, "ssl", "auth_failed"), skipped]
    report = report_of(results)
    assert skipped.rejection_reused
    assert not results[0].rejection_reused
    assert skipped.title == "Not tried (login rejected on another preset)"
    assert skipped.detail.startswith("not tried: IMAP 993 already rejected")
    assert "did not try it on this preset" in skipped.explanation
    text = " ".join(report.to_text().split())
    assert ("Not tried (login rejected on another preset) on gator1.example.net port 143 (1 "
            "preset stopped there): not tried: IMAP 993") in text
    # --verbose: every problem line carries its detail, none ends bare after the title
    verbose = report.to_text(verbose=True).split("Every preset:")[1].split("\n\n")[0]
    problems = [ln.strip() for ln in verbose.splitlines() if ln.strip().startswith(("✗", "⚠"))]
    assert len(problems) == 2
    assert all(ln.partition(". ")[2].strip() for ln in problems), problems
    assert "Not tried (login rejected on another preset). not tried: IMAP 993" in verbose
    md = report.to_markdown()
    assert "What happened: not tried: IMAP 993 already rejected" in md


# ------------------------------------------------------------------ Markdown from a hostile server

EVIL = ("NO [click here](http://evil.example/reset) ![t](http://evil.example/t.png) "
        "<img src=x onerror=alert(1)> <http://evil.example/a> www.evil.example "
        "https://evil.example/b `code` **bold** | cell")


def _rendered(text: str) -> str:
    md = mistune.create_markdown(escape=False, plugins=["url", "table", "strikethrough"])
    out = md(text)
    assert isinstance(out, str)
    return out


def test_ticket_markdown_escapes_server_text() -> None:
    bad = result("imap", 993, "ssl", "auth_failed", detail=EVIL)
    bad.certificate = {"names": ["[x](http://evil.example)", "gator1.example.net"],
                       "issuer": "<b>Evil CA</b>", "not_before": "2024-01-01",
                       "not_after": "2030-01-01"}
    bad.transcript = [Line(1.0, "S", "* OK ready"), Line(2.0, "S", "```"),
                      Line(3.0, "S", "# injected heading [a](http://evil.example)"),
                      Line(4.0, "S", "</details><a href='http://evil.example'>x</a>")]
    report = report_of([bad, result("imap", 143, "starttls", "connection_refused")])
    assert EVIL in bad.detail  # the detail itself is kept for JSON and frames
    md = report.to_markdown()
    html = _rendered(md)
    assert "evil.example" in html  # the words are all there ...
    for markup in ("<a ", "<img", "<b>", "<strong>bold", "<h1", "<em>"):
        assert markup not in html, markup  # ... but none of it became markup
    assert "<code>code</code>" not in html
    # the hostile fence stayed inside the transcript block
    assert "injected heading" in html.split("<pre>")[1].split("</pre>")[0]


def test_markdown_of_an_ordinary_report_still_reads_well() -> None:
    report = report_of([result("imap", 993, "ssl", "ok"), result("smtp", 465, "ssl", "ok")])
    md = report.to_markdown()
    assert "### Verdict: Works (`ok`)" in md
    assert "| IMAP 993 | `gator1.example.net` | 993 | SSL/TLS | ✓ Works | `ok` |" in md
    html = _rendered(md)
    assert "<code>alice@example.com</code>" in html


@pytest.mark.parametrize("text", ["a`b", "``", "`lead", "trail`", "x | y"])
def test_code_spans_hold_any_text(text: str) -> None:
    from mailhat_nb.diagnose.report import _code

    html = _rendered(f"before {_code(text)} after")
    assert html.count("<code>") == 1
    assert "after" in html.split("</code>")[1]


# ------------------------------------------------------------------ causes ranked by evidence

SELF_SIGNED = {"names": ["gator1.example.net"], "issuer": "gator1.example.net",
               "self_signed": True, "not_after": "2030-01-01T00:00:00"}
MISMATCHED = {"names": ["gator4321.hostgator.com", "*.hostgator.com"], "issuer": "Lab CA",
              "recommended_host": "gator4321.hostgator.com", "not_after": "2030-01-01T00:00:00"}
#: Courier's and Cyrus's wrong-name certificate, whose name does not resolve: the
#: probe (certificate.vet) dropped its recommendation and said why.
NOWHERE = {"names": ["shared42.hosting.example", "*.hosting.example"], "issuer": "Foreign CA",
           "covers_host": False, "not_after": "2030-01-01T00:00:00",
           "not_here": "shared42.hosting.example does not resolve"}
def test_untrusted_certificate_on_a_server_refusing_clear_text_is_about_the_certificate(
        recommends_no_failed_setting: Check) -> None:
    # issue 10, defect 1: the unencrypted row sent no password; it is no evidence
    # against the encrypted ones, which all fail on the certificate.
    # (in the HostGator presets' order: the unencrypted options before the STARTTLS ones)
    results = [result("imap", 993, "ssl", "cert_untrusted", certificate=SELF_SIGNED),
               result("imap", 143, "none", "plaintext_auth_disabled"),
               result("smtp", 465, "ssl", "cert_untrusted", certificate=SELF_SIGNED),
               result("smtp", 25, "none", "plaintext_auth_disabled"),
               result("imap", 143, "starttls", "cert_untrusted", certificate=SELF_SIGNED)]
    v = decide(results)
    assert v.code == "cert_untrusted"
    assert "certificate" in v.summary
    assert "issued by gator1.example.net, which no trusted authority vouches for" in v.summary
    assert "trusted" in v.remedy
    assert "server name" in v.remedy
    assert "server is right to refuse" not in v.remedy
    assert v.incoming is None
    recommends_no_failed_setting(v, results)
    # the outgoing line blames the certificate too, not the refused clear text
    out = v.summary.split("No outgoing (SMTP) setting works: ")[1]
    assert out.startswith("untrusted certificate (SMTP 465")
    assert "without encryption refused" not in v.summary


def test_mismatched_certificate_on_a_server_refusing_clear_text_names_the_name_to_use(
        recommends_no_failed_setting: Check) -> None:
    results = [result("imap", 143, "none", "plaintext_auth_disabled"),
               result("imap", 993, "ssl", "cert_hostname_mismatch", certificate=MISMATCHED),
               result("imap", 143, "starttls", "cert_hostname_mismatch", certificate=MISMATCHED)]
    v = decide(results)
    assert v.code == "cert_hostname_mismatch"
    assert "Enter server gator4321.hostgator.com with IMAP 993 (SSL/TLS) instead" in v.summary
    assert "e.g. gator4321.hostgator.com" in v.remedy
    recommends_no_failed_setting(v, results)


def test_outgoing_line_blames_the_servers_tls_not_the_refused_clear_text(
        recommends_no_failed_setting: Check) -> None:
    # issue 10, defect 2: 465 breaks off the handshake, 587 answers STARTTLS with 454,
    # 25/26 (no AUTH before STARTTLS) refuse passwords in clear.
    results = [result("imap", 993, "ssl", "ok"),
               result("smtp", 465, "ssl", "tls_handshake_failed",
                      detail="the server hung up in the middle of the TLS handshake"),
               result("smtp", 25, "none", "plaintext_auth_disabled"),
               result("smtp", 26, "none", "plaintext_auth_disabled"),
               result("smtp", 587, "starttls", "starttls_failed",
                      detail="STARTTLS is offered, but unavailable now: the server answered "
                             "'454 TLS currently unavailable'")]
    v = decide(results)
    assert v.code == "ok"
    out = v.summary.split("No outgoing (SMTP) setting works: ")[1]
    assert out.startswith("server's TLS is broken (SMTP 465: gator1.example.net, port 465")
    assert "report it to the host" in out
    assert "without encryption refused" not in v.summary
    assert results[4].title == "STARTTLS failed on the server"
    recommends_no_failed_setting(v, results)


def test_a_454_reply_reads_as_offered_but_unavailable_now() -> None:
    refused = starttls_refused("454 4.7.0 TLS currently unavailable", temporary=True)
    assert refused.code == "starttls_failed"
    assert "offered, but unavailable now" in refused.detail
    assert "454 4.7.0 TLS currently unavailable" in refused.detail
    assert codes.get(refused.code).title != codes.get("starttls_unavailable").title


@pytest.mark.parametrize(("exc", "security", "code"), [
    # issue 10, defect 3: Dovecot with a key it cannot use says OK, then "* BYE ... TLS
    # initialization failed." in plain text, and hangs up: the server's STARTTLS failed.
    (TLSHandshakeError("closed", None, CLOSED, b"* BYE [UNAVAILABLE] TLS initialization failed."),
     "starttls", "starttls_failed"),
    (NotTLS(b"* BYE [UNAVAILABLE] TLS initialization failed.\r\n"), "starttls",
     "starttls_failed"),
    (NotTLS(b"M003 NO STARTTLS failed: Permission denied\r\n"), "starttls", "starttls_failed"),
    (TLSHandshakeError("closed", None, CLOSED), "starttls", "tls_handshake_failed"),
    # implicit TLS: the server aborts or alerts during the handshake
    (TLSHandshakeError("closed", None, CLOSED), "ssl", "tls_handshake_failed"),
    (TLSHandshakeError("x", None, "TLSV1_ALERT_INTERNAL_ERROR"), "ssl", "tls_handshake_failed"),
    (TLSHandshakeError("x", None, "SSLV3_ALERT_HANDSHAKE_FAILURE"), "ssl",
     "tls_handshake_failed"),
    (NotTLS(b"* BYE TLS initialization failed.\r\n"), "ssl", "tls_handshake_failed"),
    # a plain port greets: that is plain text on a TLS port, not a TLS fault
    (NotTLS(b"* OK [CAPABILITY IMAP4rev1] ready\r\n"), "ssl", "plain_on_tls_port"),
    (NotTLS(b"220 mx.example.net ESMTP\r\n"), "ssl", "plain_on_tls_port"),
    (TLSHandshakeError("x", None, "WRONG_VERSION_NUMBER"), "ssl", "plain_on_tls_port"),
    (TLSHandshakeError("x", 18, "CERTIFICATE_VERIFY_FAILED"), "starttls", "cert_untrusted"),
    # silence after an accepted STARTTLS is the server's failure, not a port that never greets
    (ReadTimeout("t"), "starttls", "starttls_failed"),
    (ReadTimeout("t"), "ssl", "no_greeting"),
])
def test_tls_failures_are_classified_from_what_the_server_said_and_did(
        exc: Exception, security: str, code: str) -> None:
    got, detail = classify_error(exc, "handshake", security)
    assert got == code, detail
    said = getattr(exc, "said", b"")
    if said and code in ("starttls_failed", "tls_handshake_failed"):
        assert said.decode().strip() in detail  # the server's own words are kept


def test_server_side_faults_point_at_the_host(
        recommends_no_failed_setting: Check) -> None:
    for name in ("tls_handshake_failed", "starttls_failed", "server_misbehaved"):
        code = codes.get(name)
        assert code.host_side
        assert "report it to the host" in code.remedy
    results = [result("imap", 993, "ssl", "tls_handshake_failed"),
               result("imap", 143, "starttls", "starttls_failed"),
               result("imap", 143, "none", "plaintext_auth_disabled")]
    v = decide(results)
    assert v.code == "tls_handshake_failed"
    assert v.remedy.startswith("The server's TLS is broken: report it to the host")
    assert "Until then no IMAP setting tested works." in v.remedy
    recommends_no_failed_setting(v, results)


def test_a_broken_tls_with_clear_text_left_makes_the_fault_the_verdict_and_clear_text_a_stopgap(
        recommends_no_failed_setting: Check) -> None:
    results = [result("imap", 993, "ssl", "tls_handshake_failed"),
               result("imap", 143, "starttls", "starttls_failed"),
               result("imap", 143, "none", "plaintext_password_exposed")]
    v = decide(results)
    assert v.code == "tls_handshake_failed"
    assert v.incoming_untested is results[2]
    assert "Until that is fixed only an unencrypted setting is usable: IMAP 143" in v.remedy
    recommends_no_failed_setting(v, results)


def test_a_closed_encrypted_port_is_no_fault_the_clear_text_warning_stays_the_verdict() -> None:
    results = [result("imap", 993, "ssl", "connection_refused"),
               result("imap", 143, "starttls", "starttls_unavailable"),
               result("imap", 143, "none", "plaintext_password_exposed")]
    assert decide(results).code == "plaintext_password_exposed"


def test_fixes_name_no_setting_to_switch_to(switch_advice: re.Pattern[str]) -> None:
    # The verdict's remedy is a fix plus settings from rows that did not fail, so a
    # fix itself must not send the agent to a kind of setting (it may have failed).
    for code in codes.CODES.values():
        assert not switch_advice.search(code.remedy), code.code
        assert not re.search(r"\b(993|995|465|587|143|110)\b", code.remedy), code.code


# ------------------------------------------------------------------ the order property

HOSTS = (("gator1.example.net", False), ("mail.example.com", True))
#: (protocol, port, security) of the presets a sweep may hold.
SLOTS = (("imap", 993, "ssl"), ("imap", 143, "starttls"), ("imap", 143, "none"),
         ("pop3", 995, "ssl"), ("pop3", 110, "none"),
         ("smtp", 465, "ssl"), ("smtp", 587, "starttls"), ("smtp", 25, "none"))
ANY_LAYER = ("dns_not_found", "connection_refused", "connect_timeout", "no_greeting",
             "server_disconnected", "server_misbehaved", "wrong_protocol", "unknown")
#: What a server may answer a login with besides yes and no (RFC 2449, RFC 5530).
NOT_NOW = ("login_delayed", "server_unavailable", "account_locked")
TLS_CODES = ("cert_hostname_mismatch", "cert_untrusted", "cert_expired", "tls_handshake_failed")
BY_SECURITY = {
    "ssl": ("ok", "auth_failed", "mailbox_unavailable", "plain_on_tls_port", *TLS_CODES,
            *NOT_NOW),
    "starttls": ("ok", "auth_failed", "mailbox_unavailable", "starttls_failed",
                 "starttls_unavailable", *TLS_CODES, *NOT_NOW),
    "none": ("plaintext_password_exposed", "plaintext_auth_disabled", "tls_on_plain_port",
             "auth_failed"),
}
#: One preset's outcome: slot, host, code, login tried, certificate, reused rejection.
Outcome = tuple[tuple[str, int, str], tuple[str, bool], str, bool, int, bool]


@st.composite
def outcomes(draw: st.DrawFn) -> list[Outcome]:
    chosen = draw(st.lists(st.sampled_from([(s, h) for s in SLOTS for h in HOSTS]),
                           min_size=1, max_size=10, unique=True))
    out: list[Outcome] = []
    for slot, host in chosen:
        protocol, _, security = slot
        pool = [c for c in (*ANY_LAYER, *BY_SECURITY[security])
                if not (protocol == "smtp" and c == "mailbox_unavailable")]
        if protocol == "smtp" and security == "none":
            pool.append("smtp_auth_unavailable")
        code = draw(st.sampled_from(pool))
        tried = draw(st.booleans()) if code == "plaintext_password_exposed" else code in LOGGED_IN
        reused = code == "auth_failed" and draw(st.booleans())
        out.append((slot, host, code, tried and not reused, draw(st.integers(0, 3)), reused))
    return out


def build(outcome: Outcome) -> PresetResult:
    (protocol, port, security), (host, alternate), code, tried, cert, reused = outcome
    certificate = (SELF_SIGNED, MISMATCHED, NOWHERE, None)[cert] if code in CERT_CODES else None
    r = result(protocol, port, security, code, host=host, alternate=alternate,
               login_tried=tried, certificate=certificate)
    if reused:
        r = _not_tried(protocol, port, security, "another preset")
        r.target = Target(r.preset, host, alternate)
    return r


def seen(v: Verdict) -> dict[str, object]:
    """Everything a reader of the verdict sees."""
    return {"json": v.to_dict(), "explanation": v.explanation, "remedy": v.remedy}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(found=outcomes(), rnd=st.randoms(use_true_random=False))
def test_the_verdict_is_the_same_for_every_order_of_the_presets(
        found: list[Outcome], rnd: random.Random, recommends_no_failed_setting: Check) -> None:
    first = decide([build(o) for o in found])
    orders = [list(p) for p in itertools.permutations(found)] if len(found) <= 4 else [
        rnd.sample(found, len(found)) for _ in range(12)]
    for order in orders:
        results = [build(o) for o in order]
        v = decide(results)
        assert seen(v) == seen(first), order
        recommends_no_failed_setting(v, results)
        assert seen(decide(results)) == seen(v)  # and again on the same results


# ------------------------------------------------------------------ foreign servers' evidence
# Cyrus IMAP 3.6.1 and Courier-IMAP 5.0.13 with their Debian defaults: what they said,
# as the rows carry them.

CYRUS = "imap.cyrus.test"
DELAYED = ("AUTH PLAIN rejected: -ERR [LOGIN-DELAY] Logins must be at least 1 minute apart "
           "(CAPA: LOGIN-DELAY 60: the server allows one login per 60 s)")


def _closed_imap() -> list[PresetResult]:
    return [result("imap", 993, "ssl", "connection_refused", host=CYRUS),
            result("imap", 143, "none", "connection_refused", host=CYRUS),
            result("imap", 143, "starttls", "connection_refused", host=CYRUS)]


def test_a_login_delay_is_no_wrong_password_and_pop_only_stays_the_verdict(
        recommends_no_failed_setting: Check) -> None:
    # D2: Debian's Cyrus allows one POP3 login a minute; the doctor's second run meets it.
    results = [*_closed_imap(),
               result("pop3", 995, "ssl", "login_delayed", host=CYRUS, detail=DELAYED)]
    v = decide(results)
    assert v.code == "pop_only"
    assert "reset" not in v.summary + v.remedy
    pop = results[3]
    assert pop.title == "Login refused for now"
    assert "Do not reset the password" in pop.remedy
    assert "LOGIN-DELAY 60" in pop.detail
    recommends_no_failed_setting(v, results)


def test_pop_only_with_a_wrong_password_says_both(recommends_no_failed_setting: Check) -> None:
    # D3: the reset alone leaves the CRM locked out: IMAP is off as well.
    results = [*_closed_imap(),
               result("pop3", 995, "ssl", "auth_failed", host=CYRUS,
                      detail="AUTH PLAIN rejected: -ERR [AUTH] authenticating: authentication "
                             "failure")]
    v = decide(results)
    assert v.code == "auth_failed"
    assert "rejected on every protocol tried (POP3)" in v.summary
    assert "POP-only account" in v.summary
    assert "enable IMAP" in v.remedy
    assert "reset" in v.remedy
    assert [r.code for r in results[:3]] == ["pop_only"] * 3
    recommends_no_failed_setting(v, results)
    assert seen(decide(results)) == seen(v)  # the re-read rows give the same verdict


def test_a_rejected_full_address_is_not_advised_again() -> None:
    # D5: Cyrus without virtdomains knows "alice", not "alice@cyrus.test".
    account = Account.from_input("alice@cyrus.test", "pw-x", server=CYRUS)
    results = [result("imap", 993, "ssl", "auth_failed", host=CYRUS,
                      detail="AUTHENTICATE PLAIN rejected: NO authentication failure"),
               result("pop3", 995, "ssl", "auth_failed", host=CYRUS,
                      detail="USER rejected: -ERR [AUTH] Invalid user")]
    v = decide(results, account=account)
    assert v.code == "auth_failed"
    assert "POP3 refused the username itself" in v.summary
    assert "full address alice@cyrus.test and the server does not know it" in v.remedy
    assert "(such as alice)" in v.remedy
    assert "cPanel" not in v.summary + v.remedy
    assert "use the full email address" not in v.remedy.lower()
    # On cPanel's presets the full address is right: the password is the suspect.
    cpanel = Preset(id="hg", label="IMAP option 1", protocol="imap", host="{server}", port=993,
                    security="ssl", panel="cpanel")
    row = result("imap", 993, "ssl", "auth_failed")
    row.target = Target(cpanel, "gator1.example.net")
    v = decide([row], account=Account.from_input("bob@example.com", "pw-x"))
    assert "reset the email password in cPanel" in v.remedy
    short = decide([row], account=Account.from_input("bob@example.com", "pw-x", username="bob"))
    assert "Use the full email address (bob@example.com) as the username" in short.remedy


def test_every_port_refusing_is_a_host_down_not_a_service_off(
        recommends_no_failed_setting: Check) -> None:
    # D6: Courier stopped: IMAP and POP3, every port refuses.
    results = [result(p, port, sec, "connection_refused", host="imap.courier.test")
               for p, port, sec in (("imap", 993, "ssl"), ("imap", 143, "none"),
                                    ("imap", 143, "starttls"), ("pop3", 995, "ssl"),
                                    ("pop3", 110, "none"))]
    for r in results:
        r.addresses = ("127.0.0.78",)
    v = decide(results)
    assert v.code == "connection_refused"
    assert v.summary.startswith("Every port tested on imap.courier.test (127.0.0.78) refuses "
                                "the connection (IMAP, POP3; ports 110, 143, 993, 995)")
    assert "the mail server is down" in v.summary
    assert "off for this account" not in v.summary.split("it is not")[0]
    recommends_no_failed_setting(v, results)


def test_imap_and_pop3_refusing_while_smtp_answers_is_the_incoming_service_down(
        recommends_no_failed_setting: Check) -> None:
    # D6's other half: Courier stopped, Exim still up on the same host. The name is
    # right; no account setting is at fault, and it is no POP-only account either.
    host = "mail.courier.test"
    results = [result(p, port, sec, "connection_refused", host=host)
               for p, port, sec in (("imap", 993, "ssl"), ("imap", 143, "starttls"),
                                    ("pop3", 995, "ssl"), ("pop3", 110, "none"))]
    results.append(result("smtp", 465, "ssl", "ok", host=host))
    v = decide(results)
    assert v.code == "connection_refused"
    assert v.summary.startswith(f"Every IMAP and POP3 port tested on {host} refuses the "
                                "connection (ports 110, 143, 993, 995)")
    assert "the server name is right" in v.summary
    assert "Outgoing: enter SMTP 465" in v.summary
    assert "off for the account" not in v.remedy
    recommends_no_failed_setting(v, results)
    # SMTP refusing as well is the whole server: host_down, which names the address.
    results[-1] = result("smtp", 465, "ssl", "connection_refused", host=host)
    assert "no mail server listens at that address" in decide(results).summary
    # IMAP alone refusing (one kind of port) is no host down: the service may be off.
    only = [result("imap", 993, "ssl", "connection_refused"),
            result("imap", 143, "starttls", "connection_refused")]
    assert "no mail server listens" not in decide(only).summary


def test_a_certificate_name_that_does_not_resolve_is_never_recommended(
        recommends_no_failed_setting: Check) -> None:
    # D4: the wrong-name certificate names shared42.hosting.example, which has no address.
    results = [result("imap", 993, "ssl", "cert_hostname_mismatch", host=CYRUS,
                      certificate=NOWHERE),
               result("imap", 143, "starttls", "cert_hostname_mismatch", host=CYRUS,
                      certificate=NOWHERE),
               result("imap", 143, "none", "plaintext_password_exposed", host=CYRUS)]
    v = decide(results)
    assert v.code == "cert_hostname_mismatch"
    assert "Enter server" not in v.summary
    assert ("No name the certificate covers leads to this server (shared42.hosting.example "
            "does not resolve): ask the host to install a certificate that covers "
            f"{CYRUS}") in v.remedy
    recommends_no_failed_setting(v, results)


@pytest.mark.parametrize("encrypted", ["cert_untrusted", "tls_handshake_failed",
                                       "starttls_failed", "connection_refused"])
def test_rows_never_point_at_a_setting_that_failed(
        encrypted: str, recommends_no_failed_setting: Check) -> None:
    # D7: the unencrypted rows' remedies used to say "use SSL/TLS or STARTTLS" while both
    # failed, the 993 row "use 993 SSL/TLS" on itself, the POP3 row "enter these settings".
    cert = SELF_SIGNED if encrypted in CERT_CODES else None
    results = [result("imap", 993, "ssl", encrypted, certificate=cert),
               result("imap", 143, "starttls",
                      "starttls_unavailable" if encrypted == "connection_refused" else encrypted,
                      certificate=cert),
               result("imap", 143, "none", "plaintext_auth_disabled"),
               result("pop3", 110, "none", "plaintext_password_exposed"),
               result("pop3", 995, "ssl", "ok")]
    v = decide(results)
    recommends_no_failed_setting(v, results)
    assert "works: use it instead" not in " ".join(r.remedy for r in results[:4])
    assert results[4].remedy.startswith("POP3 works with these settings")
    assert "do not enter this setting in the CRM" in results[4].remedy


def test_a_failing_row_points_at_the_setting_of_its_protocol_that_works() -> None:
    results = [result("imap", 993, "ssl", "ok"),
               result("imap", 143, "starttls", "starttls_unavailable"),
               result("imap", 143, "none", "plaintext_auth_disabled")]
    decide(results)
    for r in results[1:]:
        assert r.remedy.endswith("IMAP 993: gator1.example.net, port 993, SSL/TLS works: use it "
                                 "instead."), r.remedy
    assert results[0].remedy == "Enter these settings in the CRM."
