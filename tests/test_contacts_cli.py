"""``mailhat contacts`` on a small store written with the store's own API."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailhat_nb import cli
from mailhat_nb.sync.store import Store

ME = "me@example.com"
T0 = dt.datetime(2022, 1, 3, 9, tzinfo=dt.UTC)


def _row(uid: int, frm: str, to: list[str], role: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uidvalidity": 7, "uid": uid, "message_id": f"m{uid}@x", "folder_role": role,
        "date": T0 + dt.timedelta(hours=uid), "date_source": "header", "date_offset_min": 0,
        "internaldate": T0, "from_addr": frm, "from_name": "", "to_addrs": to,
        "cc_addrs": [], "delivered_to": [], "subject": f"s{uid}", "subject_raw": None,
        "in_reply_to": None, "references": [], "list_id": None, "size": 100, "flags": [],
        "labels": [], "gm_msgid": None, "gm_thrid": None, "defects": [],
    }
    base.update(extra)
    return base


@pytest.fixture
def store(tmp_path: Path) -> Path:
    from mailhat_nb.sync import rows as rowmod
    from mailhat_nb.sync.store import Store

    folders = {
        "INBOX": [_row(1, "ann@x.com", [ME], "inbox", from_name="Ann Lee"),
                  _row(2, "ann@x.com", [ME], "inbox", from_name="Ann Lee"),
                  _row(3, "bob@y.org", [ME, "ann@x.com"], "inbox"),
                  _row(4, "old@me.org", ["ann@x.com"], "inbox")],
        "Sent": [_row(5, ME, ["bob@y.org"], "sent"),
                 _row(6, ME, ["ann@x.com"], "sent", message_id="m1@x")],  # same ID as 1
    }
    for folder, rows in folders.items():
        fs = Store(tmp_path).open_folder(ME, folder)
        fs.commit_state(uidvalidity=7)
        fs.append(rowmod.rows_to_table(rows), [r["uid"] for r in rows])
    return tmp_path


def test_json_csv_and_table(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["contacts", "--store", str(store), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # Message 6 repeats message 1's Message-ID: one message (from Ann), counted once.
    assert [(p["contact"], p["name"], p["sent"], p["received"]) for p in got] == [
        ("ann@x.com", "Ann Lee", 0, 2), ("bob@y.org", None, 1, 1), ("old@me.org", None, 0, 1)]
    assert got[0]["first"] == "2022-01-03T10:00:00+00:00"
    assert cli.main(["contacts", "--store", str(store), "--self", "old@me.org", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "contact,name,sent,received,total,first,last"
    assert lines[1].startswith("ann@x.com,Ann Lee,1,2,3,")  # old@me.org is me now
    assert len(lines) == 3
    assert cli.main(["contacts", "--store", str(store), "--top", "1"]) == 0
    table = capsys.readouterr().out
    assert "me@example.com (login, sent folder)" in table
    assert "ann@x.com" in table
    assert "bob@y.org" not in table


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["contacts", "--store", str(tmp_path / "nowhere")]) == 2
    assert "no store" in capsys.readouterr().err
    assert cli.main(["contacts", "--store", str(tmp_path), "--top", "0"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["contacts", "--store", str(tmp_path), "--json", "--csv"])


def test_an_account_without_mail_has_no_contacts(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    Store(tmp_path).open_folder("me@example.com", "INBOX").commit_state(uidvalidity=1)
    assert cli.main(["contacts", "--store", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["contacts", "--store", str(tmp_path)]) == 0
    assert "no contacts" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "words"), [
    (["--store", ""], "--store is empty"),
    (["--store", "{empty}"], "holds no synced or imported account"),
    (["--store", "{store}", "--account", "nobody@example.com"],
     "holds no account 'nobody@example.com'; it holds: "),
])
def test_not_a_store_or_not_its_account_is_usage_not_no_contacts(
        store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], words: str) -> None:
    # "no contacts" is an answer about the mail, never about a mistyped command.
    argv = [a.format(empty=tmp_path / "empty", store=store) for a in args]
    (tmp_path / "empty").mkdir()
    assert cli.main(["contacts", *argv]) == 2
    captured = capsys.readouterr()
    assert words in captured.err
    assert captured.out == ""


def test_self_must_be_addresses(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("NOT AN ADDRESS", "me", "Me <me@example.com>", "a@b, c@d", "@example.com"):
        assert cli.main(["contacts", "--store", str(store), "--self", bad]) == 2, bad
        err = capsys.readouterr().err
        assert f"--self {bad!r} is not an email address" in err
    assert cli.main(["contacts", "--store", str(store), "--self", " Old@Me.org "]) == 0


# A Google Takeout export: one mbox for all mail; what Gmail calls folders are
# labels in X-Gmail-Labels. Nothing in it says "this is my address" except the
# Sent label and the Delivered-To stamps.
TAKEOUT = b"""\
From 1700000000000000001@xxx Mon Jan 21 10:00:00 +0000 2002
X-GM-THRID: 1700000000000000001
X-Gmail-Labels: Sent
From: Me <me@gmail.com>
To: Friend <friend@example.com>
Subject: lunch?
Date: Mon, 21 Jan 2002 10:00:00 +0000
Message-ID: <a1@mail.gmail.com>

Shall we?

From 1700000000000000002@xxx Mon Jan 21 11:00:00 +0000 2002
X-GM-THRID: 1700000000000000001
X-Gmail-Labels: Inbox,Opened,Category Personal
From: Friend <friend@example.com>
To: me@gmail.com
Subject: Re: lunch?
Date: Mon, 21 Jan 2002 11:00:00 +0000
Message-ID: <b1@example.com>
In-Reply-To: <a1@mail.gmail.com>

Yes.

From 1700000000000000003@xxx Tue Jan 22 09:00:00 +0000 2002
X-GM-THRID: 1700000000000000003
X-Gmail-Labels: Inbox,Opened
Delivered-To: me.old@example.net
From: News <news@lists.example.org>
To: members@lists.example.org
Subject: weekly
Date: Tue, 22 Jan 2002 09:00:00 +0000
Message-ID: <n1@lists.example.org>

News.

From 1700000000000000004@xxx Tue Jan 22 12:00:00 +0000 2002
X-GM-THRID: 1700000000000000004
X-Gmail-Labels: Archived
From: me.old@example.net
To: friend@example.com
Subject: from my old address
Date: Tue, 22 Jan 2002 12:00:00 +0000
Message-ID: <o1@example.net>

Hi from the old address.
"""


def test_takeout_mbox_self_is_the_same_for_direction_and_contacts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mailhat_nb.analysis.load import read_messages
    from mailhat_nb.contacts import own_addresses

    mbox = tmp_path / "All mail Including Spam and Trash.mbox"
    mbox.write_bytes(TAKEOUT)
    store = tmp_path / "store"
    assert cli.main(["import", "--mbox", str(mbox), "--store", str(store)]) == 0
    capsys.readouterr()

    assert cli.main(["contacts", "--store", str(store), "--json"]) == 0
    people = {p["contact"]: (p["sent"], p["received"])
              for p in json.loads(capsys.readouterr().out)}
    # Self never a contact: me@gmail.com (Sent label) and me.old@example.net
    # (Delivered-To); both count as sent to friend@example.com.
    assert people == {"friend@example.com": (2, 1), "news@lists.example.org": (0, 1)}
    assert cli.main(["contacts", "--store", str(store)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == (
        "self: me@gmail.com (sent folder), me.old@example.net (delivered-to)")

    # The frame's direction comes from the very same rule.
    frame = read_messages(store)
    me = set(own_addresses(frame)["address"])
    assert me == {"me@gmail.com", "me.old@example.net"}
    sent = frame["direction"] == "sent"
    assert sent.tolist() == frame["from_addr"].isin(me).tolist() == [True, False, False, True]


def _run(store: Path, stdout: int, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mailhat_nb.cli", "contacts", "--store",
                           str(store)], stdout=stdout, stderr=subprocess.PIPE, check=False,
                          env={**os.environ, **env}, timeout=60)


def test_a_reader_that_went_away_is_not_a_traceback(store: Path) -> None:
    # `mailhat contacts | head -1`: the pipe's reader is gone before we write.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = _run(store, write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == b""


def test_a_terminal_that_cannot_show_unicode_gets_stand_ins(tmp_path: Path) -> None:
    from mailhat_nb.sync import rows as rowmod

    fs = Store(tmp_path).open_folder(ME, "INBOX")
    fs.commit_state(uidvalidity=7)
    fs.append(rowmod.rows_to_table([_row(1, "zoe@x.com", [ME], "inbox", from_name="Zoë Ünï")]),
              [1])
    proc = _run(tmp_path, subprocess.PIPE, PYTHONIOENCODING="ascii")
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert b"Zo\\xeb \\xdcn\\xef" in proc.stdout


def test_exclude_takes_an_address_out_of_self(store: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["contacts", "--store", str(store), "--self", "old@me.org", "--json"]) == 0
    assert "old@me.org" not in {r["contact"] for r in json.loads(capsys.readouterr().out)}
    assert cli.main(["contacts", "--store", str(store), "--self", "old@me.org",
                     "--exclude", "old@me.org", "--json"]) == 0
    assert "old@me.org" in {r["contact"] for r in json.loads(capsys.readouterr().out)}
    assert cli.main(["contacts", "--store", str(store), "--exclude", "not an address"]) == 2
    assert "--exclude 'not an address' is not an email address" in capsys.readouterr().err
