"""The doctor's round trips: a careful client's where the server allows, the long way where not.

A customer sits 30-150 ms from the server, so each wait of a probe costs that
much. Against the lab's Dovecot and Exim (which offer what cPanel's do: the
capabilities in the IMAP greeting, ``SASL-IR``, ``AUTH=PLAIN``) each preset
must wait no more often than a careful client; against servers without them
(a greeting without capabilities, no SASL PLAIN) the doctor must reach the
same diagnosis the longer way. The waits are counted by the latency
benchmark's proxy (``benchmarks/latency_proxy.py``), from the network's view.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from latency_proxy import LatencyProxy, Shape
from test_diagnose_lab import by_id, credential_lines, presets_file, row, run

from mailhat_nb.diagnose import PresetResult
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.scenarios import STANDS_FOR

pytestmark = pytest.mark.lab

#: Per lab service, the waits of each preset on it (RFC-careful, see mailhat_nb/diagnose/imap.py):
#: implicit TLS: connect, the handshake, the greeting (TLS 1.3 sends it after the
#: client's Finished), then IMAP: the login (SASL-IR), the mailbox step (one write);
#: SMTP: EHLO, AUTH PLAIN with its initial response; POP3: CAPA, AUTH PLAIN, STAT.
#: STARTTLS adds the command and asks the capabilities again inside TLS. Unencrypted
#: presets send no password. LOGOUT and QUIT are never waited for.
CAREFUL = {
    "imaps": [5], "imap": [2, 7], "submissions": [5], "submission": [7],
    "smtp": [3, 7], "smtp_alt": [3, 7], "pop3s": [6], "pop3": [4],
}
#: What the unencrypted presets wait for, named by the proxy (it reads clear text).
CLEAR_WAITS = {
    "imap": ["TCP connect", "greeting"],
    "smtp": ["TCP connect", "greeting", "EHLO"],
    "pop3": ["TCP connect", "greeting", "CAPA", "USER"],
}


def proxied(info: LabInfo, ports: dict[str, int], directory: Path) -> Path:
    """The lab presets file with each port replaced by the proxy's port in front of it."""
    service = {port: name for name, port in info.ports.items()}
    text = re.sub(r"(?m)^port = (\d+)$", lambda m: f"port = {ports[service[int(m[1])]]}",
                  Path(info.presets).read_text())
    path = directory / "presets-proxied.toml"
    path.write_text(text)
    return path


def test_each_preset_waits_no_more_than_a_careful_client(lab: Lab, lab_info: LabInfo,
                                                         tmp_path: Path) -> None:
    upstreams = {name: ("127.0.0.1", lab_info.ports[name]) for name in STANDS_FOR}
    # a delay well above the lab's own answer times, so each wait is one round trip
    with LatencyProxy(upstreams, Shape(rtt=0.05)) as proxy:
        report = run(lab, lab_info, proxied(lab_info, proxy.ports, tmp_path), timeout=5)
        traffic = proxy.take()
    assert report.verdict.code == "ok", report.to_text()
    assert by_id(report)["imap-starttls-143"] == "ok"
    waits: dict[str, list[int]] = {}
    for conn in traffic.connections:
        waits.setdefault(conn.listener, []).append(conn.round_trips)
    shown = {c.listener + f" {c.round_trips}": " | ".join(c.waits) for c in traffic.connections}
    assert {k: sorted(v) for k, v in waits.items()} == CAREFUL, shown
    for conn in traffic.connections:
        if conn.listener in CLEAR_WAITS and conn.round_trips == min(CAREFUL[conn.listener]):
            assert conn.waits == CLEAR_WAITS[conn.listener], shown


def client_lines(result: PresetResult) -> list[str]:
    return [ln.text for ln in result.transcript if ln.direction == "C"]


def test_the_careful_path_on_the_wire(lab: Lab, lab_info: LabInfo) -> None:
    report = run(lab, lab_info, lab_info.presets)
    assert report.verdict.code == "ok"
    # IMAP: the greeting's capabilities, the login with SASL-IR, then one write
    assert client_lines(row(report, "hostgator-imap-ssl")) == [
        "M001 AUTHENTICATE PLAIN ***", 'M002 LIST "" "*"', "M003 NAMESPACE",
        "M004 EXAMINE INBOX", "M005 LOGOUT"]
    # after STARTTLS the capabilities are asked again (RFC 3501 6.2.1)
    assert client_lines(row(report, "imap-starttls-143")) == [
        "M001 STARTTLS", "M002 CAPABILITY", "M003 AUTHENTICATE PLAIN ***", 'M004 LIST "" "*"',
        "M005 NAMESPACE", "M006 EXAMINE INBOX", "M007 LOGOUT"]
    starttls = row(report, "imap-starttls-143")
    caps, caps_tls = starttls.step("capabilities"), starttls.step("capabilities_tls")
    assert caps is not None
    assert caps.detail.endswith("(listed in the greeting)")
    assert caps_tls is not None
    assert "greeting" not in caps_tls.detail
    assert "AUTH=PLAIN" in caps_tls.detail.split()
    assert client_lines(row(report, "hostgator-smtp-ssl")) == [
        "EHLO [127.0.0.1]", "AUTH PLAIN ***", "QUIT"]
    assert client_lines(row(report, "pop3-ssl-995")) == ["CAPA", "AUTH PLAIN ***", "STAT",
                                                         "QUIT"]
    # LOGOUT and QUIT are sent, their answers not waited for (nor recorded)
    for result in report.results:
        lines = [ln.text for ln in result.transcript]
        assert not any(re.match(r"(M\d+ OK Logout|\* BYE|221 )", text) for text in lines)


# ------------------------------------------------------------------ a greeting without them


#: A greeting without its ``[CAPABILITY ...]`` code, as Exchange and many older servers greet.
NO_CAPABILITIES = (re.compile(rb"\[CAPABILITY [^]]*\] ?"), b"")
#: A greeting's capabilities without ``SASL-IR`` (RFC 4959).
NO_SASL_IR = (re.compile(rb" SASL-IR\b"), b"")


@contextlib.contextmanager
def greeting_rewritten(upstream: tuple[str, int],
                       rewrite: tuple[re.Pattern[bytes], bytes]) -> Iterator[int]:
    """A relay to ``upstream`` that rewrites the greeting line: ``pattern.sub(replacement)``.

    Dovecot always lists its capabilities in the greeting, SASL-IR among them;
    this is Dovecot as a server that does not. Everything after the greeting
    passes untouched (STARTTLS's TLS included). Yields the port to connect to.
    """
    pattern, replacement = rewrite
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def relay(client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            server = socket.create_connection(upstream)
            held.append(server)
            greeting = b""
            while b"\r\n" not in greeting and (data := server.recv(4096)):
                greeting += data
            first, _, rest = greeting.partition(b"\r\n")
            client.sendall(pattern.sub(replacement, first) + b"\r\n" + rest)
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=pump, args=(src, dst), daemon=True).start()

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            held.append(client)
            relay(client)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for sock in held:
            sock.close()


@pytest.mark.parametrize("plain", [False, True])
def test_a_greeting_without_capabilities_gets_them_asked_for(
        plain: bool, lab: Lab, lab_info: LabInfo, tmp_path: Path) -> None:
    entries = [("none", "imap", lab_info.ports["imap"], "none"),
               ("starttls", "imap", lab_info.ports["imap"], "starttls")]
    direct = run(lab, lab_info, presets_file(tmp_path, entries), allow_plaintext_login=plain)
    with greeting_rewritten(("127.0.0.1", lab_info.ports["imap"]), NO_CAPABILITIES) as port:
        relayed = run(lab, lab_info,
                      presets_file(tmp_path, [(i, p, port, s) for i, p, _, s in entries]),
                      allow_plaintext_login=plain)
    # the same diagnosis, the longer way: every step the same but the capabilities' source
    assert by_id(relayed) == by_id(direct) == {
        "none": "plaintext_password_exposed", "starttls": "ok"}
    for pid in ("none", "starttls"):
        got, want = row(relayed, pid), row(direct, pid)
        assert [(s.name, s.status, s.code) for s in got.steps] == \
            [(s.name, s.status, s.code) for s in want.steps]
        assert got.login_tried == want.login_tried
        greeting = got.step("greeting")
        assert greeting is not None
        assert "CAPABILITY" not in greeting.detail  # the relay did take them out
        caps = got.step("capabilities")
        assert caps is not None
        assert "STARTTLS" in caps.detail.split()
        assert "greeting" not in caps.detail
    assert client_lines(row(relayed, "starttls"))[:3] == [
        "M001 CAPABILITY", "M002 STARTTLS", "M003 CAPABILITY"]
    none = client_lines(row(relayed, "none"))
    assert none[0] == "M001 CAPABILITY"
    assert none[1] == ("M002 AUTHENTICATE PLAIN ***" if plain else "M002 LOGOUT")


def test_without_sasl_ir_the_password_waits_for_the_go_ahead(lab: Lab, lab_info: LabInfo,
                                                             tmp_path: Path) -> None:
    # Clear text on loopback, where Dovecot takes it: the relay can then read the
    # greeting (inside STARTTLS's TLS it could not).
    with greeting_rewritten(("127.0.0.1", lab_info.ports["imap"]), NO_SASL_IR) as port:
        report = run(lab, lab_info, presets_file(tmp_path, [("none", "imap", port, "none")]),
                     allow_plaintext_login=True)
    result = row(report, "none")
    assert (result.code, result.login_tried, result.works) == (
        "plaintext_password_exposed", True, True), result.detail
    greeting = result.step("greeting")
    assert greeting is not None
    assert "SASL-IR" not in greeting.detail.split()
    assert "AUTH=PLAIN" in greeting.detail
    # the payload only after the server's "+": masked, on its own line
    lines = [(ln.direction, ln.text) for ln in result.transcript if ln.direction in "CS"]
    at = lines.index(("C", "M001 AUTHENTICATE PLAIN"))
    assert lines[at + 1][0] == "S"
    assert lines[at + 1][1].startswith("+")
    assert lines[at + 2] == ("C", "***")
    assert [text for d, text in lines[at + 3:] if d == "C"] == [
        'M002 LIST "" "*"', "M003 NAMESPACE", "M004 EXAMINE INBOX", "M005 LOGOUT"]


# ------------------------------------------------------------------ no SASL PLAIN


def test_without_sasl_plain_every_login_takes_the_long_way_to_the_same_verdict(
        lab: Lab, lab_password: str, scenario: Callable[[str], LabInfo]) -> None:
    normal = lab.info()
    before = run(lab, normal, normal.presets)
    info = scenario("no-auth-plain")
    report = run(lab, info, info.presets)
    assert by_id(report) == by_id(before), report.to_text()
    assert report.verdict.code == before.verdict.code == "ok"
    # Dovecot lists LOGINDISABLED where it has no PLAIN (its LOGIN command is PLAIN
    # underneath), and offers SASL LOGIN: the username and password, each asked for
    assert credential_lines(row(report, "hostgator-imap-ssl")) == ["M001 AUTHENTICATE LOGIN"]
    imaps = client_lines(row(report, "hostgator-imap-ssl"))
    assert imaps[:3] == ["M001 AUTHENTICATE LOGIN", "***", "***"]
    assert imaps[3:] == ['M002 LIST "" "*"', "M003 NAMESPACE", "M004 EXAMINE INBOX",
                         "M005 LOGOUT"]
    # POP3: Dovecot's CAPA lists USER but its PASS is PLAIN underneath: SASL LOGIN first
    assert client_lines(row(report, "pop3-ssl-995"))[:4] == ["CAPA", "AUTH LOGIN", "***", "***"]
    assert client_lines(row(report, "hostgator-smtp-ssl"))[:4] == [
        "EHLO [127.0.0.1]", "AUTH LOGIN", "***", "***"]
    for pid in ("hostgator-imap-ssl", "imap-starttls-143", "pop3-ssl-995",
                "hostgator-smtp-ssl", "smtp-starttls-587"):
        auth = row(report, pid).step("auth")
        assert auth is not None
        assert auth.detail.endswith(("AUTHENTICATE LOGIN", "AUTH LOGIN")), (pid, auth.detail)
    # unencrypted: judged from the offer, nothing sent; on request, a real login
    offer = row(report, "hostgator-imap-none").step("auth")
    assert offer is not None
    assert "it offers AUTHENTICATE LOGIN" in offer.detail
    assert not row(report, "hostgator-imap-none").login_tried
    allowed = run(lab, info, info.presets, allow_plaintext_login=True)
    pop3 = row(allowed, "pop3-none-110")
    assert (pop3.code, pop3.login_tried, pop3.works) == (
        "plaintext_password_exposed", True, True), pop3.detail
    # IMAP's LOGINDISABLED in clear text is taken at its word: no AUTHENTICATE LOGIN there
    imap = row(allowed, "hostgator-imap-none")
    assert (imap.code, imap.login_tried) == ("plaintext_auth_disabled", False), imap.detail
    assert allowed.verdict.code == "ok"
    texts = [str(line) for r in [*report.results, *allowed.results] for line in r.transcript]
    assert not any(lab_password in text for text in texts)
