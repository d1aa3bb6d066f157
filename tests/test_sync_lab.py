"""The sync against the real lab: counts, fields, read-only, incremental, resets,
folder names, dropped connections, SIGKILL, the CLI and the password."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import imapclient
import pytest

from mailhat_nb.analysis.health import data_health
from mailhat_nb.analysis.load import read_messages
from mailhat_nb.errors import AuthFailed, StoreError
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.generate import generate_into_lab
from mailhat_nb.secrets import Secret
from mailhat_nb.sync import wire
from mailhat_nb.sync.engine import sync_account
from mailhat_nb.sync.imap import ImapSettings
from mailhat_nb.sync.store import Store, uidvalidity_events

pytestmark = pytest.mark.lab

BENCH = "bench@localhost"
BENCH_COUNT = 2000


def settings(info: LabInfo, user: str, **kw: object) -> ImapSettings:
    args: dict[str, object] = {"port": info.ports["imaps"], "ca_file": info.ca_file}
    args.update(kw)
    return ImapSettings(f"{user}@localhost", "localhost", **args)  # type: ignore[arg-type]


def server_counts(lab: Lab, login: str) -> dict[str, int]:
    out = lab.doveadm("mailbox", "status", "-u", login, "messages", "INBOX", "INBOX.*")
    counts = {}
    for line in out.splitlines():
        name, _, value = line.rpartition(" messages=")
        counts[name] = int(value)
    return counts


def server_flags(lab: Lab, login: str, folder: str) -> dict[int, set[str]]:
    out = lab.doveadm("fetch", "-u", login, "uid flags", "mailbox", folder, "all")
    flags: dict[int, set[str]] = {}
    uid = 0
    for line in out.splitlines():
        if line.startswith("uid: "):
            uid = int(line[5:])
        elif line.startswith("flags:"):
            flags[uid] = set(line[6:].split()) - {"\\Recent"}
    return flags


def frame_keys(store: Path, folder: str | None = None) -> list[tuple[str, int]]:
    df = read_messages(store, folders=[folder] if folder else None)
    return sorted(zip(df["folder"].astype(str), df["uid"].astype(int), strict=True))


@pytest.fixture
def imap_client(lab: Lab, lab_info: LabInfo) -> Iterator[imapclient.IMAPClient]:
    ctx = ssl.create_default_context(cafile=lab_info.ca_file)
    client = imapclient.IMAPClient("localhost", port=lab_info.ports["imaps"], ssl_context=ctx)
    client.login(BENCH, lab.password("bench"))
    yield client
    client.logout()


@pytest.fixture
def narrow_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """One 100-message range asked at a time: a connection dropped after the first
    chunk's commit then drops with most of the mailbox still unasked (with the
    default window, all of a small mailbox is asked at once and may well have
    arrived before the drop, which the sync then never notices)."""
    monkeypatch.setattr(wire, "WINDOW", 100)


@pytest.fixture
def bench(lab: Lab) -> dict[str, int]:
    """A fresh generated mailbox for bench (each test may change it)."""
    return generate_into_lab(lab, "bench", BENCH_COUNT, seed=7)


# --------------------------------------------------------------------------- alice (read-only)


def test_first_sync_matches_the_server_and_changes_no_flag(lab: Lab, lab_info: LabInfo,
                                                           tmp_path: Path) -> None:
    before = {f: server_flags(lab, "alice@localhost", f)
              for f in server_counts(lab, "alice@localhost")}
    assert any(not fl for flags in before.values() for fl in flags.values()), \
        "the demo INBOX should hold unread mail, or this test proves nothing"
    summary = sync_account(settings(lab_info, "alice"), Secret(lab.password("alice")), tmp_path)
    # Counted after the sync: Dovecot creates the auto folders (Drafts...) at first login.
    expected = server_counts(lab, "alice@localhost")
    assert {f.folder: f.rows for f in summary.folders} == expected
    assert {f.folder: f.server_messages for f in summary.folders} == expected
    assert summary.rows == sum(expected.values()) == 798
    after = {f: server_flags(lab, "alice@localhost", f) for f in before}
    assert after == before  # EXAMINE + BODY.PEEK: no \Seen, nothing else either
    df = read_messages(tmp_path)
    assert len(df) == 798
    assert not df.duplicated(["folder", "uid"]).any()
    stored_flags = {(str(f), int(u)): set(fl) for f, u, fl in
                    zip(df["folder"], df["uid"], df["flags"], strict=True)}
    assert stored_flags == {(f, u): fl for f, flags in before.items() for u, fl in flags.items()}
    assert set(df.loc[df["folder"] == "INBOX.Sent", "folder_role"].astype(str)) == {"sent"}
    assert (df.loc[df["folder"] == "INBOX.Sent", "direction"] == "sent").mean() > 0.9


def test_fields_match_an_independent_parse(lab: Lab, lab_info: LabInfo, tmp_path: Path) -> None:
    sync_account(settings(lab_info, "alice"), Secret(lab.password("alice")), tmp_path,
                 folders=["INBOX", "INBOX.Sent"])
    df = read_messages(tmp_path)
    sample = df.sample(40, random_state=3)
    ctx = ssl.create_default_context(cafile=lab_info.ca_file)
    with imapclient.IMAPClient("localhost", port=lab_info.ports["imaps"],
                               ssl_context=ctx) as client:
        client.login("alice@localhost", lab.password("alice"))
        for folder, rows in sample.groupby("folder", observed=True):
            client.select_folder(str(folder), readonly=True)
            got = client.fetch([int(u) for u in rows["uid"]], ["BODY.PEEK[HEADER]"])
            for _, r in rows.iterrows():
                msg = email.message_from_bytes(got[int(r["uid"])][b"BODY[HEADER]"],
                                               policy=email.policy.default)
                assert r["message_id"] == str(msg["Message-ID"]).strip().strip("<>")
                assert " ".join(str(r["subject"]).split()) == " ".join(str(msg["Subject"]).split())
                assert r["from_addr"] == msg["From"].addresses[0].addr_spec.lower()
                when = email.utils.parsedate_to_datetime(str(msg["Date"]))
                assert r["date"].to_pydatetime() == when
                assert r["date_offset_min"] == when.utcoffset().total_seconds() // 60
                to = [a.addr_spec.lower() for a in msg["To"].addresses] if msg["To"] else []
                assert list(r["to_addrs"]) == to


def test_unchanged_resync_touches_nothing(lab: Lab, lab_info: LabInfo, tmp_path: Path) -> None:
    s, pw = settings(lab_info, "alice"), Secret(lab.password("alice"))
    sync_account(s, pw, tmp_path)
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()
             and p.name != "_lock"}
    start = time.monotonic()
    again = sync_account(s, pw, tmp_path)
    elapsed = time.monotonic() - start
    assert {f.action for f in again.folders} == {"unchanged"}
    assert again.new == again.flags_changed == again.expunged == 0
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert elapsed < 2.0


def test_a_damaged_or_missing_part_is_set_aside_and_fetched_again(
        lab: Lab, lab_info: LabInfo, tmp_path: Path) -> None:
    # A part deleted or truncated behind the store's back: the sync must not
    # call its folder unchanged; readers must fail loudly until it is repaired.
    s, pw = settings(lab_info, "alice"), Secret(lab.password("alice"))
    sync_account(s, pw, tmp_path)
    before = frame_keys(tmp_path)
    (sent_part,) = Store(tmp_path).open_folder("alice@localhost", "INBOX.Sent").files()
    (inbox_part,) = Store(tmp_path).open_folder("alice@localhost", "INBOX").files()
    sent_part.unlink()
    inbox_part.write_bytes(inbox_part.read_bytes()[:500])
    with pytest.raises(StoreError, match=r"sync .*again"):
        read_messages(tmp_path)

    again = sync_account(s, pw, tmp_path)
    by_name = {f.folder: f for f in again.folders}
    assert (by_name["INBOX"].new, by_name["INBOX.Sent"].new) == (71, 156)
    assert {f.action for f in again.folders if f.folder not in ("INBOX", "INBOX.Sent")} \
        == {"unchanged"}
    assert frame_keys(tmp_path) == before
    assert sorted(w.split("/")[2].split("-damaged-")[0] for w in again.set_aside) \
        == ["folder=INBOX", "folder=INBOX.Sent"]
    kept = [w for w in again.set_aside if "folder=INBOX-damaged-" in w]
    assert len((tmp_path / kept[0] / inbox_part.name).read_bytes()) == 500  # kept, not read
    third = sync_account(s, pw, tmp_path)
    assert {f.action for f in third.folders} == {"unchanged"}


def test_wrong_password_is_auth_failed_and_never_echoed(lab_info: LabInfo, tmp_path: Path) -> None:
    wrong = "not-the-password-§42"
    with pytest.raises(AuthFailed) as info:
        sync_account(settings(lab_info, "alice"), Secret(wrong), tmp_path)
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value.__cause__)


def test_non_ascii_password_logs_in_with_sasl_plain(lab: Lab, lab_info: LabInfo,
                                                    tmp_path: Path) -> None:
    password = lab.password("chloe")
    assert not password.isascii()  # the lab's chloe exists for this
    summary = sync_account(settings(lab_info, "chloe"), Secret(password), tmp_path)
    assert summary.rows == sum(server_counts(lab, "chloe@localhost").values())
    assert {f.folder for f in summary.folders} >= {"INBOX", "INBOX.Sent"}


@pytest.mark.parametrize("user", ["alice", "chloe"])  # LOGIN, and AUTHENTICATE PLAIN
def test_debug_logs_never_hold_the_password(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture, user: str) -> None:
    import base64
    import logging

    password = lab.password(user)
    with caplog.at_level(logging.DEBUG):
        sync_account(settings(lab_info, user), Secret(password), tmp_path, folders=["INBOX"])
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "LOGIN" in text or "AUTHENTICATE" in text  # the logs did capture the session
    sasl = base64.b64encode(f"\0{user}@localhost\0{password}".encode()).decode()
    for secret in (password, sasl, password.encode("utf-8").hex()):
        assert secret not in text


@pytest.mark.parametrize(("service", "security"), [("imap", "starttls"), ("imap", "none")])
def test_other_securities(lab: Lab, lab_info: LabInfo, tmp_path: Path, service: str,
                          security: str) -> None:
    s = settings(lab_info, "alice", port=lab_info.ports[service], security=security)
    summary = sync_account(s, Secret(lab.password("alice")), tmp_path, folders=["INBOX"])
    assert summary.rows == server_counts(lab, "alice@localhost")["INBOX"]


# --------------------------------------------------------------------------- bench (changes)


def test_expunges_flags_and_new_mail_are_applied(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                                 bench: dict[str, int],
                                                 imap_client: imapclient.IMAPClient) -> None:
    s, pw = settings(lab_info, "bench"), Secret(lab.password("bench"))
    first = sync_account(s, pw, tmp_path)
    assert first.rows == BENCH_COUNT == sum(bench.values())
    lab.doveadm("expunge", "-u", BENCH, "mailbox", "INBOX", "uid", "1:10")
    lab.doveadm("flags", "add", "-u", BENCH, "\\Flagged $Work", "mailbox", "INBOX", "uid", "20:24")
    lab.doveadm("flags", "remove", "-u", BENCH, "\\Seen", "mailbox", "INBOX.Sent", "uid", "1:3")
    for n in range(3):
        imap_client.append("INBOX", f"From: new{n}@example.org\r\nSubject: new {n}\r\n"
                           f"Message-ID: <new{n}@x>\r\n\r\nhi\r\n".encode())
    second = sync_account(s, pw, tmp_path)
    assert (second.expunged, second.new, second.flags_changed) == (10, 3, 8)
    for folder in ("INBOX", "INBOX.Sent"):
        want = server_flags(lab, BENCH, folder)
        df = read_messages(tmp_path, folders=[folder])
        assert {int(u): set(f) for u, f in zip(df["uid"], df["flags"], strict=True)} == want
    assert server_counts(lab, BENCH) == {f.folder: f.rows for f in second.folders}
    df = read_messages(tmp_path, folders=["INBOX"])
    assert {"new0@x", "new1@x", "new2@x"} <= set(df["message_id"])


def test_uidvalidity_change_retires_and_refetches(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                                  bench: dict[str, int],
                                                  imap_client: imapclient.IMAPClient) -> None:
    s, pw = settings(lab_info, "bench"), Secret(lab.password("bench"))
    sync_account(s, pw, tmp_path)
    old = Store(tmp_path).open_folder(BENCH, "INBOX.Lists").state.uidvalidity
    imap_client.delete_folder("INBOX.Lists")
    imap_client.create_folder("INBOX.Lists")
    for n in range(2):
        imap_client.append("INBOX.Lists", f"Subject: again {n}\r\n\r\nx\r\n".encode())
    summary = sync_account(s, pw, tmp_path)
    lists = next(f for f in summary.folders if f.folder == "INBOX.Lists")
    assert (lists.action, lists.retired, lists.rows) == ("reset", bench["INBOX.Lists"], 2)
    state = Store(tmp_path).open_folder(BENCH, "INBOX.Lists").state
    event = state.events[-1]
    assert event["event"] == "uidvalidity_changed"
    assert event["old_uidvalidity"] == old != event["new_uidvalidity"] == state.uidvalidity
    df = read_messages(tmp_path, folders=["INBOX.Lists"])
    assert sorted(df["subject"]) == ["again 0", "again 1"]
    assert set(df["uidvalidity"]) == {state.uidvalidity}
    retired = list((tmp_path / "_retired").rglob("*.parquet"))
    assert retired
    assert all("folder=INBOX.Lists" in str(p) for p in retired)
    # ...and data health reports the renumbering for that folder only.
    events = uidvalidity_events(tmp_path, BENCH)
    assert events == {"INBOX.Lists": 1}
    health = data_health(read_messages(tmp_path), uidvalidity_events=events).set_index("folder")
    assert health.loc["INBOX.Lists", "uidvalidity_events"] == 1
    assert health.drop(index="INBOX.Lists")["uidvalidity_events"].eq(0).all()


def test_modified_utf7_folder_names(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                    bench: dict[str, int],
                                    imap_client: imapclient.IMAPClient) -> None:
    names = ["INBOX.Entwürfe", "INBOX.Réunions & co", "INBOX.日本語"]
    for name in names:
        imap_client.create_folder(name)
        imap_client.append(name, f"Subject: in {name}\r\n\r\nx\r\n".encode())
    raw = lab.doveadm("mailbox", "list", "-u", BENCH, "-7")
    assert "INBOX.Entw&APw-rfe" in raw  # really modified UTF-7 on the wire
    s, pw = settings(lab_info, "bench"), Secret(lab.password("bench"))
    sync_account(s, pw, tmp_path)
    df = read_messages(tmp_path, folders=names)
    assert sorted(df["folder"].astype(str)) == sorted(names)
    assert sorted(df["subject"]) == sorted(f"in {n}" for n in names)
    assert (tmp_path / f"account={BENCH}" / "folder=INBOX.Entwürfe").is_dir()
    # A folder deleted on the server leaves the frame at the next full sync.
    imap_client.delete_folder("INBOX.Entwürfe")
    again = sync_account(s, pw, tmp_path)
    gone = next(f for f in again.folders if f.folder == "INBOX.Entwürfe")
    assert (gone.action, gone.retired) == ("retired", 1)
    assert "INBOX.Entwürfe" not in set(read_messages(tmp_path)["folder"].astype(str))


def test_a_folder_the_server_refuses_does_not_stop_the_others(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, bench: dict[str, int],
        imap_client: imapclient.IMAPClient) -> None:
    imap_client.create_folder("INBOX.Broken")
    imap_client.append("INBOX.Broken", b"Subject: x\r\n\r\nx\r\n")
    broken = lab.paths.maildir("bench") / ".Broken"
    lab.doveadm("kick", BENCH)
    broken.chmod(0)  # Dovecot (uid 8) can no longer open it: EXAMINE answers NO
    try:
        summary = sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")),
                               tmp_path)
    finally:
        broken.chmod(0o755)
    results = {f.folder: f for f in summary.folders}
    assert results["INBOX.Broken"].action == "failed"
    assert results["INBOX.Broken"].error
    assert "b'" not in results["INBOX.Broken"].error  # the server's words, decoded
    assert [f.folder for f in summary.failed] == ["INBOX.Broken"]
    assert sum(f.rows for f in summary.folders) == BENCH_COUNT  # the others all synced
    again = sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")), tmp_path)
    assert not again.failed
    assert {f.folder: f.rows for f in again.folders}["INBOX.Broken"] == 1


@pytest.mark.usefixtures("narrow_window")
def test_dropped_connection_is_retried(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                       bench: dict[str, int]) -> None:
    kicked = []

    def kick_once(event: object) -> None:
        if not kicked and getattr(event, "phase", "") == "fetch":
            kicked.append(lab.doveadm("kick", BENCH))

    summary = sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")),
                           tmp_path, progress=kick_once, chunk_size=100, backoff=0.05,
                           workers=0)
    assert kicked
    assert summary.reconnects >= 1
    assert {f.folder: f.rows for f in summary.folders} == server_counts(lab, BENCH)
    keys = frame_keys(tmp_path)
    assert len(keys) == len(set(keys)) == BENCH_COUNT
    # What the dropped attempt committed still counts as new in the summary.
    assert summary.new == BENCH_COUNT
    assert {f.folder: f.new for f in summary.folders} == server_counts(lab, BENCH)


def test_a_part_damaged_inside_fails_its_folder_only_and_verify_repairs_it(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, bench: dict[str, int],
        imap_client: imapclient.IMAPClient) -> None:
    s, pw = settings(lab_info, "bench"), Secret(lab.password("bench"))
    sync_account(s, pw, tmp_path, workers=0)
    part = Store(tmp_path).open_folder(BENCH, "INBOX").files()[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2: len(data) // 2 + 2048] = os.urandom(2048)  # both PAR1 ends intact
    part.write_bytes(bytes(data))
    imap_client.select_folder("INBOX")
    first = min(imap_client.search("ALL"))
    imap_client.add_flags([first], [b"\\Answered"])  # touches the damaged part
    imap_client.append("INBOX.Sent", b"From: bench@localhost\r\nSubject: late\r\n\r\nx\r\n")

    plain = sync_account(s, pw, tmp_path, workers=0)
    by_name = {f.folder: f for f in plain.folders}
    assert by_name["INBOX"].action == "failed"
    assert "sync --verify" in (by_name["INBOX"].error or "")
    assert by_name["INBOX.Sent"].new == 1  # the other folders went on

    verified = sync_account(s, pw, tmp_path, workers=0, verify=True)
    inbox = {f.folder: f for f in verified.folders}["INBOX"]
    assert [w.split("/")[2].split("-damaged-")[0] for w in verified.set_aside] \
        == ["folder=INBOX"]
    assert inbox.new > 0
    keys = frame_keys(tmp_path)
    assert len(keys) == len(set(keys)) == sum(server_counts(lab, BENCH).values())
    assert server_flags(lab, BENCH, "INBOX")[first] >= {"\\Answered"}


def test_a_store_that_cannot_write_one_folder_fails_that_folder_only(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailhat_nb.sync import rows as rowmod

    real = rowmod.write_parquet

    def full_disk_for_sent(table: object, path: object) -> None:
        if "folder=INBOX.Sent" in str(path):
            raise OSError(28, "No space left on device")
        real(table, path)  # type: ignore[arg-type]

    monkeypatch.setattr(rowmod, "write_parquet", full_disk_for_sent)
    s, pw = settings(lab_info, "alice"), Secret(lab.password("alice"))
    summary = sync_account(s, pw, tmp_path, workers=0)
    by_name = {f.folder: f for f in summary.folders}
    assert by_name["INBOX.Sent"].action == "failed"
    assert "No space left" in (by_name["INBOX.Sent"].error or "")
    assert {f.action for f in summary.folders if f.folder != "INBOX.Sent"} == {"synced"}
    monkeypatch.setattr(rowmod, "write_parquet", real)
    again = sync_account(s, pw, tmp_path, workers=0)
    assert {f.folder: f.new for f in again.folders if f.new} == {"INBOX.Sent": 156}
    assert len(frame_keys(tmp_path)) == sum(server_counts(lab, "alice@localhost").values())


def test_an_unreadable_state_record_sets_its_folder_aside(lab: Lab, lab_info: LabInfo,
                                                          tmp_path: Path) -> None:
    s, pw = settings(lab_info, "alice"), Secret(lab.password("alice"))
    sync_account(s, pw, tmp_path)
    before = frame_keys(tmp_path)
    state = Store(tmp_path).folder_path("alice@localhost", "INBOX.Sent") / "_state.json"
    state.write_bytes(state.read_bytes()[:300])
    with pytest.raises(StoreError, match="sets the folder aside"):
        read_messages(tmp_path)
    summary = sync_account(s, pw, tmp_path)
    assert len(summary.set_aside) == 1
    assert summary.set_aside[0].startswith("_retired/account=alice@localhost/folder=INBOX.Sent-")
    assert {f.folder: f.new for f in summary.folders if f.new} == {"INBOX.Sent": 156}
    assert frame_keys(tmp_path) == before


def _tcp_table() -> list[tuple[int, int, int]]:
    """(local port, remote port, socket inode) of every IPv4 TCP socket."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        out.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), inode))
    return out


def _fd_links(pid: str) -> set[str]:
    links = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return links
    for fd in fds:
        try:
            links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile (e.g. listdir's own descriptor)
    return links


def _kill_server_side_of_my_connections(port: int) -> list[int]:
    """SIGKILL the Dovecot processes serving *this* process's connections to ``port``.

    Precise by construction: our own sockets (``/proc/self/fd``) give our local
    ports; the server-side socket with that remote port belongs to the lab's
    login process proxying our session, and only that one is killed.
    """
    mine = {int(link[8:-1]) for link in _fd_links("self") if link.startswith("socket:[")}
    table = _tcp_table()
    client_ports = {lp for lp, rp, inode in table if inode in mine and rp == port}
    server_inodes = {inode for lp, rp, inode in table if lp == port and rp in client_ports}
    killed = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        links = _fd_links(pid)
        if any(f"socket:[{i}]" in links for i in server_inodes):
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            assert comm.startswith("imap"), comm  # never anything but the lab's IMAP side
            os.kill(int(pid), signal.SIGKILL)
            killed.append(int(pid))
    return killed


@pytest.mark.usefixtures("narrow_window")
def test_server_crash_and_restart_mid_sync(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                           bench: dict[str, int],
                                           scenario: Callable[[str], LabInfo]) -> None:
    # Mid-folder, the server goes away for real: Dovecot restarts without IMAP
    # (pop-only: reconnects are refused), the process serving our session dies,
    # and half a second later Dovecot restarts with IMAP. The sync must finish
    # with every message exactly once.
    done = threading.Event()
    killed: list[int] = []

    def bring_back() -> None:
        time.sleep(0.5)
        scenario("normal")
        done.set()

    def on_progress(event: object) -> None:
        if not killed and getattr(event, "phase", "") == "fetch":
            scenario("pop-only")
            killed.extend(_kill_server_side_of_my_connections(lab_info.ports["imaps"]))
            threading.Thread(target=bring_back, daemon=True).start()

    summary = sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")),
                           tmp_path, progress=on_progress, chunk_size=50, backoff=0.2,
                           retries=10, workers=0)
    assert done.wait(timeout=60)
    assert killed
    assert summary.reconnects >= 1
    assert {f.folder: f.rows for f in summary.folders} == server_counts(lab, BENCH)
    keys = frame_keys(tmp_path)
    assert len(keys) == len(set(keys)) == BENCH_COUNT


_KILLABLE = textwrap.dedent("""
    import os, sys
    from mailhat_nb.secrets import Secret
    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings
    port, ca, store, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = ImapSettings("bench@localhost", "localhost", port=port, ca_file=ca)
    sync_account(s, Secret(os.environ["MH_TEST_PW"]), store, chunk_size=40, workers=workers)
""")


def _workers_of(pid: int) -> list[int]:
    """Live parse workers started by process ``pid`` (their argv names the parent)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mailhat_nb.sync.worker" in argv and str(pid).encode() in argv:
            found.append(int(entry))
    return found


def _committed_rows(store: Path) -> int:
    return sum(sum(p.rows for p in st.parts) for st in Store(store).states())


@pytest.mark.parametrize("workers", [0, 1])
def test_sigkill_mid_sync_resumes_without_loss_or_duplicates(
        lab: Lab, lab_info: LabInfo, tmp_path: Path, bench: dict[str, int], workers: int) -> None:
    store = tmp_path / "store"
    script = tmp_path / "killable.py"
    script.write_text(_KILLABLE)
    env = {**os.environ, "MH_TEST_PW": lab.password("bench")}
    seen_partial = []
    for threshold in (150, 900):  # kill twice, at different points
        proc = subprocess.Popen([sys.executable, str(script), str(lab_info.ports["imaps"]),
                                 lab_info.ca_file, str(store), str(workers)], env=env)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if store.is_dir() and _committed_rows(store) >= threshold:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the sync finished before it could be killed"
        children = _workers_of(proc.pid)
        assert len(children) == workers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _workers_of(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _workers_of(proc.pid) == []  # the worker died with its parent
        partial = frame_keys(store)
        seen_partial.append(len(partial))
        assert len(partial) == len(set(partial))  # never a duplicate, even mid-way
        assert threshold <= len(partial) < BENCH_COUNT
    summary = sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")), store)
    assert summary.new == BENCH_COUNT - seen_partial[-1]
    keys = frame_keys(store)
    assert len(keys) == len(set(keys)) == BENCH_COUNT
    assert {f.folder: f.rows for f in summary.folders} == server_counts(lab, BENCH)
    leftovers = [p for p in store.rglob("_tmp-*")]
    assert leftovers == []


def test_big_first_sync_with_a_worker_process(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                              bench: dict[str, int]) -> None:
    summary = sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")),
                           tmp_path, chunk_size=250, workers=1)
    assert summary.rows == BENCH_COUNT
    inline = tmp_path / "inline"
    sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")), inline,
                 chunk_size=250, workers=0)
    a = read_messages(tmp_path).sort_values(["folder", "uid"], ignore_index=True)
    b = read_messages(inline).sort_values(["folder", "uid"], ignore_index=True)
    assert a.equals(b)


# --------------------------------------------------------------------------- the CLI


def test_cli_sync_json_and_the_password_stays_out(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                                  bench: dict[str, int]) -> None:
    password = lab.password("bench")
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "mailhat_nb.cli", "sync", "--email", BENCH, "--server",
           "localhost", "--port", str(lab_info.ports["imaps"]), "--ca-file", lab_info.ca_file,
           "--password-env", "MH_PW", "--store", str(store), "--json"]
    proc = subprocess.run(cmd, env={**os.environ, "MH_PW": password}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["rows"] == BENCH_COUNT
    assert data["account"] == BENCH
    assert password not in proc.stdout + proc.stderr
    for path in store.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    bad = subprocess.run(cmd, env={**os.environ, "MH_PW": password + "x"}, capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert "rejected the login ([AUTHENTICATIONFAILED]" in bad.stderr
    assert "b'" not in bad.stderr
    assert "Traceback" not in bad.stderr
    assert password not in bad.stdout + bad.stderr
    missing = subprocess.run(cmd, env={k: v for k, v in os.environ.items() if k != "MH_PW"},
                             capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2
    assert "MH_PW" in missing.stderr


def test_generated_mailbox_sample_reads_back(lab: Lab, lab_info: LabInfo, tmp_path: Path,
                                            bench: dict[str, int]) -> None:
    sync_account(settings(lab_info, "bench"), Secret(lab.password("bench")), tmp_path)
    df = read_messages(tmp_path)
    rng = random.Random(5)  # noqa: S311 - picks test rows
    rows = df.iloc[rng.sample(range(len(df)), 5)]
    assert rows["date"].notna().all()
    sent = df[df["folder"] == "INBOX.Sent"]
    assert (sent["direction"] == "sent").all()
    assert (df.loc[df["folder"] == "INBOX", "direction"] == "received").all()
    assert df["from_name"].str.contains("[^\\x00-\\x7f]", regex=True).any()  # decoded RFC 2047
