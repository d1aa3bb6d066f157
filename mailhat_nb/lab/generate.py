"""A generated, realistic mailbox of N messages, for benchmarks and sync tests.

The demo mailbox (one Enron custodian, ~800 messages) is real but small; the
sync engine's speed targets are set on 100,000 messages. This module writes
such a mailbox straight into a lab user's Maildir++, deterministically from a
seed, with the things real mail has and naive parsers trip over:

* about 200 contacts whose traffic follows a Zipf-like law (a few people
  write most of the mail), each with a home time zone and a preferred charset;
* mail sent from the account (``INBOX.Sent``) and received into ``INBOX``,
  ``INBOX.Archive`` (older mail) and ``INBOX.Lists`` (mailing lists, with
  ``List-Id``), plus a little ``INBOX.Trash``;
* threads: replies carry ``In-Reply-To`` and ``References`` and ``Re:``;
* RFC 2047 encoded names and subjects in several charsets (UTF-8, ISO-8859-1,
  -2, -7, -15, KOI8-R, windows-1251, windows-1252, ISO-2022-JP, GB2312,
  Big5), in both B and Q encodings;
* ``Date`` headers in the sender's time zone, spread over three years, and a
  rare message without a ``Date`` or with ``undisclosed-recipients:;``.

Speed matters (100,000 messages generated and indexed in well under a
minute), so messages are built from pre-encoded pieces with string
formatting, and each file is written with four system calls (create, write,
fchown to the ``mail`` user, utime for INTERNALDATE); the Maildir file name
carries the physical and virtual sizes (``,S=``, ``,W=``) so Dovecot never
opens a file to answer ``RFC822.SIZE``. At the end ``doveadm mailbox status``
makes Dovecot scan every folder once, so the first IMAP session does not pay
for building the index.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import datetime as dt
import itertools
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mailhat_nb.errors import LabError, UsageError
from mailhat_nb.lab.mailboxes import DOMAIN, MAIL_GID, MAIL_UID, USERS, MaildirWriter, chown_tree

if TYPE_CHECKING:
    from mailhat_nb.lab.server import Lab

#: Folders the generator fills, in the order :func:`generate_into_lab` reports them.
FOLDERS = ("INBOX", "INBOX.Sent", "INBOX.Archive", "INBOX.Lists", "INBOX.Trash")
START = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
DAYS = 3 * 365
CONTACTS = 200
#: Largest count the generator accepts; far beyond any benchmark, it guards typos.
MAX_COUNT = 2_000_000

# ---------------------------------------------------------------- locales

# (charset, encoding letter, first names, last names, domains, utc offsets in minutes)
_LOCALES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...],
                      tuple[int, ...]], ...] = (
    ("us-ascii", "", ("John", "Mary", "Robert", "Linda", "Michael", "Susan", "David",
                      "Karen", "James", "Lisa", "Kevin", "Nancy"),
     ("Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Clark"),
     ("example.com", "corp.example.com", "mail.example.net"), (-300, -360, -420, -480)),
    ("iso-8859-1", "Q", ("Jürgen", "Björn", "Günther", "Käthe", "Jörg", "Sören"),
     ("Müller", "Weiß", "Schäfer", "Größer", "Bäcker", "Köhler"),
     ("beispiel.de", "firma.example.de"), (60, 120)),
    ("iso-8859-15", "Q", ("Hélène", "François", "Zoë", "Cécile", "Jérôme", "Anaïs"),
     ("Dubois", "Lefèvre", "Bézier", "Chênevert", "Loïc", "Faÿ"),
     ("exemple.fr", "societe.example.fr"), (60, 120)),
    ("utf-8", "Q", ("José", "Begoña", "Ángel", "Iñaki", "María", "Núria"),
     ("Martínez", "Núñez", "Pérez", "Ibáñez", "Gómez", "Muñoz"),
     ("ejemplo.es", "empresa.example.com.mx"), (60, -360, -180)),
    ("iso-8859-2", "Q", ("Łukasz", "Zofia", "Jiří", "Małgorzata", "Paweł", "Žofie"),
     ("Wójcik", "Dąbrowska", "Dvořák", "Kowalczyk", "Němec", "Šťastný"),
     ("przyklad.pl", "firma.example.cz"), (60, 120)),
    ("koi8-r", "B", ("Иван|ivan", "Ольга|olga", "Сергей|sergey", "Наталья|natalya",
                     "Дмитрий|dmitry", "Татьяна|tatyana"),
     ("Петров|petrov", "Смирнова|smirnova", "Кузнецов|kuznetsov", "Попова|popova",
      "Соколов|sokolov", "Морозова|morozova"),
     ("primer.example.ru",), (180, 420)),
    ("windows-1251", "B", ("Олександр|oleksandr", "Ірина|iryna", "Богдан|bohdan"),
     ("Шевченко|shevchenko", "Коваленко|kovalenko"),
     ("pryklad.example.ua",), (120, 180)),
    ("iso-8859-7", "B", ("Νίκος|nikos", "Ελένη|eleni", "Γιώργος|giorgos", "Μαρία|maria"),
     ("Παπαδόπουλος|papadopoulos", "Οικονόμου|oikonomou", "Γεωργίου|georgiou"),
     ("paradeigma.example.gr",), (120, 180)),
    ("iso-2022-jp", "B", ("太郎|taro", "花子|hanako", "健一|kenichi", "由美|yumi"),
     ("山田|yamada", "佐藤|sato", "鈴木|suzuki", "高橋|takahashi"),
     ("rei.example.jp",), (540,)),
    ("gb2312", "B", ("伟|wei", "芳|fang", "娜|na", "强|qiang"),
     ("王|wang", "李|li", "张|zhang", "刘|liu"), ("lizi.example.cn",), (480,)),
    ("big5", "B", ("志明|chiming", "淑芬|shufen"), ("陳|chen", "林|lin", "黃|huang"),
     ("fanli.example.tw",), (480,)),
    ("utf-8", "B", ("Aarav", "Priya", "Ananya"), ("Sharma", "Iyer", "Reddy"),
     ("udaharan.example.in",), (330,)),
    ("windows-1252", "Q", ("Seán", "Siobhán", "Pádraig"), ("Ó Briain", "Ní Dhuibhir"),
     ("sampla.example.ie",), (0, 60)),
)

# (subject, charset) pairs: topics in the languages of the locales above.
_TOPICS: tuple[tuple[str, str], ...] = (
    ("Quarterly report", "us-ascii"), ("Meeting tomorrow at 10", "us-ascii"),
    ("Budget review", "us-ascii"), ("Contract draft v2", "us-ascii"),
    ("Lunch on Friday?", "us-ascii"), ("Server maintenance window", "us-ascii"),
    ("Invoice #{n}", "us-ascii"), ("Travel plans", "us-ascii"),
    ("Project kickoff", "us-ascii"), ("Re-forecast numbers", "us-ascii"),
    ("Besprechung über das Budget", "iso-8859-1"), ("Größenänderung der Tabelle", "utf-8"),
    ("Réunion d'équipe – ordre du jour", "utf-8"), ("Congés d'été", "iso-8859-15"),
    ("Presupuesto del año {n}", "utf-8"), ("Reunión de coordinación", "iso-8859-1"),
    ("Przegląd umowy", "iso-8859-2"), ("Schůzka v úterý", "iso-8859-2"),
    ("Отчёт за квартал", "koi8-r"), ("Встреча в понедельник", "windows-1251"),
    ("Συνάντηση την Τρίτη", "iso-8859-7"), ("会議の件について", "iso-2022-jp"),
    ("季度报告", "gb2312"), ("會議紀錄", "big5"), ("“Smart quotes” in the subject", "windows-1252"),
    ("Café menu 🍕 for the offsite", "utf-8"), ("Naïve question about the déjà vu bug", "utf-8"),
)

_BODY_LINES = (
    "Please find the numbers below; let me know if anything looks off.",
    "Thanks for the quick turnaround on this.",
    "Can we move the call to Thursday afternoon?",
    "I have attached nothing, but imagine a spreadsheet here.",
    "The figures for the last quarter are in line with the forecast.",
    "Let's discuss this at the next team meeting.",
    "Following up on my previous message.",
    "See the thread below for context.",
    "We need sign-off from legal before Friday.",
    "Sounds good to me.",
)

_LISTS = (("dev", "Development list", "lists.example.org"),
          ("announce", "Announcements", "lists.example.org"),
          ("users", "Users' forum", "groups.example.net"))

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def encode_words(text: str, charset: str, letter: str) -> str:
    """RFC 2047 encoded words for ``text`` (pure ASCII text is returned as is).

    Written out rather than taken from :class:`email.header.Header`, which
    renames some charsets (``gb2312`` becomes ``eucgb2312_cn``, ``shift_jis``
    becomes ISO-2022-JP) and so would not produce what real mailers send.
    Long text is split into several words, each at most 75 characters, on
    character boundaries, joined by folding white space (which a decoder
    drops between encoded words).
    """
    if text.isascii() and charset == "us-ascii":
        return text
    letter = letter or "Q"
    words: list[str] = []
    piece = ""
    for ch in text:
        trial = piece + ch
        if len(_one_word(trial, charset, letter)) > 75 and piece:
            words.append(_one_word(piece, charset, letter))
            piece = ch
        else:
            piece = trial
    if piece:
        words.append(_one_word(piece, charset, letter))
    return "\n ".join(words)


def _one_word(text: str, charset: str, letter: str) -> str:
    data = text.encode(charset)
    if letter == "B":
        payload = base64.b64encode(data).decode("ascii")
    else:
        payload = "".join(
            "_" if b == 0x20 else chr(b) if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122)
            else f"={b:02X}" for b in data
        )
    return f"=?{charset}?{letter}?{payload}?="


def _rfc2822_date(when: float, offset_min: int) -> str:
    local = dt.datetime.fromtimestamp(when, dt.UTC) + dt.timedelta(minutes=offset_min)
    sign = "+" if offset_min >= 0 else "-"
    hours, minutes = divmod(abs(offset_min), 60)
    return (f"{_WEEKDAYS[local.weekday()]}, {local.day} {_MONTHS[local.month - 1]} "
            f"{local.year} {local:%H:%M:%S} {sign}{hours:02d}{minutes:02d}")


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Contact:
    """One correspondent: address, display name as it appears on the wire, home zone."""

    addr: str
    header: str  # the mailbox as written in From/To/Cc, name RFC 2047 encoded
    charset: str
    offset_min: int


@dataclass
class _Thread:
    subject: str  # encoded subject of the first message
    message_ids: list[str] = field(default_factory=list)


def make_contacts(rng: random.Random, count: int = CONTACTS) -> list[Contact]:
    """``count`` distinct contacts drawn from the locales, in Zipf rank order."""
    contacts: list[Contact] = []
    seen: set[str] = set()
    while len(contacts) < count:
        charset, letter, firsts, lasts, domains, offsets = rng.choice(_LOCALES)
        first, _, first_latin = rng.choice(firsts).partition("|")
        last, _, last_latin = rng.choice(lasts).partition("|")
        domain = rng.choice(domains)
        # Names in Cyrillic, Greek or CJK carry their romanisation after "|".
        local = f"{first_latin or _ascii_slug(first)}.{last_latin or _ascii_slug(last)}"
        addr = f"{local}@{domain}"
        if addr in seen:
            addr = f"{local}{len(contacts)}@{domain}"
        seen.add(addr)
        name = f"{first} {last}"
        if charset == "us-ascii":
            shown = f'"{name}"' if rng.random() < 0.3 else name
        else:
            # Some mailers use B for everything, some Q: mix within a charset.
            use = letter if rng.random() < 0.8 else ("B" if letter == "Q" else "Q")
            shown = encode_words(name, charset, use)
        header = f"{shown} <{addr}>" if rng.random() < 0.97 else addr
        contacts.append(Contact(addr, header, charset, rng.choice(offsets)))
    return contacts


def _ascii_slug(name: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    plain = "".join(c for c in plain.lower() if c.isalnum())
    if not plain:  # scripts without a Latin decomposition (Cyrillic, CJK, Greek)
        plain = "u" + "".join(f"{ord(c):x}" for c in name[:2])
    return plain


def _zipf_cdf(n: int, exponent: float = 1.07) -> list[float]:
    weights = [1.0 / (rank ** exponent) for rank in range(1, n + 1)]
    total = sum(weights)
    out = list(itertools.accumulate(w / total for w in weights))
    out[-1] = 1.0
    return out


@dataclass(frozen=True)
class GeneratedMessage:
    """One message as the generator made it: where it goes and its bytes."""

    folder: str
    raw: bytes
    internaldate: float
    flags: str


def generate_messages(count: int, seed: int, account: str) -> Iterator[GeneratedMessage]:
    """Yield ``count`` messages for ``account``, oldest first, deterministically.

    Parameters
    ----------
    count:
        How many messages.
    seed:
        The same seed gives byte-identical messages, folders, dates and flags.
    account:
        The mailbox's own address (``From`` of sent mail, ``To`` of received).
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    contacts = make_contacts(rng)
    cdf = _zipf_cdf(len(contacts))
    own_name = account.split("@", 1)[0].capitalize() + " User"
    own_header = f"{own_name} <{account}>"
    own_offset = 60
    host = account.split("@", 1)[1]
    end = START.timestamp() + DAYS * 86400
    # Oldest first: UIDs then follow dates, as in a real mailbox.
    times = sorted(START.timestamp() + rng.random() * DAYS * 86400 for _ in range(count))
    threads: dict[int, list[_Thread]] = {}
    subject_cache: dict[tuple[str, str], str] = {}

    def subject_for(index: int, contact: Contact) -> str:
        text, charset = rng.choice(_TOPICS)
        text = text.replace("{n}", str(2021 + index % 3) if "año" in text else str(1000 + index))
        if charset != "us-ascii" and contact.charset not in ("us-ascii", "utf-8"):
            try:  # the sender's own charset where it can hold the text
                text.encode(contact.charset)
                charset = contact.charset
            except UnicodeEncodeError:
                pass
        key = (text, charset)
        if key not in subject_cache:
            subject_cache[key] = encode_words(text, charset, "B" if charset in (
                "koi8-r", "windows-1251", "iso-8859-7", "iso-2022-jp", "gb2312", "big5")
                else "Q")
        return subject_cache[key]

    for i, when in enumerate(times):
        ci = bisect.bisect_left(cdf, rng.random())
        contact = contacts[ci]
        roll = rng.random()
        is_list = roll < 0.08
        sent = not is_list and roll < 0.33
        # Thread: reply to an earlier conversation with this contact 40% of the time.
        convs = threads.setdefault(ci, [])
        reply_to: _Thread | None = None
        if convs and not is_list and rng.random() < 0.4:
            reply_to = convs[-1] if rng.random() < 0.7 else rng.choice(convs)
        id_host = "lab." + host if sent else contact.addr.split("@", 1)[1]
        msgid = f"<{i:06d}.{seed}.{rng.getrandbits(32):08x}@{id_host}>"
        if reply_to is not None:
            subject = "Re: " + reply_to.subject
            parent = reply_to.message_ids[-1]
            refs = reply_to.message_ids[-10:]
            reply_to.message_ids.append(msgid)
        else:
            subject = subject_for(i, contact)
            parent, refs = "", []
            if not is_list:
                convs.append(_Thread(subject, [msgid]))
                if len(convs) > 8:
                    convs.pop(0)
        cc: list[Contact] = []
        if rng.random() < 0.2:
            cc = [contacts[bisect.bisect_left(cdf, rng.random())] for _ in range(rng.randint(1, 3))]
        date_when = when - rng.randint(2, 90)  # sent a little before it arrived
        if sent:
            folder, flags = "INBOX.Sent", "S"
            from_h, offset = own_header, own_offset
            to_h = ("undisclosed-recipients:;" if rng.random() < 0.005 else contact.header)
        elif is_list:
            lname, ldesc, ldomain = _LISTS[ci % len(_LISTS)]
            folder, flags = "INBOX.Lists", "S" if when < end - 14 * 86400 else ""
            from_h, offset = contact.header, contact.offset_min
            to_h = f"{lname}@{ldomain}"
        else:
            age = end - when
            folder = ("INBOX.Trash" if rng.random() < 0.02
                      else "INBOX.Archive" if age > 730 * 86400 and rng.random() < 0.5
                      else "INBOX")
            flags = "" if age < 30 * 86400 and rng.random() < 0.6 else "S"
            if rng.random() < 0.08:
                flags = "F" + flags
            if reply_to is not None and rng.random() < 0.5:
                flags = flags.replace("S", "RS") if "S" in flags else "R"
            from_h, offset = contact.header, contact.offset_min
            to_h = own_header if rng.random() < 0.9 else account
        lines = []
        if not sent:
            lines.append(f"Return-Path: <{contact.addr}>")
            lines.append(f"Delivered-To: {account}")
            lines.append(f"Received: from mx.{contact.addr.split('@', 1)[1]} "
                         f"(mx.{contact.addr.split('@', 1)[1]} [192.0.2.{ci % 250 + 1}])\n"
                         f"\tby lab.{host} with ESMTPS id {i:08X};\n"
                         f"\t{_rfc2822_date(when, own_offset)}")
        if rng.random() >= 0.001:  # a rare message has no Date at all
            lines.append(f"Date: {_rfc2822_date(date_when, offset)}")
        lines.append(f"From: {from_h}")
        lines.append(f"To: {to_h}")
        if cc:
            lines.append("Cc: " + ",\n ".join(c.header for c in cc))
        lines.append(f"Subject: {subject}")
        lines.append(f"Message-ID: {msgid}")
        if parent:
            lines.append(f"In-Reply-To: {parent}")
            lines.append("References: " + "\n ".join(refs))
        if is_list:
            lname, ldesc, ldomain = _LISTS[ci % len(_LISTS)]
            lines.append(f"List-Id: {ldesc} <{lname}.{ldomain}>")
            lines.append(f"List-Unsubscribe: <mailto:{lname}-leave@{ldomain}>")
        charset = contact.charset if contact.charset not in ("us-ascii", "iso-2022-jp") \
            else "utf-8"
        lines.append("MIME-Version: 1.0")
        lines.append(f"Content-Type: text/plain; charset={charset}")
        lines.append("Content-Transfer-Encoding: 8bit")
        body_lines = [rng.choice(_BODY_LINES) for _ in range(rng.randint(2, 12))]
        text = "\n".join(lines) + "\n\n" + "\n".join(body_lines) + "\n"
        raw = text.encode("utf-8") if not text.isascii() else text.encode("ascii")
        yield GeneratedMessage(folder, raw, when, flags)


# ---------------------------------------------------------------- the lab side


class _FastWriter(MaildirWriter):
    """:class:`MaildirWriter` with a bulk path for many small files.

    Each message costs four system calls (open, write, fchown, futimes) and no
    later tree walk; the file name carries ``,S=`` (bytes on disk) and ``,W=``
    (size with CRLF line ends, what IMAP's RFC822.SIZE reports), so Dovecot
    answers sizes without opening files.
    """

    def add_fast(self, folder: Path, name: str, raw: bytes, when: float) -> None:
        """Write one message file as the mail user, with mtime = INTERNALDATE."""
        path = folder / "cur" / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw)
            os.fchown(fd, MAIL_UID, MAIL_GID)
            os.utime(fd, (when, when))
        finally:
            os.close(fd)

    def close(self) -> None:
        """Chown directories and the ``maildirfolder`` markers.

        Messages are already the mail user's: walking 100,000 files again
        would cost seconds.
        """
        chown_tree(self.maildir.parent, skip=("cur", "new", "tmp"))


def _clear_maildir(maildir: Path) -> None:
    """Delete a Maildir and Dovecot's index files inside it, but not its UIDVALIDITY counter.

    Dovecot keeps its indexes, ``dovecot-uidlist`` and ``dovecot.list.index``
    inside the Maildir, so removing the tree removes them too. The
    ``dovecot-uidvalidity*`` files are kept: they make Dovecot hand out a
    UIDVALIDITY above any it used before, so a client that synced the old
    mailbox sees the change (without them two generations in the same second
    could share a UIDVALIDITY with different messages under the same UIDs).
    """
    if not maildir.exists():
        return
    for entry in maildir.iterdir():
        if entry.name.startswith("dovecot-uidvalidity"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_all(writer: _FastWriter, messages: Iterator[GeneratedMessage]) -> dict[str, int]:
    counts = {name: 0 for name in FOLDERS}
    dirs = {name: writer.folder(name) for name in FOLDERS}
    for seq, msg in enumerate(messages, start=1):
        raw = msg.raw
        vsize = len(raw) + raw.count(b"\n")
        name = f"{int(msg.internaldate)}.G{seq}.lab,S={len(raw)},W={vsize}:2,{msg.flags}"
        writer.add_fast(dirs[msg.folder], name, raw, msg.internaldate)
        counts[msg.folder] += 1
    return counts


def generate_into_lab(lab: Lab, user: str, count: int, seed: int) -> dict[str, int]:
    """Replace lab user ``user``'s mailbox with ``count`` generated messages.

    The user's Maildir (with the Dovecot indexes inside it) is deleted and
    rewritten, the user's IMAP sessions are kicked first so none keeps serving
    the old mailbox, and Dovecot is made to index every folder before this
    returns.

    Parameters
    ----------
    lab:
        A lab whose directory exists (it need not be running to write mail,
        but indexing needs ``doveadm``, which reads the lab config).
    user:
        Local part of a lab user (``bench`` by convention).
    count, seed:
        How many messages, and the seed that makes them reproducible.

    Returns
    -------
    dict
        Folder -> number of messages, every generator folder listed.
    """
    if user not in USERS:
        raise UsageError(f"unknown lab user {user!r}; lab users are {', '.join(USERS)}")
    if not 0 <= count <= MAX_COUNT:
        raise UsageError(f"count must be between 0 and {MAX_COUNT}, not {count}")
    lab.require_lab_dir(f"delete and rewrite {user}'s mailbox in it")
    maildir = lab.paths.maildir(user)
    root = lab.paths.mail.resolve()
    if root not in maildir.resolve().parents:
        raise LabError(f"refusing to delete {maildir}: not under the lab's mail directory")
    login = f"{user}@{DOMAIN}"
    with contextlib.suppress(LabError):  # best effort: the lab may be down
        lab.doveadm("kick", login)
    _clear_maildir(maildir)
    with _FastWriter(maildir) as writer:
        counts = _write_all(writer, generate_messages(count, seed, login))
    index_mailbox(lab, login)
    return counts


def index_mailbox(lab: Lab, login: str, folders: Sequence[str] = ("INBOX", "INBOX.*")) -> None:
    """Make Dovecot scan and index ``login``'s folders now rather than at first login.

    The masks name the namespace explicitly: ``doveadm`` matches ``*`` against
    nothing under the lab's ``INBOX.`` prefix.
    """
    # Two-word doveadm commands take -u after the second word, so it is passed here
    # rather than through ``user=`` (which Lab.doveadm puts after the first word).
    lab.doveadm("mailbox", "status", "-u", login, "messages uidnext uidvalidity", *folders)
