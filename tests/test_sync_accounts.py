"""``mailhat sync --accounts``: a team's mailboxes synced together, then read as a team.

The lab's alice and bob write to each other and to two outsiders: real
messages, APPENDed over IMAPS into a folder pair of each (``INBOX.Team``,
``INBOX.Team.Sent``) the way delivery and a mail client's "save to Sent"
leave them, deleted again afterwards so the other lab tests see the
mailboxes they expect. One ``mailhat sync --accounts`` syncs both (and a
third account that cannot connect, which fails alone); the team view then
keeps internal mail apart and counts each outside message once.
"""

from __future__ import annotations

import email.message
import email.utils
import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import imapclient
import pytest

from mailhat_nb import cli
from mailhat_nb.errors import UsageError
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.sync.accounts import load_accounts

ALICE, BOB = "alice@localhost", "bob@localhost"
CAROL, DAVE = "carol@client.test", "dave@other.test"
INBOX, SENT = "INBOX.Team", "INBOX.Team.Sent"
T0 = datetime(2024, 2, 5, 9, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- the file


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path


def test_the_accounts_file_is_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = write(tmp_path, """
[[account]]
email = "Alice@Example.com"
server = "imaps://mail.example.com:993"
password_env = "ALICE_PW"
ca_file = "ca.pem"

[[account]]
email = "bob@example.com"
server = "mail.example.com"
port = 143
security = "starttls"
username = "bob"
folders = ["INBOX"]
""")
    from mailhat_nb.commands.sync import _server

    def clean(raw: str, port: int | None) -> tuple[str, int | None]:
        return _server(raw, port)[:2]

    a, b = load_accounts(path, timeout=3.0, dns_server="127.0.0.1:5353", server=clean)
    assert {a.settings.dns_server, b.settings.dns_server} == {"127.0.0.1:5353"}
    assert (a.settings.account, a.settings.host, a.settings.port) == (
        "alice@example.com", "mail.example.com", 993)
    assert a.settings.ca_file == str(tmp_path / "ca.pem")  # relative to the file
    assert (a.password_env, a.folders, a.settings.connect_timeout) == ("ALICE_PW", None, 3.0)
    assert (b.settings.login, b.settings.security, b.folders) == ("bob", "starttls", ("INBOX",))
    assert b.password_env is None  # prompted


@pytest.mark.parametrize(("text", "words"), [
    ("", "holds no [[account]] table"),
    ("[[account]\n", "is not valid TOML"),
    ('[[account]]\nemail = "a@x.com"\n', "account 1: server must be a non-empty string"),
    ('[[account]]\nemail = "a@x.com"\nserver = "x"\nport = "993"\n', "port must be a number"),
    ('[[account]]\nemail = "a@x.com"\nserver = "x"\nsecurity = "tls"\n',
     "security must be ssl, starttls or none"),
    ('[[account]]\nemail = "a@x.com"\nserver = "x"\nsrever = "y"\n', "unknown key 'srever'"),
    ('[[account]]\nemail = "a@x.com"\nserver = "x"\n[[account]]\nemail = "A@x.com"\n'
     'server = "y"\n', "a@x.com is listed twice"),
    ('[[account]]\nemail = "a@x.com"\nserver = "x"\nca_file = "none.pem"\n', "no such file"),
    ('[[account]]\nemail = "a@x.com"\nserver = "x"\nfolders = "INBOX"\n',
     "folders must be a list"),
    ('top = 1\n[[account]]\nemail = "a@x.com"\nserver = "x"\n', "unknown key 'top'"),
])
def test_a_wrong_file_is_usage_naming_the_place(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words.replace("[", r"\[")):
        load_accounts(write(tmp_path, text))


@pytest.mark.parametrize("key", ["password", "Password", "pass", "imap_password"])
def test_a_password_in_the_file_is_refused_without_showing_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str) -> None:
    path = write(tmp_path, f'[[account]]\nemail = "a@x.com"\nserver = "x"\n'
                           f'{key} = "hunter2-secret"\n')
    assert cli.main(["sync", "--accounts", str(path), "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "never read from the accounts file" in err
    assert "hunter2" not in err
    assert not (tmp_path / "s").exists()


def test_one_account_options_do_not_mix_with_a_file(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[[account]]\nemail = "a@x.com"\nserver = "x"\n')
    assert cli.main(["sync", "--accounts", str(path), "--email", "a@x.com",
                     "--store", str(tmp_path / "s")]) == 2
    assert "--email: with --accounts" in capsys.readouterr().err
    assert cli.main(["sync", "--store", str(tmp_path / "s")]) == 2
    assert "--email and --server" in capsys.readouterr().err
    assert cli.main(["sync", "--accounts", str(path), "--jobs", "0",
                     "--store", str(tmp_path / "s")]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- the lab


def message(mid: str, frm: str, to: list[str], hours: int, subject: str) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = frm
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(T0 + timedelta(hours=hours))
    msg["Message-ID"] = f"<{mid}@team.test>"
    msg.set_content(f"{subject}\n")
    return bytes(msg)


#: (message, [(user, folder)] it is filed in). A message between teammates is
#: in the sender's Sent and the recipient's inbox, one Message-ID.
MAIL = [
    (message("c1", CAROL, [ALICE, BOB], 1, "quote please"), [("alice", INBOX), ("bob", INBOX)]),
    (message("a1", ALICE, [BOB], 2, "carol wants a quote"), [("alice", SENT), ("bob", INBOX)]),
    (message("b1", BOB, [ALICE, DAVE], 3, "dave can help"), [("bob", SENT), ("alice", INBOX)]),
    (message("a2", ALICE, [CAROL], 4, "your quote"), [("alice", SENT)]),
    (message("b2", BOB, [CAROL], 5, "details"), [("bob", SENT)]),
    (message("d1", DAVE, [BOB], 6, "happy to"), [("bob", INBOX)]),
]


def client(lab: Lab, info: LabInfo, user: str) -> imapclient.IMAPClient:
    ctx = ssl.create_default_context(cafile=info.ca_file)
    imap = imapclient.IMAPClient("localhost", port=info.ports["imaps"], ssl_context=ctx)
    imap.login(f"{user}@localhost", lab.password(user))
    return imap


def drop_team_folders(imap: imapclient.IMAPClient) -> None:
    for folder in (SENT, INBOX):
        if imap.folder_exists(folder):
            imap.delete_folder(folder)


@pytest.fixture
def team_mail(lab: Lab, lab_info: LabInfo) -> Iterator[None]:
    clients = {user: client(lab, lab_info, user) for user in ("alice", "bob")}
    try:
        for imap in clients.values():
            drop_team_folders(imap)
            imap.create_folder(INBOX)
            imap.create_folder(SENT)
        for raw, places in MAIL:
            for user, folder in places:
                clients[user].append(folder, raw, flags=[b"\\Seen"])
        yield
    finally:
        for imap in clients.values():
            drop_team_folders(imap)
            imap.logout()


@pytest.mark.lab
def test_two_lab_accounts_sync_together_into_one_team(
        lab: Lab, lab_info: LabInfo, team_mail: None, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALICE_PW", lab.password("alice"))
    monkeypatch.setenv("BOB_PW", lab.password("bob"))
    monkeypatch.setenv("NOBODY_PW", "never-sent")
    entry = ('[[account]]\nemail = "{user}@localhost"\nserver = "localhost"\nport = {port}\n'
             'password_env = "{env}"\nfolders = ["{inbox}", "{sent}"]\n')
    accounts = write(tmp_path, "".join([
        entry.format(user="alice", port=lab_info.ports["imaps"], env="ALICE_PW", inbox=INBOX,
                     sent=SENT),
        entry.format(user="bob", port=lab_info.ports["imaps"], env="BOB_PW", inbox=INBOX,
                     sent=SENT),
        entry.format(user="nobody", port=lab_info.ports["closed"], env="NOBODY_PW", inbox=INBOX,
                     sent=SENT),
    ]))
    store = tmp_path / "store"
    argv = ["sync", "--accounts", str(accounts), "--store", str(store),
            "--ca-file", lab_info.ca_file, "--timeout", "5", "--jobs", "2"]
    assert cli.main([*argv, "--json"]) == 1  # one account failed ...
    out = capsys.readouterr()
    result = json.loads(out.out)
    runs = {r["account"]: r for r in result["accounts"]}
    assert result["failed"] == ["nobody@localhost"]
    assert "mailhat diagnose --email nobody@localhost" in runs["nobody@localhost"]["error"]
    # ... alone: the others synced every message of their two folders
    assert {a: runs[a]["rows"] for a in (ALICE, BOB)} == {ALICE: 4, BOB: 5}
    assert runs[ALICE]["error"] is None
    # one progress line per account on stderr (not a terminal here), none a password
    lines = [ln for ln in out.err.splitlines() if ln.startswith(("alice@", "bob@", "nobody@"))]
    assert sorted(ln.split(":")[0] for ln in lines) == [ALICE, BOB, "nobody@localhost"]
    assert lab.password("alice") not in out.err + out.out
    assert lab.password("bob") not in out.err + out.out

    # The team view: carol and dave once each, alice <-> bob apart.
    assert cli.main(["contacts", "--store", str(store), "--json"]) == 0
    people = {p["contact"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(people) == {CAROL, DAVE}
    carol, dave = people[CAROL], people[DAVE]
    assert (carol["sent"], carol["received"]) == (2, 1)   # a2 b2 / c1 (in both inboxes)
    assert carol["accounts"] == {ALICE: {"sent": 1, "received": 1},
                                 BOB: {"sent": 1, "received": 1}}
    assert carol["owner"] == ALICE                         # a tie: the first by name
    assert (dave["sent"], dave["received"], dave["owner"]) == (1, 1, BOB)
    assert dave["accounts"] == {BOB: {"sent": 1, "received": 1}}
    assert cli.main(["contacts", "--store", str(store), "--internal", "--json"]) == 0
    inside = json.loads(capsys.readouterr().out)
    assert [(r["from_account"], r["to_account"], r["messages"]) for r in inside] == [
        (ALICE, BOB, 1), (BOB, ALICE, 1)]
    # One account's view is as it always was: the teammate is a contact there.
    assert cli.main(["contacts", "--store", str(store), "--account", BOB, "--json"]) == 0
    bob_view = {p["contact"]: (p["sent"], p["received"])
                for p in json.loads(capsys.readouterr().out)}
    assert bob_view == {ALICE: (1, 1), CAROL: (1, 1), DAVE: (1, 1)}

    # Again, text output: unchanged mailboxes, one line per account.
    assert cli.main(argv) == 1
    text = capsys.readouterr().out
    assert "2 of 3 accounts synced; failed: nobody@localhost" in text
    assert f"{ALICE}: 0 new" in text
