"""Lab users and their mailboxes, written straight into Maildir++.

The demo user ``alice@localhost`` holds one Enron custodian's real mailbox,
shipped in the package (:mod:`mailhat_nb.lab.corpus`, ``enron/<person>/``):
``inbox`` becomes INBOX, every sent-type folder (``sent``, ``sent_items``,
``_sent_mail``) goes into ``INBOX.Sent``, and every other folder keeps its
name (``all_documents``, ``deleted_items``, sub-folders such as
``10_fantasy/requests``). Messages are copied byte for byte; each file's
mtime is set from its Date header, which is what Dovecot reports as
INTERNALDATE for Maildir.

Files are written as the ``mail`` user owns them: Dovecot serves mail as uid 8
and refuses root-owned mail.
"""

from __future__ import annotations

import email.utils
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from mailhat_nb.errors import LabError
from mailhat_nb.lab.corpus import corpus_root
from mailhat_nb.lab.layout import LabPaths
from mailhat_nb.lab.world import USERS as WORLD_USERS

DOMAIN = "localhost"
MAIL_UID = 8  # Debian's `mail` user; Dovecot will not serve root-owned mail
MAIL_GID = 8

#: Lab users (local part -> what their mailbox holds).
USERS: dict[str, str] = {
    "alice": "the demo mailbox: one Enron custodian's real mail",
    "bob": "an empty mailbox that receives the lab's test messages",
    "chloe": "an account whose password is not ASCII",
    "bench": "the generated benchmark mailbox (`mailhat lab generate`)",
}
DEMO_PERSON = "cuilla-m"
SENT_FOLDERS = frozenset({"sent", "sent_items", "_sent_mail"})


# --------------------------------------------------------------------------- users


def _sha512_crypt(passwords: list[str]) -> list[str]:
    """SHA512-CRYPT hashes (``$6$...``) of ``passwords``, in order.

    The one scheme both servers check: Dovecot's SHA512-CRYPT and Exim's
    ``crypteq`` (crypt(3)). OpenSSL computes them; the passwords go through
    its stdin, never its argv.
    """
    proc = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                          input="".join(f"{pw}\n" for pw in passwords).encode("utf-8"),
                          capture_output=True, timeout=60, check=False)
    hashes = proc.stdout.decode("ascii", "replace").split()
    if proc.returncode != 0 or len(hashes) != len(passwords):
        raise LabError("openssl passwd could not hash the lab passwords: "
                       + proc.stderr.decode(errors="replace").strip()[:200])
    return hashes


def new_passwords() -> dict[str, str]:
    """A fresh random password per lab user.

    Random per lab, so nothing committed or printed can log in; ``chloe``'s
    contains non-ASCII letters to exercise ``password_not_ascii``.
    """
    base = {user: "lab-" + secrets.token_urlsafe(12) for user in [*USERS, *WORLD_USERS]}
    base["chloe"] = "Grüße-" + secrets.token_urlsafe(9)
    return base


def write_users(paths: LabPaths, passwords: dict[str, str]) -> dict[str, str]:
    """Write Dovecot's passwd-file and the password file; return address -> hash.

    The passwd-file holds hashes only and is readable by group dovecot; the
    password file (0600, root) is what tests, the demo and lab notebooks read.
    """
    import grp

    hashes = dict(zip((address(user) for user in passwords),
                      _sha512_crypt(list(passwords.values())), strict=True))
    lines = [f"{address}:{digest}::::::" for address, digest in hashes.items()]
    paths.users.write_text("\n".join(lines) + "\n")
    os.chown(paths.users, 0, grp.getgrnam("dovecot").gr_gid)
    paths.users.chmod(0o640)
    paths.secrets.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(paths.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(passwords, fh)
    return hashes


def address(user: str) -> str:
    """The full address of lab user ``user`` (world users live at customer domains)."""
    return f"{user}@{WORLD_USERS.get(user, DOMAIN)}"


def read_passwords(paths: LabPaths) -> dict[str, str]:
    """The lab users' passwords (for tests, the demo and lab notebooks)."""
    try:
        data: dict[str, str] = json.loads(paths.password_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read the lab password file {paths.password_file}") from exc
    return data


# --------------------------------------------------------------------------- maildir


def chown_tree(path: Path, skip: tuple[str, ...] = ()) -> None:
    """Give ``path`` and everything under it to the mail user, but what is in ``skip`` dirs."""
    os.chown(path, MAIL_UID, MAIL_GID)
    for dirpath, dirnames, filenames in os.walk(path):
        if os.path.basename(dirpath) in skip:
            continue
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), MAIL_UID, MAIL_GID)


@dataclass
class MaildirWriter:
    """Writes messages into one user's Maildir++ (folders as ``.Name``).

    Call :meth:`close` (or use as a context manager) to hand the tree to the
    ``mail`` user.
    """

    maildir: Path
    _seq: int = 0

    def __post_init__(self) -> None:
        self._known: set[str] = set()
        self.folder("INBOX")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def folder(self, name: str) -> Path:
        """Create folder ``name`` (``INBOX`` or ``INBOX.a.b``) and return its path."""
        if name == "INBOX":
            path = self.maildir
        else:
            if not name.startswith("INBOX."):
                name = "INBOX." + name
            path = self.maildir / ("." + name[len("INBOX."):])
        if name not in self._known:
            for sub in ("cur", "new", "tmp"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            if name != "INBOX":
                (path / "maildirfolder").touch()
            self._known.add(name)
        return path

    def add(self, folder: str, raw: bytes, when: float, flags: str = "", tag: str = "") -> Path:
        """Store ``raw`` in ``folder`` with INTERNALDATE ``when`` (epoch seconds)."""
        self._seq += 1
        base = f"{int(when)}.M{self._seq}P{os.getpid()}{tag}.lab"
        path = self.folder(folder) / "cur" / f"{base},S={len(raw)}:2,{flags}"
        path.write_bytes(raw)
        os.utime(path, (when, when))
        return path

    def close(self) -> None:
        """Give the whole tree to the mail user (uid 8)."""
        chown_tree(self.maildir.parent)


def _date_of(raw: bytes, fallback: float) -> float:
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.splitlines():
        if line[:5].lower() == b"date:":
            try:
                return email.utils.parsedate_to_datetime(
                    line[5:].decode("latin-1").strip()
                ).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return fallback
    return fallback


def enron_files(person_dir: Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(folder path relative to the person, file)`` in a stable order."""
    for dirpath, dirnames, filenames in os.walk(person_dir):
        dirnames.sort()
        rel = os.path.relpath(dirpath, person_dir)
        if rel == ".":
            continue
        for name in sorted(filenames, key=lambda n: (len(n), n)):
            if not name.startswith("."):
                yield rel, Path(dirpath) / name


def lab_folder_for(enron_folder: str) -> str:
    """Map an Enron folder to its IMAP name in the lab.

    ``inbox`` -> ``INBOX``; ``sent_items`` -> ``INBOX.Sent``;
    ``10_fantasy/requests`` -> ``INBOX.10_fantasy.requests``.
    """
    top = enron_folder.split(os.sep, 1)[0]
    if enron_folder == "inbox":
        return "INBOX"
    if top in SENT_FOLDERS and os.sep not in enron_folder:
        return "INBOX.Sent"
    return "INBOX." + enron_folder.replace(os.sep, ".")


def import_enron(paths: LabPaths, user: str, person: str = DEMO_PERSON,
                 corpus: Path | None = None) -> dict[str, int]:
    """Copy one Enron custodian's mailbox into ``user``'s Maildir.

    Returns
    -------
    dict
        Messages per lab folder, so callers (and tests) know what to expect.
    """
    person_dir = (corpus or corpus_root()) / "enron" / person
    if not person_dir.is_dir():
        raise LabError(
            f"the demo mailbox needs {person_dir}: not in that corpus ($MAILHAT_CORPUS "
            "names another copy; unset, the package's own is used)"
        )
    counts: dict[str, int] = {}
    now = time.time()
    with MaildirWriter(paths.maildir(user)) as writer:
        for rel, file in enron_files(person_dir):
            folder = lab_folder_for(rel)
            raw = file.read_bytes()
            flags = "S" if folder != "INBOX" else ""
            tag = "_" + rel.replace(os.sep, "-") + "-" + file.name
            writer.add(folder, raw, _date_of(raw, now), flags=flags, tag=tag)
            counts[folder] = counts.get(folder, 0) + 1
    return counts


def empty_mailbox(paths: LabPaths, user: str) -> None:
    """Create an empty Maildir for ``user``."""
    MaildirWriter(paths.maildir(user)).close()
