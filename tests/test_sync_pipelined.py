"""The pipelined sync against the real lab: round trips, fallbacks, and kills mid-pipeline.

Round trips are counted by a relay in front of the plain IMAP port (Dovecot
takes clear-text logins from 127.0.0.1 to 127.0.0.1), where it also sees
which commands went: AUTHENTICATE with SASL-IR or LOGIN, LIST-STATUS or
STATUS, CHANGEDSINCE or every flag. Each fallback runs against the lab with
that capability switched off (``no-list-status``, ``no-sasl-ir``,
``no-condstore``, and ``imap4rev1-only`` with none of them) and must store
exactly what the sync stores where the server offers everything.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import imapclient
import pandas as pd
import pytest
from relay import relay

from mailhat_nb.analysis.load import read_messages
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.generate import generate_into_lab
from mailhat_nb.secrets import Secret
from mailhat_nb.sync.engine import sync_account
from mailhat_nb.sync.imap import ImapSettings, ImapSource
from mailhat_nb.sync.store import Store

pytestmark = pytest.mark.lab

BOB = "bob@localhost"
COUNT = 300


@pytest.fixture
def bob(lab: Lab) -> dict[str, int]:
    """A fresh generated mailbox for bob (each test changes it)."""
    return generate_into_lab(lab, "bob", COUNT, seed=11)


def tls(info: LabInfo, **kw: object) -> ImapSettings:
    return ImapSettings(BOB, "localhost", port=info.ports["imaps"], ca_file=info.ca_file,
                        **kw)  # type: ignore[arg-type]


def plain(port: int) -> ImapSettings:
    return ImapSettings(BOB, "127.0.0.1", port=port, security="none")


def frame(store: Path) -> pd.DataFrame:
    """The store's messages, in a fixed order, as a user reads them."""
    return read_messages(store).sort_values(["folder", "uid"], ignore_index=True)


def server_uids(lab: Lab, login: str) -> dict[str, set[int]]:
    out = lab.doveadm("fetch", "-u", login, "mailbox uid", "all")
    uids: dict[str, set[int]] = {}
    folder = ""
    for line in out.splitlines():
        if line.startswith("mailbox: "):
            folder = line[9:]
        elif line.startswith("uid: "):
            uids.setdefault(folder, set()).add(int(line[5:]))
    return uids


def append(lab: Lab, folder: str, tag: str, count: int) -> None:
    """``count`` new messages in ``folder``, as mail arriving for the customer."""
    info = lab.info()
    ctx = ssl.create_default_context(cafile=info.ca_file)
    with imapclient.IMAPClient("localhost", port=info.ports["imaps"], ssl_context=ctx) as c:
        c.login(BOB, lab.password("bob"))
        for n in range(count):
            c.append(folder, f"From: new{n}@example.org\r\nTo: {BOB}\r\nSubject: {tag} {n}\r\n"
                     f"Message-ID: <{tag}-{n}@x>\r\n\r\nhi\r\n".encode())


def change_the_mailbox(lab: Lab, tag: str) -> None:
    """Flags (9 changed), expunges (4) and new mail (4), as another client would make them."""
    lab.doveadm("flags", "add", "-u", BOB, "\\Flagged $Work", "mailbox", "INBOX", "uid", "5:9")
    lab.doveadm("flags", "remove", "-u", BOB, "\\Seen", "mailbox", "INBOX.Sent", "uid", "1:4")
    lab.doveadm("expunge", "-u", BOB, "mailbox", "INBOX", "uid", "1:3")
    lab.doveadm("expunge", "-u", BOB, "mailbox", "INBOX.Lists", "uid", "2")
    append(lab, "INBOX.Archive", tag, 4)


def commands(sent: bytes) -> list[str]:
    """The commands a client sent, without tags or arguments that could be secret."""
    out = []
    for line in sent.split(b"\r\n"):
        words = line.split(b" ")
        if len(words) >= 2:
            verb = b" ".join(words[1:3]) if words[1].upper() == b"UID" else words[1]
            out.append(verb.decode("ascii", "replace").upper())
    return out


# --------------------------------------------------------------------------- round trips


def test_round_trips_do_not_grow_with_the_folders(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                                  bob: dict[str, int]) -> None:
    store = tmp_path / "store"
    with relay("127.0.0.1", lab_info.ports["imap"]) as wire:
        first = sync_account(plain(wire.port), Secret(lab.password("bob")), store)
        assert first.new == COUNT
        # greeting -> AUTHENTICATE (SASL-IR) -> ENABLE + LIST-STATUS -> every folder's
        # EXAMINE and FETCHes in one write -> LOGOUT, sent without waiting for it
        assert wire.turns(0) == 4
        # Nothing changed: the login, the LIST that carries every STATUS, the LOGOUT.
        again = sync_account(plain(wire.port), Secret(lab.password("bob")), store)
        assert again.new == 0
        assert {f.action for f in again.folders} == {"unchanged"}
        assert wire.turns(1) == 3
        sent = commands(wire.sent(1))
        assert sent == ["AUTHENTICATE", "ENABLE", "LIST", "LOGOUT"]
        # New mail in one folder: one more write, for it alone, and no SEARCH
        # (the count shows nothing was expunged).
        append(lab, "INBOX.Archive", "three", 3)
        third = sync_account(plain(wire.port), Secret(lab.password("bob")), store)
        assert third.new == 3
        assert wire.turns(2) == 4
        assert commands(wire.sent(2)) == ["AUTHENTICATE", "ENABLE", "LIST", "EXAMINE",
                                          "UID FETCH", "UID FETCH", "LOGOUT"]
    assert frame(store)["uid"].count() == COUNT + 3


def test_capabilities_come_from_the_greeting_and_again_after_starttls(
        lab: Lab, lab_info: LabInfo) -> None:
    # Dovecot lists them in its greeting: no CAPABILITY before STARTTLS; after it,
    # what was said in clear no longer counts (RFC 3501 6.2.1) and is asked again.
    with relay("127.0.0.1", lab_info.ports["imap"]) as wire:
        settings = ImapSettings(BOB, "localhost", port=wire.port, security="starttls",
                                ca_file=lab_info.ca_file)
        with ImapSource(settings, Secret(lab.password("bob"))) as session:
            caps = session.capabilities.raw
        first = wire.sent(0).split(b"\r\n")[0]
    assert first.split(b" ")[1:] == [b"STARTTLS"]
    assert "STARTTLS" not in caps
    assert {"LIST-STATUS", "CONDSTORE"} <= caps  # the login answer's list


def test_expunges_are_found_by_the_count_and_then_a_search(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, bob: dict[str, int]) -> None:
    store = tmp_path / "store"
    sync_account(tls(lab_info), Secret(lab.password("bob")), store)
    change_the_mailbox(lab, "count")
    # Half a second each way: the second folder's SEARCH is written while the
    # first's is on its way, as on a real line, however slow this machine is.
    with relay("127.0.0.1", lab_info.ports["imap"], delay=0.5) as wire:
        summary = sync_account(plain(wire.port), Secret(lab.password("bob")), store)
        sent = commands(wire.sent(0))
        turns = wire.turns(0)
    assert (summary.expunged, summary.new, summary.flags_changed) == (4, 4, 9)
    # Four folders changed; only the two that lost messages were searched, in one
    # more write: login, LIST-STATUS, the four folders, the two SEARCHes, LOGOUT.
    assert sent.count("UID SEARCH") == 2
    assert sent.count("EXAMINE") == 4 + 2
    assert turns == 5
    assert {f: len(u) for f, u in server_uids(lab, BOB).items()} == \
        {f.folder: f.rows for f in summary.folders if f.rows}


# --------------------------------------------------------------------------- fallbacks


#: scenario -> (capabilities it takes away, what the sync must send there, must not send)
FALLBACKS = {
    "normal": (set(), [r"AUTHENTICATE PLAIN \S+", r"RETURN \(CHILDREN SPECIAL-USE STATUS",
                       r"CHANGEDSINCE"], [r"\bLOGIN\b", r"STATUS \""]),
    "no-list-status": ({"LIST-STATUS"}, [r"STATUS \"INBOX\" \(", r"CHANGEDSINCE"],
                       [r"LIST \S+ \S+ RETURN", r"\bLOGIN\b"]),
    "no-sasl-ir": ({"SASL-IR"}, [r"\bLOGIN\b", r"RETURN \(CHILDREN"], [r"AUTHENTICATE"]),
    "no-condstore": ({"CONDSTORE", "QRESYNC"},
                     [r"AUTHENTICATE PLAIN \S+", r"RETURN \(CHILDREN SPECIAL-USE STATUS"],
                     [r"CONDSTORE", r"CHANGEDSINCE", r"HIGHESTMODSEQ"]),
    "imap4rev1-only": ({"LIST-STATUS", "SASL-IR", "CONDSTORE", "ESEARCH", "ENABLE"},
                       [r"\bLOGIN\b", r"STATUS \"INBOX\" \(", r"UID SEARCH ALL"],
                       [r"AUTHENTICATE", r"LIST \S+ \S+ RETURN", r"SEARCH RETURN",
                        r"CONDSTORE", r"CHANGEDSINCE", r"ENABLE"]),
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_every_fallback_stores_exactly_what_the_full_server_gives(
        name: str, lab: Lab, lab_info: LabInfo, tmp_path: Path, bob: dict[str, int],
        scenario: Callable[[str], LabInfo]) -> None:
    password = Secret(lab.password("bob"))
    reference, store = tmp_path / "reference", tmp_path / "store"
    sync_account(tls(lab_info), password, reference)  # the full server
    dropped, must, must_not = FALLBACKS[name]
    info = scenario(name)
    with ImapSource(tls(info), password) as session:  # the scenario holds
        assert not session.capabilities.raw & dropped
        assert "IMAP4REV1" in session.capabilities.raw
    with relay("127.0.0.1", info.ports["imap"]) as wire:
        sync_account(plain(wire.port), password, store)  # first sync
        change_the_mailbox(lab, name)
        changed = sync_account(plain(wire.port), password, store)  # the changes
        again = sync_account(plain(wire.port), password, store)  # nothing more
        sent = wire.sent().decode("ascii", "replace")
    assert (changed.expunged, changed.new, changed.flags_changed) == (4, 4, 9)
    assert (again.expunged, again.new, again.flags_changed) == (0, 0, 0)
    for pattern in must:
        assert re.search(pattern, sent), pattern
    for pattern in must_not:
        assert not re.search(pattern, sent), pattern
    scenario("normal")
    sync_account(tls(lab_info), password, reference)  # the same changes, the full way
    pd.testing.assert_frame_equal(frame(store), frame(reference))


# --------------------------------------------------------------------------- killed mid-pipeline


_KILLABLE = textwrap.dedent("""
    import os, sys
    from mailhat_nb.secrets import Secret
    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings
    port, ca, store = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    s = ImapSettings("bob@localhost", "localhost", port=port, ca_file=ca)
    sync_account(s, Secret(os.environ["MH_TEST_PW"]), store, chunk_size=20)
""")


def _committed(store: Path) -> int:
    return sum(sum(p.rows for p in st.parts) for st in Store(store).states()) \
        if store.is_dir() else 0


def _kill_after_first_commit(script: Path, info: LabInfo, store: Path, password: str,
                             at_least: int) -> None:
    """Run the sync in a process and SIGKILL it once ``at_least`` rows are committed."""
    proc = subprocess.Popen([sys.executable, str(script), str(info.ports["imaps"]),
                             info.ca_file, str(store)], env={**os.environ,
                                                            "MH_TEST_PW": password})
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if _committed(store) >= at_least:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the sync finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _only_whole_ranges_committed(lab: Lab, store: Path, unchanged: bool) -> None:
    """Every committed part holds every message the server has in its UID range.

    A part is written from one FETCH range once its tagged reply arrived: a
    part missing a message of its range would be an answer committed before
    it was all received. ``unchanged``: nothing was expunged on the server
    since, so every stored UID is still there.
    """
    on_server = server_uids(lab, BOB)
    for state in Store(store).states():
        stored = set(state.uid_list())
        if unchanged:
            assert stored <= on_server.get(state.folder, set())
        for part in state.parts:
            wanted = {u for u in on_server.get(state.folder, set())
                      if part.first <= u <= part.last}
            assert wanted <= stored, (state.folder, part.first, part.last)


def test_a_sync_killed_mid_pipeline_commits_only_what_it_received_and_resumes(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, bob: dict[str, int]) -> None:
    # Ranges of 20: every folder's commands are in flight at once when the kill comes.
    store, script = tmp_path / "store", tmp_path / "killable.py"
    script.write_text(_KILLABLE)
    password = lab.password("bob")
    _kill_after_first_commit(script, lab_info, store, password, at_least=20)
    partial = _committed(store)
    assert 20 <= partial < COUNT
    _only_whole_ranges_committed(lab, store, unchanged=True)
    keys = frame(store)[["folder", "uid"]]
    assert not keys.duplicated().any()
    # Changes while the store is half-done, and a kill in the re-sync that applies them.
    change_the_mailbox(lab, "killed")
    _kill_after_first_commit(script, lab_info, store, password, at_least=partial + 1)
    _only_whole_ranges_committed(lab, store, unchanged=False)
    summary = sync_account(tls(lab_info), Secret(password), store)
    assert not summary.failed
    df = frame(store)
    assert not df[["folder", "uid"]].duplicated().any()
    on_server = server_uids(lab, BOB)
    assert {f: set(g["uid"].astype(int)) for f, g in df.groupby("folder", observed=True)} \
        == {f: u for f, u in on_server.items() if u}
    flags = lab.doveadm("fetch", "-u", BOB, "uid flags", "mailbox", "INBOX", "uid", "5:9")
    assert flags.count("\\Flagged") == 5
    stored = df[(df["folder"] == "INBOX") & df["uid"].between(5, 9)]
    assert all("\\Flagged" in f and "$Work" in f for f in stored["flags"])
