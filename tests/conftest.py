"""Shared fixtures: one real lab per test session.

The lab (private Dovecot + Exim on loopback) starts once, in its own short
directory, and is stopped and deleted at the end. Tests that switch a fault
scenario use :func:`scenario`, which always switches back to ``normal``.

Set ``MAILHAT_TEST_LAB_DIR`` to reuse an already running lab while developing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.corpus import corpus_root

#: Lab scenarios built to show codes the doctor does not give yet
#: (tls_handshake_failed, starttls_failed: issue 10). tests/test_lab.py checks
#: their wire behaviour; the doctor's and the walkthrough's tests take them in
#: once it names them.
#: Lab scenarios for the sync's fallbacks (a server without LIST-STATUS, SASL-IR,
#: CONDSTORE): the doctor says ok, and an agent has nothing to learn from them,
#: so the training walkthrough leaves them out (tests/test_sync_pipelined.py).
SYNC_ONLY = frozenset({"no-list-status", "no-sasl-ir", "no-condstore", "imap4rev1-only"})
DOCTOR_PENDING = frozenset({"smtp-tls-handshake-fails", "smtp-starttls-fails",
                            # what no mail server sends (server_misbehaved): the sync's
                            # bounds are tested (test_sync_hostile.py), the doctor's to come
                            "hostile-endless-line", "hostile-huge-literal",
                            "hostile-literal-never-sent", "hostile-garbage"})

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
