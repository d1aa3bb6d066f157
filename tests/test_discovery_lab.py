"""DNS and discovery against the lab's real resolver (unbound) and its world."""

from __future__ import annotations

import json
import time

import pytest

from mailhat_nb.cli import main
from mailhat_nb.diagnose.dns import Resolver
from mailhat_nb.discovery import discover
from mailhat_nb.discovery.health import dmarc_policy, spf_authorises
from mailhat_nb.errors import DnsError
from mailhat_nb.lab import LabInfo
from mailhat_nb.lab.world import SHARED_NAME

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def resolver(lab_info: LabInfo) -> Resolver:
    return Resolver(lab_info.dns_server, lifetime=3)


def test_resolver_follows_cname_chains_to_the_shared_server(resolver: Resolver,
                                                            lab_info: LabInfo) -> None:
    found = resolver.addresses("mail.bakery.example")
    assert found.chain == ["bakery.example"]
    assert found.addresses == [lab_info.world["shared_address"]]
    assert resolver.ptr(lab_info.world["shared_address"]) == [SHARED_NAME]
    assert resolver.mx("bakery.example") == [(0, "mail.bakery.example")]
    srv = resolver.srv("_imaps._tcp.tea.example")
    assert [(s.port, s.target) for s in srv] == [(993, SHARED_NAME)]
    assert any(t.startswith("v=DMARC1") for t in resolver.txt("_dmarc.bakery.example"))


@pytest.mark.parametrize(("name", "rdtype", "code"), [
    ("gone.example", "MX", "dns_not_found"),
    ("mail.florist.example", "A", "dns_not_found"),
    ("florist.example", "SRV", "dns_no_record"),
    ("broken.example", "MX", "dns_servfail"),
])
def test_resolver_failures_become_codes(resolver: Resolver, name: str, rdtype: str,
                                        code: str) -> None:
    with pytest.raises(DnsError) as err:
        resolver.query(name, rdtype)
    assert err.value.code == code


def test_a_resolver_that_never_answers_is_dns_timeout(lab_info: LabInfo) -> None:
    silent = Resolver(lab_info.world["silent_resolver"], lifetime=0.5)
    start = time.monotonic()
    with pytest.raises(DnsError) as err:
        silent.addresses("mail.bakery.example")
    assert err.value.code == "dns_timeout"
    assert time.monotonic() - start < 1.5


def test_hostgator_style_domain_names_the_server_with_its_evidence(lab_info: LabInfo) -> None:
    found = discover("info@bakery.example", lab_info.dns_server, lab_info.ca_file, timeout=3)
    best = found.recommended
    assert best is not None
    assert best.host == SHARED_NAME
    assert {"ptr", "banner"} <= best.kinds()
    assert "certificate on port 993 is valid" in best.why
    assert found.candidates[0] is best
    mail = next(c for c in found.candidates if c.host == "mail.bakery.example")
    assert not mail.recommended
    assert "not this name" in mail.why
    assert found.provider is not None
    assert found.provider.id == "hostgator"
    assert found.dns.spf
    assert found.dns.dkim_default is True
    assert dmarc_policy(found.dns.dmarc) == "quarantine"
    assert spf_authorises(Resolver(lab_info.dns_server), "bakery.example",
                          lab_info.world["shared_address"]) is True
    assert spf_authorises(Resolver(lab_info.dns_server), "florist.example",
                          lab_info.world["shared_address"]) is False


@pytest.mark.parametrize(("email", "kind"), [
    ("office@tea.example", "srv"), ("hello@cafe.example", "autoconfig"),
    ("x@florist.example", "ptr"),
])
def test_every_source_leads_to_the_shared_server(lab_info: LabInfo, email: str,
                                                 kind: str) -> None:
    found = discover(email, lab_info.dns_server, lab_info.ca_file, timeout=3)
    assert found.recommended is not None
    assert found.recommended.host == SHARED_NAME
    assert kind in found.recommended.kinds()
    if kind in ("srv", "autoconfig"):
        assert any(s.source == kind and s.host == SHARED_NAME and s.port == 993
                   for s in found.settings)


@pytest.mark.parametrize(("email", "code"), [
    ("d@gone.example", "dns_not_found"), ("e@broken.example", "dns_servfail"),
    ("c@moved.example", "mail_host_elsewhere"), ("x@florist.example", "dns_not_found"),
])
def test_dns_faults_are_named(lab_info: LabInfo, email: str, code: str) -> None:
    found = discover(email, lab_info.dns_server, lab_info.ca_file, timeout=2)
    assert code in [p.code for p in found.problems]


def test_google_mx_reveals_the_provider(lab_info: LabInfo) -> None:
    found = discover("b@bigcorp.example", lab_info.dns_server, lab_info.ca_file, timeout=2)
    assert found.provider is not None
    assert found.provider.id == "google"
    assert found.recommended is not None
    assert found.recommended.host == "imap.gmail.com"


def test_a_hanging_autoconfig_server_does_not_stretch_the_timeout(lab_info: LabInfo) -> None:
    start = time.monotonic()
    found = discover("a@slow.example", lab_info.dns_server, lab_info.ca_file, timeout=1.5)
    took = time.monotonic() - start
    assert took < 1.5 + 0.5, took
    assert found.recommended is not None
    assert found.recommended.host == SHARED_NAME
    assert any("autoconfig" in n for n in found.notes)


def test_discover_json_follows_design(lab_info: LabInfo, capsys: pytest.CaptureFixture[str]) \
        -> None:
    code = main(["discover", "--email", "info@bakery.example", "--dns-server",
                 lab_info.dns_server, "--ca-file", lab_info.ca_file, "--json", "--timeout", "3"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert {"email", "domain", "provider", "candidates", "settings", "problems",
            "dns"} <= set(data)
    assert set(data["provider"]) == {"id", "name", "evidence"}
    for cand in data["candidates"]:
        assert set(cand) == {"host", "recommended", "why", "sources", "addresses"}
        assert all(set(s) == {"kind", "detail"} and s["kind"] in {
            "srv", "autoconfig", "mx", "ptr", "banner", "certificate", "convention"}
            for s in cand["sources"])
    assert data["candidates"][0]["recommended"]
    assert data["candidates"][0]["host"] == SHARED_NAME
    for setting in data["settings"]:
        assert set(setting) == {"protocol", "host", "port", "security", "source"}
    assert set(data["dns"]) == {"mx", "spf", "dmarc", "dkim_default"}
    assert data["dns"]["mx"] == ["mail.bakery.example"]


def test_discover_exit_1_and_bad_dns_server_exit_2(lab_info: LabInfo,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--email", "d@gone.example", "--dns-server",
                 lab_info.dns_server, "--timeout", "2"]) == 1
    assert "dns_not_found" in capsys.readouterr().out
    assert main(["discover", "--email", "a@b.example", "--dns-server", "not-an-ip"]) == 2
