"""Pure functions of the connection doctor: no server needed."""

from __future__ import annotations

import base64
import doctest
import importlib
import re
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from mailhat_nb.cli import main
from mailhat_nb.diagnose import Account, builtin_names, codes, load_presets
from mailhat_nb.diagnose.certificate import classify_verify, covers, recommend
from mailhat_nb.diagnose.classify import (
    Diagnosed,
    classify_auth_reply,
    classify_error,
    classify_smtp_auth,
    greeting_protocol,
    wrong_protocol,
)
from mailhat_nb.diagnose.gate import AuthGate, Pass
from mailhat_nb.diagnose.normalise import normalise_server
from mailhat_nb.diagnose.presets import expand, expand_host, parse_presets
from mailhat_nb.diagnose.probe import planned_steps
from mailhat_nb.diagnose.transcript import (
    WITHHELD,
    Redactor,
    Transcript,
    redact_login,
    secret_forms,
)
from mailhat_nb.diagnose.wire import (
    Channel,
    NotTLS,
    PeerClosed,
    ReadTimeout,
    TLSHandshakeError,
)
from mailhat_nb.errors import PresetsError, UsageError
from mailhat_nb.secrets import Secret

DESIGN_CODES = (
    "ok",
    "dns_not_found",
    "dns_no_record",
    "dns_servfail",
    "dns_timeout",
    "dns_failure",
    "connection_refused",
    "connect_timeout",
    "no_greeting",
    "tls_on_plain_port",
    "plain_on_tls_port",
    "cert_hostname_mismatch",
    "cert_untrusted",
    "cert_expired",
    "tls_handshake_failed",
    "starttls_unavailable",
    "starttls_failed",
    "plaintext_auth_disabled",
    "plaintext_password_exposed",
    "auth_failed",
    "account_locked",
    "login_delayed",
    "server_unavailable",
    "password_not_ascii",
    "wrong_protocol",
    "pop_only",
    "mailbox_unavailable",
    "smtp_auth_unavailable",
    "send_rejected",
    "server_disconnected",
    "server_misbehaved",
    "mx_elsewhere",
    "mail_host_elsewhere",
    "unknown",
)


# ------------------------------------------------------------------ docstrings


@pytest.mark.parametrize("module", ["transcript", "wire", "certificate", "classify",
                                    "normalise", "presets", "probe", "imap", "report",
                                    "grouping", "verdict"])
def test_docstring_examples_hold(module: str) -> None:
    mod = importlib.import_module(f"mailhat_nb.diagnose.{module}")
    failed, tried = doctest.testmod(mod)
    assert failed == 0
    assert tried > 0


# ------------------------------------------------------------------ codes


def test_code_table_covers_exactly_the_design_codes() -> None:
    assert set(codes.CODES) == set(DESIGN_CODES)
    for code in codes.CODES.values():
        assert code.title
        assert code.explanation
        assert code.remedy
        assert code.status in ("ok", "warn", "fail")
    assert codes.get("plaintext_password_exposed").status == "warn"
    assert codes.get("no-such-code").code == "unknown"


def test_render_leaves_unknown_fields() -> None:
    assert codes.render("{host}:{port} {other}", host="h", port="1") == "h:1 {other}"


# ------------------------------------------------------------------ redaction


@pytest.mark.parametrize(("line", "shown"), [
    ('a1 LOGIN "bob@x.com" "hunter2"', 'a1 LOGIN "bob@x.com" ***'),
    ("a1 login bob hunter2", "a1 login bob ***"),
    ('a1 LOGIN "we\\"ird" {7+}', 'a1 LOGIN "we\\"ird" ***'),
    ("M002 AUTHENTICATE PLAIN AGJvYgBodW50ZXIy", "M002 AUTHENTICATE PLAIN ***"),
    ("m1 authenticate plain AGJvYgBodW50ZXIy", "m1 authenticate plain ***"),
    ("M001 AUTHENTICATE LOGIN", "M001 AUTHENTICATE LOGIN"),
    ("AUTH PLAIN AGJvYgBodW50ZXIy", "AUTH PLAIN ***"),
    ("AUTH PLAIN =", "AUTH PLAIN ***"),  # an empty initial response (RFC 4954)
    ("AUTH LOGIN Ym9i", "AUTH LOGIN ***"),  # the username as an initial response
    ("auth login", "auth login"),
    ("PASS hunter2", "PASS ***"),
    ("USER bob@x.com", "USER bob@x.com"),
    ("APOP bob 8d2c0e0a", "APOP bob ***"),
    ("M003 LIST \"\" \"*\"", "M003 LIST \"\" \"*\""),
])
def test_redactor_masks_credentials_in_client_lines(line: str, shown: str) -> None:
    assert Redactor().client(line) == shown


def test_redactor_masks_sasl_continuations_until_the_exchange_ends() -> None:
    r = Redactor()
    assert r.client("AUTH LOGIN") == "AUTH LOGIN"
    r.server("334 VXNlcm5hbWU6")
    assert r.client("Ym9i") == "***"
    r.server("334 UGFzc3dvcmQ6")
    assert r.client("aHVudGVyMg==") == "***"
    r.server("235 2.7.0 Authentication successful")
    assert r.client("MAIL FROM:<bob@x.com>") == "MAIL FROM:<bob@x.com>"
    r2 = Redactor()
    r2.client("M002 AUTHENTICATE PLAIN")
    r2.server("+ ")
    assert r2.client("AGJvYgBodW50ZXIy") == "***"
    r2.server("M002 OK done")
    assert r2.client("M003 LOGOUT") == "M003 LOGOUT"


def test_pipelined_lines_pass_the_redactor_one_by_one() -> None:
    """A write of several lines records each; a credential among them masks what follows."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        tr = Transcript(secret_forms("bob", "hunter2"))
        chan = Channel(ours, tr, 1.0)
        chan.send_lines(['M002 LIST "" "*"', "M003 NAMESPACE", "M004 EXAMINE INBOX"])
        chan.send_lines(["M005 AUTHENTICATE PLAIN AGJvYgBodW50ZXIy", "aHVudGVyMg=="])
        assert theirs.recv(4096).count(b"\r\n") == 5  # all sent
        assert [ln.text for ln in tr.lines()] == [
            'M002 LIST "" "*"', "M003 NAMESPACE", "M004 EXAMINE INBOX",
            "M005 AUTHENTICATE PLAIN ***", "***"]
        assert tr.credentials_sent


def test_redact_login_without_parseable_user_masks_everything() -> None:
    assert redact_login('a LOGIN {5}') == "a LOGIN ***"


def test_secret_forms_cover_plain_and_base64_payloads() -> None:
    forms = secret_forms("bob@x.com", "Grüße-1")
    assert "Grüße-1" in forms
    assert base64.b64encode("Grüße-1".encode()).decode() in forms
    assert base64.b64encode("\0bob@x.com\0Grüße-1".encode()).decode() in forms
    assert secret_forms("bob", "") == []


def test_secret_forms_never_crash_on_text_that_is_not_utf8() -> None:
    # argv/environment bytes that are not UTF-8 reach Python as lone surrogates
    forms = secret_forms("al\udcffice@localhost", "pw\udcff-1")
    assert "pw\udcff-1" in forms
    # the bytes as they were given (b"pw\xff-1") are covered in base64 too
    assert base64.b64encode(b"pw\xff-1").decode() in forms
    assert base64.b64encode(b"\0al\xffice@localhost\0pw\xff-1").decode() in forms
    assert secret_forms("bob", "p\ud800")  # not even surrogateescape can encode this one
    tr = Transcript(forms)
    tr.client("PASS x", secret=True)
    assert tr.guard("echo " + base64.b64encode(b"pw\xff-1").decode()) == WITHHELD


def test_transcript_withholds_echoed_secrets_only_after_they_were_sent() -> None:
    tr = Transcript(secret_forms("bob", "hunter2"))
    # Before any credentials went out a server cannot echo them: a match is chance.
    tr.server("* OK hunter2 ready")
    assert not tr.credentials_sent
    assert tr.guard("detail with hunter2") == "detail with hunter2"
    tr.client("A1 LOGIN bob hunter2", secret=True, shown="A1 LOGIN bob ***")
    assert tr.credentials_sent
    tr.server("A1 NO unknown user bob, password hunter2")
    tr.server("A1 NO base64 " + base64.b64encode(b"hunter2").decode())
    tr.server("A2 OK fine")
    tr.note("the doctor's own note")
    assert [ln.text for ln in tr.lines()] == [
        "* OK hunter2 ready", "A1 LOGIN bob ***", WITHHELD, WITHHELD, "A2 OK fine",
        "the doctor's own note"]
    assert [ln.direction for ln in tr.lines()] == ["S", "C", "S", "S", "S", "*"]
    assert tr.guard("NO hunter2 rejected") == WITHHELD  # whole, never masked in place
    assert tr.guard("NO rejected") == "NO rejected"


def test_a_redacted_client_line_counts_as_credentials_sent() -> None:
    tr = Transcript(secret_forms("bob", "pw-1"))
    tr.client("USER bob")
    assert not tr.credentials_sent  # a username is no secret
    tr.client("PASS pw-1")
    assert tr.credentials_sent
    assert tr.lines()[-1].text == "PASS ***"


def test_arming_starts_the_check_before_anything_is_sent() -> None:
    tr = Transcript(secret_forms("bob", "pw-2"))
    assert tr.guard("error pw-2") == "error pw-2"
    tr.arm()  # the password is being taken out for a login
    assert tr.checking
    assert not tr.credentials_sent  # ... but no login was attempted yet
    assert tr.guard("error pw-2") == WITHHELD


def test_withhold_never_masks_in_place_and_checks_before_shortening() -> None:
    tr = Transcript(secret_forms("bob", "OK"))
    assert tr.withhold("* OK [CAPABILITY IMAP4rev1]") == WITHHELD
    assert tr.withhold("* ok lower case") == "* ok lower case"
    long = Transcript(secret_forms("bob", "needle-42"))
    long.client("PASS needle-42")
    long.server("x" * (Transcript.MAX_LINE - 4) + "needle-42")  # cut would split it
    assert long.lines()[-1].text == WITHHELD


# ------------------------------------------------------------------ classification


def test_classify_error_maps_wire_errors_to_codes() -> None:
    assert classify_error(NotTLS(b"* OK ready\r\n"), "tls")[0] == "plain_on_tls_port"
    assert classify_error(TLSHandshakeError("x", 10), "tls")[0] == "cert_expired"
    assert classify_error(TLSHandshakeError("x", 62), "tls")[0] == "cert_hostname_mismatch"
    assert classify_error(TLSHandshakeError("x", 18), "tls")[0] == "cert_untrusted"
    assert classify_error(TLSHandshakeError("x", None, "WRONG_VERSION_NUMBER"),
                          "tls")[0] == "plain_on_tls_port"
    assert classify_error(ReadTimeout("t"), "greeting")[0] == "no_greeting"
    assert classify_error(ReadTimeout("t"), "tls")[0] == "no_greeting"
    assert classify_error(ReadTimeout("t", b"SSH-2.0"), "greeting")[0] == "wrong_protocol"
    assert classify_error(PeerClosed("gone"), "auth")[0] == "server_disconnected"
    assert classify_error(ConnectionRefusedError(), "tcp")[0] == "connection_refused"
    assert classify_error(TimeoutError(), "tcp")[0] == "connect_timeout"
    assert classify_error(socket.gaierror(socket.EAI_NONAME, "x"), "dns")[0] == "dns_not_found"
    assert classify_error(socket.gaierror(socket.EAI_AGAIN, "x"), "dns")[0] == "dns_failure"
    assert classify_error(Diagnosed("auth_failed", "no"), "auth") == ("auth_failed", "no")
    assert classify_error(ValueError("boom"), "auth") == ("unknown", "ValueError: boom")


def test_classify_verify_codes() -> None:
    assert classify_verify(9) == "cert_expired"
    assert classify_verify(20) == "cert_untrusted"
    assert classify_verify(64) == "cert_hostname_mismatch"
    assert classify_verify(None, "SOMETHING") == "unknown"


@pytest.mark.parametrize(("text", "code"), [
    ("NO [AUTHENTICATIONFAILED] Authentication failed.", "auth_failed"),
    ("-ERR [AUTH] Authentication failed.", "auth_failed"),
    ("NO [PRIVACYREQUIRED] Plaintext authentication disallowed", "plaintext_auth_disabled"),
    ("-ERR [IN-USE] Mailbox locked", "mailbox_unavailable"),
    ("NO [UNAVAILABLE] Temporary authentication failure", "server_unavailable"),
    ("NO AUTHENTICATE failed.", "auth_failed"),
    # The foreign servers' own words (Cyrus IMAP 3.6.1, Courier-IMAP 5.0.13): the
    # response code decides, the wording only where there is none.
    ("-ERR [LOGIN-DELAY] Logins must be at least 1 minute apart", "login_delayed"),
    ("-ERR [SYS/TEMP] Unable to open maildrop: Mailbox already exists", "server_unavailable"),
    ("-ERR [SYS/PERM] Unable to open maildrop", "server_unavailable"),
    ("-ERR [AUTH] authenticating: authentication failure", "auth_failed"),
    ("-ERR [AUTH] Invalid user", "auth_failed"),
    ("NO Login failed: authentication failure", "auth_failed"),
    ("-ERR Login failed.", "auth_failed"),
    ("NO Login failed.", "auth_failed"),
    ("NO STARTTLS required", "plaintext_auth_disabled"),
    ("-ERR TLS required to log in.", "plaintext_auth_disabled"),
    ("NO Login only available under a layer", "plaintext_auth_disabled"),
    # RFC 5530's codes (Dovecot and others): the code, not the words around it
    ("NO [AUTHENTICATIONFAILED] Try again later or use another password", "auth_failed"),
    ("NO [EXPIRED] Password expired: change it", "account_locked"),
    ("NO [CONTACTADMIN] Account suspended", "account_locked"),
    ("NO [LIMIT] Too many simultaneous connections", "login_delayed"),
    ("NO [INUSE] Mailbox in use", "mailbox_unavailable"),
    ("NO [SERVERBUG] Internal error", "server_unavailable"),
    ("* NO [ALERT] Login failed", "auth_failed"),
    # Dovecot words its clear-text refusal under [AUTH]: the words say which
    ("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
     "plaintext_auth_disabled"),
])
def test_classify_auth_reply(text: str, code: str) -> None:
    assert classify_auth_reply(text) == code


@pytest.mark.parametrize(("code", "text", "want"), [
    (535, "5.7.8 Authentication credentials invalid", "auth_failed"),
    (534, "5.7.9 Application-specific password required", "auth_failed"),
    (530, "5.7.0 Must issue a STARTTLS command first", "plaintext_auth_disabled"),
    (538, "5.7.11 Encryption required", "plaintext_auth_disabled"),
    (504, "5.5.4 Unrecognized authentication type", "smtp_auth_unavailable"),
    (454, "4.7.0 Temporary authentication failure", "server_unavailable"),
])
def test_classify_smtp_auth(code: int, text: str, want: str) -> None:
    assert classify_smtp_auth(code, text) == want


def test_greeting_protocol() -> None:
    assert greeting_protocol("* OK IMAP ready") == "IMAP"
    assert greeting_protocol("HTTP/1.1 400 Bad Request") == "HTTP"
    assert greeting_protocol("hello") is None


def test_wrong_protocol_detail_uses_the_right_article() -> None:
    imap = wrong_protocol("+OK Dovecot ready.", "IMAP")
    assert "expected an IMAP greeting, got a POP3 server" in imap.detail
    smtp = wrong_protocol("* OK [CAPABILITY IMAP4rev1] ready", "SMTP")
    assert "expected an SMTP greeting, got an IMAP server" in smtp.detail
    pop = wrong_protocol("HTTP/1.1 400 Bad Request", "POP3")
    assert "expected a POP3 greeting, got an HTTP server" in pop.detail
    assert not re.search(r"\ba (IMAP|SMTP|HTTP|SSH)\b", imap.detail + smtp.detail + pop.detail)


def test_planned_steps_per_security() -> None:
    assert planned_steps("imap", "ssl")[:3] == ["dns", "tcp", "tls"]
    assert planned_steps("smtp", "none")[-1] == "auth"
    assert "capabilities_tls" in planned_steps("pop3", "starttls")


# ------------------------------------------------------------------ certificates


def test_covers_and_recommend() -> None:
    names = ["gator4321.hostgator.com", "*.hostgator.com"]
    assert covers(names, "gator4321.hostgator.com")
    assert covers(names, "GATOR1.hostgator.com.")
    assert not covers(names, "mail.example.com")
    assert not covers(names, "hostgator.com")
    assert recommend(names, "mail.example.com") == "gator4321.hostgator.com"
    assert recommend(["*.hostgator.com"], "mail.example.com") is None
    assert covers(["127.0.0.2"], "127.0.0.2")
    assert not covers(["localhost"], "127.0.0.1")


# ------------------------------------------------------------------ input


def test_account_normalises_pasted_input() -> None:
    acct = Account.from_input("  alice@Example.com ", "pw", server=" https://mail.example.com/ ")
    assert acct.email == "alice@Example.com"
    assert acct.domain == "example.com"
    assert acct.server == "mail.example.com"
    assert acct.username == "alice@Example.com"
    assert any("URL" in n for n in acct.notes)
    assert normalise_server("mail.example.com:993")[0] == "mail.example.com"
    assert normalise_server("mail.example.com/webmail")[0] == "mail.example.com"
    assert normalise_server("  ")[0] is None


def test_account_converts_idn_domains() -> None:
    acct = Account.from_input("jörg@bücher.de", "pw", server="mail.bücher.de")
    assert acct.domain == "xn--bcher-kva.de"
    assert acct.server == "mail.xn--bcher-kva.de"
    assert acct.username == "jörg@xn--bcher-kva.de"
    assert any("xn--bcher-kva.de" in n for n in acct.notes)


def test_username_without_domain_is_warned_for_cpanel_presets_only(tmp_path: Path) -> None:
    acct = Account.from_input("alice@example.com", "pw", username="alice", server="gator1.x.com")
    assert acct.username == "alice"
    _, notes = expand(load_presets("hostgator"), acct)
    assert any("cPanel (HostGator) expects the full email address" in n for n in notes)
    # D9: a presets file of one's own (Cyrus, which knows users as "alice") says nothing
    own = tmp_path / "own.toml"
    own.write_text('[[preset]]\nid = "x"\nlabel = "IMAP"\nprotocol = "imap"\n'
                   'host = "{server}"\nport = 993\nsecurity = "ssl"\n')
    _, notes = expand(load_presets(str(own)), acct)
    assert not any("full email" in n for n in notes)
    _, notes = expand(load_presets("hostgator"), Account.from_input("alice@example.com", "pw"))
    assert not any("full email" in n for n in notes)


def test_non_ascii_password_is_noted_never_shown() -> None:
    acct = Account.from_input("a@example.com", "Grüße-geheim")
    assert any("non-ASCII" in n for n in acct.notes)
    assert "Grüße-geheim" not in repr(acct)
    assert "Grüße-geheim" not in str(acct.to_dict())


@pytest.mark.parametrize(("email", "server", "password", "message"), [
    ("", None, "pw", "empty"),
    ("alice example.com", None, "pw", "spaces"),
    ("alice", None, "pw", "name@domain"),
    ("alice@", None, "pw", "name@domain"),
    ("alice@exa_mple.com", None, "pw", "not a valid host"),
    ("alice@example.com", "mail example.com", "pw", "spaces"),
    ("alice@example.com", "alice@example.com", "pw", "email address"),
    ("alice@example.com", "https:///", "pw", "URL without a host"),
    ("alice@example.com", None, "", "password is empty"),
])
def test_bad_input_is_a_usage_error_with_a_message(email: str, server: str | None,
                                                   password: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        Account.from_input(email, Secret(password), server=server)
    if password:
        assert password not in str(info.value)


@pytest.mark.parametrize(("email", "server", "username", "message"), [
    ("a@b@c", None, None, "more than one @"),
    ("al\udcffice@localhost", None, None, "email address contains bytes that are not valid "
     "UTF-8"),
    ("alice@localhost", "local\udcffhost", None, "server contains bytes that are not valid "
     "UTF-8"),
    ("alice@localhost", None, "al\udcffice", "username contains bytes that are not valid UTF-8"),
    ("alice@localhost", None, "alice\r\nA2 DELETE INBOX", "contains a line break"),
    ("alice@localhost", None, "alice@localhost\r\n", "contains a line break"),
    ("alice@localhost\n", None, None, "contains a line break"),
    ("alice@localhost", "mail.example.com\r\n", None, "contains a line break"),
    ("alice@localhost", "a" * 64 + ".example.com", None,
     "a label .the part between dots. is 64 characters long, and the most a label may have "
     "is 63"),
    ("alice@" + "b" * 70 + ".com", None, None, "70 characters long"),
    ("alice@localhost", "mail..example.com", None, "empty part between dots"),
    ("alice@localhost", ".".join(["a" * 60] * 5), None, "a host name may have at most 253"),
])
def test_bad_text_is_a_usage_error_that_says_what_is_wrong(
        email: str, server: str | None, username: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        Account.from_input(email, "pw-9", server=server, username=username)
    str(info.value).encode("utf-8")  # printable: no lone surrogate in the message


def test_a_password_that_is_not_utf8_is_refused_unseen() -> None:
    # (secrets.Secret may refuse it first; either way: a usage error, the password unseen)
    with pytest.raises(UsageError, match=r"password .*UTF-8") as info:
        Account.from_input("alice@localhost", "se\udcffcret-77")
    assert "cret-77" not in str(info.value)
    assert "\udcff" not in str(info.value)
    # control characters are the protocol code's business (literals), not refused
    assert Account.from_input("alice@localhost", "tab\there").password.reveal() == "tab\there"


def test_sixty_three_character_labels_are_fine() -> None:
    assert Account.from_input("a@localhost", "pw", server="a" * 63 + ".example.com").server


# ------------------------------------------------------------------ presets


def test_builtin_presets_hostgator_first_with_the_contract_ids() -> None:
    assert builtin_names()[0] == "hostgator"
    ids = [p.id for p in load_presets("hostgator")]
    assert ids == ["hostgator-imap-ssl", "hostgator-imap-none", "hostgator-smtp-ssl",
                   "hostgator-smtp-none-25", "hostgator-smtp-none-26", "imap-starttls-143",
                   "smtp-starttls-587", "smtp-starttls-25", "smtp-starttls-26",
                   "pop3-ssl-995", "pop3-none-110"]
    first = load_presets("hostgator")[0]
    assert (first.label, first.protocol, first.host, first.port, first.security) == (
        "IMAP option 1", "imap", "{server}", 993, "ssl")
    assert first.display == "IMAP option 1 (993 SSL/TLS)"
    second = load_presets("hostgator")[1]
    assert (second.host, second.port, second.security) == ("mail.{domain}", 143, "none")


def test_every_builtin_file_loads_and_providers_carry_hints() -> None:
    for name in builtin_names():
        assert load_presets(name)
    m365 = load_presets("microsoft365")
    assert all(p.auth == "oauth-only" and "OAuth" in p.hint for p in m365)
    assert "basic authentication" in m365[0].hint
    assert all(p.auth == "app-password" for p in load_presets("gmail"))


def test_presets_chosen_by_email_domain() -> None:
    assert load_presets(None, "gmail.com")[0].id.startswith("gmail")
    assert load_presets(None, "hotmail.com")[0].id.startswith("outlook")
    assert load_presets(None, "example.com")[0].id == "hostgator-imap-ssl"
    both = load_presets("gmail, yahoo")
    assert {p.id.split("-")[0] for p in both} == {"gmail", "yahoo"}


def test_lab_style_presets_with_stands_for(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[[preset]]\nid = "x"\nlabel = "IMAP option 1"\nprotocol = "imap"\n'
                 'host = "{server}"\nport = 20993\nsecurity = "ssl"\nstands_for = 993\n')
    (preset,) = load_presets(str(f))
    assert preset.display == "IMAP option 1 (993 SSL/TLS)"
    acct = Account.from_input("a@example.com", "pw", server="gator1.hostgator.com")
    (target,) = expand([preset], acct)[0]
    assert target.setting() == ("IMAP option 1: gator1.hostgator.com, port 20993 "
                                "(standing for 993), SSL/TLS")


_GOOD = 'id = "x"\nlabel = "L"\nprotocol = "imap"\nhost = "h"\nport = 993\nsecurity = "ssl"\n'


@pytest.mark.parametrize(("text", "message"), [
    ("[[preset]\n", "not valid TOML"),
    ("title = 'x'\n", "no \\[\\[preset\\]\\]"),
    ("[[preset]]\n" + _GOOD.replace("port = 993", "port = 70000"), "out of range"),
    ("[[preset]]\n" + _GOOD.replace("port = 993", "port = 0"), "out of range"),
    ("[[preset]]\n" + _GOOD.replace('port = 993', 'port = "993"'),
     "preset 'x': 'port' must be an integer"),
    ("[[preset]]\n" + _GOOD.replace('"ssl"', '1'), "preset 'x': 'security' must be a string"),
    ("[[preset]]\n" + _GOOD + "alt_hosts = 'mail.{domain}'\n",
     "preset 'x': 'alt_hosts' must be a list"),
    ("[[preset]]\n" + _GOOD.replace('"h"', '"mail. {domain}"'), "preset 'x': host .* space"),
    ("[[preset]]\n" + _GOOD + 'alt_hosts = ["mail.example.com imap.example.com"]\n',
     "preset 'x': host .* space"),
    ("[[preset]]\n" + _GOOD.replace('"h"', '"mail.{domain"'), "preset .x.: .*stray"),
    ("[[preset]]\n" + _GOOD.replace('"h"', '"mail.domain}"'), "preset .x.: .*stray"),
    ("[[preset]]\n" + _GOOD.replace('"h"', '"{{server}}"'), "preset .x.: .*stray"),
    ('domains = "gmail.com"\n[[preset]]\n' + _GOOD, "'domains' must be a list"),
    ('domains = [""]\n[[preset]]\n' + _GOOD, "'domains' must be a list"),
    ("title = 3\n[[preset]]\n" + _GOOD, "'title' must be a string"),
    ("[[preset]]\n" + _GOOD.replace('"imap"', '"jmap"'), "protocol must be"),
    ("[[preset]]\n" + _GOOD.replace('"ssl"', '"tls"'), "security must be"),
    ("[[preset]]\n" + _GOOD.replace('"h"', '"{host}"'), "unknown placeholder"),
    ("[[preset]]\n" + _GOOD + "colour = 1\n", "unknown key"),
    ("[[preset]]\n" + _GOOD.replace('id = "x"\n', ""), "missing 'id'"),
    ("[[preset]]\n" + _GOOD + "[[preset]]\n" + _GOOD, "duplicate id"),
])
def test_presets_file_errors_name_the_fault(text: str, message: str) -> None:
    with pytest.raises(PresetsError, match=message):
        parse_presets(text, "test.toml")


def test_unknown_preset_name_and_missing_file_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown presets"):
        load_presets("nosuchprovider")
    with pytest.raises(UsageError, match="cannot read"):
        load_presets(str(tmp_path / "missing.toml"))


def test_presets_naming_nothing_or_a_directory_are_usage_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in (",,", " , "):
        with pytest.raises(UsageError, match="names no presets"):
            load_presets(spec)
    (tmp_path / "somedir").mkdir()
    monkeypatch.chdir(tmp_path)
    for spec in ("somedir", "somedir/", str(tmp_path / "somedir")):
        with pytest.raises(UsageError, match="is a directory, not a presets file"):
            load_presets(spec)
    assert load_presets(None)  # no spec: by domain, HostGator otherwise


def test_expand_tests_both_host_names_when_both_apply() -> None:
    presets = load_presets("hostgator")
    both = Account.from_input("a@example.com", "pw", server="gator1234.hostgator.com")
    targets, notes = expand(presets, both)
    imap_ssl = [t.host for t in targets if t.preset.id == "hostgator-imap-ssl"]
    assert imap_ssl == ["gator1234.hostgator.com", "mail.example.com"]
    imap_none = [t.host for t in targets if t.preset.id == "hostgator-imap-none"]
    assert imap_none == ["mail.example.com", "gator1234.hostgator.com"]
    assert notes == []
    only_domain = Account.from_input("a@example.com", "pw")
    targets, _ = expand(presets, only_domain)
    assert {t.host for t in targets} == {"mail.example.com"}
    assert len(targets) == len(presets)


def test_expand_host_and_skipped_presets() -> None:
    acct = Account.from_input("a@example.com", "pw")
    assert expand_host("imap.gmail.com", acct) == "imap.gmail.com"
    assert expand_host("{server}", acct) is None
    preset = parse_presets("[[preset]]\n" + _GOOD.replace('"h"', '"{server}"'))
    targets, notes = expand(preset, acct)
    assert targets == []
    assert "needs a server name" in notes[0]


# ------------------------------------------------------------------ the login gate


def test_gate_serialises_first_login_then_opens() -> None:
    gate = AuthGate()
    assert gate.enter("imap", "a", 1.0).allowed
    start = time.monotonic()
    waiter: list[bool] = []
    t = threading.Thread(target=lambda: waiter.append(gate.enter("smtp", "b", 2.0).allowed))
    t.start()
    time.sleep(0.2)
    assert waiter == []  # still waiting for the first attempt
    gate.leave("imap", "a", "ok")
    t.join()
    assert waiter == [True]
    assert time.monotonic() - start >= 0.2
    assert gate.enter("pop3", "c", 0.1).allowed  # open after a success


def test_gate_allows_one_rejection_per_protocol() -> None:
    gate = AuthGate()
    assert gate.enter("imap", "IMAP option 1", 1.0).allowed
    gate.leave("imap", "IMAP option 1", "auth_failed")
    refused = gate.enter("imap", "IMAP option 2", 1.0)
    assert not refused.allowed
    assert refused.code == "auth_failed"
    assert "IMAP option 1" in refused.detail
    assert gate.enter("smtp", "SMTP option 1", 1.0).allowed  # another protocol: one try
    gate.leave("smtp", "SMTP option 1", "plaintext_auth_disabled")  # not a rejection
    assert gate.enter("smtp", "SMTP option 2", 1.0).allowed
    assert gate.attempts == 3


def test_gate_gives_encrypted_presets_the_first_attempt() -> None:
    gate = AuthGate(patience=5.0)
    gate.expect("imap", "imap-ssl")
    gate.expect("imap", "imap-starttls")
    gate.expect("smtp", "smtp-ssl")
    got: list[object] = []
    plain = threading.Thread(target=lambda: got.append(
        gate.enter("imap", "IMAP option 2", 5.0, encrypted=False, key="imap-none")))
    plain.start()  # it arrives first (no TLS handshake) ...
    time.sleep(0.2)
    assert got == []  # ... and waits: encrypted IMAP presets are still on their way
    assert gate.pending("imap") == 2
    gate.done("imap", "imap-starttls")  # this one failed before auth (e.g. its certificate)
    assert gate.enter("imap", "IMAP option 1", 1.0, key="imap-ssl").allowed  # its turn
    assert gate.pending("imap") == 0
    time.sleep(0.1)
    assert got == []  # the encrypted attempt is still running
    gate.leave("imap", "IMAP option 1", "auth_failed")
    plain.join(2.0)
    (ticket,) = got
    assert isinstance(ticket, Pass)
    assert not ticket.allowed  # rejected over IMAP already: the password stays at home
    assert ticket.code == "auth_failed"
    assert "IMAP option 1" in ticket.detail
    assert "password was not sent" in ticket.detail
    assert gate.attempts == 1
    # other protocols' pending probes do not hold up an unencrypted login
    assert gate.enter("pop3", "POP3 110", 1.0, encrypted=False).allowed


def test_gate_lets_an_unencrypted_login_go_once_the_encrypted_ones_are_done() -> None:
    gate = AuthGate(patience=5.0)
    gate.expect("imap", "imap-ssl")
    got: list[Pass] = []
    plain = threading.Thread(target=lambda: got.append(
        gate.enter("imap", "IMAP option 2", 5.0, encrypted=False)))
    plain.start()
    time.sleep(0.1)
    assert got == []
    gate.done("imap", "imap-ssl")  # the encrypted preset ended before auth (port closed)
    plain.join(2.0)
    assert got[0].allowed
    gate.done("imap", "imap-ssl")  # idempotent
    gate.done("imap", "never-announced")  # harmless


def test_gate_waits_for_encrypted_presets_no_longer_than_its_patience() -> None:
    gate = AuthGate(patience=0.3)
    gate.expect("imap", "imap-ssl-on-a-hung-server")
    start = time.monotonic()
    ticket = gate.enter("imap", "IMAP option 2", 0.1, encrypted=False)
    waited = time.monotonic() - start
    assert 0.25 < waited < 1.0  # the sweep's patience, longer than its own 0.1 s
    assert not ticket.allowed
    assert ticket.waited
    assert ticket.code == ""
    assert "not tried" in ticket.detail
    assert "in clear text" in ticket.detail
    assert gate.attempts == 0
    # encrypted logins never wait for anyone's pending probes
    assert gate.enter("imap", "IMAP option 1", 0.1).allowed


def test_sweep_gate_announces_only_the_encrypted_targets() -> None:
    from mailhat_nb.diagnose.doctor import sweep_gate

    acct = Account.from_input("a@example.com", "pw", server="gator1.example.net")
    targets, _ = expand(load_presets("hostgator"), acct)
    gate = sweep_gate(targets, 1.0)
    for protocol in ("imap", "pop3", "smtp"):
        encrypted = [t for t in targets if t.protocol == protocol and t.security != "none"]
        assert gate.pending(protocol) == len(encrypted)


# ------------------------------------------------------------------ CLI usage


@pytest.mark.parametrize("argv", [
    ["diagnose"],
    ["diagnose", "--email", "a@example.com", "--password-env", "MAILHAT_TEST_UNSET_VAR"],
    ["diagnose", "--email", "not an address", "--password-env", "MH_PW"],
    ["diagnose", "--email", "a@example.com", "--password-env", "MH_PW", "--timeout", "-1"],
    ["diagnose", "--email", "a@example.com", "--password-env", "MH_PW", "--presets", "nope"],
])
def test_cli_bad_usage_exits_2(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MH_PW", "secret-value-1")
    monkeypatch.delenv("MAILHAT_TEST_UNSET_VAR", raising=False)
    with pytest.raises(SystemExit) as exc_info:
        raise SystemExit(main(argv))
    assert exc_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "secret-value-1" not in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--server", ""], "--server is empty"),
    (["--server", "  "], "--server is empty"),
    (["--username", ""], "--username is empty"),
    (["--presets", ""], "--presets is empty"),
    (["--presets", ",,"], "names no presets"),
    (["--presets", "{dir}"], "is a directory, not a presets file"),
    (["--ca-file", ""], "--ca-file is empty"),
    (["--ca-file", "{dir}"], "it is a directory; give a PEM file"),
    (["--email", "a@b@c"], "more than one @"),
    (["--email", "al\udcffice@localhost"], "not valid UTF-8"),
    (["--username", "al\udcffice"], "not valid UTF-8"),
    (["--server", "local\udcffhost"], "not valid UTF-8"),
    (["--username", "alice\r\nM9 DELETE INBOX"], "line break"),
    (["--server", "x" * 64 + ".example.com"], "64 characters long"),
    (["--timeout", "0"], "--timeout must be more than 0 and at most 300 seconds, not 0"),
    (["--timeout", "301"], "more than 0 and at most 300 seconds, not 301"),
    (["--timeout", "nan"], "more than 0 and at most 300"),
])
def test_cli_bad_input_exits_2_with_one_sentence(
        extra: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "somedir").mkdir()
    monkeypatch.setenv("MH_PW", "secret-value-2")
    args = {"--email": "alice@localhost", "--server": "127.0.0.1", "--presets": "hostgator",
            "--timeout": "0.5"}
    extra = [x.replace("{dir}", str(tmp_path / "somedir")) for x in extra]
    args.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    argv = ["diagnose", "--password-env", "MH_PW", "--json"]
    for option, value in args.items():
        argv += [option, value]
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2, out[:500]
    assert out == ""  # nothing was probed
    assert message in err
    assert "Traceback" not in err
    assert "secret-value-2" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_cli_help_lists_the_contract_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["diagnose", "--help"])
    out = capsys.readouterr().out
    for option in ("--email", "--server", "--username", "--presets", "--password-env",
                   "--ca-file", "--timeout", "--send-test", "--json", "--allow-plaintext-login"):
        assert re.search(rf"{option}\b", out)
    flat = " ".join(out.split())
    assert "without sending the password" in flat  # the default, said where it is chosen
    assert "sending the password in clear text" in flat


def test_verified_context_rejects_a_bad_ca_file(tmp_path: Path) -> None:
    from mailhat_nb.diagnose.certificate import verified_context

    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(UsageError, match="ca-file"):
        verified_context(bad)
    assert isinstance(verified_context(None), ssl.SSLContext)


def test_provider_hints_replace_a_bare_auth_failed() -> None:
    from mailhat_nb.diagnose.presets import Target
    from mailhat_nb.diagnose.results import PresetResult

    m365 = load_presets("microsoft365")[0]
    result = PresetResult(Target(m365, m365.host), code="auth_failed")
    assert result.title == "Password login is off (OAuth only)"
    assert "does not mean the password is wrong" in result.explanation
    assert "OAuth" in result.remedy
    gmail = load_presets("gmail")[0]
    result = PresetResult(Target(gmail, gmail.host), code="auth_failed")
    assert "app password" in result.title
    assert "app password" in result.remedy
    hostgator = load_presets("hostgator")[0]
    plain = PresetResult(Target(hostgator, "mail.example.com"), code="auth_failed")
    assert plain.title == "Login rejected"
    assert "cPanel" in plain.remedy


# ------------------------------------------------------------------ IPv6 literals


@pytest.mark.parametrize(("raw", "host", "port_note"), [
    ("[::1]", "::1", False),
    ("[::1]:993", "::1", True),
    ("::1", "::1", False),
    ("https://[2001:db8::7]:993/", "2001:db8::7", False),
])
def test_ipv6_literals_lose_their_brackets(raw: str, host: str, port_note: bool) -> None:
    got, notes = normalise_server(raw)
    assert got == host
    assert any("ignored the port 993" in n for n in notes) == port_note
    acct = Account.from_input("a@example.com", "pw", server=raw)
    assert acct.server == host
    assert expand_host("{server}", acct) == host  # what the resolver gets


@pytest.mark.parametrize("raw", ["[::1]x", "[not-an-ip]", "[127.0.0.1]"])
def test_bad_bracketed_servers_are_usage_errors(raw: str) -> None:
    with pytest.raises(UsageError, match="IPv6"):
        normalise_server(raw)


def test_bracketed_ipv6_server_resolves() -> None:
    from mailhat_nb.diagnose.probe import resolve

    host, _ = normalise_server("[::1]")
    assert host is not None
    addrs = resolve(host, 993, 2.0)  # "[::1]" itself would be dns_not_found
    assert {a[4][0] for a in addrs} == {"::1"}


# ------------------------------------------------------------------ README


def test_readme_says_what_the_doctor_says_for_closed_port() -> None:
    # In the closed-port scenario only 993 is refused; IMAP 143 with STARTTLS still
    # works, so the overall verdict is ok (exit 0), not connection_refused.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| closed-port |")]
    said = row.strip("|").split("|")[-1]
    assert "connection_refused" in said
    assert "STARTTLS still works" in said
    assert "verdict is ok" in said


@pytest.mark.parametrize(("args", "words"), [
    (["--presets", "nosuch"], "nosuch"),
    (["--ca-file", "/nonexistent/ca.pem"], "ca.pem"),
])
def test_presets_and_ca_file_are_checked_before_the_password_is_asked(
        capsys: pytest.CaptureFixture[str], args: list[str], words: str) -> None:
    # No --password-env: were the password asked first, the error would be
    # about the missing terminal, not about the option that is wrong.
    from mailhat_nb import cli

    assert cli.main(["diagnose", "--email", "a@example.com", *args]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "terminal" not in err
