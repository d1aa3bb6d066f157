"""A sync against a server that sends what no mail server sends: bounded, quick, and said so.

The lab's hostile scenarios put a broken server on the IMAP ports (an
endless line, a 4 GB literal announced and streamed, a literal announced and
never sent, garbage after the greeting). ``mailhat sync`` runs as a user runs
it, in its own process, measured by ``/usr/bin/time``: it must end at once
(well within its timeout), keep its memory under 100 MB, exit 1 with the
sentence that names the fault, and never blame a login no one answered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhat_nb.lab import Lab, LabInfo

pytestmark = pytest.mark.lab

TIMEOUT = 5.0  # --timeout: connecting, TLS, the greeting (and the sync's own reads are 30 s)
MAX_RSS_KB = 100 * 1024

HOSTILE = ["hostile-endless-line", "hostile-huge-literal", "hostile-literal-never-sent",
           "hostile-garbage"]


@pytest.mark.skipif(shutil.which("time") is None and not Path("/usr/bin/time").exists(),
                    reason="needs /usr/bin/time to measure the sync's memory")
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_server_is_refused_at_once_in_little_memory(
        name: str, lab: Lab, tmp_path: Path, scenario: Callable[[str], LabInfo]) -> None:
    info = scenario(name)
    # On the plain port with --security none the same server is met through
    # imaplib's reads (the greeting, CAPABILITY) or the sync's own (the login).
    for service, security in (("imaps", "ssl"), ("imap", "none")):
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
