"""A sync whose first connection fails says so at once, and says what to change.

Against the lab's real misbehaving ports (``silent``: TCP accepted, never a
byte; ``blackhole``: the handshake never completes; ``closed``: refused) and
its real services reached with the wrong security (TLS on the plain port,
plain text on the TLS port, IMAP on the POP3 and SMTP ports). Each must fail
within the connect timeout, without a single retry, with a message naming
the step that failed and pointing to ``mailhat diagnose``; the CLI exits 1
with that one message and no traceback. A connection that *had* worked and
then dropped is still retried: ``test_sync_lab.py`` (dropped connection,
server crash and restart) pins that side.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from relay import relay

from mailhat_nb import cli
from mailhat_nb.diagnose.certificate import system_trust
from mailhat_nb.errors import AuthFailed, ConnectFailed, ConnectionLost, MailServerError
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.secrets import Secret
from mailhat_nb.sync.engine import sync_account
from mailhat_nb.sync.imap import ImapSettings, ImapSource

#: Short, so the tests are quick; the default (10 s) is pinned in test_sync_units.
WAIT = 1.5

#: (lab port, security, words the message must hold, retryable once connected?)
CASES = [
    ("blackhole", "ssl", "no answer within 1.5 s", True),
    ("silent", "ssl", "did not answer the TLS handshake within 1.5 s", True),
    ("silent", "none", "sent no IMAP greeting within 1.5 s", True),
    ("closed", "ssl", "connection refused", True),
    ("imaps", "none", "use --security ssl", True),       # plain text on the TLS port
    ("imaps", "starttls", "use --security ssl", True),
    ("imap", "ssl", "the port answered in plain text", False),  # TLS on the plain port
    ("pop3", "none", "greeting is not IMAP", False),
    ("smtp", "none", "greeting is not IMAP", False),
]


def _host(info: LabInfo, port_name: str) -> str:
    # The sidecar's misbehaving ports listen on 127.0.0.1 only.
    return "127.0.0.1" if port_name in ("silent", "blackhole", "closed") else info.server


@pytest.mark.lab
@pytest.mark.parametrize(("port_name", "security", "words", "retryable"), CASES,
                         ids=[f"{p}-{s}" for p, s, _, _ in CASES])
def test_first_connect_failure_is_reported_at_once(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, port_name: str, security: str,
        words: str, retryable: bool) -> None:
    settings = ImapSettings("alice@localhost", _host(lab_info, port_name),
                            port=lab_info.ports[port_name], security=security,  # type: ignore[arg-type]
                            ca_file=lab_info.ca_file, connect_timeout=WAIT)
    progress: list[str] = []
    start = time.monotonic()
    with pytest.raises(ConnectFailed) as info:
        sync_account(settings, Secret(lab.password("alice")), tmp_path,
                     progress=lambda p: progress.append(p.phase), backoff=5.0)
    elapsed = time.monotonic() - start
    # One attempt: a retry would cost at least the 5 s backoff on top.
    assert elapsed < 2 * WAIT + 1.0, elapsed
    assert "retry" not in progress
    message = str(info.value)
    assert words in message
    assert f":{lab_info.ports[port_name]} ({security})" in message  # where, and how
    assert "mailhat diagnose --email alice@localhost" in message
    assert "b'" not in message
    assert lab.password("alice") not in message
    # The cause keeps its kind: what a reconnect mid-sync would retry, or not.
    assert isinstance(info.value.__cause__, ConnectionLost) is retryable
    assert isinstance(info.value.__cause__, MailServerError)


@pytest.mark.lab
def test_wrong_password_on_the_first_connect_stays_auth_failed(
        lab_info: LabInfo, tmp_path: Path) -> None:
    settings = ImapSettings("alice@localhost", lab_info.server, port=lab_info.ports["imaps"],
                            ca_file=lab_info.ca_file)
    with pytest.raises(AuthFailed) as info:
        sync_account(settings, Secret("wrong"), tmp_path)
    assert "[AUTHENTICATIONFAILED]" in str(info.value)
    assert "b'" not in str(info.value)


def _cli(password: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``mailhat`` in a fresh interpreter, the password in ``$MH_PW``."""
    return subprocess.run([sys.executable, "-m", "mailhat_nb.cli", *args],
                          env={**os.environ, "MH_PW": password}, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.lab
@pytest.mark.parametrize(("port_name", "security", "words"), [
    ("blackhole", "ssl", "never accepted"),
    ("closed", "ssl", "connection refused"),
    ("imaps", "none", "use --security ssl"),
    ("imap", "ssl", "answered in plain text"),
])
def test_cli_fails_fast_with_one_clean_line(lab_info: LabInfo, tmp_path: Path, port_name: str,
                                            security: str, words: str) -> None:
    start = time.monotonic()
    proc = _cli("not-the-password", "sync", "--email", "alice@localhost",
                "--server", _host(lab_info, port_name),
                "--port", str(lab_info.ports[port_name]), "--security", security,
                "--ca-file", lab_info.ca_file, "--password-env", "MH_PW",
                "--store", str(tmp_path / "store"), "--timeout", str(WAIT))
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert elapsed < WAIT + 5.0, elapsed  # interpreter start-up included
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mailhat sync: connecting to ")
    assert words in lines[0]
    assert "mailhat diagnose" in lines[0]
    assert proc.stdout == ""


@pytest.mark.lab
def test_cli_takes_a_pasted_url_as_the_server(lab: Lab, lab_info: LabInfo,
                                              tmp_path: Path) -> None:
    # As diagnose does: the host from the URL; the port in it is used, said on stderr.
    url = f"imaps://{lab_info.server.upper()}:{lab_info.ports['imaps']}/INBOX "
    proc = _cli(lab.password("alice"), "sync", "--email", "alice@localhost",
                "--server", url, "--ca-file", lab_info.ca_file, "--password-env", "MH_PW",
                "--folders", "INBOX", "--store", str(tmp_path / "store"))
    assert proc.returncode == 0, proc.stderr
    assert f"took the host name {lab_info.server}" in proc.stderr
    assert f"using the port {lab_info.ports['imaps']}" in proc.stderr
    assert "INBOX" in proc.stdout


@pytest.mark.lab
def test_cli_sends_no_password_where_the_server_refuses_it(
        lab: Lab, tmp_path: Path, scenario: Callable[[str], LabInfo]) -> None:
    # The plaintext-disabled scenario: on 127.0.0.2 the plain port lists
    # LOGINDISABLED (RFC 3501 6.2.3: the client must not send LOGIN). The
    # relay records every byte the sync sends.
    info = scenario("plaintext-disabled")
    password = lab.password("alice")
    with relay(info.server, info.ports["imap"]) as wire:
        proc = _cli(password, "sync", "--email", "alice@localhost", "--server", "127.0.0.1",
                    "--port", str(wire.port), "--security", "none", "--password-env", "MH_PW",
                    "--store", str(tmp_path / "store"))
        sent = wire.sent()
        greeting = wire.connections[0][0][1]
    assert b"LOGINDISABLED" in greeting  # the scenario holds
    assert proc.returncode == 1, proc.stderr
    assert "this server refuses passwords without encryption: use ssl or starttls" \
        in proc.stderr
    assert "rejected the login" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert password.encode() not in sent
    assert base64.b64encode(password.encode()) not in sent
    assert not re.search(rb"(?im)^\S+ (LOGIN|AUTHENTICATE)\b", sent), sent
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.parquet"))


@pytest.mark.lab
def test_the_system_trust_verifies_from_the_hashed_directory(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The lab's CA in a hashed directory standing for the system's: a session
    # with no --ca-file verifies the server through it, and parses nothing first.
    hashed = tmp_path / "certs"
    hashed.mkdir()
    (hashed / "lab-ca.pem").write_bytes(Path(lab_info.ca_file).read_bytes())
    subprocess.run(["openssl", "rehash", str(hashed)], check=True)
    real = ssl.get_default_verify_paths()

    def paths(cafile: str | None) -> ssl.DefaultVerifyPaths:
        return ssl.DefaultVerifyPaths(cafile, str(hashed), real.openssl_cafile_env,
                                      real.openssl_cafile, real.openssl_capath_env,
                                      str(hashed))

    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths(None))
    assert system_trust().cert_store_stats()["x509_ca"] == 0
    settings = ImapSettings("alice@localhost", "localhost", port=lab_info.ports["imaps"])
    with ImapSource(settings, Secret(lab.password("alice"))) as session:
        assert "IMAP4REV1" in session.capabilities.raw
    # A bundle of the user's own (SSL_CERT_FILE elsewhere): loaded the default way,
    # which reads it: here one without the lab's CA, so the server is not trusted.
    other = tmp_path / "bundle.pem"
    other.write_text("")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths(str(other)))
    with pytest.raises(ConnectFailed, match=r"certificate is not trusted .*pass the CA with "
                                            r"--ca-file if it is a private one"):
        sync_account(settings, Secret(lab.password("alice")), tmp_path / "store")


@pytest.mark.lab
@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_an_expired_certificate_is_the_hosts_to_renew_not_a_ca_to_add(
        lab: Lab, scenario: Callable[[str], LabInfo], security: str) -> None:
    # D8: --ca-file is the remedy of an untrusted issuer only; this one is trusted.
    info = scenario("expired-cert")
    port = info.ports["imaps" if security == "ssl" else "imap"]
    settings = ImapSettings("alice@localhost", "localhost", port=port, security=security,
                            ca_file=info.ca_file, connect_timeout=WAIT)  # type: ignore[arg-type]
    with pytest.raises(MailServerError) as caught:
        ImapSource(settings, Secret(lab.password("alice"))).open()
    said = str(caught.value)
    assert "the server's certificate has expired or is not valid yet" in said
    assert "the host must renew it" in said
    assert "--ca-file" not in said


# --------------------------------------------------------------------------- no lab


def test_a_name_that_does_not_resolve_is_reported_at_once(tmp_path: Path) -> None:
    settings = ImapSettings("a@example.com", "nosuch.invalid")  # RFC 2606: never resolves
    with pytest.raises(ConnectFailed, match=r"nosuch\.invalid does not resolve") as info:
        sync_account(settings, Secret("pw"), tmp_path, backoff=5.0)
    assert "mailhat diagnose --email a@example.com --server nosuch.invalid" in str(info.value)
    assert not isinstance(info.value.__cause__, ConnectionLost)  # not even mid-sync




@pytest.mark.parametrize(("server", "extra", "words"), [
    ("alice@example.com", [], "looks like an email address"),
    ("mail example com", [], "contains spaces"),
    ("mail.example.com:993", ["--port", "143"], "names port 993 but --port says 143"),
    ("mail.example.com:imaps", [], "'imaps' after ':' is not a port number"),
    ("mail.example.com", ["--timeout", "0"], "--timeout must be more than 0 and at most 300"),
    ("mail.example.com", ["--username", "a@example.com\r\nQUIT"], "contains a line break"),
])
def test_bad_server_input_is_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, server: str,
                                   extra: list[str], words: str) -> None:
    monkeypatch.setenv("MH_PW", "pw")
    code = cli.main(["sync", "--email", "a@example.com", "--server", server, *extra,
                     "--password-env", "MH_PW", "--store", str(tmp_path / "s")])
    assert code == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything was done


def test_store_that_is_a_file_is_usage_for_every_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MH_PW", "pw")
    store = tmp_path / "store"
    store.write_text("not a store")
    mbox = tmp_path / "x.mbox"
    mbox.write_text("From a@b Mon Jan 21 10:00:00 2002\nFrom: a@b.c\nSubject: x\n\nhi\n")
    for argv in (
        ["sync", "--email", "a@example.com", "--server", "mail.example.com",
         "--password-env", "MH_PW", "--store", str(store)],
        ["import", "--mbox", str(mbox), "--store", str(store)],
        ["contacts", "--store", str(store)],
    ):
        assert cli.main(argv) == 2, argv
        assert "is a file, not a store directory" in capsys.readouterr().err, argv
    assert store.read_text() == "not a store"


@pytest.mark.parametrize("store", ["", "bad\udcffstore"])
def test_an_empty_or_undecodable_store_is_usage(tmp_path: Path, store: str,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # "" would make the current directory the store.
    monkeypatch.setenv("MH_PW", "pw")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["sync", "--email", "a@example.com", "--server", "mail.example.com",
                     "--password-env", "MH_PW", "--store", store])
    assert code == 2
    assert "--store" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
