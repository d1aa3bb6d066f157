"""``mailhat sync --dns-server``: connections go where that DNS says; TLS checks the name."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhat_nb.cli import main
from mailhat_nb.errors import MailServerError
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.world import SHARED_NAME
from mailhat_nb.secrets import Secret
from mailhat_nb.sync.imap import ImapSettings, ImapSource

pytestmark = pytest.mark.lab


def settings(lab_info: LabInfo, host: str, **extra: object) -> ImapSettings:
    return ImapSettings("info@bakery.example", host, ca_file=lab_info.ca_file,
                        dns_server=lab_info.dns_server, connect_timeout=3,
                        **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_the_shared_server_is_reached_through_the_labs_dns(lab: Lab, lab_info: LabInfo,
                                                           security: str) -> None:
    session = ImapSource(settings(lab_info, SHARED_NAME, security=security),
                          Secret(lab.password("info")))
    try:
        session.open()
        assert session.folder_states()
    finally:
        session.close()


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_the_certificate_is_checked_on_the_name_not_the_address(
        lab: Lab, lab_info: LabInfo, security: str) -> None:
    # mail.bakery.example resolves to the same server, whose certificate does not name it.
    session = ImapSource(settings(lab_info, "mail.bakery.example", security=security),
                          Secret(lab.password("info")))
    with pytest.raises(MailServerError) as info:
        session.open()
    session.close()
    # D8: a certificate for another name is no untrusted issuer: no --ca-file, but the
    # name it covers, since that name leads to the same server through the same DNS.
    said = str(info.value)
    assert (f"the server's certificate is valid for {SHARED_NAME}, *.hostgator.com, not for "
            f"mail.bakery.example; {SHARED_NAME} leads to the same server: use it as the "
            f"server name (--server {SHARED_NAME})") in said
    assert "--ca-file" not in said
    assert lab.password("info") not in said


def test_a_covered_name_that_leads_elsewhere_is_not_recommended(
        lab: Lab, lab_info: LabInfo) -> None:
    # The shared server by its address, its names looked up by the system's resolver,
    # which does not lead gator4321.hostgator.com to this lab (offline it does not
    # resolve at all): the name is not recommended, and the message says why.
    address = lab_info.world["shared_address"]
    session = ImapSource(ImapSettings("info@bakery.example", address, ca_file=lab_info.ca_file,
                                      connect_timeout=3), Secret(lab.password("info")))
    with pytest.raises(MailServerError) as info:
        session.open()
    session.close()
    said = str(info.value)
    assert f"the server's certificate is valid for {SHARED_NAME}, *.hostgator.com, not for " \
           f"{address}; no name it covers leads to this server ({SHARED_NAME} " in said
    assert "--server" not in said
    assert "--ca-file" not in said


def test_a_name_the_dns_does_not_know_is_said(lab: Lab, lab_info: LabInfo) -> None:
    session = ImapSource(settings(lab_info, "mail.florist.example"), Secret("x"))
    with pytest.raises(MailServerError, match="dns_not_found"):
        session.open()


def test_sync_command_takes_dns_server(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILHAT_TEST_PW", lab.password("info"))
    code = main(["sync", "--email", "info@bakery.example", "--server", SHARED_NAME,
                 "--dns-server", lab_info.dns_server, "--ca-file", lab_info.ca_file,
                 "--password-env", "MAILHAT_TEST_PW", "--store", str(tmp_path / "store"),
                 "--json"])
    assert code == 0
    assert main(["sync", "--email", "a@b.example", "--server", SHARED_NAME, "--dns-server",
                 "nonsense", "--store", str(tmp_path / "s2")]) == 2
