"""Pure pieces of discovery: XML parsing (and its attacks), ranking, providers, options."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhat_nb.diagnose.dns import Nameserver, parse_dns_server
from mailhat_nb.discovery.autoconfig import NotAutoconfig, parse, urls
from mailhat_nb.discovery.model import Candidate, Source
from mailhat_nb.discovery.probes import banner_name
from mailhat_nb.discovery.providers import detect, providers
from mailhat_nb.discovery.rank import rank
from mailhat_nb.errors import UsageError
from mailhat_nb.lab.world import autoconfig_xml

GOOD_CERT = {"names": ["gator1.hostgator.com"], "trusted": True, "expired": False, "port": 993}


def test_autoconfig_is_read_into_settings() -> None:
    settings = parse(autoconfig_xml("cafe.example"), "hello@cafe.example")
    assert [(s.protocol, s.port, s.security) for s in settings] == [
        ("imap", 993, "ssl"), ("pop3", 995, "ssl"), ("smtp", 465, "ssl")]


def test_autoconfig_placeholders_are_filled() -> None:
    xml = ("<clientConfig version='1.1'><emailProvider id='x'><incomingServer type='imap'>"
           "<hostname>imap.%EMAILDOMAIN%</hostname><port>143</port>"
           "<socketType>STARTTLS</socketType></incomingServer></emailProvider></clientConfig>")
    (setting,) = parse(xml, "a@shop.example")
    assert (setting.host, setting.security) == ("imap.shop.example", "starttls")


@pytest.mark.parametrize("xml", [
    # Billion laughs: entities expanding into gigabytes.
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    "<clientConfig><x>&b;</x></clientConfig>",
    # External entity: reading a local file into the document.
    '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<clientConfig><emailProvider><incomingServer type='imap'><hostname>&x;</hostname>"
    "<port>993</port><socketType>SSL</socketType></incomingServer></emailProvider>"
    "</clientConfig>",
    "<clientConfig><unclosed></clientConfig>",
    "<html><body>not found</body></html>",
    "<clientConfig version='1.1'></clientConfig>",
])
def test_hostile_or_useless_autoconfig_is_refused(xml: str) -> None:
    with pytest.raises(NotAutoconfig):
        parse(xml, "a@b.example")


def test_autoconfig_urls_follow_thunderbirds_order() -> None:
    assert [f"{s}://{h}" for s, h, _ in urls("a@b.example", "b.example")] == [
        "https://autoconfig.b.example", "http://autoconfig.b.example",
        "https://b.example", "http://b.example"]


@pytest.mark.parametrize(("mx", "names", "expected"), [
    (["aspmx.l.google.com"], {}, "google"),
    (["example-com.mail.protection.outlook.com"], {}, "microsoft"),
    (["mx.zoho.eu"], {}, "zoho"),
    (["mta5.am0.yahoodns.net"], {}, "yahoo"),
    (["mx01.mail.icloud.com"], {}, "icloud"),
    (["in1-smtp.messagingengine.com"], {}, "fastmail"),
    (["mailstore1.secureserver.net"], {}, "godaddy"),
    (["mail.shop.example"], {"gator1234.hostgator.com": "ptr"}, "hostgator"),
    (["shop.example"], {"server1.smallhost.example": "banner"}, "cpanel"),
    (["mx.elsewhere.example"], {}, None),
])
def test_provider_detection(mx: list[str], names: dict[str, str], expected: str | None) -> None:
    found = detect("shop.example", mx, names)
    assert (found.id if found else None) == expected


def test_provider_suffixes_match_whole_labels() -> None:
    assert detect("a.example", ["mx.notgoogle.com"], {}) is None
    assert {p.id for p in providers()} >= {"google", "microsoft", "zoho", "yahoo", "icloud",
                                            "fastmail", "godaddy", "hostgator", "cpanel"}


def _candidates() -> list[Candidate]:
    server = Candidate("gator1.hostgator.com", [Source("ptr", "reverse DNS"),
                                                Source("banner", "banner")],
                       ["192.0.2.1"], True, GOOD_CERT)
    mail = Candidate("mail.shop.example", [Source("mx", "MX"), Source("convention", "c")],
                     ["192.0.2.1"], True, GOOD_CERT)
    missing = Candidate("mail.other.example", [Source("convention", "c")], [], False)
    published = Candidate("imap.shop.example", [Source("srv", "SRV")], ["192.0.2.9"], True)
    return [server, mail, missing, published]


@given(st.permutations(range(4)))
def test_ranking_does_not_depend_on_arrival_order(order: list[int]) -> None:
    base = _candidates()
    ranked = rank([base[i] for i in order])
    assert [c.host for c in ranked] == [
        "gator1.hostgator.com", "imap.shop.example", "mail.shop.example", "mail.other.example"]
    assert [c.recommended for c in ranked] == [True, True, False, False]
    assert "not this name" in ranked[2].why
    assert "does not resolve" in ranked[3].why


def test_an_untrusted_certificate_is_never_recommended() -> None:
    cand = Candidate("gator1.hostgator.com", [Source("ptr", "p")], ["192.0.2.1"], True,
                     dict(GOOD_CERT, trusted=False))
    (ranked,) = rank([cand])
    assert not ranked.recommended
    assert "trusted authority" in ranked.why


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.9.53", Nameserver("127.0.9.53")),
    ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
    ("[::1]:53", Nameserver("::1", 53)),
    ("::1", Nameserver("::1")),
])
def test_dns_server_option(text: str, expected: Nameserver) -> None:
    assert parse_dns_server(text) == expected


@pytest.mark.parametrize("text", ["ns.example", "127.0.0.1:0", "127.0.0.1:x", ""])
def test_bad_dns_server_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_dns_server(text)


def test_banner_names() -> None:
    assert banner_name("220-gator9.hostgator.com ESMTP Exim 4.96 #2") == "gator9.hostgator.com"
    assert banner_name("220 mx ESMTP") is None
    assert banner_name("554 go away") is None


@pytest.mark.parametrize("module", ["mailhat_nb.diagnose.dns", "mailhat_nb.discovery.providers",
                                    "mailhat_nb.discovery.probes", "mailhat_nb.discovery.health"])
def test_docstring_examples_hold(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0


def test_discovery_runs_only_when_a_server_name_or_provider_is_needed() -> None:
    from mailhat_nb.diagnose import Account, load_presets
    from mailhat_nb.diagnose.doctor import wants_discovery

    customer = Account.from_input("a@shop.example", "pw")
    assert wants_discovery(None, customer)
    assert wants_discovery("auto", customer)
    assert wants_discovery("hostgator", customer)
    assert not wants_discovery("gmail", customer)  # literal host names only
    assert not wants_discovery(load_presets("gmail"), customer)
    assert not wants_discovery(None, Account.from_input("a@shop.example", "pw", server="x.example"))
    assert not wants_discovery(None, Account.from_input("alice@localhost", "pw"))
