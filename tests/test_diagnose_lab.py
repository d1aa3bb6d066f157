"""The connection doctor against the real lab (Dovecot + Exim on loopback)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhat_nb.cli import main
from mailhat_nb.diagnose import Account, PresetResult, Report, diagnose, load_presets
from mailhat_nb.lab import SCENARIOS, Lab, LabInfo

pytestmark = pytest.mark.lab

FAST = 1.5  # seconds: the per-probe timeout for silent/filtered ports in tests


def presets_file(tmp_path: Path, entries: list[tuple[str, str, int, str]],
                 host: str = "{server}", alt_hosts: tuple[str, ...] = ()) -> Path:
    """Write a presets file: (id, protocol, port, security) per preset."""
    out = []
    for pid, protocol, port, security in entries:
        out += ["[[preset]]", f'id = "{pid}"', f'label = "{pid}"', f'protocol = "{protocol}"',
                f'host = "{host}"', f"port = {port}", f'security = "{security}"']
        if alt_hosts:
            out.append("alt_hosts = [" + ", ".join(f'"{h}"' for h in alt_hosts) + "]")
        out.append("")
    path = tmp_path / "presets.toml"
    path.write_text("\n".join(out))
    return path


#: The lab presets without encryption (the HostGator "none" options and POP3 110).
NONE_PRESETS = ("hostgator-imap-none", "hostgator-smtp-none-25", "hostgator-smtp-none-26",
                "pop3-none-110")
#: Those Dovecot serves: its log shows each unencrypted connection.
DOVECOT_NONE_PRESETS = ("hostgator-imap-none", "pop3-none-110")
#: Those Exim serves: as cPanel ships it, Exim offers AUTH there only after STARTTLS.
SMTP_NONE_PRESETS = ("hostgator-smtp-none-25", "hostgator-smtp-none-26")
#: Client commands that carry (or start carrying) credentials.
CREDENTIAL_WORDS = ("AUTHENTICATE", "AUTH", "LOGIN", "PASS", "APOP")


def credential_lines(result: PresetResult) -> list[str]:
    """Client lines of a transcript that carried (or began to carry) credentials."""
    return [ln.text for ln in result.transcript if ln.direction == "C"
            and any(w in CREDENTIAL_WORDS for w in ln.text.upper().split()[:2])]


def log_size(lab: Lab) -> int:
    return lab.paths.dovecot_log.stat().st_size


def log_since(lab: Lab, offset: int, ready: Callable[[list[str]], bool],
              wait: float = 3.0) -> list[str]:
    """Dovecot's log lines written after ``offset``, once ``ready`` holds (or ``wait`` passed).

    Dovecot writes a connection's line when it ends, a moment after the client
    closed it: poll rather than read once.
    """
    deadline = time.monotonic() + wait
    while True:
        with lab.paths.dovecot_log.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode("utf-8", "replace").splitlines()
        if ready(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def plaintext_auth(lines: list[str]) -> list[str]:
    """Logins (or failed attempts) Dovecot saw on connections without TLS."""
    return [ln for ln in lines if "-login: " in ln and "TLS" not in ln
            and (": Login: " in ln or re.search(r"\b\d+ attempts", ln))]


def plaintext_quiet(lines: list[str]) -> list[str]:
    """Connections without TLS that ended with no authentication attempted."""
    return [ln for ln in lines if "-login: " in ln and "TLS" not in ln
            and "no auth attempts" in ln]


def exim_log(lab: Lab) -> Path:
    return lab.paths.log / "exim-main.log"


def exim_plain_auth(lab: Lab, offset: int) -> list[str]:
    """AUTH commands Exim took without TLS after ``offset`` of its log (it logs them as
    they arrive, before answering)."""
    with exim_log(lab).open("rb") as f:
        f.seek(offset)
        lines = f.read().decode("utf-8", "replace").splitlines()
    return [ln for ln in lines if "AUTH attempt without TLS" in ln]


def run(lab: Lab, info: LabInfo, presets: str | Path, user: str = "alice",
        password: str | None = None, timeout: float = FAST, **kwargs: object) -> Report:
    acct = Account.from_input(f"{user}@{info.domain}", password or lab.password(user),
                              server=info.server)
    return diagnose(acct, presets=presets, ca_file=info.ca_file, timeout=timeout,
                    **kwargs)  # type: ignore[arg-type]


def by_id(report: Report) -> dict[str, str]:
    return {r.preset.id: r.code for r in report.results}


def row(report: Report, preset_id: str) -> PresetResult:
    """The result of preset ``preset_id`` (on the lab's server name)."""
    return next(r for r in report.results if r.preset.id == preset_id)


# ------------------------------------------------------------------ normal


def test_normal_lab_everything_works_and_verdict_names_option_1(lab: Lab,
                                                                lab_info: LabInfo) -> None:
    offset, exim_offset = log_size(lab), exim_log(lab).stat().st_size
    report = run(lab, lab_info, lab_info.presets)
    codes = by_id(report)
    assert codes["hostgator-imap-ssl"] == "ok"
    assert codes["imap-starttls-143"] == "ok"
    assert codes["pop3-ssl-995"] == "ok"
    assert codes["hostgator-smtp-ssl"] == "ok"
    # "none" presets: IMAP and POP3 would take the password in clear (a warning), and
    # the doctor did not send it; Exim, as cPanel ships it, offers no AUTH before
    # STARTTLS, so SMTP without encryption cannot log in at all
    for pid in NONE_PRESETS:
        result = next(r for r in report.results if r.preset.id == pid)
        smtp = pid in SMTP_NONE_PRESETS
        assert result.code == ("plaintext_auth_disabled" if smtp
                               else "plaintext_password_exposed")
        assert result.status == ("fail" if smtp else "warn")
        assert not result.login_tried
        assert credential_lines(result) == [], pid
    # ... and the servers agree: unencrypted connections, not one login among them
    lines = log_since(lab, offset,
                      lambda got: len(plaintext_quiet(got)) >= len(DOVECOT_NONE_PRESETS))
    assert len(plaintext_quiet(lines)) >= len(DOVECOT_NONE_PRESETS), lines
    assert plaintext_auth(lines) == []
    assert exim_plain_auth(lab, exim_offset) == []
    assert any(": Login: " in ln and "TLS" in ln for ln in lines)  # the encrypted ones did
    v = report.verdict
    assert v.code == "ok"
    assert v.incoming is not None
    assert v.incoming.preset.id == "hostgator-imap-ssl"
    assert v.outgoing is not None
    assert v.outgoing.preset.id == "hostgator-smtp-ssl"
    assert (f"IMAP option 1: {lab_info.server}, port {lab_info.ports['imaps']} "
            "(standing for 993), SSL/TLS") in v.summary
    assert report.incoming_ok


def test_allow_plaintext_login_really_logs_in_unencrypted(lab: Lab, lab_info: LabInfo) -> None:
    offset, exim_offset = log_size(lab), exim_log(lab).stat().st_size
    report = run(lab, lab_info, lab_info.presets, allow_plaintext_login=True)
    for pid in SMTP_NONE_PRESETS:  # nothing to opt into: Exim offers no AUTH in clear
        result = next(r for r in report.results if r.preset.id == pid)
        assert (result.code, result.login_tried) == ("plaintext_auth_disabled", False), (
            result.detail, [f"{ln.direction} {ln.text}" for ln in result.transcript])
    assert exim_plain_auth(lab, exim_offset) == []
    for pid in DOVECOT_NONE_PRESETS:
        result = next(r for r in report.results if r.preset.id == pid)
        assert result.code == "plaintext_password_exposed"
        assert result.login_tried
        assert result.works
        assert result.title == "Works, but unencrypted"
        auth = result.step("auth")
        assert auth is not None
        assert "the password crossed the network unencrypted" in auth.detail
        assert credential_lines(result), pid  # sent, and recorded masked
        assert all(line.endswith("***") for line in credential_lines(result))
    lines = log_since(lab, offset,
                      lambda got: len(plaintext_auth(got)) >= len(DOVECOT_NONE_PRESETS))
    assert len(plaintext_auth(lines)) == len(DOVECOT_NONE_PRESETS), lines
    assert report.verdict.code == "ok"  # SSL/TLS still preferred


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
    assert "the server accepts passwords without encryption on this port" in auth.detail
    assert "the doctor did not send the password" in auth.detail
    assert "the server also offers STARTTLS on this port" in auth.detail
    assert "use it" not in auth.detail  # a fact; whether STARTTLS works is its own row
    mailbox = none.step("mailbox")
    assert mailbox is not None
    assert mailbox.status == "skip"


def test_report_outputs_have_the_design_shape(lab: Lab, lab_info: LabInfo) -> None:
    report = run(lab, lab_info, lab_info.presets)
    data = report.to_dict()
    assert set(data) == {"account", "discovery", "results", "verdict"}
    assert data["discovery"] is None  # a server name was given
    # DESIGN.md's fields, plus the additive "remedy"
    assert set(data["verdict"]) == {"code", "summary", "remedy", "incoming", "outgoing",
                                    "incoming_setting", "outgoing_setting", "usable_untested"}
    assert data["verdict"]["incoming"] == "hostgator-imap-ssl"
    assert data["verdict"]["incoming_setting"] == {
        "preset": "hostgator-imap-ssl", "host": lab_info.server, "port": lab_info.ports["imaps"],
        "security": "ssl"}
    assert data["verdict"]["usable_untested"] == {"incoming": None, "outgoing": None,
                                                  "incoming_setting": None,
                                                  "outgoing_setting": None}
    for result in data["results"]:
        # DESIGN.md's fields, plus the additive "login_tried"
        assert set(result) == {"preset", "protocol", "host", "port", "security", "status",
                               "code", "title", "remedy", "elapsed_ms", "steps", "transcript",
                               "certificate", "login_tried"}
        # "offered, not tried" and "worked unencrypted" share a code: login_tried tells them
        # apart, and the auth step says the password was not sent
        assert result["login_tried"] is (result["security"] != "none"), (
            result["preset"], result["code"], result["transcript"])
        if result["code"] == "plaintext_password_exposed":
            auth = next(s for s in result["steps"] if s["name"] == "auth")
            assert "the doctor did not send the password" in auth["detail"]
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
    "tls-broken": ("hostgator-imap-ssl",),
    "starttls-broken": ("imap-starttls-143",),
    "self-signed-no-plaintext": ("hostgator-imap-ssl", "imap-starttls-143"),
    # faults of the sending server: on the SMTP presets
    "smtp-tls-handshake-fails": ("hostgator-smtp-ssl",),
    "smtp-starttls-fails": ("smtp-starttls-587", "smtp-starttls-25", "smtp-starttls-26"),
    "smtp-tls-broken": ("hostgator-smtp-ssl",),
    # servers without SASL PLAIN: the same verdict the longer way
    # (tests/test_diagnose_round_trips.py follows each login)
    "no-auth-plain": ("hostgator-imap-ssl", "imap-starttls-143"),
    # servers that send what no mail server sends (tests/test_diagnose_bounds.py measures them)
    **{name: ("hostgator-imap-ssl", "imap-starttls-143") for name, s in SCENARIOS.items()
       if s.hostile},
    # Servers without an extension (the sync's fallbacks): nothing to diagnose.
    "no-list-status": ("hostgator-imap-ssl", "imap-starttls-143"),
    "no-sasl-ir": ("hostgator-imap-ssl", "imap-starttls-143"),
    "no-condstore": ("hostgator-imap-ssl", "imap-starttls-143"),
    "imap4rev1-only": ("hostgator-imap-ssl", "imap-starttls-143"),
}


#: Scenario -> `mailhat diagnose` exit status. 0 means an IMAP login worked; where
#: only an unencrypted preset is left (the certificate scenarios) the doctor did not
#: log in over it, so 1 (see mailhat_nb/commands/diagnose.py).
SCENARIO_EXIT = {
    "normal": 0, "wrong-host-cert": 1, "expired-cert": 1, "self-signed": 1, "pop-only": 1,
    "plaintext-disabled": 0, "plaintext-allowed": 0, "no-greeting": 1, "firewalled": 1,
    "ip-blocked": 1, "closed-port": 0, "tls-broken": 1, "starttls-broken": 1,
    "self-signed-no-plaintext": 1, "smtp-tls-handshake-fails": 0, "smtp-starttls-fails": 0,
    "smtp-tls-broken": 0, "no-auth-plain": 0,
    "no-list-status": 0, "no-sasl-ir": 0, "no-condstore": 0, "imap4rev1-only": 0,
    **{name: 1 for name, s in SCENARIOS.items() if s.hostile},
}


def test_every_scenario_is_covered() -> None:
    assert set(SCENARIO_PRESETS) == set(SCENARIOS) - {"normal"}
    assert set(SCENARIO_EXIT) == set(SCENARIOS)


def cli(info: LabInfo, password: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, object]]:
    """Run `mailhat diagnose --json` in this process; return the exit status and the JSON."""
    monkeypatch.setenv("MAILHAT_TEST_DIAG_PW", password)
    capsys.readouterr()
    status = main(["diagnose", "--email", info.email("alice"), "--server", info.server,
                   "--presets", info.presets, "--ca-file", info.ca_file, "--timeout", str(FAST),
                   "--password-env", "MAILHAT_TEST_DIAG_PW", "--json", *extra])
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return status, data


@pytest.mark.parametrize("name", list(SCENARIO_PRESETS))
def test_scenario_gives_its_expected_code(name: str, lab: Lab, lab_password: str,
                                          scenario: Callable[[str], LabInfo],
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    info = scenario(name)
    status, data = cli(info, lab_password, monkeypatch, capsys)
    assert status == SCENARIO_EXIT[name], data["verdict"]
    start = time.monotonic()
    report = run(lab, info, info.presets)
    elapsed = time.monotonic() - start
    assert data["verdict"] == report.verdict.to_dict()  # the CLI says what the API found
    assert status == (0 if report.incoming_ok else 1)
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
    assert cert["issuer"] == "mailhat lab CA"
    assert "gator4321.hostgator.com, *.hostgator.com" in result.detail
    assert "gator4321.hostgator.com" in result.explanation
    # D4: without the lab's DNS, gator4321.hostgator.com does not resolve here: it is not
    # recommended (test_diagnose_discovery_lab: through the lab's DNS, where it leads to
    # the same server, it is).
    assert "recommended_host" not in cert
    # (Offline it does not resolve; online it leads to HostGator's server, not to the lab.)
    assert re.fullmatch(r"gator4321\.hostgator\.com (does not resolve|leads to .*, not to "
                        r"this server \(.*\))", cert["not_here"]), cert["not_here"]
    assert "; use gator4321" not in result.detail
    assert result.remedy.startswith("No name the certificate covers leads to this server "
                                    f"({cert['not_here']}): ask the host")
    # the certificate was read over a separate connection, with no credentials
    assert not any("AUTH" in ln.text or "LOGIN" in ln.text for ln in result.transcript)
    assert report.verdict.code == "cert_hostname_mismatch"
    assert report.verdict.summary.startswith(
        "The encrypted settings fail: the server's certificate covers gator4321.hostgator.com, "
        "*.hostgator.com, not localhost.")
    assert "Enter server gator4321" not in report.verdict.summary
    # only clear text is left: named, with the warning, never as a login that worked
    assert report.verdict.incoming is not None
    assert report.verdict.incoming.preset.id == "hostgator-imap-none"
    assert ("only an unencrypted setting is usable: IMAP option 2: localhost, port "
            f"{info.ports['imap']} (standing for 143), no encryption; the server accepts the "
            "password without encryption here; the doctor did not send it"
            ) in report.verdict.summary
    assert "works" not in re.split("(?i)outgoing", report.verdict.summary)[0]
    assert not report.incoming_ok
    assert not any(credential_lines(r) for r in report.results if r.security == "none")
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


def with_unresolvable_alternates(info: LabInfo, tmp_path: Path) -> Path:
    """The lab presets, each also on an alternate host that does not resolve.

    Like HostGator's built-in presets, which test ``{server}`` and ``mail.{domain}``:
    ``mail.<domain>`` often does not exist, and its ``dns_not_found`` must not hide
    what the real host's ports say.
    """
    out = []
    for p in load_presets(info.presets):
        out += ["[[preset]]", f'id = "{p.id}"', f'label = "{p.label}"',
                f'protocol = "{p.protocol}"', f'host = "{p.host}"',
                'alt_hosts = ["mail.{domain}.invalid"]', f"port = {p.port}",
                f'security = "{p.security}"', f"stands_for = {p.std_port}", ""]
    path = tmp_path / "alternates.toml"
    path.write_text("\n".join(out))
    return path


def test_pop_only_verdict(lab: Lab, scenario: Callable[[str], LabInfo], tmp_path: Path) -> None:
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
    # the same with every preset also tried on a mail.<domain> that does not exist
    report = run(lab, info, with_unresolvable_alternates(info, tmp_path))
    missing = [r for r in report.results if r.host == "mail.localhost.invalid"]
    assert len(missing) == len(report.results) // 2
    assert {r.code for r in missing} == {"dns_not_found"}
    assert report.verdict.code == "pop_only"
    assert "POP-only" in report.verdict.summary
    assert {r.code for r in report.results if r.protocol == "imap" and r.host == "localhost"} \
        == {"pop_only"}


def test_ip_blocked_verdict(lab: Lab, scenario: Callable[[str], LabInfo],
                            tmp_path: Path) -> None:
    info = scenario("ip-blocked")
    start = time.monotonic()
    report = run(lab, info, info.presets)
    assert time.monotonic() - start < FAST + 1.0
    assert all(r.code == "connect_timeout" for r in report.results)
    assert report.verdict.code == "connect_timeout"
    assert report.verdict.summary.startswith("Every port timed out: the IP may be blocked")
    report = run(lab, info, with_unresolvable_alternates(info, tmp_path))
    assert {r.code for r in report.results if r.host == "mail.localhost.invalid"} == {
        "dns_not_found"}
    assert {r.code for r in report.results if r.host == "localhost"} == {"connect_timeout"}
    assert report.verdict.code == "connect_timeout"
    assert report.verdict.summary.startswith("Every port timed out: the IP may be blocked")


def test_plaintext_disabled_sends_no_password(lab: Lab,
                                              scenario: Callable[[str], LabInfo]) -> None:
    info = scenario("plaintext-disabled")
    offset, exim_offset = log_size(lab), exim_log(lab).stat().st_size
    report = run(lab, info, info.presets)
    for pid in NONE_PRESETS:
        result = next(r for r in report.results if r.preset.id == pid)
        assert result.code == "plaintext_auth_disabled", pid
        assert credential_lines(result) == []
        assert "no password was sent" in result.detail
    # Dovecot hides USER from CAPA here, so not even a USER went out (Dovecot
    # would log an answered USER as a failed attempt)
    pop = next(r for r in report.results if r.preset.id == "pop3-none-110")
    assert not any(ln.text.startswith("USER") for ln in pop.transcript)
    lines = log_since(lab, offset,
                      lambda got: len(plaintext_quiet(got)) >= len(DOVECOT_NONE_PRESETS))
    assert plaintext_auth(lines) == []
    assert exim_plain_auth(lab, exim_offset) == []
    assert report.verdict.code == "ok"  # SSL/TLS still works
    # Clear-text logins allowed: the server still refuses them (LOGINDISABLED, no USER in
    # CAPA, no AUTH before STARTTLS), so nothing is sent, and Dovecot saw no attempt.
    offset = log_size(lab)
    report = run(lab, info, info.presets, allow_plaintext_login=True)
    for pid in NONE_PRESETS:
        result = next(r for r in report.results if r.preset.id == pid)
        assert (result.code, result.login_tried) == ("plaintext_auth_disabled", False), pid
        assert credential_lines(result) == []
    lines = log_since(lab, offset, lambda got: len(plaintext_quiet(got)) >= len(NONE_PRESETS))
    assert plaintext_auth(lines) == []


def test_plaintext_allowed_is_a_warning_and_the_opt_in_shows_the_login_working(
        lab: Lab, scenario: Callable[[str], LabInfo]) -> None:
    info = scenario("plaintext-allowed")
    offset, exim_offset = log_size(lab), exim_log(lab).stat().st_size
    report = run(lab, info, info.presets)
    imap = next(r for r in report.results if r.preset.id == "hostgator-imap-none")
    assert (imap.code, imap.status, imap.login_tried) == ("plaintext_password_exposed", "warn",
                                                          False)
    assert credential_lines(imap) == []
    assert "the doctor did not send the password" in imap.detail
    lines = log_since(lab, offset,
                      lambda got: len(plaintext_quiet(got)) >= len(DOVECOT_NONE_PRESETS))
    assert plaintext_auth(lines) == []
    assert exim_plain_auth(lab, exim_offset) == []
    assert report.verdict.code == "ok"
    # Asked for, the clear-text login happens, works, and the servers saw it unencrypted.
    offset, exim_offset = log_size(lab), exim_log(lab).stat().st_size
    report = run(lab, info, info.presets, allow_plaintext_login=True)
    for pid in SMTP_NONE_PRESETS:
        smtp = next(r for r in report.results if r.preset.id == pid)
        assert (smtp.code, smtp.login_tried, smtp.works) == ("plaintext_password_exposed",
                                                             True, True)
    assert len(exim_plain_auth(lab, exim_offset)) == len(SMTP_NONE_PRESETS)
    imap = next(r for r in report.results if r.preset.id == "hostgator-imap-none")
    assert (imap.code, imap.login_tried, imap.works) == ("plaintext_password_exposed", True,
                                                         True)
    assert "the password crossed the network unencrypted" in imap.detail
    mailbox = imap.step("mailbox")
    assert mailbox is not None
    assert mailbox.status == "ok"
    lines = log_since(lab, offset,
                      lambda got: len(plaintext_auth(got)) >= len(DOVECOT_NONE_PRESETS))
    logins = plaintext_auth(lines)
    assert len(logins) == len(DOVECOT_NONE_PRESETS), lines
    assert all("lip=127.0.0.2" in ln and "secured" not in ln for ln in logins)


def test_cli_exit_codes_for_the_normal_lab_and_the_plaintext_opt_in(
        lab_info: LabInfo, lab_password: str, scenario: Callable[[str], LabInfo],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    status, data = cli(lab_info, lab_password, monkeypatch, capsys)
    assert status == SCENARIO_EXIT["normal"]
    assert data["verdict"]["incoming"] == "hostgator-imap-ssl"
    info = scenario("wrong-host-cert")
    status, data = cli(info, lab_password, monkeypatch, capsys)
    assert status == SCENARIO_EXIT["wrong-host-cert"] == 1
    # "incoming" names only a preset whose login worked; the unencrypted one left is
    # usable, untested, and named as such (and in the summary, with its warning)
    assert data["verdict"]["incoming"] is None
    assert data["verdict"]["usable_untested"]["incoming"] == "hostgator-imap-none"
    assert "IMAP option 2" in data["verdict"]["summary"]
    none = next(r for r in data["results"] if r["preset"] == "hostgator-imap-none")
    assert none["login_tried"] is False
    status, data = cli(info, lab_password, monkeypatch, capsys, "--allow-plaintext-login")
    assert status == 0  # the clear-text login was asked for, and it worked
    assert data["verdict"]["incoming"] == "hostgator-imap-none"
    assert data["verdict"]["usable_untested"]["incoming"] is None


@pytest.mark.parametrize("name", ["wrong-host-cert", "expired-cert", "self-signed"])
def test_json_incoming_is_never_an_untried_preset(
        name: str, lab_password: str, scenario: Callable[[str], LabInfo],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    info = scenario(name)
    status, data = cli(info, lab_password, monkeypatch, capsys)
    assert status == 1
    verdict = data["verdict"]
    assert isinstance(verdict, dict)
    results = {r["preset"]: r for r in data["results"]}  # type: ignore[attr-defined]
    for direction in ("incoming", "outgoing"):
        named = verdict[direction]
        assert named is None or (results[named]["login_tried"]
                                 and results[named]["status"] != "fail"), (direction, named)
    assert verdict["incoming"] is None
    assert verdict["usable_untested"]["incoming"] == "hostgator-imap-none"


#: Faults on the server's side: what each IMAP preset gets, in the scenario built for it.
SERVER_SIDE = {
    "tls-broken": {"hostgator-imap-ssl": "tls_handshake_failed",
                   "imap-starttls-143": "starttls_failed",
                   "hostgator-imap-none": "plaintext_password_exposed"},
    "starttls-broken": {"hostgator-imap-ssl": "connection_refused",
                        "imap-starttls-143": "starttls_failed",
                        "hostgator-imap-none": "plaintext_auth_disabled"},
    "self-signed-no-plaintext": {"hostgator-imap-ssl": "cert_untrusted",
                                 "imap-starttls-143": "cert_untrusted",
                                 "hostgator-imap-none": "plaintext_auth_disabled"},
}


@pytest.mark.parametrize("name", list(SERVER_SIDE))
def test_a_fault_of_the_servers_is_the_verdict_and_no_failing_setting_is_recommended(
        name: str, lab: Lab, lab_password: str, scenario: Callable[[str], LabInfo],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        recommends_no_failed_setting: Callable[..., None]) -> None:
    info = scenario(name)
    report = run(lab, info, info.presets)
    assert {pid: by_id(report)[pid] for pid in SERVER_SIDE[name]} == SERVER_SIDE[name]
    v = report.verdict
    assert v.code == SCENARIOS[name].expect, report.to_text()
    recommends_no_failed_setting(v, report.results)
    # with clear-text logins allowed, the verdict is the same, and no password goes out
    # unencrypted where the server refuses it
    allowed = run(lab, info, info.presets, allow_plaintext_login=True)
    assert allowed.verdict.code == v.code
    recommends_no_failed_setting(allowed.verdict, allowed.results)
    for r in allowed.results:
        if r.code == "plaintext_auth_disabled":
            assert not r.login_tried
            assert credential_lines(r) == [], r.preset.id
    # the CLI (text and JSON) says what the API found, exit 1
    status, data = cli(info, lab_password, monkeypatch, capsys)
    assert status == SCENARIO_EXIT[name] == 1
    verdict = data["verdict"]
    assert isinstance(verdict, dict)
    assert (verdict["code"], verdict["remedy"]) == (v.code, v.remedy)
    assert main(["diagnose", "--email", info.email("alice"), "--server", info.server,
                 "--presets", info.presets, "--ca-file", info.ca_file, "--timeout", str(FAST),
                 "--password-env", "MAILHAT_TEST_DIAG_PW"]) == 1
    text = " ".join(capsys.readouterr().out.split())
    # the answer first: ✗ nothing works, ⚠ only a stopgap with its catch is left
    assert re.match(rf"[✗⚠] Verdict \[{v.code}\]", text), text[:80]
    assert f"Remedy: {v.remedy}" in text


def test_a_server_whose_starttls_fails_on_its_side_keeps_its_words(
        lab: Lab, scenario: Callable[[str], LabInfo]) -> None:
    report = run(lab, (info := scenario("tls-broken")), info.presets)
    starttls, implicit = row(report, "imap-starttls-143"), row(report, "hostgator-imap-ssl")
    assert (starttls.code, starttls.title) == ("starttls_failed", "STARTTLS failed on the server")
    assert "TLS initialization failed" in starttls.detail  # Dovecot's own words
    assert "report it to the host" in starttls.remedy
    assert implicit.code == "tls_handshake_failed"
    assert "hung up in the middle of the TLS handshake" in implicit.detail
    v = report.verdict
    assert v.summary.startswith("The encrypted settings fail: server's TLS is broken")
    assert "TLS initialization failed" in v.summary  # the second fault, in its words
    assert v.remedy.startswith("The server's TLS is broken: report it to the host")
    assert ("Until that is fixed only an unencrypted setting is usable: IMAP option 2"
            in v.remedy)
    assert v.incoming_untested is not None
    assert not report.incoming_ok


def test_the_outgoing_line_blames_the_servers_tls_not_the_refused_clear_text(
        lab: Lab, scenario: Callable[[str], LabInfo],
        recommends_no_failed_setting: Callable[..., None]) -> None:
    # 465 cuts the handshake off, 587/25/26 answer STARTTLS with 454, and 25/26 without
    # encryption offer no AUTH (no password sent): the cause is the server's TLS.
    report = run(lab, (info := scenario("smtp-tls-broken")), info.presets)
    assert row(report, "hostgator-smtp-ssl").code == "tls_handshake_failed"
    submission = row(report, "smtp-starttls-587")
    assert (submission.code, submission.title) == ("starttls_failed",
                                                   "STARTTLS failed on the server")
    assert "offered, but unavailable now" in submission.detail
    assert "454" in submission.detail
    assert row(report, "hostgator-smtp-none-25").code == "plaintext_auth_disabled"
    v = report.verdict
    assert v.code == "ok"  # IMAP works
    assert v.outgoing is None
    out = v.summary.split("No outgoing (SMTP) setting works: ")[1]
    assert out.startswith("server's TLS is broken (SMTP option 1")
    assert "report it to the host" in out
    assert "without encryption refused" not in v.summary
    recommends_no_failed_setting(v, report.results)


def test_an_untrusted_certificate_on_a_server_refusing_clear_text_is_about_the_certificate(
        lab: Lab, scenario: Callable[[str], LabInfo]) -> None:
    # The unencrypted preset is refused (no password sent): no evidence against the
    # encrypted ones, which fail on the certificate. The remedy is about the certificate.
    info = scenario("self-signed-no-plaintext")
    report = run(lab, info, info.presets)
    v = report.verdict
    assert v.code == "cert_untrusted"
    assert "which no trusted authority vouches for" in v.summary
    assert "certificate" in v.remedy
    assert "server name" in v.remedy
    assert "right to refuse" not in v.remedy
    assert "without encryption refused" not in v.summary


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
    encrypted = [r for r in report.results if r.security != "none"]
    unencrypted = [r for r in report.results if r.security == "none"]
    assert all(r.code == "auth_failed" for r in encrypted)
    # judged from the offer, never tried: neither a rejection nor a recommendation
    assert {r.preset.id: r.code for r in unencrypted} == {
        pid: "plaintext_auth_disabled" if pid in SMTP_NONE_PRESETS
        else "plaintext_password_exposed" for pid in NONE_PRESETS}
    assert not any(r.login_tried for r in unencrypted)
    skipped = [r for r in report.results if (s := r.step("auth")) and s.status == "skip"]
    assert len(skipped) == len(encrypted) - 3
    assert all("not tried" in (r.step("auth") or r.steps[0]).detail for r in skipped)
    assert report.verdict.code == "auth_failed"
    assert "rejected on every protocol tried (IMAP, POP3, SMTP)" in report.verdict.summary
    # The customer's sentence comes from a real rejection, not from a preset
    # that only inherited one (that would explain the gate, not the problem).
    assert "did not try it on this preset" not in report.verdict.explanation
    assert report.verdict.incoming is None
    assert report.verdict.outgoing is None
    assert not report.incoming_ok


def test_a_rejected_password_with_a_trailing_space_says_so_first(lab: Lab,
                                                                  lab_info: LabInfo) -> None:
    # Invisible in a Password box, and the likeliest cause: the verdict leads with it.
    report = run(lab, lab_info, lab_info.presets, password=lab.password("alice") + " ",
                 timeout=8)
    assert report.verdict.code == "auth_failed"
    assert report.verdict.summary.startswith("The password starts or ends with a space")


def test_wrong_password_with_plaintext_login_allowed_is_tried_encrypted_first(
        lab: Lab, lab_info: LabInfo) -> None:
    # The unencrypted presets reach the login gate first (no TLS handshake). The one
    # attempt per protocol must still go to an encrypted preset: a wrong password is
    # then rejected over TLS and never sent in clear.
    offset, exim_offset = log_size(lab), exim_log(lab).stat().st_size
    report = run(lab, lab_info, lab_info.presets, password="definitely-wrong-3", timeout=8,
                 allow_plaintext_login=True)
    attempts = [(r.protocol, r.security) for r in report.results if credential_lines(r)]
    assert sorted(p for p, _ in attempts) == ["imap", "pop3", "smtp"], attempts
    assert all(security != "none" for _, security in attempts), attempts
    for r in report.results:
        if r.security == "none":
            assert not r.login_tried, r.preset.id
            assert r.code == "auth_failed"
            assert r.rejection_reused
            assert "the password was not sent here" in r.detail
    lines = log_since(lab, offset,
                      lambda got: len(plaintext_quiet(got)) >= len(DOVECOT_NONE_PRESETS))
    assert plaintext_auth(lines) == [], lines  # Dovecot saw no login without TLS
    assert exim_plain_auth(lab, exim_offset) == []  # nor did Exim
    assert report.verdict.code == "auth_failed"
    assert "rejected on every protocol tried (IMAP, POP3, SMTP)" in report.verdict.summary
    text = report.to_text(verbose=True)
    assert "Not tried (login rejected on another preset). not tried: " in text


def test_plaintext_login_waits_for_encrypted_presets_within_one_timeout(
        lab: Lab, lab_info: LabInfo, tmp_path: Path) -> None:
    # An encrypted IMAP preset on a port that never answers holds the unencrypted
    # login back until it has failed (one timeout), no longer; then the clear-text
    # login (asked for) goes ahead and works.
    ports = lab_info.ports
    presets = presets_file(tmp_path, [("silent-ssl", "imap", ports["silent"], "ssl"),
                                      ("blackhole-ssl", "imap", ports["blackhole"], "ssl"),
                                      ("plain", "imap", ports["imap"], "none")],
                           host="127.0.0.1")
    start = time.monotonic()
    report = run(lab, lab_info, presets, allow_plaintext_login=True)
    elapsed = time.monotonic() - start
    assert by_id(report) == {"silent-ssl": "no_greeting", "blackhole-ssl": "connect_timeout",
                             "plain": "plaintext_password_exposed"}
    plain = report.results[2]
    assert plain.login_tried
    assert plain.works
    auth = plain.step("auth")
    assert auth is not None
    assert auth.elapsed_ms > (FAST - 0.3) * 1000  # it waited for the encrypted ones ...
    assert elapsed < FAST + 1.0  # ... and the sweep still took about one timeout
    assert report.incoming_ok


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
    assert "250 OK id=" in send.detail  # Exim's acceptance, quoted
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


def test_incoming_service_down_while_smtp_answers(lab: Lab, lab_info: LabInfo,
                                                  tmp_path: Path) -> None:
    # D6: nothing serves IMAP or POP3 on the host, while its Exim answers: the name is
    # right and no account setting is at fault (not "this service is off for you").
    ports = lab_info.ports
    presets = presets_file(tmp_path, [("imaps", "imap", ports["closed"], "ssl"),
                                      ("imap", "imap", ports["closed"], "starttls"),
                                      ("pop3s", "pop3", ports["closed"], "ssl"),
                                      ("smtps", "smtp", ports["submissions"], "ssl")])
    report = run(lab, lab_info, presets)
    assert by_id(report) == {"imaps": "connection_refused", "imap": "connection_refused",
                             "pop3s": "connection_refused", "smtps": "ok"}
    v = report.verdict
    assert v.code == "connection_refused"
    assert v.summary.startswith(f"Every IMAP and POP3 port tested on {lab_info.server} "
                                "refuses the connection")
    assert "while its sending server (SMTP) answers" in v.summary
    assert "off for the account" not in v.summary + v.remedy


def test_every_port_refusing_names_the_address_the_name_led_to(lab: Lab, lab_info: LabInfo,
                                                              tmp_path: Path) -> None:
    # D6 whole: IMAP, POP3 and SMTP all refuse. The verdict names the address the lab's
    # DNS gave for the server, which the agent checks against the control panel.
    closed = lab_info.ports["closed"]
    presets = presets_file(tmp_path, [("imaps", "imap", closed, "ssl"),
                                      ("pop3s", "pop3", closed, "ssl"),
                                      ("smtps", "smtp", closed, "ssl")])
    report = run(lab, lab_info, presets)
    assert set(by_id(report).values()) == {"connection_refused"}
    found = report.results[0].addresses
    assert found
    assert all(a.startswith("127.0.0.") for a in found)
    assert report.verdict.summary.startswith(
        f"Every port tested on {lab_info.server} ({', '.join(found[:4])}) refuses the connection")
