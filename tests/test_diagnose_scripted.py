"""Codes the lab cannot produce, against tiny scripted servers on 127.0.0.1.

Dovecot always offers STARTTLS and AUTHENTICATE PLAIN and never fails an
EXAMINE, so the doctor's handling of older or broken servers is exercised by
a few lines of socket server each: real TCP, real bytes, loopback only.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailhat_nb.diagnose import Account, Report, diagnose

#: Given a client line, the reply bytes; None hangs up.
Responder = Callable[[str], bytes | None]


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
        with conn, conn.makefile("rb") as reader:
            conn.sendall(self.greeting)
            for raw in reader:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.received.append(line)
                reply = self.respond(line)
                if reply is None:
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
              **kwargs: object) -> Report:
    path = tmp_path / "p.toml"
    path.write_text(f'[[preset]]\nid = "x"\nlabel = "x"\nprotocol = "{protocol}"\n'
                    f'host = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n')
    account = Account.from_input("user@example.com", password)
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
    report = probe_one(server.port, "imap", "none", tmp_path)
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
    report = probe_one(server.port, "imap", "none", tmp_path, password="plain-pw-7")
    (result,) = report.results
    assert result.code == "plaintext_password_exposed"
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
    (result,) = probe_one(server.port, "imap", "none", tmp_path, password="pw-ascii").results
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
                       send_test=True)
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
