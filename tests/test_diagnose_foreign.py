"""The doctor against a mail server this project did not configure: Debian's Cyrus IMAP.

Cyrus is unpacked from Debian's packages into a cache (``tests/foreign.py``,
fetched by ``make test``) and started on 127.0.0.x with Debian's defaults
where they matter to the doctor: one POP3 login a minute (``popminpoll: 1``),
users known by a short name (no virtual domains), passwords in clear text
allowed. The findings it gave (D2, D3, D5) are pinned here on the real
server; ``test_diagnose_verdict.py`` pins the same rows without it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from foreign import DEFAULT_CACHE, Cyrus, fetch, free_port

from mailhat_nb.diagnose import PresetResult, diagnose
from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.diagnose.report import Report

pytestmark = pytest.mark.foreign

#: The instances' addresses: away from the lab's 127.0.0.1-2 and its world's.
FULL, POP_ONLY = "127.0.0.77", "127.0.0.78"
PASSWORDS = {"alice": "Cyrus-pw-alice-1", "bob": "Cyrus-pw-bob-2", "carol": "Cyrus-pw-carol-3"}
TIMEOUT = 5.0


def _reachable(path: Path) -> bool:
    """Whether another user (Cyrus runs as ``mail``) can walk down to ``path``."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


@pytest.fixture(scope="module")
def cyrus_root() -> Iterator[Path]:
    """The unpacked packages, or a skip that says why there are none.

    A clone under a private directory (``/root``) is not reachable by the
    ``mail`` user Cyrus runs as: the packages are then copied under ``/tmp``
    for the module's tests.
    """
    problem = fetch(DEFAULT_CACHE)
    if problem:
        pytest.skip(f"Cyrus could not be fetched: {problem} (make test fetches it with "
                    "apt-get download)")
    root = DEFAULT_CACHE / "root"
    if _reachable(root):
        yield root
        return
    copy = Path(tempfile.mkdtemp(prefix="mhc-root-", dir="/tmp"))
    copy.chmod(0o755)
    try:
        shutil.copytree(root, copy / "root", symlinks=True)
        yield copy / "root"
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _instance(root: Path, address: str, services: tuple[str, ...]) -> Iterator[Cyrus]:
    state = Path(tempfile.mkdtemp(prefix="mhc-", dir="/tmp"))  # traversable by mail
    state.chmod(0o755)
    cyrus = Cyrus(root, state, address, {s: free_port(address) for s in services}, PASSWORDS)
    try:
        yield cyrus.start()
    finally:
        cyrus.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def full(cyrus_root: Path) -> Iterator[Cyrus]:
    """Cyrus serving IMAP and POP3."""
    yield from _instance(cyrus_root, FULL, ("imap", "pop3"))


@pytest.fixture(scope="module")
def pop_only(cyrus_root: Path) -> Iterator[Cyrus]:
    """Cyrus serving POP3 only: its IMAP ports refuse, as on a POP-only account."""
    yield from _instance(cyrus_root, POP_ONLY, ("pop3",))


def _presets(cyrus: Cyrus, tmp_path: Path) -> Path:
    """IMAP and POP3 presets at the instance (unencrypted: Debian's Cyrus has no certificate)."""
    imap = cyrus.services.get("imap") or free_port(cyrus.address)  # nothing listens there
    path = tmp_path / "cyrus.toml"
    path.write_text(
        f'[[preset]]\nid = "cyrus-imap"\nlabel = "IMAP"\nprotocol = "imap"\n'
        f'host = "{cyrus.address}"\nport = {imap}\nsecurity = "none"\n\n'
        f'[[preset]]\nid = "cyrus-pop3"\nlabel = "POP3"\nprotocol = "pop3"\n'
        f'host = "{cyrus.address}"\nport = {cyrus.services["pop3"]}\nsecurity = "none"\n')
    return path


def _run(cyrus: Cyrus, tmp_path: Path, user: str, *, password: str | None = None,
         username: str | None = None) -> Report:
    account = Account.from_input(f"{user}@{cyrus.servername}", password or PASSWORDS[user],
                                 username=username, server=cyrus.address)
    return diagnose(account, presets=str(_presets(cyrus, tmp_path)), timeout=TIMEOUT,
                    allow_plaintext_login=True)


def _row(report: Report, protocol: str) -> PresetResult:
    return next(r for r in report.results if r.protocol == protocol)


def test_cyrus_takes_its_short_login_name(full: Cyrus, tmp_path: Path) -> None:
    report = _run(full, tmp_path, "alice", username="alice")
    incoming = report.verdict.incoming
    assert incoming is not None, report.verdict.summary
    assert incoming.works
    assert "Cyrus IMAP" in " ".join(ln.text for ln in incoming.transcript)
    assert PASSWORDS["alice"] not in report.to_json()


def test_a_refused_full_address_is_not_advised_again(full: Cyrus, tmp_path: Path) -> None:
    # D5: Cyrus knows "bob", not "bob@cyrus.test": the advice must not repeat what failed.
    report = _run(full, tmp_path, "bob")
    v = report.verdict
    assert v.code == "auth_failed", v.summary
    assert {r.code for r in report.results} == {"auth_failed"}
    assert "rejected on every protocol tried (IMAP, POP3)" in v.summary
    assert "The username sent was the full address bob@cyrus.test" in v.remedy
    assert "(such as bob)" in v.remedy
    assert "use the full email address" not in v.remedy.lower()
    assert "cPanel" not in v.summary + v.remedy


def test_pop_only_with_a_wrong_password_says_both(pop_only: Cyrus, tmp_path: Path) -> None:
    # D3: the password is refused (POP3), and IMAP is not served either.
    report = _run(pop_only, tmp_path, "alice", password="not-the-password", username="alice")
    v = report.verdict
    assert v.code == "auth_failed", v.summary
    assert "rejected on every protocol tried (POP3)" in v.summary
    assert "POP-only account" in v.summary
    assert "enable IMAP" in v.remedy
    assert _row(report, "imap").code == "pop_only"


def test_a_second_pop3_login_within_the_minute_is_no_wrong_password(
        pop_only: Cyrus, tmp_path: Path) -> None:
    # D2: Debian's Cyrus allows one POP3 login a minute (popminpoll: 1); the doctor's
    # second run meets [LOGIN-DELAY], which says nothing against the password.
    first = _run(pop_only, tmp_path, "carol", username="carol")
    assert first.verdict.code == "pop_only", first.verdict.summary
    assert _row(first, "pop3").works
    second = _run(pop_only, tmp_path, "carol", username="carol")
    pop = _row(second, "pop3")
    assert pop.code == "login_delayed", pop.detail
    assert "-ERR [LOGIN-DELAY]" in pop.detail
    assert "Do not reset the password" in pop.remedy
    assert second.verdict.code == "pop_only"
    assert "reset" not in second.verdict.summary + second.verdict.remedy
