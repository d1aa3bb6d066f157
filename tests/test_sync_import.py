"""``mailhat import`` of a Maildir tree and an mbox file into the store, via the CLI."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
from collections.abc import Callable
from pathlib import Path

import pytest

from mailhat_nb import cli
from mailhat_nb.analysis.load import read_messages
from mailhat_nb.sync.store import Store

PERSON = "cuilla-m"


def files_of(person_dir: Path) -> list[Path]:
    return sorted(p for p in person_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_maildir_import_via_the_cli(corpus: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    person_dir = corpus / "enron" / PERSON
    store = tmp_path / "store"
    assert cli.main(["import", "--maildir", str(person_dir), "--store", str(store),
                     "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    files = files_of(person_dir)
    assert printed["rows"] == len(files)
    assert printed["account"] == PERSON
    df = read_messages(store)
    assert len(df) == len(files)
    assert not df.duplicated(["folder", "uid"]).any()
    by_folder = df.groupby(df["folder"].astype(str)).size().to_dict()
    expected: dict[str, int] = {}
    for f in files:
        key = str(f.parent.relative_to(person_dir))
        expected[key] = expected.get(key, 0) + 1
    assert by_folder == expected
    # An independent look at one message: the stdlib parser on the file itself.
    one = person_dir / "inbox" / "1"
    msg = email.message_from_bytes(one.read_bytes(), policy=email.policy.default)
    row = df[(df["folder"] == "inbox") & (df["uid"] == 1)].iloc[0]
    assert row["message_id"] == str(msg["Message-ID"]).strip("<>")
    assert row["subject"] == str(msg["Subject"])
    assert (df.loc[df["folder"].isin(["sent", "sent_items"]), "direction"] == "sent").all()
    # Importing again replaces, it does not add.
    assert cli.main(["import", "--maildir", str(person_dir), "--store", str(store)]) == 0
    assert "imported 798 messages" in capsys.readouterr().out
    assert len(read_messages(store)) == len(files)


def test_mbox_import_keeps_gmail_labels(corpus: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    source = files_of(corpus / "enron" / PERSON / "inbox")[:40]
    path = tmp_path / "All mail Including Spam and Trash.mbox"
    box = mailbox.mbox(path)
    for i, f in enumerate(source):
        msg = mailbox.mboxMessage(f.read_bytes())
        labels = "Inbox,Opened" if i % 2 else "Sent,Important"
        msg["X-Gmail-Labels"] = labels
        box.add(msg)
    box.flush()
    box.close()
    store = tmp_path / "store"
    assert cli.main(["import", "--mbox", str(path), "--store", str(store),
                     "--account", "me@gmail.example"]) == 0
    assert "imported 40 messages of me@gmail.example" in capsys.readouterr().out
    df = read_messages(store)
    assert len(df) == 40
    assert set(df["account"].astype(str)) == {"me@gmail.example"}
    assert sorted(df["uid"]) == list(range(1, 41))
    labels = {tuple(v) for v in df["labels"]}
    assert labels == {("Inbox", "Opened"), ("Sent", "Important")}
    assert (df["size"] > 0).all()
    state = Store(store).states()[0]
    assert state.source == "mbox"
    assert state.events[-1]["event"] == "imported"


def test_import_needs_an_existing_source(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["import", "--mbox", str(tmp_path / "nope.mbox"),
                     "--store", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["import", "--store", str(tmp_path)])  # one of --mbox / --maildir


@pytest.mark.parametrize(("kind", "make", "words"), [
    ("mbox", lambda p: p.write_text("root:x:0:0:root:/root:/bin/bash\n"),
     "it is not an mbox file"),
    ("mbox", lambda p: p.write_bytes(b""), "the file is empty"),
    ("maildir", lambda p: p.mkdir(), "it holds no Maildir folder"),
    ("maildir", lambda p: [(p / d).mkdir(parents=True) for d in ("cur", "new", "tmp")],
     "its folders are empty"),
])
def test_a_source_without_messages_fails_and_leaves_no_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str,
        make: Callable[[Path], object], words: str) -> None:
    source = tmp_path / "source"
    make(source)
    store = tmp_path / "store"
    assert cli.main(["import", f"--{kind}", str(source), "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert f"no messages found in {source}: {words}" in err
    assert not store.exists()  # nothing was written, not even an empty folder


def test_a_missing_maildir_is_a_usage_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["import", "--maildir", str(tmp_path / "nope"),
                     "--store", str(tmp_path / "store")]) == 2
    assert "--maildir" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_an_empty_folder_beside_full_ones_is_imported(tmp_path: Path) -> None:
    # Only a source with no message at all is refused: an empty Drafts is normal.
    root = tmp_path / "md"
    for folder in (root, root / ".Drafts"):
        for d in ("cur", "new", "tmp"):
            (folder / d).mkdir(parents=True)
    (root / "new" / "1.host").write_bytes(b"From: a@b.c\r\nSubject: x\r\n\r\nhi\r\n")
    assert cli.main(["import", "--maildir", str(root), "--store", str(tmp_path / "s")]) == 0
    states = {s.folder: s.messages for s in Store(tmp_path / "s").states()}
    assert states == {"INBOX": 1, "INBOX.Drafts": 0}


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_an_empty_source_argument_is_usage_not_the_current_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    assert cli.main(["import", f"--{kind}", "", "--store", str(tmp_path / "s")]) == 2
    assert f"--{kind} is empty" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_store_is_not_a_source_and_never_reads_itself(
        corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert cli.main(["import", "--maildir", str(corpus / "enron" / "cuilla-m"),
                     "--store", str(store)]) == 0
    capsys.readouterr()
    assert cli.main(["import", "--maildir", str(store), "--store", str(tmp_path / "s2")]) == 2
    assert "is a mailhat store, not a mail source" in capsys.readouterr().err
    assert cli.main(["import", "--maildir", str(tmp_path), "--store", str(store)]) == 2
    assert "would read its own output" in capsys.readouterr().err


def test_a_directory_where_nothing_looks_like_mail_is_skipped_and_said(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Per directory, not per file: a malformed message among mail still loads.
    root = tmp_path / "src"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "1").write_bytes(b"From: a@b.c\r\nSubject: x\r\n\r\nhi\r\n")
    (root / "inbox" / "2").write_bytes(b"no header at all, just a digest\n\nbody\n")
    (root / "bin").mkdir()
    (root / "bin" / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / "bin" / "notes.txt").write_text("shopping list\n- milk\n")
    assert cli.main(["import", "--maildir", str(root), "--store", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert f"skipped {root / 'bin'}: no file there starts like an email" in out
    assert {s.folder: s.messages for s in Store(tmp_path / "s").states()} == {"inbox": 2}
    only_junk = tmp_path / "junk"
    (only_junk / "x").mkdir(parents=True)
    (only_junk / "x" / "a.bin").write_bytes(b"\x00\x01\x02")
    assert cli.main(["import", "--maildir", str(only_junk), "--store", str(tmp_path / "s3")]) == 1
    assert "none of its files starts like an email" in capsys.readouterr().err
    assert not (tmp_path / "s3").exists()


def test_an_unreadable_state_record_is_imported_anew(
        corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, store = corpus / "enron" / "cuilla-m", tmp_path / "store"
    assert cli.main(["import", "--maildir", str(source), "--store", str(store)]) == 0
    before = len(read_messages(store))
    state = Store(store).folder_path("cuilla-m", "inbox") / "_state.json"
    state.write_text('{"x": 1}')
    capsys.readouterr()
    assert cli.main(["contacts", "--store", str(store)]) == 1
    assert "sets the folder aside" in capsys.readouterr().err
    assert cli.main(["import", "--maildir", str(source), "--store", str(store)]) == 0
    assert "set aside _retired/account=cuilla-m/folder=inbox-damaged-" in capsys.readouterr().out
    assert len(read_messages(store)) == before


def test_undecodable_names_never_reach_the_store(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # A directory named in another encoding: imported, its name shown with "\ufffd".
    root = tmp_path / "src"
    odd = root / "caf\udce9"  # the byte 0xE9 (Latin-1 "é"), as Python hands it over
    odd.mkdir(parents=True)
    (odd / "1").write_bytes(b"From: a@b.c\r\nSubject: x\r\n\r\nhi\r\n")
    assert cli.main(["import", "--maildir", str(root), "--store", str(tmp_path / "s")]) == 0
    assert [s.folder for s in Store(tmp_path / "s").states()] == ["caf\ufffd"]
    # ...while one typed as the account name is refused.
    assert cli.main(["import", "--maildir", str(root), "--store", str(tmp_path / "s2"),
                     "--account", "a\udcffb"]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err


# --------------------------------------------------------------------------- sources add up


def _mbox(path: Path, subjects: list[str], sender: str = "a@b.example") -> Path:
    box = mailbox.mbox(path)
    for i, subject in enumerate(subjects):
        msg = mailbox.mboxMessage()
        msg["From"] = sender
        msg["To"] = "me@gmail.example"
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{path.stem}-{i}-{subject}@x>"
        msg["Date"] = f"Mon, {i + 1} Jan 2024 10:00:00 +0000"
        msg.set_payload("hi\n")
        box.add(msg)
    box.flush()
    box.close()
    return path


def _folders(store: Path, account: str = "me@gmail.example") -> dict[str, int]:
    return {s.folder: s.messages for s in Store(store).states(account) if s.parts}


def test_a_second_source_adds_its_folders_and_only_a_reimport_replaces(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Google Takeout gives one mbox per label: each adds its folder.
    work = _mbox(tmp_path / "work.mbox", ["w1", "w2", "w3"])
    personal = _mbox(tmp_path / "personal.mbox", ["p1", "p2"])
    store = tmp_path / "store"
    for source in (work, personal):
        assert cli.main(["import", "--mbox", str(source), "--store", str(store),
                         "--account", "me@gmail.example"]) == 0
    assert _folders(store) == {"work": 3, "personal": 2}
    assert not (store / "_retired").exists()
    assert len(read_messages(store)) == 5
    # Importing work.mbox again replaces what it imported, and only that.
    work.unlink()
    _mbox(work, ["w1"])
    assert cli.main(["import", "--mbox", str(work), "--store", str(store),
                     "--account", "me@gmail.example"]) == 0
    assert _folders(store) == {"work": 1, "personal": 2}
    assert {s.folder: s.origin for s in Store(store).states()} == {
        "work": str(work.resolve()), "personal": str(personal.resolve())}


def test_a_maildir_reimport_retires_only_its_own_vanished_folders(tmp_path: Path) -> None:
    def tree(root: Path, folders: dict[str, int]) -> Path:
        for name, count in folders.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (root / name / str(i + 1)).write_bytes(
                    f"From: a@b.example\r\nSubject: {name}{i}\r\n\r\nhi\r\n".encode())
        return root

    old = tree(tmp_path / "old", {"inbox": 2, "projects": 1})
    new = tree(tmp_path / "new", {"archive": 4})
    store = tmp_path / "store"
    for source in (old, new):
        assert cli.main(["import", "--maildir", str(source), "--store", str(store),
                         "--account", "me@gmail.example"]) == 0
    assert _folders(store) == {"inbox": 2, "projects": 1, "archive": 4}
    for f in (old / "projects").iterdir():
        f.unlink()
    (old / "projects").rmdir()
    assert cli.main(["import", "--maildir", str(old), "--store", str(store),
                     "--account", "me@gmail.example"]) == 0
    assert _folders(store) == {"inbox": 2, "archive": 4}  # projects retired, archive kept
    assert (store / "_retired").is_dir()


def test_a_folder_another_source_holds_is_never_overwritten(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _mbox(tmp_path / "a" / "Inbox.mbox", ["x1", "x2"])
    second = _mbox(tmp_path / "b" / "Inbox.mbox", ["y1"])
    args = ["--store", str(store), "--account", "me@gmail.example"]
    assert cli.main(["import", "--mbox", str(first), *args]) == 0
    capsys.readouterr()
    assert cli.main(["import", "--mbox", str(second), *args]) == 2
    err = capsys.readouterr().err
    assert f"folder 'Inbox' of me@gmail.example holds what {first.resolve()} imported" in err
    assert "--replace" in err
    assert _folders(store) == {"Inbox": 2}
    assert cli.main(["import", "--mbox", str(second), *args, "--replace"]) == 0
    assert _folders(store) == {"Inbox": 1}
    # A folder a sync stored is the server's: an import never replaces it.
    synced = Store(store).open_folder("me@gmail.example", "Sent")
    synced.commit_state(uidvalidity=5)
    sent = _mbox(tmp_path / "Sent.mbox", ["s1"])
    assert cli.main(["import", "--mbox", str(sent), *args, "--replace"]) == 2
    assert "holds what `mailhat sync` stored" in capsys.readouterr().err
