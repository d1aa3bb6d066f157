"""Offline sources: Enron file trees, real Maildir(++) and mbox files into rows."""

from __future__ import annotations

import mailbox
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailhat_nb.analysis.frames import MESSAGE_DTYPES
from mailhat_nb.analysis.load import load_maildir, load_mbox
from mailhat_nb.errors import UsageError
from mailhat_nb.sync.offline import (
    FolderBatch,
    decode_mutf7,
    read_maildir,
    read_mbox,
    uidvalidity_for,
)
from mailhat_nb.sync.parse import parse_headers


def msg(i: int, frm: str = "friend@example.com", to: str = "me@example.com", **hdr: str) -> bytes:
    extra = "".join(f"{k.replace('_', '-')}: {v}\n" for k, v in hdr.items())
    return (
        f"Date: Tue, 1 Jul 2003 10:{i % 60:02d}:00 +0000\nFrom: {frm}\nTo: {to}\n"
        f"Subject: message {i}\nMessage-ID: <{i}@example.com>\n{extra}\nbody {i}\n"
    ).encode()


# --------------------------------------------------------------------------- Enron


def enron_folders(person_dir: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path in person_dir.rglob("*"):
        if path.is_file():
            out.setdefault(path.parent.relative_to(person_dir).as_posix(), []).append(path)
    return out


@pytest.mark.parametrize("person", ["badeer-r", "cuilla-m", "dean-c", "delainey-d"])
def test_enron_tree_one_row_per_file(corpus: Path, person: str) -> None:
    person_dir = corpus / "enron" / person
    expected = enron_folders(person_dir)
    seen: dict[str, FolderBatch] = {}
    for batch in read_maildir(person_dir, account=person):
        assert batch.final
        assert batch.folder not in seen
        seen[batch.folder] = batch
    assert set(seen) == set(expected)
    for folder, batch in seen.items():
        files = {int(p.name.rstrip("._")): p for p in expected[folder]}
        assert [r["uid"] for r in batch.rows] == sorted(files)  # CMU's numbers, gaps kept
        assert batch.uidvalidity == uidvalidity_for(folder)
        for r in batch.rows:
            path = files[r["uid"]]
            data = path.read_bytes()  # CRLF headers, mostly LF bodies: IMAP counts CRLF
            assert r["size"] == len(data) + data.count(b"\n") - data.count(b"\r\n")
            assert r["folder"] == folder
            assert r["account"] == person
            assert r["flags"] == []
            assert r["folder_role"] == batch.folder_role
            assert r["internaldate"] == datetime.fromtimestamp(path.stat().st_mtime, UTC)
            assert r["message_id"] == parse_headers(path.read_bytes())["message_id"]
    roles = {f: b.folder_role for f, b in seen.items()}
    assert {f for f, r in roles.items() if r == "sent"} == {
        f for f in seen if f in ("sent", "sent_items", "_sent_mail")
    }
    assert roles["inbox"] == "inbox"
    assert roles["all_documents"] == "all"


def test_enron_subfolder_and_batches(corpus: Path) -> None:
    person_dir = corpus / "enron" / "cuilla-m"
    batches = list(read_maildir(person_dir, "cuilla-m", batch_size=25))
    names = [b.folder for b in batches]
    assert "10_fantasy/requests" in names
    by_folder: dict[str, list[FolderBatch]] = {}
    for b in batches:
        by_folder.setdefault(b.folder, []).append(b)
    for folder, parts in by_folder.items():
        assert [p.final for p in parts] == [False] * (len(parts) - 1) + [True], folder
        assert all(len(p.rows) == 25 for p in parts[:-1])
        assert 0 < len(parts[-1].rows) <= 25
        uids = [r["uid"] for p in parts for r in p.rows]
        assert uids == sorted(uids)


def test_enron_reads_are_stable(corpus: Path) -> None:
    person_dir = corpus / "enron" / "badeer-r"

    def keys() -> list[tuple[str, int, int, str]]:
        return [(r["folder"], r["uidvalidity"], r["uid"], r["message_id"])
                for b in read_maildir(person_dir, "x") for r in b.rows]  # fmt: skip

    first = keys()
    assert first == keys()
    assert len({(f, u) for f, _, u, _ in first}) == len(first) == 877


def test_load_maildir_delainey(corpus: Path) -> None:
    df = load_maildir(corpus / "enron" / "delainey-d", "delainey-d")
    assert len(df) == 3566
    assert all(df[c].dtype == d for c, d in MESSAGE_DTYPES.items())
    sent_from = set(df.loc[df["folder_role"] == "sent", "from_addr"])
    # README: the assistant and the alias send from his Sent folders too
    assert {"david.delainey@enron.com", "w..delainey@enron.com", "kay.chapman@enron.com"} <= (
        sent_from
    )
    assert (df.loc[df["folder_role"] == "sent", "direction"] == "sent").all()
    inbox = df[df["folder"] == "inbox"]
    assert (inbox["direction"] == "received").sum() > 0
    # "account" is not an address here, so self comes from the Sent folders only
    df2 = load_maildir(corpus / "enron" / "delainey-d", "delainey-d", self_addrs=["x@y"])
    assert (df2["direction"] == "sent").sum() == (df["direction"] == "sent").sum()


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        list(read_maildir(tmp_path / "nope", "a"))
    with pytest.raises(UsageError, match="batch_size"):
        list(read_maildir(tmp_path, "a", batch_size=0))


# --------------------------------------------------------------------------- Maildir


def deliver(folder: Path, sub: str, name: str, raw: bytes, mtime: float) -> Path:
    for d in ("cur", "new", "tmp"):
        (folder / d).mkdir(parents=True, exist_ok=True)
    path = folder / sub / name
    path.write_bytes(raw)
    os.utime(path, (mtime, mtime))
    return path


def test_maildir_plus_plus_with_dovecot_uidlist(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    t0 = 1_000_000_000
    deliver(root, "cur", f"{t0}.M1P1.host,S=200,W=210:2,SR", msg(1), t0)
    deliver(root, "new", f"{t0 + 5}.M2P1.host,S=200", msg(2), t0 + 5)
    deliver(root, "cur", f"{t0 + 9}.M3P1.host,S=200:2,FS", msg(3), t0 + 9)  # not yet listed
    (root / "dovecot-uidlist").write_text(
        "3 V1712345678 N12 G0123456789abcdef\n"
        f"10 W777 :{t0}.M1P1.host,S=200,W=210\n"
        f"11 :{t0 + 5}.M2P1.host,S=200\n"
    )
    sent = root / ".Sent"
    deliver(sent, "cur", f"{t0 + 20}.M4P1.host:2,S", msg(4, frm="Me@Example.com"), t0 + 20)
    (sent / "maildirfolder").touch()
    drafts = root / ".Entw&APw-rfe"  # modified UTF-7 for "Entwürfe"
    deliver(drafts, "cur", f"{t0 + 30}.M5P1.host:2,DS", msg(5, frm="me@example.com"), t0 + 30)
    (root / "tmp" / "in-delivery").write_bytes(b"partial")  # never read
    (root / "subscriptions").write_text("Sent\n")

    batches = {b.folder: b for b in read_maildir(root, "me@example.com")}
    assert set(batches) == {"INBOX", "INBOX.Sent", "INBOX.Entwürfe"}
    inbox = batches["INBOX"]
    assert inbox.uidvalidity == 1712345678
    assert inbox.folder_role == "inbox"
    rows = {r["uid"]: r for r in inbox.rows}
    assert sorted(rows) == [10, 11, 12]  # listed uids; the unlisted file after N12
    assert rows[10]["size"] == 777  # the uidlist's W (IMAP RFC822.SIZE) wins
    assert rows[10]["flags"] == ["\\Answered", "\\Seen"]
    assert rows[11]["flags"] == []  # in new/: unseen
    assert rows[11]["size"] == len(msg(2)) + msg(2).count(b"\n")  # counted with CRLF
    assert rows[12]["flags"] == ["\\Flagged", "\\Seen"]
    assert rows[10]["internaldate"] == datetime.fromtimestamp(t0, UTC)
    assert rows[12]["message_id"] == "3@example.com"
    sent_b = batches["INBOX.Sent"]
    assert sent_b.folder_role == "sent"
    assert sent_b.uidvalidity == uidvalidity_for("INBOX.Sent")
    assert [r["uid"] for r in sent_b.rows] == [1]
    assert batches["INBOX.Entwürfe"].folder_role == "drafts"
    assert batches["INBOX.Entwürfe"].rows[0]["flags"] == ["\\Draft", "\\Seen"]

    df = load_maildir(root, "me@example.com")
    assert len(df) == 5
    sent_rows = df[df["folder"] == "INBOX.Sent"]
    assert sent_rows["direction"].tolist() == ["sent"]  # "Me@Example.com" is self
    assert (df.loc[df["folder"] == "INBOX", "direction"] == "received").all()


def test_single_maildir_folder_without_uidlist(tmp_path: Path) -> None:
    box = tmp_path / "box"
    for i, t in enumerate([300, 100, 200]):
        deliver(box, "cur", f"{t}.M{i}P1.h:2,", msg(i), t)
    (batch,) = list(read_maildir(box, "a"))
    assert batch.folder == "INBOX"
    # positions in file-name order (delivery time first)
    assert [(r["uid"], r["internaldate"].timestamp()) for r in batch.rows] == [
        (1, 100), (2, 200), (3, 300),
    ]  # fmt: skip


def test_empty_folder_still_reports_itself(tmp_path: Path) -> None:
    for d in ("cur", "new", "tmp"):
        (tmp_path / "m" / d).mkdir(parents=True)
    (batch,) = list(read_maildir(tmp_path / "m", "a"))
    assert batch.rows == []
    assert batch.final
    assert batch.folder == "INBOX"


def test_mutf7() -> None:
    assert decode_mutf7("Entw&APw-rfe") == "Entwürfe"
    assert decode_mutf7("&ZeVnLIqe-") == "日本語"
    assert decode_mutf7("a&-b") == "a&b"
    assert decode_mutf7("bad&!!-x") == "bad&!!-x"


# --------------------------------------------------------------------------- mbox


def test_mbox_takeout(tmp_path: Path) -> None:
    path = tmp_path / "All mail Including Spam and Trash.mbox"
    box = mailbox.mbox(path)
    box.add(mailbox.mboxMessage(msg(1, X_GM_THRID="1650000000000000001",
                                    X_Gmail_Labels="Inbox,Opened,Category Updates")))  # fmt: skip
    sent = mailbox.mboxMessage(
        msg(2, frm="Me <me@gmail.com>", to="friend@example.com", X_Gmail_Labels="Sent,Opened")
        + b"From here on, a body line that looks like a separator\n"
    )
    sent.set_from("1234567890@xxx", datetime(2003, 7, 1, 10, 2).timetuple())
    box.add(sent)
    box.add(mailbox.mboxMessage(msg(3, X_Gmail_Labels='Inbox,Unread,"Work, 2024",Starred')))
    box.flush()
    box.close()

    (batch,) = list(read_mbox(path, "me@gmail.com"))
    assert batch.folder == "All mail Including Spam and Trash"
    assert batch.folder_role == "all"
    assert [r["uid"] for r in batch.rows] == [1, 2, 3]
    r1, r2, r3 = batch.rows
    assert r1["labels"] == ["Inbox", "Opened", "Category Updates"]
    assert r1["gm_thrid"] == 1650000000000000001
    assert r1["flags"] == ["\\Seen"]
    assert r2["internaldate"] == datetime(2003, 7, 1, 10, 2, tzinfo=UTC)
    assert r3["labels"] == ["Inbox", "Unread", "Work, 2024", "Starred"]
    assert r3["flags"] == ["\\Flagged"]
    assert all(r["size"] > 0 for r in batch.rows)
    df = load_mbox(path, "not-an-address")
    assert df["direction"].tolist() == ["received", "sent", "received"]  # Sent label = self
    assert df["labels"].dtype == MESSAGE_DTYPES["labels"]


def test_mbox_status_headers_and_escaped_from_lines(tmp_path: Path) -> None:
    path = tmp_path / "old.mbox"
    path.write_bytes(
        b"From a@b Mon Jan 21 10:00:00 2002\n" + msg(1, Status="RO", X_Status="A")
        + b">From a quoted line\nFrom the body, no date here\n\n"
        + b"From c@d Tue Jan 22 11:00:00 2002\n" + msg(2, X_Mozilla_Status="0005")
    )  # fmt: skip
    (batch,) = list(read_mbox(path, "me", folder="Old"))
    assert batch.folder == "Old"
    first = (
        msg(1, Status="RO", X_Status="A") + b">From a quoted line\nFrom the body, no date here\n"
    )
    second = msg(2, X_Mozilla_Status="0005")
    sizes = [len(first) + first.count(b"\n"), len(second) + second.count(b"\n")]
    assert [r["size"] for r in batch.rows] == sizes
    assert [r["message_id"] for r in batch.rows] == ["1@example.com", "2@example.com"]
    assert batch.rows[0]["flags"] == ["\\Answered", "\\Seen"]
    assert batch.rows[1]["flags"] == ["\\Flagged", "\\Seen"]
    assert batch.rows[1]["internaldate"] == datetime(2002, 1, 22, 11, tzinfo=UTC)


def test_mbox_of_the_quirks_corpus(tmp_path: Path, corpus: Path) -> None:
    """192 quirks files start with a From_ line: as one mbox, the same rows come back."""
    files = sorted(p for p in (corpus / "quirks").rglob("*") if p.is_file()
                   and re.match(rb"From (?![ \t]*:)", p.read_bytes()))  # fmt: skip
    assert len(files) == 262  # 263 start with "From ", one of them a header ("From  :")
    # Written by hand: mailbox.mbox re-generates messages (refolds headers).
    with open(tmp_path / "q.mbox", "wb") as out:
        for p in files:
            raw = p.read_bytes()
            first, _, rest = raw.partition(b"\n")
            body = b"\n".join(b">" + line if line.startswith(b"From ") else line
                              for line in rest.split(b"\n"))  # fmt: skip
            out.write(first + b"\n" + body + (b"" if body.endswith(b"\n") else b"\n") + b"\n")
    rows = [r for b in read_mbox(tmp_path / "q.mbox", "q", batch_size=40) for r in b.rows]
    assert len(rows) == len(files)
    for p, r in zip(files, rows, strict=True):
        alone = parse_headers(p.read_bytes())
        assert (r["message_id"], r["subject"], r["date"]) == (
            alone["message_id"], alone["subject"], alone["date"],
        ), p  # fmt: skip


def test_empty_and_missing_mbox(tmp_path: Path) -> None:
    (tmp_path / "e.mbox").write_bytes(b"")
    (batch,) = list(read_mbox(tmp_path / "e.mbox", "a"))
    assert batch.rows == []
    assert batch.folder == "e"
    with pytest.raises(UsageError, match="cannot open"):
        list(read_mbox(tmp_path / "missing.mbox", "a"))
