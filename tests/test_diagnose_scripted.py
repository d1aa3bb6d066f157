"""Codes the lab cannot produce, against tiny scripted servers on 127.0.0.1.

Dovecot always offers STARTTLS and AUTHENTICATE PLAIN and never fails an
EXAMINE, so the doctor's handling of older or broken servers is exercised by
a few lines of socket server each: real TCP, real bytes, loopback only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailhat_nb.diagnose import Account, Report, diagnose
from mailhat_nb.diagnose import imap as imap_module
from mailhat_nb.diagnose.transcript import WITHHELD
from mailhat_nb.secrets import Secret

#: Given a client line, the reply bytes; None hangs up.
Responder = Callable[[str], bytes | None]
#: A reply ending in this is sent without it, then the server hangs up mid-line.
HANG_UP = b"<hang up>"


class ScriptedServer:
    """Greets, then answers each line with ``respond`` until it returns None."""

    def __init__(self, greeting: bytes, respond: Responder) -> None:
        self.greeting, self.respond = greeting, respond
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        # The doctor does not wait for LOGOUT's answer: its close may reset the
        # connection under a reply, which ends the talk like any hang-up.
        with conn, conn.makefile("rb") as reader, contextlib.suppress(ConnectionError):
            conn.sendall(self.greeting)
            for raw in reader:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.received.append(line)
                reply = self.respond(line)
                if reply is None:
                    return
                if reply.endswith(HANG_UP):
                    conn.sendall(reply.removesuffix(HANG_UP))
                    return
                conn.sendall(reply)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[bytes, Responder], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(greeting: bytes, respond: Responder) -> ScriptedServer:
        servers.append(ScriptedServer(greeting, respond))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def imap_responder(caps: str, login: Callable[[str], bytes],
                   examine: bytes = b"OK [READ-ONLY] done") -> Responder:
    def respond(line: str) -> bytes | None:
        tag, _, rest = line.partition(" ")
        cmd = rest.split(" ")[0].upper()
        if cmd == "CAPABILITY":
            return f"* CAPABILITY {caps}\r\n{tag} OK done\r\n".encode()
        if cmd == "LOGIN":
            return login(line).replace(b"TAG", tag.encode())
        if cmd == "LIST":
            return f'* LIST () "/" INBOX\r\n{tag} OK done\r\n'.encode()
        if cmd == "EXAMINE":
            return b"* 3 EXISTS\r\n" + tag.encode() + b" " + examine + b"\r\n"
        if cmd == "LOGOUT":
            return f"* BYE\r\n{tag} OK bye\r\n".encode()
        if rest == "" and line:  # a literal's content
            return b""
        return f"{tag} BAD unknown\r\n".encode()
    return respond


def probe_one(port: int, protocol: str, security: str, tmp_path: Path,
              password: str = "pässwörd-1",  # noqa: S107 - test data
              host: str = "127.0.0.1", label: str = "x", email: str = "user@example.com",
              **kwargs: object) -> Report:
    path = tmp_path / "p.toml"
    path.write_text(f'[[preset]]\nid = "x"\nlabel = "{label}"\nprotocol = "{protocol}"\n'
                    f'host = "{host}"\nport = {port}\nsecurity = "{security}"\n')
    account = Account.from_input(email, password)
    return diagnose(account, presets=str(path), timeout=2, **kwargs)  # type: ignore[arg-type]


def test_login_only_server_and_non_ascii_password(serve: Callable[..., ScriptedServer],
                                                  tmp_path: Path) -> None:
    def login(line: str) -> bytes:
        return b"+ go ahead\r\n" if line.endswith("}") else b"TAG NO [AUTHENTICATIONFAILED] no\r\n"

    state = {"literal": False}

    def respond(line: str) -> bytes | None:
        if state["literal"]:
            state["literal"] = False
            return b"M002 NO [AUTHENTICATIONFAILED] bad\r\n"
        if " LOGIN " in line and line.endswith("}"):
            state["literal"] = True
            return b"+ go ahead\r\n"
        return imap_responder("IMAP4rev1", login)(line)

    server = serve(b"* OK ready\r\n", respond)
    report = probe_one(server.port, "imap", "none", tmp_path, allow_plaintext_login=True)
    (result,) = report.results
    assert result.code == "password_not_ascii"
    assert "only LOGIN" in result.detail
    # sent as a UTF-8 literal after the server's go-ahead, recorded masked
    assert any(line.endswith("{12}") for line in server.received)
    assert "pässwörd-1" in server.received  # it did reach the server ...
    shown = [ln.text for ln in result.transcript]
    assert "***" in shown
    assert not any("pässwörd" in t for t in shown)  # ... but not the transcript


def test_login_with_ascii_password_works_and_is_masked(serve: Callable[..., ScriptedServer],
                                                       tmp_path: Path) -> None:
    server = serve(b"* OK ready\r\n",
                   imap_responder("IMAP4rev1", lambda line: b"TAG OK logged in\r\n"))
    report = probe_one(server.port, "imap", "none", tmp_path, password="plain-pw-7",
                       allow_plaintext_login=True)
    (result,) = report.results
    assert result.code == "plaintext_password_exposed"
    assert result.login_tried
    assert result.works
    assert report.incoming_ok  # a clear-text login asked for, and it worked
    assert any(t.text == 'M002 LOGIN "user@example.com" ***' for t in result.transcript)
    assert "INBOX: 3 messages" in (result.step("mailbox") or result.steps[0]).detail


def test_starttls_unavailable(serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(b"* OK ready\r\n", imap_responder("IMAP4rev1 AUTH=PLAIN",
                                                     lambda line: b"TAG OK\r\n"))
    (result,) = probe_one(server.port, "imap", "starttls", tmp_path).results
    assert result.code == "starttls_unavailable"
    assert not any("AUTH" in ln.text for ln in result.transcript if ln.direction == "C")


def test_mailbox_unavailable(serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(b"* OK ready\r\n", imap_responder(
        "IMAP4rev1", lambda line: b"TAG OK in\r\n", examine=b"NO [SERVERBUG] broken"))
    (result,) = probe_one(server.port, "imap", "none", tmp_path, password="pw-ascii",
                          allow_plaintext_login=True).results
    assert result.code == "mailbox_unavailable"
    assert "SERVERBUG" in result.detail


def test_server_disconnected_and_refusing_greeting(serve: Callable[..., ScriptedServer],
                                                   tmp_path: Path) -> None:
    server = serve(b"* OK ready\r\n", lambda line: None)  # hangs up on the first command
    (result,) = probe_one(server.port, "imap", "none", tmp_path).results
    assert result.code == "server_disconnected"
    assert result.failed_step is not None
    assert result.failed_step.name == "capabilities"
    busy = serve(b"-ERR [SYS/TEMP] too many connections\r\n", lambda line: None)
    (result,) = probe_one(busy.port, "pop3", "none", tmp_path).results
    assert result.code == "server_disconnected"
    assert "too many connections" in result.detail


def test_http_server_is_wrong_protocol(serve: Callable[..., ScriptedServer],
                                       tmp_path: Path) -> None:
    server = serve(b"HTTP/1.1 400 Bad Request\r\n\r\n", lambda line: None)
    (result,) = probe_one(server.port, "smtp", "none", tmp_path).results
    assert result.code == "wrong_protocol"
    assert "HTTP" in result.detail


def smtp_responder(mail_from: bytes = b"250 ok\r\n") -> Responder:
    def respond(line: str) -> bytes | None:
        upper = line.upper()
        if upper.startswith("EHLO"):
            return b"250-fake\r\n250 AUTH LOGIN\r\n"
        if upper == "AUTH LOGIN":
            return b"334 VXNlcm5hbWU6\r\n"
        if upper.startswith("MAIL FROM"):
            return mail_from
        if upper == "QUIT":
            return b"221 bye\r\n"
        if line and not upper.startswith(("RCPT", "DATA")):
            # the two AUTH LOGIN continuations: username, then password
            return b"334 UGFzc3dvcmQ6\r\n" if line == "dXNlckBleGFtcGxlLmNvbQ==" else (
                b"235 ok\r\n")
        return b"500 no\r\n"
    return respond


def test_auth_login_continuations_masked_and_send_rejected(serve: Callable[..., ScriptedServer],
                                                           tmp_path: Path) -> None:
    server = serve(b"220 fake ESMTP\r\n",
                   smtp_responder(mail_from=b"550 5.7.1 sender not allowed\r\n"))
    report = probe_one(server.port, "smtp", "none", tmp_path, password="Ascii-pw-9",
                       send_test=True, allow_plaintext_login=True)
    (result,) = report.results
    assert result.code == "send_rejected"
    send = result.step("send")
    assert send is not None
    assert send.status == "fail"
    assert "sender not allowed" in send.detail
    client = [ln.text for ln in result.transcript if ln.direction == "C"]
    assert client[:4] == ["EHLO [127.0.0.1]", "AUTH LOGIN", "***", "***"]
    assert "QXNjaWktcHctOQ==" in server.received  # base64 of the password went over the wire
    assert not any("QXNjaWktcHctOQ==" in text or "Ascii-pw-9" in text for text in client)


# ------------------------------------------------------------------ no password in clear text

#: Client commands that carry (or start carrying) credentials.
CREDENTIAL_COMMANDS = ("LOGIN", "AUTHENTICATE", "AUTH", "PASS", "APOP")


def sent_credentials(server: ScriptedServer) -> list[str]:
    """Lines the server received that carried, or began to carry, credentials."""
    out = []
    for line in server.received:
        words = line.upper().split()
        if any(w in CREDENTIAL_COMMANDS for w in words[:2]):
            out.append(line)
    return out


def test_unencrypted_imap_preset_is_judged_without_sending_the_password(
        serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(b"* OK ready\r\n", imap_responder("IMAP4rev1 STARTTLS AUTH=PLAIN",
                                                     lambda line: b"TAG OK in\r\n"))
    report = probe_one(server.port, "imap", "none", tmp_path, password="never-sent-1")
    (result,) = report.results
    assert server.received == ["M001 CAPABILITY", "M002 LOGOUT"]
    assert sent_credentials(server) == []
    assert (result.code, result.status, result.login_tried) == (
        "plaintext_password_exposed", "warn", False)
    auth, mailbox = result.step("auth"), result.step("mailbox")
    assert auth is not None
    assert mailbox is not None
    assert auth.status == "warn"
    assert "the server accepts passwords without encryption on this port" in auth.detail
    assert "it offers LOGIN, AUTHENTICATE PLAIN" in auth.detail
    assert "the doctor did not send the password" in auth.detail
    assert "the server also offers STARTTLS on this port" in auth.detail
    assert "use it" not in auth.detail  # a fact; whether STARTTLS works is its own row
    assert mailbox.status == "skip"
    assert "no login" in mailbox.detail
    assert not result.works
    assert result.title == "Unencrypted login offered (not tried)"
    v = report.verdict
    assert v.code == "plaintext_password_exposed"
    assert "the doctor did not send it" in v.summary
    assert "worked" not in v.summary
    assert not report.incoming_ok


@pytest.mark.parametrize(("caps", "code", "says"), [
    ("IMAP4rev1 STARTTLS LOGINDISABLED", "plaintext_auth_disabled", "LOGINDISABLED"),
    ("IMAP4rev1 LOGINDISABLED AUTH=GSSAPI", "plaintext_auth_disabled", "LOGINDISABLED"),
    # LOGIN is off, but AUTHENTICATE PLAIN would still carry the password in clear
    ("IMAP4rev1 LOGINDISABLED AUTH=PLAIN", "plaintext_password_exposed",
     "it offers AUTHENTICATE PLAIN"),
    ("IMAP4rev1", "plaintext_password_exposed", "it offers LOGIN"),
])
def test_imap_capabilities_decide_the_unencrypted_preset(
        caps: str, code: str, says: str, serve: Callable[..., ScriptedServer],
        tmp_path: Path) -> None:
    server = serve(b"* OK ready\r\n", imap_responder(caps, lambda line: b"TAG OK in\r\n"))
    (result,) = probe_one(server.port, "imap", "none", tmp_path).results
    assert result.code == code
    assert says in result.detail
    assert sent_credentials(server) == []


def pop3_responder(capa: bytes | None, user_reply: bytes = b"+OK\r\n") -> Responder:
    """CAPA answers ``capa`` (None: -ERR, an RFC 1939-only server)."""
    def respond(line: str) -> bytes | None:
        cmd = line.split(" ")[0].upper()
        if cmd == "CAPA":
            return b"-ERR unknown command\r\n" if capa is None else b"+OK\r\n" + capa + b".\r\n"
        if cmd == "USER":
            return user_reply
        if cmd == "QUIT":
            return b"+OK bye\r\n"
        return b"-ERR no\r\n"
    return respond


DISALLOWED = (b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) "
              b"connections.\r\n")


@pytest.mark.parametrize(("capa", "user_reply", "code", "user_sent"), [
    (b"TOP\r\nUSER\r\nSTLS\r\nSASL PLAIN LOGIN\r\n", b"+OK\r\n", "plaintext_password_exposed",
     True),
    (b"TOP\r\nSTLS\r\nSASL\r\n", b"+OK\r\n", "plaintext_auth_disabled", False),  # Dovecot
    (b"TOP\r\nSASL PLAIN\r\n", b"+OK\r\n", "plaintext_password_exposed", False),
    (None, b"+OK\r\n", "plaintext_password_exposed", True),
    (None, DISALLOWED, "plaintext_auth_disabled", True),
    (b"USER\r\n", DISALLOWED, "plaintext_auth_disabled", True),
])
def test_pop3_unencrypted_preset_never_sends_pass(
        capa: bytes | None, user_reply: bytes, code: str, user_sent: bool,
        serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(b"+OK ready\r\n", pop3_responder(capa, user_reply))
    (result,) = probe_one(server.port, "pop3", "none", tmp_path).results
    assert result.code == code, result.detail
    assert sent_credentials(server) == []
    assert ("USER user@example.com" in server.received) == user_sent
    assert not result.login_tried


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def test_pop3_login_delay_is_no_wrong_password(serve: Callable[..., ScriptedServer],
                                               tmp_path: Path) -> None:
    # D2: Debian's Cyrus (popminpoll: 1) answers a second login within a minute so.
    capa = b"TOP\r\nUSER\r\nSASL PLAIN\r\nLOGIN-DELAY 60\r\n"

    def respond(line: str) -> bytes | None:
        if line.startswith("AUTH PLAIN"):
            return b"-ERR [LOGIN-DELAY] Logins must be at least 1 minute apart\r\n"
        return pop3_responder(capa)(line)

    server = serve(b"+OK cyrus ready\r\n", respond)
    path = tmp_path / "p.toml"
    path.write_text(f'[[preset]]\nid = "pop"\nlabel = "POP3"\nprotocol = "pop3"\n'
                    f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n\n'
                    f'[[preset]]\nid = "imap"\nlabel = "IMAP"\nprotocol = "imap"\n'
                    f'host = "127.0.0.1"\nport = {closed_port()}\nsecurity = "none"\n')
    report = diagnose(Account.from_input("alice@example.com", "pw-1"), presets=str(path),
                      timeout=2, allow_plaintext_login=True)
    pop = next(r for r in report.results if r.protocol == "pop3")
    assert pop.code == "login_delayed", pop.detail
    assert "the server allows one login per 60 s" in pop.detail
    assert "Do not reset the password" in pop.remedy
    # the account is POP-only, whatever the second run meets
    assert report.verdict.code == "pop_only"
    assert "reset" not in report.verdict.summary


def test_pop3_username_refused_before_any_password(serve: Callable[..., ScriptedServer],
                                                   tmp_path: Path) -> None:
    # D5: Cyrus without virtdomains knows "alice", not the full address.
    server = serve(b"+OK cyrus ready\r\n",
                   pop3_responder(b"TOP\r\nUSER\r\n", b"-ERR [AUTH] Invalid user\r\n"))
    report = probe_one(server.port, "pop3", "none", tmp_path, email="alice@cyrus.test")
    (result,) = report.results
    assert result.code == "auth_failed"
    assert result.detail.startswith("USER rejected: -ERR [AUTH] Invalid user")
    assert sent_credentials(server) == []
    assert "POP3 refused the username itself" in report.verdict.summary
    assert "(such as alice)" in report.verdict.remedy
    assert "full email address as the username" not in report.verdict.remedy


def test_pop3_refusal_lists_what_capa_offers(serve: Callable[..., ScriptedServer],
                                            tmp_path: Path) -> None:
    # D9: Cyrus with allowplaintext: no lists STLS and SASL mechanisms that carry no
    # password as it is; "(only STLS)" was wrong.
    capa = b"TOP\r\nSTLS\r\nSASL SCRAM-SHA-512 DIGEST-MD5 CRAM-MD5\r\n"
    server = serve(b"+OK ready\r\n", pop3_responder(capa))
    (result,) = probe_one(server.port, "pop3", "none", tmp_path).results
    assert result.code == "plaintext_auth_disabled"
    assert ("(it lists SASL CRAM-MD5, SASL DIGEST-MD5, SASL SCRAM-SHA-512, STLS)"
            in result.detail)
    assert "only STLS" not in result.detail


@pytest.mark.parametrize(("ehlo", "code", "says"), [
    (b"250-fake\r\n250-AUTH\r\n250 STARTTLS\r\n", "plaintext_auth_disabled",
     "AUTH with no mechanisms before STARTTLS"),
    (b"250-fake\r\n250 STARTTLS\r\n", "plaintext_auth_disabled", "no AUTH before STARTTLS"),
    (b"250 fake\r\n", "smtp_auth_unavailable", "no AUTH mechanism"),
    (b"250-fake\r\n250 AUTH CRAM-MD5\r\n", "smtp_auth_unavailable", "only CRAM-MD5"),
    (b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n", "plaintext_password_exposed",
     "EHLO lists AUTH PLAIN LOGIN"),
])
def test_smtp_unencrypted_preset_decides_from_ehlo(
        ehlo: bytes, code: str, says: str, serve: Callable[..., ScriptedServer],
        tmp_path: Path) -> None:
    def respond(line: str) -> bytes | None:
        if line.upper().startswith("EHLO"):
            return ehlo
        return b"221 bye\r\n" if line.upper() == "QUIT" else b"500 no\r\n"

    server = serve(b"220 fake ESMTP\r\n", respond)
    (result,) = probe_one(server.port, "smtp", "none", tmp_path).results
    assert result.code == code
    assert says in result.detail
    assert sent_credentials(server) == []


def _smtp_ehlo(ehlo: bytes) -> Responder:
    def respond(line: str) -> bytes | None:
        if line.upper().startswith("EHLO"):
            return ehlo
        return b"221 bye\r\n" if line.upper() == "QUIT" else b"530 no\r\n"
    return respond


@pytest.mark.parametrize(("protocol", "greeting", "responder"), [
    # IMAP: LOGINDISABLED, and no mechanism that carries a password before TLS
    ("imap", b"* OK ready\r\n", imap_responder("IMAP4rev1 STARTTLS LOGINDISABLED",
                                                lambda line: b"TAG OK in\r\n")),
    ("imap", b"* OK ready\r\n", imap_responder("IMAP4rev1 LOGINDISABLED AUTH=LOGIN",
                                                lambda line: b"TAG OK in\r\n")),
    # POP3: CAPA without USER (with or without STLS), or USER refused in clear text
    ("pop3", b"+OK ready\r\n", pop3_responder(b"TOP\r\nSTLS\r\nSASL\r\n")),
    ("pop3", b"+OK ready\r\n", pop3_responder(b"TOP\r\nUIDL\r\n")),
    ("pop3", b"+OK ready\r\n", pop3_responder(b"USER\r\n", DISALLOWED)),
    ("pop3", b"+OK ready\r\n", pop3_responder(None, DISALLOWED)),
    # SMTP: no AUTH (or a bare one) before STARTTLS
    ("smtp", b"220 fake ESMTP\r\n", _smtp_ehlo(b"250-fake\r\n250 STARTTLS\r\n")),
    ("smtp", b"220 fake ESMTP\r\n", _smtp_ehlo(b"250-fake\r\n250-AUTH\r\n250 STARTTLS\r\n")),
])
def test_no_password_where_the_server_refuses_it_even_when_clear_text_is_allowed(
        protocol: str, greeting: bytes, responder: Responder,
        serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(greeting, responder)
    (result,) = probe_one(server.port, protocol, "none", tmp_path, password="never-sent-2",
                          allow_plaintext_login=True).results
    assert result.code == "plaintext_auth_disabled", result.detail
    assert sent_credentials(server) == []
    assert not any("never-sent-2" in line for line in server.received)
    assert not result.login_tried


def test_send_test_is_skipped_rather_than_log_in_unencrypted(
        serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(b"220 fake ESMTP\r\n", smtp_responder())
    report = probe_one(server.port, "smtp", "none", tmp_path, password="Ascii-pw-9",
                       send_test=True)
    (result,) = report.results
    assert result.code == "plaintext_password_exposed"
    assert result.step("send") is None
    assert any("send test skipped" in n and "clear text" in n for n in report.notes)
    assert sent_credentials(server) == []
    assert not any(line.upper().startswith("MAIL FROM") for line in server.received)


# ------------------------------------------------------------------ short passwords, whole lines

GREETING = "* OK [CAPABILITY IMAP4rev1] localhost ready"


def echoing_imap() -> Responder:
    """An IMAP server that, after LOGIN, repeats the password back in an untagged line."""
    def login(line: str) -> bytes:
        said = line.rsplit(" ", 1)[1].strip('"')
        return (f"* OK [ALERT] you said {said}\r\nTAG OK [CAPABILITY IMAP4rev1] Logged in\r\n"
                .encode())
    return imap_responder("IMAP4rev1", login)


def outputs(report: Report) -> list[str]:
    """Every text a report shows: JSON, Markdown, the table, frames, transcripts, details."""
    texts = [report.to_json(), report.to_markdown(), report.to_text()]
    for frame in (report.to_frame(), report.steps_frame()):
        texts += [str(cell) for cell in frame.to_numpy().ravel()]
    texts += [str(line) for r in report.results for line in r.transcript]
    texts += [r.detail + r.remedy + r.explanation for r in report.results]
    return texts


@pytest.mark.parametrize("password", ["OK", "localhost", "a"])
def test_short_passwords_leave_every_text_intact(
        password: str, serve: Callable[..., ScriptedServer], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailhat_nb")
    server = serve(f"{GREETING}\r\n".encode(), echoing_imap())
    report = probe_one(server.port, "imap", "none", tmp_path, password=password,
                       host="localhost", label="IMAP option 1", email="user@localhost")
    (result,) = report.results
    # Nothing was sent, so nothing is checked, masked or withheld: every line as it was.
    texts = [ln.text for ln in result.transcript]
    assert f"probing IMAP option 1: localhost, port {server.port}, no encryption as " \
           "user@localhost" in texts
    assert GREETING in texts
    # the capabilities come from the greeting (no CAPABILITY sent): the doctor's note intact
    assert "capabilities as the greeting lists them (RFC 3501 7.1): CAPABILITY not sent" in texts
    assert server.received == ["M001 LOGOUT"]
    assert WITHHELD not in texts
    dns, greeting, caps = result.step("dns"), result.step("greeting"), result.step("capabilities")
    assert dns is not None
    assert greeting is not None
    assert caps is not None
    assert caps.detail == "IMAP4REV1 (listed in the greeting)"
    assert dns.detail.startswith("localhost → ")
    assert greeting.detail == GREETING
    assert f"S: {GREETING}" in report.to_markdown()
    for text in [*outputs(report), caplog.text]:
        assert "***" not in text  # no mask anywhere: it would point at the password


@pytest.mark.parametrize("password", ["OK", "localhost", "a"])
def test_short_passwords_echoed_after_login_are_withheld_whole(
        password: str, serve: Callable[..., ScriptedServer], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mailhat_nb")
    server = serve(f"{GREETING}\r\n".encode(), echoing_imap())
    report = probe_one(server.port, "imap", "none", tmp_path, password=password,
                       host="localhost", label="IMAP option 1", email="user@localhost",
                       allow_plaintext_login=True)
    (result,) = report.results
    # it was sent (the first command: the greeting listed the capabilities) ...
    assert server.received[0] == f'M001 LOGIN "user@localhost" "{password}"'
    lines = result.transcript
    login = next(i for i, ln in enumerate(lines) if ln.direction == "C" and "LOGIN" in ln.text)
    assert lines[login].text == 'M001 LOGIN "user@localhost" ***'
    before = [ln.text for ln in lines[:login]]
    assert GREETING in before  # ... and what came before it is untouched
    assert f"probing IMAP option 1: localhost, port {server.port}, no encryption as " \
           "user@localhost" in before
    after = [ln for ln in lines[login + 1:] if ln.direction == "S"]
    assert after[0].text == WITHHELD  # the echo, whole
    for ln in after:  # a server line after the login holds the password only if withheld
        assert ln.text == WITHHELD or password not in ln.text
    for text in [*outputs(report), caplog.text]:
        assert "you said" not in text
        # the one mask: the LOGIN line, redacted at the source (JSON escapes its quotes)
        assert "***" not in re.sub(r'LOGIN \\?"user@localhost\\?" \*\*\*', "", text)
    auth = result.step("auth")
    assert auth is not None
    assert auth.detail.startswith("logged in as user@localhost with LOGIN")  # own words kept


def test_a_dns_failure_reads_whole_with_a_one_letter_password(tmp_path: Path) -> None:
    report = probe_one(993, "imap", "ssl", tmp_path, password="x", host="nonexistent.invalid")
    (result,) = report.results
    assert result.code == "dns_not_found"
    assert "nonexistent.invalid: the name does not exist" in result.detail
    assert "***" not in report.to_markdown()


def test_server_text_in_a_foreign_error_after_login_is_withheld(
        serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    # After LOGIN the server sends half a line quoting the password and hangs up: the
    # wire's PeerClosed carries those bytes, and its text would become the detail.
    def login(line: str) -> bytes:
        return b"TAG NO bad password hunter-22" + HANG_UP

    server = serve(b"* OK ready\r\n", imap_responder("IMAP4rev1", login))
    report = probe_one(server.port, "imap", "none", tmp_path, password="hunter-22",
                       allow_plaintext_login=True)
    (result,) = report.results
    assert result.code == "server_disconnected"
    auth = result.step("auth")
    assert auth is not None
    assert auth.detail == WITHHELD
    assert all("hunter-22" not in text for text in outputs(report))


def test_server_text_before_any_login_is_never_checked(
        serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    # A server cannot echo a password it was never sent: a match is chance (a short or
    # common word), and withholding or masking it would damage the text for nothing.
    def respond(line: str) -> bytes | None:
        return b"M001 NO hunter-22 half a line" + HANG_UP

    server = serve(b"* OK ready\r\n", respond)
    (result,) = probe_one(server.port, "imap", "none", tmp_path, password="hunter-22").results
    assert result.code == "server_disconnected"
    assert "M001 NO hunter-22 half a line" in result.detail  # nothing was sent: no echo


def test_a_bug_quoting_the_password_while_encoding_it_is_withheld(
        serve: Callable[..., ScriptedServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing was sent yet when this fails: the check starts when the password is
    # taken out for the login, not when a line carrying it is recorded.
    def broken(username: str, password: Secret) -> str:
        raise ValueError(f"cannot encode {password.reveal()!r}")

    monkeypatch.setattr(imap_module, "sasl_plain", broken)
    server = serve(b"* OK ready\r\n", imap_responder("IMAP4rev1 AUTH=PLAIN",
                                                     lambda line: b"TAG OK in\r\n"))
    report = probe_one(server.port, "imap", "none", tmp_path, password="hunter-44",
                       allow_plaintext_login=True)
    (result,) = report.results
    auth = result.step("auth")
    assert auth is not None
    assert (auth.status, auth.code, auth.detail) == ("fail", "unknown", WITHHELD)
    assert not result.login_tried
    assert all("hunter-44" not in text for text in outputs(report))
