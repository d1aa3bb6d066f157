"""Sync pieces without a server: settings, error translation, folder choice (Gmail),
rows for the store, progress."""

from __future__ import annotations

import dataclasses
import datetime as dt
import imaplib
import itertools
import socket
import ssl
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient import exceptions as ice

from mailhat_nb.errors import (
    AuthFailed,
    ConnectionLost,
    MailServerError,
    PlaintextRefused,
    UsageError,
)
from mailhat_nb.secrets import Secret
from mailhat_nb.sync import engine, folderjob, rows
from mailhat_nb.sync import imap as imap_module
from mailhat_nb.sync import uids as uid_sets
from mailhat_nb.sync.fetch import FetchedMessage, parse_fetch
from mailhat_nb.sync.imap import (
    CONNECT_TIMEOUT,
    Capabilities,
    FolderInfo,
    ImapSettings,
)
from mailhat_nb.sync.imap_errors import server_text, translate_errors
from mailhat_nb.sync.pipeline import Pending, Pipeline
from mailhat_nb.sync.progress import Progress, Tracker
from mailhat_nb.sync.schema import DERIVED_COLUMNS, store_schema


def test_settings_defaults() -> None:
    s = ImapSettings("Me@Example.COM", "mail.example.com")
    assert (s.login, s.account, s.effective_port) == ("Me@Example.COM", "me@example.com", 993)
    assert ImapSettings("a@b", "h", security="starttls").effective_port == 143
    assert ImapSettings("a@b", "h", username="jdoe").login == "jdoe"
    with pytest.raises(UsageError):
        ImapSettings("a@b", "h", security="tls")  # type: ignore[arg-type]
    # Connecting waits seconds, not the read timeout: a wrong port must be told fast.
    assert s.connect_timeout == CONNECT_TIMEOUT <= 10.0 < s.timeout
    with pytest.raises(UsageError):
        ImapSettings("a@b", "h", connect_timeout=0)


@pytest.mark.parametrize(("exc", "expected"), [
    (ice.LoginError("[AUTHENTICATIONFAILED] hunter2 was wrong"), AuthFailed),
    (imaplib.IMAP4.abort("socket error: EOF"), ConnectionLost),
    (ConnectionResetError(104, "reset"), ConnectionLost),
    (TimeoutError("timed out"), ConnectionLost),
    (ssl.SSLEOFError(8, "EOF"), ConnectionLost),
    (socket.gaierror(-2, "Name or service not known"), MailServerError),
    (imaplib.IMAP4.error("NO [NONEXISTENT] Mailbox doesn't exist"), MailServerError),
])
def test_foreign_errors_are_translated_at_one_boundary(exc: Exception,
                                                       expected: type[Exception]) -> None:
    with pytest.raises(expected) as info, translate_errors("doing x", [Secret("hunter2")]):
        raise exc
    assert info.value.__cause__ is exc  # raise ... from exc: the cause stays inspectable
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith("doing x")


@pytest.mark.parametrize(("exc", "expected"), [
    # imapclient.login: LoginError(str(imaplib_error)) of the server's bytes
    (ice.LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"),
     "[AUTHENTICATIONFAILED] Authentication failed."),
    (imaplib.IMAP4.error("EXAMINE command error: BAD [b'Error in IMAP command: x']"),
     "EXAMINE command error: BAD Error in IMAP command: x"),
    (imaplib.IMAP4.abort("unexpected response: b'220 mail ready'"),
     "unexpected response: 220 mail ready"),
    (imaplib.IMAP4.error(b"NO [UNAVAILABLE] caf\xc3\xa9 closed"), "NO [UNAVAILABLE] café closed"),
    (ice.IMAPClientError("b\"it's broken\""), "it's broken"),
    (ConnectionResetError(104, "Connection reset by peer"),
     "[Errno 104] Connection reset by peer"),
    (TimeoutError(), "TimeoutError"),
])
def test_server_text_is_for_humans(exc: Exception, expected: str) -> None:
    assert server_text(exc) == expected


def test_translated_login_error_has_no_bytes_repr() -> None:
    with pytest.raises(AuthFailed) as info, translate_errors("logging in"):
        raise ice.LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'")
    assert str(info.value) == ("logging in: the server rejected the login "
                               "([AUTHENTICATIONFAILED] Authentication failed.)")


def test_folder_info_carries_no_role_of_its_own() -> None:
    # The role is folders.folder_role's alone (flags first, then the name).
    assert "role" not in {f.name for f in dataclasses.fields(FolderInfo)}
    assert not hasattr(imap_module, "ROLES")


def test_gmail_syncs_all_mail_once_and_others_everything() -> None:
    listed = [
        FolderInfo("INBOX", "/", ("\\HasNoChildren",), True),
        FolderInfo("[Gmail]", "/", ("\\Noselect", "\\HasChildren"), False),
        FolderInfo("[Gmail]/All Mail", "/", ("\\All", "\\HasNoChildren"), True),
        FolderInfo("[Gmail]/Sent Mail", "/", ("\\Sent",), True),
        FolderInfo("Work", "/", (), True),
    ]

    class Session:
        capabilities = Capabilities(frozenset({"IMAP4REV1", "X-GM-EXT-1", "CONDSTORE"}))

    gmail: Any = Session()
    assert [f.name for f in engine._choose_folders(gmail, listed, None)] == ["[Gmail]/All Mail"]
    assert [f.name for f in engine._choose_folders(gmail, listed, ["Work"])] == ["Work"]
    gmail.capabilities = Capabilities(frozenset({"IMAP4REV1"}))
    assert [f.name for f in engine._choose_folders(gmail, listed, None)] == [
        "INBOX", "[Gmail]/All Mail", "[Gmail]/Sent Mail", "Work"]
    with pytest.raises(UsageError, match="no such folder"):
        engine._choose_folders(gmail, listed, ["Nope"])


def stored_rows(msgs: list[FetchedMessage], tmp_path: Path, role: str = "all",
                uidvalidity: int = 3) -> list[dict[str, Any]]:
    """The rows a worker writes for ``msgs`` (the sync's path: job, table, Parquet)."""
    job = rows.ChunkJob.from_messages(msgs, role, uidvalidity, str(tmp_path / "part.parquet"))
    done = rows.process_chunk(job)
    assert done.rows == len(msgs)
    table = pq.read_table(done.tmp_path)
    assert table.column_names == [*store_schema().names, *DERIVED_COLUMNS]
    out: list[dict[str, Any]] = table.to_pylist()
    return out


def test_gmail_labels_and_ids_reach_the_stored_row(tmp_path: Path) -> None:
    parts = [b'* 1 FETCH (X-GM-THRID 17 X-GM-MSGID 42 X-GM-LABELS (\\Inbox "Work stuff") '
             b'UID 9 FLAGS (\\Seen) INTERNALDATE "01-Feb-2024 10:00:00 +0100" RFC822.SIZE 77 '
             b"BODY[HEADER.FIELDS (FROM SUBJECT)] {34}",
             b"From: a@b.example\r\nSubject: x\r\n\r\n", b")"]
    msg = parse_fetch(parts)
    assert msg is not None
    got = stored_rows([msg], tmp_path)[0]
    assert got["labels"] == ["\\Inbox", "Work stuff"]
    assert (got["gm_msgid"], got["gm_thrid"], got["uid"], got["size"]) == (42, 17, 9, 77)
    assert got["internaldate"] == dt.datetime(2024, 2, 1, 9, 0, tzinfo=dt.UTC)
    assert got["flags"] == ["\\Seen"]
    assert got["from_addr"] == "a@b.example"
    assert (got["folder_role"], got["uidvalidity"]) == ("all", 3)


def test_the_servers_gmail_fields_win_over_the_headers_where_it_sent_them(
        tmp_path: Path) -> None:
    # A Takeout message re-uploaded to Gmail carries X-GM-THRID / X-Gmail-Labels
    # headers; what the server says now is the truth, the headers only fill gaps.
    header = b"X-GM-THRID: 5\r\nX-Gmail-Labels: Old,Archived\r\nFrom: a@b.example\r\n\r\n"
    server = FetchedMessage(uid=1, header=header, size=1, gm_msgid=7, gm_thrid=8,
                            gm_labels=("New",))
    silent = FetchedMessage(uid=2, header=header, size=1)
    first, second = stored_rows([server, silent], tmp_path)
    assert (first["gm_msgid"], first["gm_thrid"], first["labels"]) == (7, 8, ["New"])
    assert (second["gm_msgid"], second["gm_thrid"], second["labels"]) == (None, 5,
                                                                          ["Old", "Archived"])
    plain = stored_rows([FetchedMessage(uid=3, header=b"From: a@b.example\r\n\r\n")],
                        tmp_path)[0]
    assert (plain["gm_msgid"], plain["gm_thrid"], plain["labels"]) == (None, None, [])


def test_a_message_without_a_header_block_is_a_flagged_row(tmp_path: Path) -> None:
    msg = FetchedMessage(uid=5, flags=(), internaldate=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                         size=0, header=None)
    got = stored_rows([msg], tmp_path, role="", uidvalidity=1)[0]
    assert got["date_source"] == "internaldate"
    assert got["defects"]


def test_progress_rate_and_eta() -> None:
    now = [100.0]
    seen: list[Progress] = []
    tracker = Tracker(seen.append, clock=lambda: now[0])
    tracker.total = 1000
    now[0] = 102.0
    tracker.advance("INBOX", "fetch", 250)
    last = seen[-1]
    assert (last.done, last.total, last.folder, last.phase) == (250, 1000, "INBOX", "fetch")
    assert last.rate == pytest.approx(125.0)
    assert last.eta == pytest.approx(6.0)
    assert last.fraction == pytest.approx(0.25)
    Tracker(None).advance("x", "fetch", 5)  # no callback: nothing to call, no error


def test_unchanged_needs_every_number_to_match() -> None:
    from mailhat_nb.sync.store import FolderState
    from mailhat_nb.sync.wire import FolderStatus

    state = FolderState("a", "INBOX", uidvalidity=1, uidnext=10, highestmodseq=5, messages=9,
                        complete=True)
    assert folderjob.unchanged(state, FolderStatus(9, 10, 1, 5))
    for other in (FolderStatus(8, 10, 1, 5), FolderStatus(9, 11, 1, 5),
                  FolderStatus(9, 10, 2, 5), FolderStatus(9, 10, 1, 6),
                  FolderStatus(9, 10, 1, None)):  # no CONDSTORE: flags may have changed
        assert not folderjob.unchanged(state, other)
    state.complete = False  # an interrupted sync is never "unchanged"
    assert not folderjob.unchanged(state, FolderStatus(9, 10, 1, 5))


def test_tqdm_bar_follows_the_callback() -> None:
    import io

    from mailhat_nb.sync.progress import TqdmProgress

    out = io.StringIO()
    with TqdmProgress(file=out, mininterval=0) as bar:
        bar(Progress(0, 200, 0.0, None, "", "start", 0.1))
        bar(Progress(150, 200, 1500.0, 0.03, "INBOX.Sent", "fetch", 0.1))
        assert bar._bar.n == 150
        assert bar._bar.total == 200
    assert "INBOX.Sent" in out.getvalue()
    assert "150/200" in out.getvalue()


def test_cli_help_lists_sync_and_import(capsys: pytest.CaptureFixture[str]) -> None:
    from mailhat_nb import cli

    for command in ("sync", "import"):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--email", "--server", "--port", "--security", "--username",
                 "--password-env", "--ca-file", "--folders", "--store", "--json",
                 "--mbox", "--maildir"):
        assert flag in text
    # Passwords on the command line are refused centrally: tests/test_cli.py.


def test_a_chunk_still_held_when_the_sync_is_interrupted_is_dropped_not_a_crash() -> None:
    # Ctrl-C while a chunk waited for a busy worker: on the way out the
    # pipeline drains quietly; the held chunk is lost (its folder stays
    # incomplete, the next run fetches it) instead of an UnboundLocalError.
    class Folder:
        lost_chunks = False

    pipeline = Pipeline(None, {}, Tracker(None))
    job = rows.ChunkJob(role="inbox", uidvalidity=1, tmp_path="/nonexistent", uids=[1],
                        headers=[b"Subject: x\r\n\r\n"], internaldates=[None], sizes=[1],
                        flags=[()])
    folder = Folder()
    pipeline.queue.append(Pending(folder, "part", [1], job))  # type: ignore[arg-type]
    pipeline.waiting = 1
    pipeline.drain(quiet=True)
    assert folder.lost_chunks
    assert (len(pipeline.queue), pipeline.waiting) == (0, 0)


def test_a_parse_worker_that_dies_says_how_and_what_it_said_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailhat_nb.errors import SyncError
    from mailhat_nb.sync.worker import Worker

    job = rows.ChunkJob.from_messages([FetchedMessage(uid=1, header=b"From: a@b\r\n\r\n")],
                                      "inbox", 1, str(tmp_path / "part.parquet"))
    killed = Worker()
    try:
        killed.proc.kill()
        killed.proc.wait()
        with pytest.raises(SyncError, match=r"^a parse worker was killed by SIGKILL \(out of"):
            killed.send(job)
    finally:
        killed.close()
    # A worker that cannot start (here: a stand-in for one whose modules import
    # pandas) ends with a traceback on stderr; its last line becomes the error.
    fake = tmp_path / "fake" / "mailhat_nb" / "sync"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "worker.py").write_text(
        "raise ModuleNotFoundError('mailhat_nb.sync.x imports pandas, which a sync parse "
        "worker must not load')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    monkeypatch.chdir(tmp_path)  # `python -m` looks in the working directory first
    broken = Worker()
    try:
        broken.proc.wait(timeout=60)
        with pytest.raises(SyncError, match=r"^a parse worker exited \(code 1\): "
                                            r"ModuleNotFoundError: mailhat_nb\.sync\.x imports"):
            broken.send(job)  # it is gone already: the first job is refused
    finally:
        broken.close()


# --------------------------------------------------------------------------- login and ranges


_LOGIN_CAPS = ["IMAP4REV1", "SASL-IR", "AUTH=PLAIN", "AUTH=LOGIN", "LOGINDISABLED", "STARTTLS",
               "AUTH=CRAM-MD5", "LITERAL+"]


@given(st.sets(st.sampled_from(_LOGIN_CAPS)), st.booleans(), st.booleans())
def test_the_login_goes_only_where_the_server_takes_it(caps: set[str], encrypted: bool,
                                                       ascii_only: bool) -> None:
    # Decided from what the server listed, whatever else it listed and in any order.
    try:
        method = imap_module.login_method(caps, encrypted=encrypted, ascii_only=ascii_only,
                                          where="h:143 (none)")
    except PlaintextRefused as exc:
        said = str(exc)
        assert not encrypted
        assert "LOGINDISABLED" in caps
        assert "this server refuses passwords without encryption: use ssl or starttls" in said
        return
    except AuthFailed:
        assert "AUTH=PLAIN" not in caps
        assert not ascii_only or "LOGINDISABLED" in caps
        return
    assert encrypted or "LOGINDISABLED" not in caps  # never a password it refuses in clear
    if method == "sasl-ir":
        assert {"SASL-IR", "AUTH=PLAIN"} <= caps
    elif method == "login":
        assert ascii_only
        assert "LOGINDISABLED" not in caps
        assert not {"SASL-IR", "AUTH=PLAIN"} <= caps
    else:
        assert "AUTH=PLAIN" in caps
        assert "SASL-IR" not in caps


@given(st.integers(1, 10_000), st.integers(0, 12_000), st.integers(0, 12_000),
       st.integers(1, 3000), st.booleans())
def test_uid_ranges_cover_the_span_and_beyond_in_bounded_steps(
        lo: int, span: int, expected: int, size: int, small_first: bool) -> None:
    hi = lo + span - 1
    widths = iter([max(1, size // 3)] if small_first else [])

    def width(left: int) -> int:
        return next(widths, size)

    ranges = uid_sets.uid_ranges(lo, hi, expected, size, width)
    if span == 0:
        assert ranges == []
        return
    if span > 2 * expected + size:
        assert ranges is None  # too sparse: a SEARCH says which UIDs there are
        return
    assert ranges is not None
    assert ranges[0][0] == lo
    assert ranges[-1][1] is None  # open: what arrives meanwhile comes too
    for (a, b, w), (c, _, _) in itertools.pairwise(ranges):
        assert b is not None
        assert b - a + 1 == w <= size
        assert c == b + 1  # no gap, no overlap
    assert len(ranges) <= span // max(1, size // 3) + 2
