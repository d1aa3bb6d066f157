"""The lab against real clients: imapclient, smtplib, poplib and bare sockets.

Every port and security mode is exercised, every scenario shows its wire
behaviour, and the lab's life cycle (up, status, down) leaves nothing behind.
"""

from __future__ import annotations

import base64
import email
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailhat_nb.lab import SCENARIOS, Lab, LabInfo, check
from mailhat_nb.lab.hostile import MISBEHAVIOURS
from mailhat_nb.lab.mailboxes import DEMO_PERSON, enron_files, lab_folder_for, read_passwords
from mailhat_nb.lab.scenarios import INSECURE_HOST, STANDS_FOR

pytestmark = pytest.mark.lab


def _ctx(info: LabInfo) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=info.ca_file)


def info_log(info: LabInfo) -> Path:
    """The lab's log directory."""
    return Path(info.root) / "log"


def _imap(info: LabInfo, service: str, host: str = "localhost", starttls: bool = False,
          timeout: float = 5) -> IMAPClient:
    client = IMAPClient(host, port=info.ports[service], ssl=service == "imaps",
                        ssl_context=_ctx(info), timeout=timeout)
    if starttls:
        client.starttls(_ctx(info))
    return client


def _wait_for_subject(info: LabInfo, password: str, subject: str, user: str = "bob",
                      deadline: float = 10) -> float:
    """Seconds until a message with ``subject`` is in ``user``'s INBOX."""
    start = time.monotonic()
    with _imap(info, "imaps") as client:
        client.login(f"{user}@localhost", password)
        while time.monotonic() - start < deadline:
            client.select_folder("INBOX", readonly=True)
            if client.search(["SUBJECT", subject]):
                return time.monotonic() - start
            time.sleep(0.05)
    raise AssertionError(f"message {subject!r} did not arrive in {deadline}s")


# ----------------------------------------------------------------------------- IMAP


@pytest.mark.parametrize(("service", "starttls"),
                         [("imaps", False), ("imap", True), ("imap", False)])
def test_imapclient_logs_in_on_every_imap_port(lab_info: LabInfo, lab_password: str,
                                               service: str, starttls: bool) -> None:
    with _imap(lab_info, service, starttls=starttls) as client:
        client.login("alice@localhost", lab_password)
        folders = {name for _flags, _delim, name in client.list_folders()}
        assert {"INBOX", "INBOX.Sent"} <= folders
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == \
            lab_info.folders["INBOX"]


def test_wrong_password_is_rejected_and_does_not_slow_the_next_login(
        lab_info: LabInfo, lab_password: str) -> None:
    with _imap(lab_info, "imaps") as client, pytest.raises(LoginError):
        client.login("alice@localhost", "not-the-password")
    start = time.monotonic()
    with _imap(lab_info, "imaps") as client:
        client.login("alice@localhost", lab_password)
    # The auth penalty is off in the lab: no multi-second slow-down after a failure.
    assert time.monotonic() - start < 1.5


def test_non_ascii_password_logs_in_with_authenticate_plain(lab: Lab, lab_info: LabInfo) -> None:
    password = lab.password("chloe")
    assert not password.isascii()
    with _imap(lab_info, "imaps") as client:
        client.plain_login("chloe@localhost", password)
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0


def test_demo_mailbox_holds_the_enron_person_byte_for_byte(lab: Lab, lab_info: LabInfo,
                                                           lab_password: str,
                                                           corpus: Path) -> None:
    person = corpus / "enron" / DEMO_PERSON
    expected = Counter(lab_folder_for(rel) for rel, _ in enron_files(person))
    assert lab_info.folders == dict(expected)
    with _imap(lab_info, "imaps") as client:
        client.login("alice@localhost", lab_password)
        for folder, count in expected.items():
            status = client.folder_status(folder, ["MESSAGES"])
            assert status[b"MESSAGES"] == count, folder
    # On disk the files are the corpus files, unchanged.
    maildir = lab.paths.maildir("alice")
    stored = {p.read_bytes() for p in maildir.glob("cur/*")}
    originals = [f.read_bytes() for rel, f in enron_files(person) if rel == "inbox"]
    assert len(originals) == len(stored)
    assert all(raw in stored for raw in originals)


def test_internaldate_follows_the_date_header(lab_info: LabInfo, lab_password: str) -> None:
    with _imap(lab_info, "imaps") as client:
        client.normalise_times = False
        client.login("alice@localhost", lab_password)
        client.select_folder("INBOX.Sent", readonly=True)
        uids = client.search("ALL")[:20]
        data = client.fetch(uids, ["INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (DATE)]"])
    for item in data.values():
        header = email.message_from_bytes(item[b"BODY[HEADER.FIELDS (DATE)]"])
        sent = email.utils.parsedate_to_datetime(header["Date"])
        assert abs((item[b"INTERNALDATE"] - sent).total_seconds()) < 1


# ----------------------------------------------------------------------------- SMTP


def _mail(subject: str) -> str:
    return (f"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@lab.test>\r\n\r\nhello\r\n")


def _smtp(info: LabInfo, service: str, host: str = "localhost") -> smtplib.SMTP:
    """An SMTP session on ``service``: TLS from the first byte on 465, else plain text."""
    if service in ("submissions", "smtps"):
        return smtplib.SMTP_SSL(host, info.ports[service], context=_ctx(info), timeout=5)
    return smtplib.SMTP(host, info.ports[service], timeout=5)


@pytest.mark.parametrize("service", ["submissions", "submission", "smtp", "smtp_alt"])
def test_smtplib_sends_on_every_smtp_port_and_the_message_arrives(
        lab: Lab, lab_info: LabInfo, lab_password: str, service: str) -> None:
    subject = f"lab test {service} {uuid.uuid4().hex[:8]}"
    with _smtp(lab_info, service) as smtp:
        if service != "submissions":
            smtp.starttls(context=_ctx(lab_info))
        smtp.ehlo()
        assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        smtp.login("alice@localhost", lab_password)
        smtp.sendmail("alice@localhost", ["bob@localhost"], _mail(subject))
    assert _wait_for_subject(lab_info, lab.password("bob"), subject) < 5


@pytest.mark.parametrize("host", ["localhost", INSECURE_HOST])
@pytest.mark.parametrize("service", ["smtp", "smtp_alt", "submission"])
def test_smtp_offers_auth_only_after_starttls(lab_info: LabInfo, lab_password: str,
                                             service: str, host: str) -> None:
    # cPanel's default: a client on 25, 26 or 587 without STARTTLS finds no AUTH,
    # and an AUTH sent anyway is refused before any password is read.
    with _smtp(lab_info, service, host) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        assert smtp.docmd("AUTH", "LOGIN") == (503, b"AUTH command used when not advertised")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.login("alice@localhost", lab_password)
        smtp.starttls(context=_ctx(lab_info))
        smtp.ehlo()
        assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert smtp.login("alice@localhost", lab_password)[0] == 235


def test_smtp_wrong_password_gets_exims_535(lab_info: LabInfo, lab_password: str) -> None:
    with _smtp(lab_info, "submissions") as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            smtp.login("alice@localhost", "not-the-password")
        assert (caught.value.smtp_code, caught.value.smtp_error) == (
            535, b"Incorrect authentication data")
    with _smtp(lab_info, "submissions") as smtp:  # and no penalty for the next one
        assert smtp.login("alice@localhost", lab_password)[0] == 235


def test_non_ascii_password_authenticates_over_smtp(lab: Lab, lab_info: LabInfo) -> None:
    # smtplib cannot encode it; the SASL PLAIN message is UTF-8 (RFC 4616).
    password = lab.password("chloe").encode()
    assert not password.isascii()
    with _smtp(lab_info, "submissions") as smtp:
        smtp.ehlo()
        plain = base64.b64encode(b"\0chloe@localhost\0" + password).decode()
        assert smtp.docmd("AUTH", "PLAIN " + plain) == (235, b"Authentication succeeded")


def _greeting(info: LabInfo, service: str = "smtp") -> list[str]:
    with socket.create_connection(("localhost", info.ports[service]), timeout=5) as sock, \
            sock.makefile("rb") as reader:
        lines = [reader.readline().decode()]
        while lines[-1][3] == "-":
            lines.append(reader.readline().decode())
    return [ln.rstrip("\r\n") for ln in lines]


def test_smtp_banner_names_the_server_as_cpanels_exim_does(lab_info: LabInfo) -> None:
    first, *rest = _greeting(lab_info)
    assert re.fullmatch(r"220-localhost ESMTP Exim 4\.\d+\S* #\d+ "
                        r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", first), first
    assert rest == ["220-We do not authorize the use of this system to transport unsolicited, ",
                    "220 and/or bulk e-mail."]


def test_smtp_refuses_relay_without_authentication(lab_info: LabInfo,
                                                   lab_password: str) -> None:
    with _smtp(lab_info, "submission") as smtp:
        smtp.starttls(context=_ctx(lab_info))
        smtp.ehlo()
        assert smtp.docmd("MAIL", "FROM:<alice@localhost>")[0] == 250
        code, text = smtp.docmd("RCPT", "TO:<someone@example.com>")
        said = " ".join(text.decode().split())  # Exim folds a long reply over lines
        assert code == 550
        assert said.startswith("Please turn on SMTP Authentication in your mail client. ")
        assert said.endswith(" is not permitted to relay through this server without "
                             "authentication.")
        # A lab user that does not exist is refused too ...
        assert smtp.docmd("RCPT", "TO:<nobody@localhost>")[0] == 550
        # ... and authenticated, the lab still delivers only to its own users.
        smtp.rset()
        smtp.login("alice@localhost", lab_password)
        assert smtp.docmd("MAIL", "FROM:<alice@localhost>")[0] == 250
        assert smtp.docmd("RCPT", "TO:<someone@example.com>") == (550, b"Unrouteable address")


# ----------------------------------------------------------------------------- POP3


@pytest.mark.parametrize("mode", ["ssl", "stls", "none"])
def test_pop3_logs_in_and_counts_the_inbox(lab_info: LabInfo, lab_password: str,
                                           mode: str) -> None:
    if mode == "ssl":
        pop: poplib.POP3 = poplib.POP3_SSL("localhost", lab_info.ports["pop3s"],
                                          context=_ctx(lab_info), timeout=5)
    else:
        pop = poplib.POP3("localhost", lab_info.ports["pop3"], timeout=5)
        if mode == "stls":
            pop.stls(context=_ctx(lab_info))
    try:
        pop.user("alice@localhost")
        pop.pass_(lab_password)
        count, _size = pop.stat()
        assert count == lab_info.folders["INBOX"]
    finally:
        pop.quit()


# ----------------------------------------------------------------------------- scenarios


def _verify_error(info: LabInfo, service: str = "imaps") -> ssl.SSLCertVerificationError:
    with socket.create_connection(("localhost", info.ports[service]), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError) as caught:
        _ctx(info).wrap_socket(raw, server_hostname="localhost")
    return caught.value


def test_wrong_host_certificate_fails_hostname_verification(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("wrong-host-cert")
    err = _verify_error(info)
    assert err.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH
    # ...and it is otherwise a good certificate: it verifies for the names it covers.
    ctx = _ctx(info)
    ctx.check_hostname = False
    with socket.create_connection(("localhost", info.ports["imaps"]), timeout=5) as raw, \
            ctx.wrap_socket(raw) as tls:
        names = {v for k, v in tls.getpeercert()["subjectAltName"]}  # type: ignore[index]
    assert names == {"gator4321.hostgator.com", "*.hostgator.com"}
    # Exim greets with the name its certificate is for, as a shared server does.
    assert _greeting(info, "submission")[0].startswith("220-gator4321.hostgator.com ESMTP Exim ")


def test_expired_certificate(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("expired-cert")
    assert _verify_error(info).verify_code == 10  # X509_V_ERR_CERT_HAS_EXPIRED
    assert _verify_error(info, "submissions").verify_code == 10


def test_self_signed_certificate(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("self-signed")
    assert _verify_error(info, "pop3s").verify_code == 18  # DEPTH_ZERO_SELF_SIGNED_CERT


def test_pop_only_account_has_no_imap(scenario, lab_password: str) -> None:  # type: ignore[no-untyped-def]
    info = scenario("pop-only")
    for service in ("imap", "imaps"):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("localhost", info.ports[service]), timeout=2)
    pop = poplib.POP3_SSL("localhost", info.ports["pop3s"], context=_ctx(info), timeout=5)
    pop.user("alice@localhost")
    pop.pass_(lab_password)
    assert pop.stat()[0] == info.folders["INBOX"]
    pop.quit()


def test_plaintext_disabled_refuses_login_until_starttls(scenario, lab_password: str) -> None:  # type: ignore[no-untyped-def]
    info = scenario("plaintext-disabled")
    assert info.server == INSECURE_HOST
    plain = imaplib.IMAP4(INSECURE_HOST, info.ports["imap"], timeout=5)
    assert "LOGINDISABLED" in plain.capabilities
    with pytest.raises(imaplib.IMAP4.error, match=r"(?i)plaintext|disallowed|not allowed"):
        plain.login("alice@localhost", lab_password)
    plain.shutdown()
    # The same port works after STARTTLS (the certificate names 127.0.0.2).
    with _imap(info, "imap", host=INSECURE_HOST, starttls=True) as client:
        client.login("alice@localhost", lab_password)
    # POP3 and SMTP refuse plain-text passwords too.
    pop = poplib.POP3(INSECURE_HOST, info.ports["pop3"], timeout=5)
    with pytest.raises(poplib.error_proto, match="Plaintext authentication disallowed"):
        pop.user("alice@localhost")  # refused before the password is even asked for
    pop.close()
    for service in ("smtp", "smtp_alt", "submission"):
        with _smtp(info, service, INSECURE_HOST) as smtp:
            smtp.ehlo()
            assert not smtp.has_extn("auth")
            with pytest.raises(smtplib.SMTPNotSupportedError):
                smtp.login("alice@localhost", lab_password)


def test_plaintext_allowed_takes_the_password_in_clear(scenario, lab_password: str) -> None:  # type: ignore[no-untyped-def]
    info = scenario("plaintext-allowed")
    plain = imaplib.IMAP4(INSECURE_HOST, info.ports["imap"], timeout=5)
    assert "LOGINDISABLED" not in plain.capabilities
    assert plain.login("alice@localhost", lab_password)[0] == "OK"
    plain.logout()
    # SMTP too: Exim offers AUTH before STARTTLS, and takes the password in clear.
    for service in ("smtp", "smtp_alt", "submission"):
        with _smtp(info, service, INSECURE_HOST) as smtp:
            smtp.ehlo()
            assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
            assert smtp.login("alice@localhost", lab_password)[0] == 235
    assert "AUTH attempt without TLS" in (info_log(info) / "exim-main.log").read_text()


def test_silent_port_accepts_and_never_greets(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("no-greeting")
    for port in (info.ports["imaps"], info.ports["imap"], info.ports["silent"]):
        with socket.create_connection(("localhost", port), timeout=2) as sock:
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(1)


@pytest.mark.parametrize("name", ["firewalled", "ip-blocked"])
def test_filtered_ports_never_complete_the_handshake(scenario, name: str) -> None:  # type: ignore[no-untyped-def]
    info = scenario(name)
    services = SCENARIOS[name].blackhole
    assert set(services) >= {"imap", "imaps"}
    for service in services:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection(("localhost", info.ports[service]), timeout=0.5)
        assert time.monotonic() - start < 1.5


def test_closed_port_refuses(scenario, lab_password: str) -> None:  # type: ignore[no-untyped-def]
    info = scenario("closed-port")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("localhost", info.ports["imaps"]), timeout=2)
    with _imap(info, "imap", starttls=True) as client:
        client.login("alice@localhost", lab_password)


def _starttls_reply(host: str, port: int) -> list[bytes]:
    """A plain IMAP port's answer to STARTTLS, up to the hang-up (or three lines)."""
    with socket.create_connection((host, port), timeout=5) as raw:
        reader = raw.makefile("rb")
        assert b"STARTTLS" in reader.readline()
        raw.sendall(b"a STARTTLS\r\n")
        return [line for line in (reader.readline() for _ in range(3)) if line]


def test_broken_key_breaks_imap_and_pop3_tls_on_the_servers_side(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("tls-broken")
    for service in ("imaps", "pop3s"):
        with socket.create_connection(("localhost", info.ports[service]), timeout=5) as raw, \
                pytest.raises((ssl.SSLError, ConnectionError)):
            _ctx(info).wrap_socket(raw, server_hostname="localhost")
    # offered, accepted, then the server's words in plain text, and it hangs up
    reply = _starttls_reply("localhost", info.ports["imap"])
    assert reply[0].startswith(b"a OK")
    assert reply[1] == b"* BYE [UNAVAILABLE] TLS initialization failed.\r\n"
    pop3 = check.knock("pop3", "pop3", "localhost", info.ports["pop3"], False, starttls=True)
    assert pop3.behaviour == "starttls_fails"
    # SMTP is not Dovecot's IMAP or POP3: it keeps working
    with smtplib.SMTP_SSL("localhost", info.ports["submissions"], context=_ctx(info),
                          timeout=5) as smtp:
        assert smtp.ehlo()[0] == 250


def test_starttls_broken_closes_993_and_refuses_clear_text(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("starttls-broken")
    assert info.server == INSECURE_HOST
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((INSECURE_HOST, info.ports["imaps"]), timeout=2)
    plain = imaplib.IMAP4(INSECURE_HOST, info.ports["imap"], timeout=5)
    assert "LOGINDISABLED" in plain.capabilities
    plain.shutdown()
    assert _starttls_reply(INSECURE_HOST, info.ports["imap"])[1].startswith(b"* BYE")


def test_smtp_tls_broken_everywhere(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("smtp-tls-broken")
    knocked = {name: check.knock(name, "smtp", "localhost", info.ports[name], name == "submissions",
                                 starttls=name != "submissions")
               for name in ("submissions", "submission", "smtp", "smtp_alt")}
    assert knocked.pop("submissions").behaviour == "tls_fails"
    for name, seen in knocked.items():
        assert seen.behaviour == "starttls_fails", name
        assert seen.detail.startswith("454"), seen.detail


def test_self_signed_with_clear_text_refused(scenario) -> None:  # type: ignore[no-untyped-def]
    info = scenario("self-signed-no-plaintext")
    with socket.create_connection((INSECURE_HOST, info.ports["imaps"]), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError) as caught:
        _ctx(info).wrap_socket(raw, server_hostname=INSECURE_HOST)
    assert caught.value.verify_code == 18  # DEPTH_ZERO_SELF_SIGNED_CERT
    plain = imaplib.IMAP4(INSECURE_HOST, info.ports["imap"], timeout=5)
    assert "LOGINDISABLED" in plain.capabilities
    plain.shutdown()


def test_smtp_tls_handshake_fails_on_465_and_starttls_still_works(  # type: ignore[no-untyped-def]
        scenario, lab_password: str) -> None:
    info = scenario("smtp-tls-handshake-fails")
    with socket.create_connection(("localhost", info.ports["submissions"]), timeout=5) as raw, \
            pytest.raises((ssl.SSLError, ConnectionError)):
        _ctx(info).wrap_socket(raw, server_hostname="localhost")  # cut off mid-handshake
    log = (info_log(info) / "exim-main.log").read_text()
    assert ".root-only.key): Error while reading file." in log  # the server's own words
    for service in ("submission", "smtp", "smtp_alt"):
        with _smtp(info, service) as smtp:
            smtp.starttls(context=_ctx(info))
            assert smtp.login("alice@localhost", lab_password)[0] == 235


def test_smtp_starttls_offered_then_fails_and_465_still_works(  # type: ignore[no-untyped-def]
        scenario, lab_password: str) -> None:
    info = scenario("smtp-starttls-fails")
    for service in ("submission", "smtp", "smtp_alt"):
        with _smtp(info, service) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls")
            assert not smtp.has_extn("auth")
            assert smtp.docmd("STARTTLS") == (454, b"TLS currently unavailable")
            assert smtp.noop()[0] == 250  # still speaking plain text, nothing was sent
    with _smtp(info, "submissions") as smtp:
        assert smtp.login("alice@localhost", lab_password)[0] == 235


# -- The sync's fallback scenarios: IMAP without an extension.

_TAKEN_AWAY = {"no-list-status": {"LIST-STATUS"}, "no-sasl-ir": {"SASL-IR"},
               "no-condstore": {"CONDSTORE", "QRESYNC"},
               "imap4rev1-only": {"LIST-STATUS", "SASL-IR", "CONDSTORE", "ESEARCH", "ENABLE",
                                  "LIST-EXTENDED", "SPECIAL-USE"}}


@pytest.mark.parametrize("name", list(_TAKEN_AWAY))
def test_an_extension_is_taken_away_before_and_after_login(  # type: ignore[no-untyped-def]
        name: str, scenario, lab_password: str) -> None:
    info = scenario(name)
    with _imap(info, "imaps") as client:
        before = {c.decode().upper() for c in client.capabilities()}
        client.login("alice@localhost", lab_password)
        after = {c.decode().upper() for c in client.capabilities()}
    assert not (before | after) & _TAKEN_AWAY[name]
    assert "IMAP4REV1" in after
    assert "AUTH=PLAIN" in before


#: What each hostile server sends first in answer to a login (over TLS).
AT_LOGIN = {"endless-line": b"* OK xxxxxxxx", "huge-literal": b"* CAPABILITY {4294967296}\r\nAAA",
            "literal-never-sent": b"* CAPABILITY {1000}\r\n"}


@pytest.mark.parametrize("misbehaviour", sorted(MISBEHAVIOURS))
def test_the_sidecar_plays_each_hostile_server(scenario, misbehaviour: str) -> None:  # type: ignore[no-untyped-def]
    info = scenario(f"hostile-{misbehaviour}")
    with socket.create_connection(("localhost", info.ports["imaps"]), timeout=5) as raw, \
            _ctx(info).wrap_socket(raw, server_hostname="localhost") as tls:
        greeting = tls.recv(200)
        assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] mailhat "
                                   b"lab sidecar: " + misbehaviour.encode())
        if misbehaviour == "garbage-after-greeting":
            assert len(tls.recv(65536)) > 0  # bytes keep coming, no command needed
            return
        tls.sendall(b"a1 LOGIN alice secret\r\n")
        got = b""
        while len(got) < len(AT_LOGIN[misbehaviour]):
            got += tls.recv(64)
        assert got.startswith(AT_LOGIN[misbehaviour])
        if misbehaviour == "literal-never-sent":
            tls.settimeout(0.5)
            with pytest.raises(TimeoutError):
                tls.recv(1)  # announced, never sent
    # before TLS it refuses clear-text passwords, as a careful server does
    plain = imaplib.IMAP4("localhost", info.ports["imap"], timeout=5)
    assert "LOGINDISABLED" in plain.capabilities
    plain.shutdown()


def test_no_auth_plain_leaves_sasl_login_alone(scenario, lab_password: str) -> None:  # type: ignore[no-untyped-def]
    info = scenario("no-auth-plain")
    with _imap(info, "imaps") as client:
        caps = {c.decode().upper() for c in client.capabilities()}
        assert "AUTH=LOGIN" in caps
        assert "AUTH=PLAIN" not in caps
        # Dovecot's LOGIN command is PLAIN underneath: it says so, and refuses it
        assert "LOGINDISABLED" in caps
        with pytest.raises(LoginError):
            client.login("alice@localhost", lab_password)
    imap = imaplib.IMAP4_SSL("localhost", info.ports["imaps"], ssl_context=_ctx(info),
                             timeout=5)
    answers = [b"alice@localhost", lab_password.encode()]  # to "Username:", "Password:"
    imap.authenticate("LOGIN", lambda challenge: answers.pop(0))
    assert imap.select("INBOX", readonly=True)[0] == "OK"
    imap.logout()
    pop = poplib.POP3_SSL("localhost", info.ports["pop3s"], context=_ctx(info), timeout=5)
    capa = pop.capa()
    assert capa["SASL"] == ["LOGIN"]
    assert "USER" in capa  # listed, and yet PASS fails: PLAIN is missing underneath
    pop.user("alice@localhost")
    with pytest.raises(poplib.error_proto, match="Unsupported authentication mechanism"):
        pop.pass_(lab_password)
    pop.close()
    with _smtp(info, "submissions") as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features["auth"].split() == ["LOGIN"]
        assert smtp.login("alice@localhost", lab_password)[0] == 235  # with AUTH LOGIN


def test_every_scenario_is_covered_here() -> None:
    covered = {"normal", "wrong-host-cert", "expired-cert", "self-signed", "pop-only",
               "plaintext-disabled", "plaintext-allowed", "no-greeting", "firewalled",
               "ip-blocked", "closed-port", "tls-broken", "starttls-broken",
               "self-signed-no-plaintext", "smtp-tls-handshake-fails", "smtp-starttls-fails",
               "smtp-tls-broken", "hostile-endless-line", "hostile-huge-literal",
               "hostile-literal-never-sent", "hostile-garbage-after-greeting",
               "no-auth-plain"}
    covered |= set(_TAKEN_AWAY)
    assert set(SCENARIOS) == covered


# ----------------------------------------------------------------------------- life cycle


def _trusted_configs() -> list[str]:
    from mailhat_nb.lab.exim import TRUSTED_CONFIGS

    return TRUSTED_CONFIGS.read_text().splitlines()


def _mailhat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailhat_nb.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_status_shows_every_service_answering(lab: Lab) -> None:
    import os

    env = dict(os.environ, MAILHAT_LAB_DIR=str(lab.paths.root))
    proc = _mailhat("lab", "status", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for service, std in STANDS_FOR.items():
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(service + " "))
        assert str(std) in line
        assert "greets" in line
        assert "✓" in line


def test_up_is_fast_and_down_leaves_nothing_running() -> None:
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="mhl-", dir="/tmp"))
    root.chmod(0o755)
    lab = Lab(root)
    try:
        lab.up()  # first start: certificates, users, demo mailbox
        lab.down()
        start = time.monotonic()
        info = lab.up()
        took = time.monotonic() - start
        assert took < 5, f"lab up took {took:.1f}s"
        pids = dict(info.pids)
        assert set(pids) == {"dovecot", "exim", "sidecar", "unbound", "web"}
        assert str(lab.paths.exim_conf) in _trusted_configs()
        children = subprocess.run(["pgrep", "-P", str(pids["dovecot"])], capture_output=True,
                                  text=True, check=False).stdout.split()
        assert children, "Dovecot's master should have started its services"
        assert sorted(lab.down()) == sorted(pids)
        assert str(lab.paths.exim_conf) not in _trusted_configs()
        for pid in [*pids.values(), *map(int, children)]:
            assert not Path(f"/proc/{pid}").exists() or \
                Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0
        for port in info.ports.values():
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0
        for port in (53, 993):  # the world's resolver and shared server are gone too
            with socket.socket() as sock:
                host = info.world["resolver" if port == 53 else "shared_address"]
                assert sock.connect_ex((host, port)) != 0
        assert not lab.is_running()
        assert lab.down() == []
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)


def test_trusted_configs_keeps_one_line_per_running_lab(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mailhat_nb.lab import exim
    from mailhat_nb.lab.layout import LabPaths

    trusted = tmp_path / "exim4" / "trusted_configs"
    trusted.parent.mkdir()
    trusted.write_text("/etc/exim4/someone-elses.conf\n")
    monkeypatch.setattr(exim, "TRUSTED_CONFIGS", trusted)
    labs = [LabPaths(Path(f"/tmp/mh-trust-{i}")) for i in range(12)]  # paths only
    with ThreadPoolExecutor(6) as pool:  # labs starting side by side
        list(pool.map(exim.trust, labs + labs))
    lines = trusted.read_text().splitlines()
    assert lines[0] == "/etc/exim4/someone-elses.conf"
    assert sorted(lines[1:]) == sorted(str(p.exim_conf) for p in labs)  # once each
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(exim.distrust, labs[:6]))
    assert trusted.read_text().splitlines() == [
        "/etc/exim4/someone-elses.conf", *(ln for ln in lines[1:]
                                           if ln not in {str(p.exim_conf) for p in labs[:6]})]
    assert trusted.stat().st_mode & 0o777 == 0o644


def test_lab_logs_never_hold_a_password(lab: Lab) -> None:
    passwords = list(read_passwords(lab.paths).values())
    for log in lab.paths.log.glob("*.log"):
        text = log.read_text(errors="replace")
        for pw in passwords:
            assert pw not in text, log
    public_files = (lab.paths.info, lab.paths.presets, lab.paths.dovecot_conf, lab.paths.users,
                    lab.paths.exim_conf, lab.paths.exim_passwd)
    for public in public_files:
        text = public.read_text(errors="replace")
        for pw in passwords:
            assert pw not in text, public


def test_lab_never_adopts_a_foreign_directory() -> None:
    import shutil
    import tempfile

    from mailhat_nb.errors import LabError

    tmp_path = Path(tempfile.mkdtemp(prefix="mhf-", dir="/tmp"))  # short: socket path limit
    foreign = tmp_path / "shared"
    foreign.mkdir()
    (foreign / "someone-elses-file").write_text("x")
    foreign.chmod(0o1777)  # like /tmp: the lab must not drop the sticky bit
    with pytest.raises(LabError, match="not a lab directory"):
        Lab(foreign).up()
    assert foreign.stat().st_mode & 0o7777 == 0o1777
    assert sorted(p.name for p in foreign.iterdir()) == ["someone-elses-file"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(LabError, match="not a directory"):
        Lab(a_file).up()
    shutil.rmtree(tmp_path)


# ----------------------------------------------------------------------------- ownership


def _short_tmp(prefix: str) -> Path:
    """A short directory under /tmp (socket path limit), removed by the caller."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _state_json(root: Path, pids: dict[str, int]) -> str:
    """A well-formed lab.json for ``root`` listing ``pids``."""
    from mailhat_nb.lab.ports import EXTRA_OFFSETS

    names = [*STANDS_FOR, *EXTRA_OFFSETS]
    return LabInfo(root=str(root), scenario="normal", server="localhost", domain="localhost",
                   ports={n: 40000 + i for i, n in enumerate(names)},
                   stands_for=dict(STANDS_FOR), ca_file=str(root / "tls/ca.pem"),
                   presets=str(root / "presets.toml"), users=[], pids=pids).to_json()


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_down_with_a_copied_lab_json_leaves_the_other_lab_running(lab: Lab) -> None:
    import shutil

    from mailhat_nb.errors import LabError

    before = lab.info().pids
    other = _short_tmp("mhx-")
    try:
        shutil.copy(lab.paths.info, other / "lab.json")
        # Not a lab directory (no marker): nothing is read, nothing stopped.
        with pytest.raises(LabError, match=r"not a lab directory.*stopped nothing"):
            Lab(other).down()
        with pytest.raises(LabError, match="not a lab directory"):
            Lab(other).info()
        assert (other / "lab.json").exists()
        # A lab directory of its own: the copied pids point into another root.
        Lab(other).paths.marker.touch()
        notes: list[str] = []
        assert Lab(other).down(say=notes.append) == []
        assert len(notes) == len(before)
        assert all("left alone" in n for n in notes), notes
        assert not Lab(other).is_running()
        assert all(_alive(pid) for pid in before.values())
        assert lab.info().pids == before
    finally:
        shutil.rmtree(other, ignore_errors=True)
        if not lab.is_running():  # the bug this pins: bring the session's lab back
            lab.up()


def test_down_never_signals_an_unknown_or_foreign_process() -> None:
    import shutil

    from mailhat_nb.errors import LabError

    root, elsewhere = _short_tmp("mhy-"), _short_tmp("mhz-")
    (elsewhere / "run").mkdir()
    Lab(root).paths.marker.touch()
    Lab(elsewhere).paths.marker.touch()
    sleeper = subprocess.Popen(["sleep", "300"])
    # A real sidecar, but another lab's: its --pid-file points into `elsewhere`.
    pid_file = elsewhere / "run" / "sidecar.pid"
    sidecar = subprocess.Popen([sys.executable, "-m", "mailhat_nb.lab.sidecar",
                                "--pid-file", str(pid_file)])
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # The review's repro: not even a lab state file -> nothing is signalled.
        (root / "lab.json").write_text(f'{{"pids": {{"sleep": {sleeper.pid}}}}}')
        with pytest.raises(LabError, match=r"is not a lab state file.*stopped nothing"):
            Lab(root).down()
        # Well-formed, but the names and pids are not this lab's.
        (root / "lab.json").write_text(_state_json(root, {
            "sleep": sleeper.pid, "dovecot": sleeper.pid, "exim": sidecar.pid,
            "sidecar": sidecar.pid}))
        notes: list[str] = []
        assert Lab(root).down(say=notes.append) == []
        assert any("unknown process 'sleep'" in n and "not signalled" in n for n in notes)
        assert sum("left alone" in n for n in notes) == 3, notes
        assert _alive(sleeper.pid)
        assert _alive(sidecar.pid)
        # The owner's lab.json stops it, and only it.
        (elsewhere / "lab.json").write_text(_state_json(elsewhere, {"sidecar": sidecar.pid}))
        assert Lab(elsewhere).down() == ["sidecar"]
        assert sidecar.wait(timeout=5) == 0
        assert _alive(sleeper.pid)
    finally:
        for proc in (sleeper, sidecar):
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_a_process_is_the_labs_only_when_its_command_line_points_into_its_root() -> None:
    import os
    import shutil

    from mailhat_nb.lab.procs import owns

    base = _short_tmp("mho-")
    try:
        root, other, link = base / "lab", base / "other", base / "link"
        root.mkdir()
        other.mkdir()
        link.symlink_to(root)
        (other / "dovecot.conf").symlink_to(root / "dovecot.conf")
        paths = Lab(root).paths
        conf = ["/usr/sbin/dovecot", "-c"]
        assert owns(paths, "dovecot", [*conf, f"{root}/dovecot.conf"])
        assert owns(paths, "dovecot", [*conf, f"{link}/dovecot.conf"])  # same lab
        assert owns(Lab(link).paths, "dovecot", [*conf, f"{root}/dovecot.conf"])
        exim = ["/usr/sbin/exim4", "-C"]
        assert owns(paths, "exim", [*exim, f"{root}/exim/exim.conf", "-bd", "-q2s"])
        # a lab started before Exim took over its SMTP: its Postfix is stopped too
        assert owns(paths, "postfix", ["/usr/lib/postfix/sbin/master", "-c", f"{root}/postfix",
                                       "-w"])
        assert owns(paths, "sidecar", ["/usr/bin/python3", "-m", "mailhat_nb.lab.sidecar",
                                       "--pid-file", f"{root}/run/sidecar.pid", "--silent", "1"])
        assert not owns(paths, "dovecot", [*conf, f"{other}/dovecot.conf"])  # file symlinked
        assert not owns(paths, "dovecot", [*conf, "lab/dovecot.conf"])  # relative: unprovable
        assert not owns(paths, "dovecot", ["/usr/sbin/dovecot"])  # the system's Dovecot
        assert not owns(paths, "dovecot", ["/bin/sleep", "-c", f"{root}/dovecot.conf"])
        assert not owns(paths, "exim", ["/usr/sbin/exim4", "-bd", "-q30m"])  # the system's
        assert not owns(paths, "exim", [*exim, f"{other}/exim/exim.conf", "-bd"])
        assert not owns(paths, "exim", [*exim, "/etc/exim4/exim4.conf", "-bd"])
        assert not owns(paths, "sidecar", ["/usr/bin/python3", "-m", "mailhat_nb.lab.sidecar",
                                           "--pid-file", f"{other}/run/sidecar.pid"])
        assert not owns(paths, "sleep", ["sleep", f"{root}/dovecot.conf"])
        # A relative root is made absolute, so what the lab starts names it in full.
        cwd = Path.cwd()
        try:
            os.chdir(base)
            assert Lab("lab").paths.root == root
            assert owns(Lab("link/").paths, "dovecot", [*conf, f"{root}/dovecot.conf"])
        finally:
            os.chdir(cwd)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_lab_is_found_through_a_symlink_or_a_relative_path(lab: Lab) -> None:
    import os

    link = _short_tmp("mhk-") / "l"
    try:
        link.symlink_to(lab.paths.root)
        assert Lab(link).info().pids == lab.info().pids
        cwd = Path.cwd()
        try:
            os.chdir(lab.paths.root.parent)
            assert Lab(lab.paths.root.name).is_running()
        finally:
            os.chdir(cwd)
    finally:
        link.unlink()
        link.parent.rmdir()


# ----------------------------------------------------------------------------- lab.json


_MALFORMED = {
    "object of garbage": '{"garbage": 1}',
    "array": "[1, 2]",
    "not JSON": "lab up",
    "not UTF-8": "\udcff",
    "pid not a number": '{"pids": {"dovecot": "1"}}',
    "pid zero": '{"pids": {"dovecot": 0}}',
    "unknown scenario": '{"scenario": "sunny"}',
    "port missing": '{"ports": {"imap": 143}}',
}


@pytest.mark.parametrize("text", list(_MALFORMED.values()), ids=list(_MALFORMED))
def test_a_malformed_lab_json_is_a_lab_error_and_down_stops_nothing(text: str) -> None:
    import json
    import shutil

    from mailhat_nb.errors import LabError

    root = _short_tmp("mhm-")
    try:
        lab = Lab(root)
        lab.paths.marker.touch()
        if text.startswith("{") and '"garbage"' not in text:  # one bad field in a good file
            good = json.loads(_state_json(root, {"dovecot": 1}))
            text = json.dumps(good | json.loads(text))
        lab.paths.info.write_bytes(text.encode(errors="surrogateescape"))
        bad = re.escape(f"{lab.paths.info} is not a lab state file: ")
        for call in (lab.info, lab.is_running, lambda: lab.set_scenario("normal")):
            with pytest.raises(LabError, match=bad):
                call()
        with pytest.raises(LabError, match=bad + ".*; stopped nothing$"):
            lab.down()
        assert lab.paths.info.exists()  # kept: it may be all that names running processes
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("text", ['{"garbage":1}', "[1,2]"])
def test_lab_commands_on_a_malformed_lab_json_say_so_without_a_traceback(text: str) -> None:
    import os
    import shutil

    root = _short_tmp("mhc-")
    try:
        Lab(root).paths.marker.touch()
        (root / "lab.json").write_text(text + "\n")
        env = dict(os.environ, MAILHAT_LAB_DIR=str(root))
        for args in (["status"], ["status", "--json"], ["down"], ["scenario", "normal"]):
            proc = _mailhat("lab", *args, env=env)
            assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stderr, (args, proc.stderr)
            assert f"{root}/lab.json is not a lab state file: " in proc.stderr, args
            if args == ["down"]:
                assert "stopped nothing" in proc.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_scenario_switch_that_fails_leaves_nothing_down_cannot_stop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Dovecot and Exim restarted by a switch are in lab.json even when the switch fails."""
    import json
    import shutil
    import tempfile

    from mailhat_nb.errors import LabError
    from mailhat_nb.lab import procs

    root = Path(tempfile.mkdtemp(prefix="mhl-", dir="/tmp"))
    root.chmod(0o755)
    lab = Lab(root)
    try:
        before = dict(lab.up().pids)

        def ports_never_free(*_args: object) -> None:
            raise LabError("ports held")

        monkeypatch.setattr(procs, "wait_until", ports_never_free)
        with pytest.raises(LabError, match="ports held"):
            lab.set_scenario("no-greeting")   # moves the IMAP ports: Dovecot restarts
        recorded = json.loads(lab.paths.info.read_text())["pids"]
        assert recorded["dovecot"] != before["dovecot"]
        running = [pid for pid in recorded.values() if Path(f"/proc/{pid}").exists()]
        assert recorded["dovecot"] in running
        monkeypatch.undo()
        lab.down()
        for pid in running:
            assert not Path(f"/proc/{pid}").exists() or \
                Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)
