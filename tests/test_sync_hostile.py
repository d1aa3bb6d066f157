"""A sync against a server that sends what no mail server sends: bounded, quick, and said so.

The lab's hostile scenarios put a broken server on the IMAP ports (the
sidecar's, :mod:`mailhat_nb.lab.hostile`): at login an endless line, a 4 GB
literal announced and streamed, a literal announced and never sent; or
garbage right after the greeting. ``mailhat sync`` runs as a user runs it,
in its own process, measured by ``/usr/bin/time``: it must end at once (well
within its timeout), keep its memory under 100 MB, exit 1 with the sentence
that names the fault, and never blame a login nobody answered. Over implicit
TLS the sync meets the misbehaviour in its own reader (the login with
SASL-IR); through STARTTLS on the plain port, the garbage reaches imaplib's
reads, bounded at the adapter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhat_nb.lab import SCENARIOS, Lab, LabInfo

pytestmark = pytest.mark.lab

TIMEOUT = 5.0  # --timeout: connecting, TLS, the greeting (the sync's own reads wait 30 s)
MAX_RSS_KB = 100 * 1024
HOSTILE = [name for name, s in SCENARIOS.items() if s.hostile]


@pytest.mark.skipif(not Path("/usr/bin/time").exists(),
                    reason="needs /usr/bin/time to measure the sync's memory")
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_server_is_refused_at_once_in_little_memory(
        name: str, lab: Lab, tmp_path: Path, scenario: Callable[[str], LabInfo]) -> None:
    assert len(HOSTILE) == 4
    info = scenario(name)
    for service, security in (("imaps", "ssl"), ("imap", "starttls")):
        rss = tmp_path / f"{service}.rss"
        start = time.monotonic()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, "-m",
             "mailhat_nb.cli", "sync", "--email", "alice@localhost", "--server", "localhost",
             "--port", str(info.ports[service]), "--security", security, "--ca-file",
             info.ca_file, "--password-env", "MH_PW", "--timeout", str(TIMEOUT),
             "--store", str(tmp_path / "store")],
            env={**os.environ, "MH_PW": "not-the-password"}, capture_output=True, text=True,
            timeout=120, check=False)
        elapsed = time.monotonic() - start
        said = proc.stderr
        assert proc.returncode == 1, said
        assert "the server sent something no mail server sends" in said, said
        assert "rejected the login" not in said
        assert "Traceback" not in said
        assert "not-the-password" not in said + proc.stdout
        assert elapsed < TIMEOUT + 10, elapsed  # interpreter start-up included
        assert int(rss.read_text().split()[-1]) < MAX_RSS_KB
