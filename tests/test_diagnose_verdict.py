"""The verdict and the ticket Markdown, from results built by hand (no server needed).

The lab tests drive the same rules end to end; these pin each rule on its own,
with exactly the mix of results that used to fool it.
"""

from __future__ import annotations

import mistune
import pytest

from mailhat_nb.commands.diagnose import exit_code
from mailhat_nb.diagnose import Account, Preset, PresetResult, Report, Step, Target
from mailhat_nb.diagnose.probe import planned_steps
from mailhat_nb.diagnose.transcript import Line
from mailhat_nb.diagnose.verdict import decide

#: The step a code fails at (None: every step passes; warn codes warn at auth).
FAILS_AT = {"ok": None, "plaintext_password_exposed": None, "dns_not_found": "dns",
            "connection_refused": "tcp", "connect_timeout": "tcp", "auth_failed": "auth",
            "cert_hostname_mismatch": "tls", "no_greeting": "greeting"}


def result(protocol: str, port: int, security: str, code: str, host: str = "gator1.example.net",
           login_tried: bool | None = None, detail: str = "") -> PresetResult:
    """A result as the probe would leave it: steps up to the failing one, the rest skipped."""
    preset = Preset(id=f"{protocol}-{port}-{security}", label=f"{protocol.upper()} {port}",
                    protocol=protocol, host="{server}", port=port, security=security)
    if login_tried is None:
        login_tried = code in ("ok", "auth_failed")
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
    return PresetResult(Target(preset, host), code=code, steps=steps, login_tried=login_tried)


def report_of(results: list[PresetResult]) -> Report:
    account = Account.from_input("alice@example.com", "pw-x", server="gator1.example.net")
    return Report(account=account, results=results, verdict=decide(results))


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
    assert data["usable_untested"] == {"incoming": "imap-143-none", "outgoing": None}
    md = report.to_markdown()
    assert "**Incoming (IMAP):**" not in md
    assert "usable now but untested (unencrypted, login not tried):** IMAP 143" in md
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
    assert report.verdict.to_dict()["usable_untested"] == {"incoming": None, "outgoing": None}
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
    assert v.to_dict()["usable_untested"] == {"incoming": "imap-143-none",
                                              "outgoing": "smtp-25-none"}
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
    text = report.to_text()
    assert "Not tried (login rejected on another preset). not tried: IMAP 993" in text
    # every problem line carries its detail: none ends bare after the title
    problems = [ln for ln in text.splitlines() if ln.startswith(("✗", "⚠"))]
    assert len(problems) == 2
    assert all(ln.partition(". ")[2].strip() for ln in problems), problems
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
