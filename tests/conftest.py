"""Shared fixtures: one real lab per test session.

The lab (private Dovecot + Exim on loopback) starts once, in its own short
directory, and is stopped and deleted at the end. Tests that switch a fault
scenario use :func:`scenario`, which always switches back to ``normal``.

Set ``MAILHAT_TEST_LAB_DIR`` to reuse an already running lab while developing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailhat_nb.diagnose import PresetResult, Verdict
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.corpus import corpus_root

#: A row remedy's generic advice to switch to a kind of setting ("Use SSL/TLS ...").
SWITCH_ADVICE = re.compile(r"(?i)\buse (the )?(ssl/tls|starttls|an? (encrypted|ssl))")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The session's running lab."""
    reuse = os.environ.get("MAILHAT_TEST_LAB_DIR")
    if reuse:
        running = Lab(reuse)
        running.up()
        yield running
        return
    # Short and traversable: Unix socket paths are limited to 108 bytes, and
    # the mail user must be able to walk down to the Maildirs.
    root = Path(tempfile.mkdtemp(prefix="mhl-", dir="/tmp"))
    root.chmod(0o755)
    started = Lab(root)
    try:
        started.up()
        yield started
    finally:
        started.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def lab_info(lab: Lab) -> LabInfo:
    """``lab.json`` of the session's lab."""
    return lab.info()


@pytest.fixture(scope="session")
def lab_password(lab: Lab) -> str:
    """alice's password (random per lab)."""
    return lab.password("alice")


@pytest.fixture
def scenario(lab: Lab) -> Iterator[Callable[[str], LabInfo]]:
    """Switch the lab to a scenario for one test; back to ``normal`` after it."""
    used = False

    def switch(name: str) -> LabInfo:
        nonlocal used
        used = True
        return lab.set_scenario(name)

    try:
        yield switch
    finally:
        if used:
            with contextlib.suppress(Exception):
                lab.set_scenario("normal")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The corpus of real email (four Enron mailboxes, quirks): tests/data, unpacked."""
    root = corpus_root()
    if not (root / "quirks").is_dir():
        pytest.fail(f"the test corpus is missing at {root} (tests/data/corpus.tar.xz, or "
                    "$MAILHAT_CORPUS)")
    return root


#: Where a text sends the agent to a host name: "Enter server X", "... covers, e.g. X",
#: "; use X".
RECOMMENDED_HOST = re.compile(r"(?:Enter server|covers, e\.g\.|; use) "
                              r"([a-z0-9][a-z0-9.-]*[a-z0-9])")


def _recommends_no_failed_setting(verdict: Verdict, results: list[PresetResult]) -> None:
    failed = [r for r in results if r.status == "fail"]
    # The verdict's remedy, and each row's own remedy and detail, name no failed setting ...
    for text in (verdict.remedy, *(r.remedy for r in results)):
        for r in failed:
            assert r.setting() not in text, (r.setting(), text)
        assert not SWITCH_ADVICE.search(text), text
    for shown in (verdict.incoming, verdict.outgoing):
        assert shown is None or shown.status != "fail", shown.setting()
    # ... and a host name they recommend is one shown to lead to the server: a row's
    # host that resolved, or a certificate's name the probe vetted (certificate.vet).
    reachable = {r.host for r in results if r.status != "fail" or r.code not in (
        "dns_not_found", "dns_no_record", "dns_servfail", "dns_timeout", "dns_failure")}
    reachable |= {str(r.certificate["recommended_host"]) for r in results
                  if r.certificate and r.certificate.get("recommended_host")}
    for text in (verdict.summary, verdict.remedy, *(r.remedy for r in results),
                 *(r.detail for r in results)):
        for host in RECOMMENDED_HOST.findall(text):
            assert host in reachable, (host, text)


@pytest.fixture(scope="session")
def switch_advice() -> re.Pattern[str]:
    """A row remedy's generic advice to switch to a kind of setting ("Use SSL/TLS ...")."""
    return SWITCH_ADVICE


@pytest.fixture(scope="session")
def recommends_no_failed_setting() -> Callable[[Verdict, list[PresetResult]], None]:
    """Check that a verdict's remedy, and the settings it names, point at no failed row.

    The remedy is the cause's fix (which names no other setting) plus settings
    from rows that did not fail; a row's own remedy may say "use SSL/TLS", the
    verdict's never does.
    """
    return _recommends_no_failed_setting
