r"""Offline sources: ``messages`` rows from a Maildir tree or an mbox file.

So analysis works without a server (an export, a backup, the Enron corpus),
and so ``mailhat import`` and the contacts tests get the very rows an IMAP
sync would give: same parser, same columns, same row key.

API
---
``read_maildir(path, account, *, batch_size=10_000) -> Iterator[FolderBatch]``
    A Maildir / Maildir++ tree (``cur/`` ``new/``, sub-folders ``.Name``), or a
    tree of plain message files such as ``corpus/enron/<person>/`` (one file
    per message, ``<folder>/<sub-folder>/<n>``), or a mix.
``read_mbox(path, account, *, folder=None, batch_size=10_000) -> Iterator[FolderBatch]``
    One mbox file (mboxo/mboxrd, e.g. a Google Takeout export).

The same mail as one ``messages`` frame, with ``direction``: the analysis
side's ``load_maildir`` and ``load_mbox`` (:mod:`mailhat_nb.analysis.load`).

``FolderBatch(folder, folder_role, uidvalidity, rows, source, final)``: rows
of one folder, at most ``batch_size`` of them, in uid order; ``final`` is True
on the folder's last batch (a store can checkpoint per batch and mark the
folder complete on the final one). Every row holds the parse fields of
:func:`mailhat_nb.sync.parse.parse_headers` plus ``account, folder,
folder_role, uidvalidity, uid, size, flags, internaldate``.

Folder names, uids, uidvalidity, size, flags, internaldate
----------------------------------------------------------
- **Plain files** (Enron): folder = path relative to ``path`` with ``/``
  (``inbox``, ``10_fantasy/requests``); uid = the number in the file name
  (``1``, ``1.``, ``1_``: CMU's numbering, stable even across the gaps of
  upstream deletions), else the 1-based position in natural sort order;
  flags ``[]`` (unknown); internaldate = file mtime.
- **Maildir**: the root is ``INBOX``, ``.Sent.2020`` is ``INBOX.Sent.2020``
  (Dovecot/cPanel's ``INBOX.`` namespace, as the lab and HostGator show it
  over IMAP), modified UTF-7 decoded (``.Entw&APw-rfe`` -> ``INBOX.Entwürfe``).
  When Dovecot's ``dovecot-uidlist`` is there, uid, UIDVALIDITY and size
  (``W=``, the CRLF size IMAP reports as RFC822.SIZE) come from it, so the
  rows key exactly like an IMAP sync of the same Maildir; files it does not
  list yet get uids after its next uid. Without it: uids are positions in
  file-name order (Maildir names start with the delivery time, so new mail
  sorts last). Flags from the ``:2,`` info (``S`` -> ``\Seen``, ``R`` ->
  ``\Answered``, ``F`` -> ``\Flagged``, ``T`` -> ``\Deleted``, ``D`` ->
  ``\Draft``, ``P`` -> ``$Forwarded``); size from ``,W=``, else counted (below);
  internaldate = file mtime (what Dovecot reports).
- **mbox**: folder = the file name without ``.mbox``; uid = 1-based position;
  internaldate = the ``From_`` line date; flags
  from ``Status``/``X-Status``/``X-Mozilla-Status`` headers, or Gmail labels
  (``Opened`` -> ``\Seen``, ``Starred`` -> ``\Flagged``); Takeout's
  ``X-Gmail-Labels`` are kept in ``labels`` and ``X-GM-THRID`` in ``gm_thrid``.
- size is RFC822.SIZE as IMAP reports it (line endings counted as CRLF), so
  it matches a sync of the same mail; from the uidlist's ``W`` or the file
  name's ``,W=`` when Dovecot recorded it, else counted (a message over 64 KB
  that was read only up to its header keeps its size on disk).
- UIDVALIDITY, when no server assigned one, is a CRC-32 of the folder name:
  stable across runs and machines, different per folder.

One process: measured on the Enron files, worker processes were slower,
because pickling the row dicts back to the parent costs more than a second
core saves.
"""

from __future__ import annotations

import mmap
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

from mailhat_nb.checks import as_text
from mailhat_nb.errors import UsageError
from mailhat_nb.sync.folders import folder_role
from mailhat_nb.sync.parse import parse_headers
from mailhat_nb.sync.parse.dates import parse_asctime

Row = dict[str, Any]

#: Maildir info letters -> IMAP flags (Dovecot's mapping; P has no IMAP system flag).
MAILDIR_FLAGS: Final[dict[str, str]] = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
_NOT_MESSAGES: Final = frozenset(
    {"maildirfolder", "maildirsize", "subscriptions", "courierimapsubscribed",
     "courierimapuiddb", "courierimapkeywords", "dovecot-keywords", "dovecot-uidlist",
     "dovecot-uidvalidity"}
)  # fmt: skip
_NUMBERED_RE: Final = re.compile(r"(\d+)[._]?")
_NATURAL_RE: Final = re.compile(r"(\d+)")
_HEAD_CHUNK: Final = 64 * 1024


@dataclass(slots=True)
class FolderBatch:
    """Rows of one folder (all of them, or ``batch_size`` of them)."""

    folder: str
    folder_role: str
    uidvalidity: int
    rows: list[Row] = field(default_factory=list)
    source: str = ""
    final: bool = True
    #: a directory of files none of which starts like a message (see
    #: :func:`_looks_like_mail`): reported, never stored as a folder
    not_mail: bool = False


def uidvalidity_for(folder: str) -> int:
    """A stable, non-zero 31-bit UIDVALIDITY for a folder without a server."""
    return (zlib.crc32(folder.encode("utf-8")) & 0x7FFFFFFF) or 1


def decode_mutf7(name: str) -> str:
    """A Maildir++ folder name in IMAP modified UTF-7, decoded; anything else as it is.

    imapclient's decoder (the one the IMAP side uses) on the 7-bit names
    Dovecot writes; a name that is not valid modified UTF-7 (or not ASCII,
    so not modified UTF-7 at all) is kept.
    """
    if "&" not in name or not name.isascii():
        return name
    from imapclient import imap_utf7

    try:
        decoded: str = imap_utf7.decode(name.encode("ascii"))
    except UnicodeDecodeError:
        return name
    return decoded


def _read_head(path: str) -> bytes:
    """The first 64 KB of a file, or all of it when the header is longer."""
    with open(path, "rb") as fh:
        data = fh.read(_HEAD_CHUNK)
        if len(data) == _HEAD_CHUNK and b"\n\n" not in data and b"\n\r\n" not in data:
            data += fh.read()
    return data


def _looks_like_mail(path: str) -> bool:
    """Whether a file starts like a message: a header field before the first blank line.

    Used per *directory*, never per file: one malformed message among mail is
    still a message (a flagged row; the quirks corpus has a digest with no
    header at all), but a directory where no file starts like mail (a
    program's data, a wrong ``--maildir``) is not a mail folder.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError:
        return False
    if head.startswith(b"From "):
        return True
    block = re.split(rb"\r?\n\r?\n", head, maxsplit=1)[0]
    return any(_FIELD_RE.match(line) for line in block.splitlines())


def _crlf_size(data: bytes, file_size: int) -> int:
    """RFC822.SIZE as an IMAP server reports it: every line ending counted as CRLF.

    Exact when ``data`` is the whole message; a file larger than what was
    read (> 64 KB of header-less reading) keeps its size on disk.
    """
    if len(data) != file_size:
        return file_size
    return file_size + data.count(b"\n") - data.count(b"\r\n")


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in _NATURAL_RE.split(name)]


def _batches(
    folder: str, role: str, uidvalidity: int, rows: Iterable[Row], source: str, size: int
) -> Iterator[FolderBatch]:
    """Cut one folder's rows into batches; only the last says ``final``.

    An empty folder still yields one (empty, final) batch: a store must learn
    that the folder exists and holds nothing.
    """
    it = iter(rows)
    batch = FolderBatch(folder, role, uidvalidity, list(islice(it, size)), source, final=False)
    # one batch of look-ahead, to know which is last
    while chunk := list(islice(it, size)):
        yield batch
        batch = FolderBatch(folder, role, uidvalidity, chunk, source, final=False)
    batch.final = True
    yield batch


def _row(
    raw: bytes, *, account: str, folder: str, role: str, uidvalidity: int, uid: int,
    size: int, flags: list[str], internaldate: datetime | None,
) -> Row:  # fmt: skip
    row = parse_headers(raw, internaldate=internaldate)
    row.update(account=account, folder=folder, folder_role=role, uidvalidity=uidvalidity,
               uid=uid, size=size, flags=flags, internaldate=internaldate)
    return row


# --------------------------------------------------------------------------- Maildir


def _uidlist(path: Path) -> tuple[int | None, int, dict[str, tuple[int, int | None]]]:
    """Dovecot's ``dovecot-uidlist``: (uidvalidity, next uid, base name -> (uid, vsize))."""
    try:
        lines = path.read_text("utf-8", "replace").splitlines()
    except OSError:
        return None, 1, {}
    validity: int | None = None
    next_uid = 1
    try:
        head = lines[0].split()  # IndexError on an empty file, as on an empty first line
        if head[0] == "1" and len(head) >= 3:
            validity, next_uid = int(head[1]), int(head[2])
        else:
            for tok in head[1:]:
                if tok[:1] == "V":
                    validity = int(tok[1:])
                elif tok[:1] == "N":
                    next_uid = int(tok[1:])
    except (ValueError, IndexError):
        return None, 1, {}
    known: dict[str, tuple[int, int | None]] = {}
    for line in lines[1:]:
        meta, sep, name = line.partition(" :")
        parts = meta.split()
        if not sep:  # version 1: "<uid> <file name>"
            parts, name = line.split()[:1], line.split()[-1] if line.split() else ""
        if not parts or not parts[0].isdigit() or not name:
            continue
        vsize = next((int(p[1:]) for p in parts[1:] if p[:1] == "W" and p[1:].isdigit()), None)
        known[name.split(":", 1)[0]] = (int(parts[0]), vsize)
        next_uid = max(next_uid, int(parts[0]) + 1)
    return validity, next_uid, known


def _maildir_info(name: str) -> tuple[str, list[str], int | None]:
    """(base name, flags, W= size) of a Maildir file name ``base:2,FLAGS``."""
    base, _, info = name.partition(":")
    flags = sorted(
        {MAILDIR_FLAGS[c] for c in info[2:] if c in MAILDIR_FLAGS} if info.startswith("2,") else ()
    )
    sizes = [int(p[2:]) for p in base.split(",")[1:] if p.startswith("W=") and p[2:].isdigit()]
    return base, flags, sizes[-1] if sizes else None


def _maildir_rows(
    folder_dir: Path, *, account: str, folder: str, role: str
) -> tuple[int, Iterator[Row]]:
    validity, next_uid, known = _uidlist(folder_dir / "dovecot-uidlist")
    files: list[tuple[str, str]] = []  # (name, path)
    for sub in ("cur", "new"):
        try:
            with os.scandir(folder_dir / sub) as it:
                files.extend(
                    (e.name, e.path) for e in it if not e.name.startswith(".") and e.is_file()
                )
        except OSError:
            continue
    files.sort()
    keyed: list[tuple[int, str, list[str], int | None]] = []
    extra = 0
    for pos, (name, path) in enumerate(files, start=1):
        base, flags, size = _maildir_info(name)
        if "/new/" in path.replace(os.sep, "/"):
            flags = [f for f in flags if f != "\\Seen"]
        if known and base in known:
            uid, listed = known[base]
            size = listed or size
        elif known:
            uid, extra = next_uid + extra, extra + 1
        else:
            uid = pos
        keyed.append((uid, path, flags, size))
    keyed.sort(key=itemgetter(0))     # stable: files with one uid stay in name order
    uidvalidity = validity if validity else uidvalidity_for(folder)
    return uidvalidity, _file_rows(keyed, account=account, folder=folder, role=role,
                                   uidvalidity=uidvalidity)


def _plain_rows(
    files: list[os.DirEntry[str]], *, account: str, folder: str, role: str
) -> tuple[int, Iterator[Row]]:
    numbers = [_NUMBERED_RE.fullmatch(e.name) for e in files]
    if all(numbers):
        keyed = sorted((int(m.group(1)), e) for m, e in zip(numbers, files, strict=True) if m)
    else:
        ordered = sorted(files, key=lambda e: _natural_key(e.name))
        keyed = [(pos, e) for pos, e in enumerate(ordered, start=1)]
    uidvalidity = uidvalidity_for(folder)
    return uidvalidity, _file_rows([(uid, e.path, [], None) for uid, e in keyed],
                                   account=account, folder=folder, role=role,
                                   uidvalidity=uidvalidity)


def _file_rows(
    files: list[tuple[int, str, list[str], int | None]], *, account: str, folder: str,
    role: str, uidvalidity: int,
) -> Iterator[Row]:  # fmt: skip
    """Rows of one-message files: (uid, path, flags, known size), internaldate the mtime."""
    for uid, path, flags, size in files:
        try:
            st = os.stat(path)
            raw = _read_head(path)
        except OSError:
            continue  # delivered/expunged while we read: not there
        yield _row(
            raw, account=account, folder=folder, role=role, uidvalidity=uidvalidity,
            uid=uid, size=size or _crlf_size(raw, st.st_size), flags=flags,
            internaldate=datetime.fromtimestamp(st.st_mtime, UTC),
        )  # fmt: skip


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def read_maildir(
    path: str | os.PathLike[str], account: str, *, batch_size: int = 10_000
) -> Iterator[FolderBatch]:
    """Yield the folders of a Maildir tree or a tree of message files, batch by batch.

    Parameters
    ----------
    path
        A Maildir(++) root, a single Maildir folder, or a directory of plain
        message files with sub-folders (``corpus/enron/<person>``).
    account
        Stored in every row (and, when it is an address, "self").
    batch_size
        At most this many rows per batch (memory stays flat on big folders).

    Raises
    ------
    UsageError
        ``path`` is not a directory.
    """
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"not a directory: {root}")
    if batch_size < 1:
        raise UsageError("batch_size must be at least 1")
    yield from _walk(root, root, account, batch_size, maildir_root=_is_maildir(root))


def _walk(
    root: Path, here: Path, account: str, batch_size: int, *, maildir_root: bool
) -> Iterator[FolderBatch]:
    if _is_maildir(here):
        if here == root:
            name = "INBOX" if maildir_root else root.name
        elif here.name.startswith(".") and here.parent == root and maildir_root:
            name = "INBOX." + decode_mutf7(here.name[1:])
        else:
            name = decode_mutf7(here.relative_to(root).as_posix())
        name = as_text(name)
        role = folder_role(name)
        validity, rows = _maildir_rows(here, account=account, folder=name, role=role)
        yield from _batches(name, role, validity, rows, str(here), batch_size)
    try:
        entries = sorted(os.scandir(here), key=lambda e: _natural_key(e.name))
    except OSError:
        return
    files = [
        e for e in entries
        if e.is_file() and not e.name.startswith(".") and e.name not in _NOT_MESSAGES
        and not e.name.startswith(("dovecot", "courier"))
    ]  # fmt: skip
    if files and not _is_maildir(here):
        rel = here.relative_to(root).as_posix()
        name = as_text(root.name if rel == "." else rel)
        role = folder_role(name)
        if not any(_looks_like_mail(e.path) for e in files):
            yield FolderBatch(name, role, 0, [], str(here), final=True, not_mail=True)
        else:
            validity, rows = _plain_rows(files, account=account, folder=name, role=role)
            yield from _batches(name, role, validity, rows, str(here), batch_size)
    for e in entries:
        if not e.is_dir(follow_symlinks=False) or e.name in ("cur", "new", "tmp"):
            continue
        sub = Path(e.path)
        if e.name.startswith(".") and not (maildir_root and here == root and _is_maildir(sub)):
            continue
        yield from _walk(root, sub, account, batch_size, maildir_root=maildir_root)


# --------------------------------------------------------------------------- mbox

_FROM_HEADER_RE: Final = re.compile(rb"From[ \t]*:")
_FIELD_RE: Final = re.compile(rb"[!-9;-~]+[ \t]*:")
_STATUS_RE: Final = re.compile(rb"(?im)^(status|x-status|x-mozilla-status)[ \t]*:[ \t]*(\S*)")
_STATUS_FLAGS: Final[dict[str, str]] = {"R": "\\Seen"}
_XSTATUS_FLAGS: Final[dict[str, str]] = {
    "A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted",
}  # fmt: skip
_MOZ_FLAGS: Final = ((0x1, "\\Seen"), (0x2, "\\Answered"), (0x4, "\\Flagged"), (0x8, "\\Deleted"))
_LABEL_FLAGS: Final[dict[str, str]] = {
    "Opened": "\\Seen", "Starred": "\\Flagged", "Draft": "\\Draft", "Drafts": "\\Draft",
}  # fmt: skip


def _mbox_flags(head: bytes, labels: list[str]) -> list[str]:
    flags: set[str] = {_LABEL_FLAGS[lb] for lb in labels if lb in _LABEL_FLAGS}
    if b"tatus" in head:
        for name, value in _STATUS_RE.findall(head):
            key = name.lower()
            text = value.decode("ascii", "replace")
            if key == b"status":
                flags.update(_STATUS_FLAGS[c] for c in text if c in _STATUS_FLAGS)
            elif key == b"x-status":
                flags.update(_XSTATUS_FLAGS[c] for c in text if c in _XSTATUS_FLAGS)
            else:
                try:
                    bits = int(text, 16)
                except ValueError:
                    continue
                flags.update(f for bit, f in _MOZ_FLAGS if bits & bit)
    return sorted(flags)


def _mbox_starts(mm: mmap.mmap | bytes) -> list[tuple[int, int, datetime | None]]:
    """(From_ line start, header start, From_ date) of every message."""
    starts: list[tuple[int, int, datetime | None]] = []
    size = len(mm)
    pos = 0 if mm[:5] == b"From " else mm.find(b"\nFrom ")
    if pos > 0:
        pos += 1
    while 0 <= pos < size:
        eol = mm.find(b"\n", pos)
        line_end = size if eol < 0 else eol
        line = bytes(mm[pos:line_end])
        when = parse_asctime(line.decode("latin-1"))
        # A separator has a date ("From a@b Mon Jan 21 10:00:00 2002"), or, for
        # writers that leave it out ("From a@b"), a header field on the next
        # line; anything else is body text an mboxo writer did not escape.
        if (
            when is not None
            or not starts
            or (
                _FROM_HEADER_RE.match(line) is None
                and _FIELD_RE.match(mm[line_end + 1 : line_end + 200]) is not None
            )
        ):
            starts.append((pos, min(line_end + 1, size), when))
        nxt = mm.find(b"\nFrom ", line_end)
        pos = nxt + 1 if nxt >= 0 else -1
    return starts


def read_mbox(
    path: str | os.PathLike[str], account: str, *, folder: str | None = None,
    batch_size: int = 10_000,
) -> Iterator[FolderBatch]:  # fmt: skip
    """Yield the messages of one mbox file as batches of one folder.

    Parameters
    ----------
    path
        The mbox file (memory-mapped: a multi-GB Takeout export is fine).
    account
        Stored in every row.
    folder
        Folder name for the rows; default: the file name without ``.mbox``.
    batch_size
        At most this many rows per batch.

    Raises
    ------
    UsageError
        The file cannot be opened.
    """
    p = Path(path)
    name = as_text(folder or (p.name[:-5] if p.name.lower().endswith(".mbox") else p.name))
    role = folder_role(name) or ("all" if name.casefold().startswith("all mail") else "")
    validity = uidvalidity_for(name)
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed in the generator's finally
    except OSError as exc:
        raise UsageError(f"cannot open the mbox file {p}: {exc.strerror}") from exc

    def rows() -> Iterator[Row]:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                starts = _mbox_starts(mm)
                for i, (_begin, head_start, when) in enumerate(starts):
                    end = starts[i + 1][0] if i + 1 < len(starts) else size
                    blank = mm.find(b"\n\n", head_start, end)
                    blank2 = mm.find(b"\n\r\n", head_start, end)
                    if blank2 >= 0 and (blank < 0 or blank2 < blank):
                        blank = blank2
                    head = mm[head_start : (blank + 1 if blank >= 0 else end)]
                    # the message ends before the blank line that separates it from
                    # the next From_ line; size counts CRLF line endings, like IMAP
                    stop = end - 1 if mm[max(end - 2, head_start) : end] == b"\n\n" else end
                    whole = mm[head_start:stop]
                    row = _row(
                        head, account=account, folder=name, role=role, uidvalidity=validity,
                        uid=i + 1, size=_crlf_size(whole, len(whole)), flags=[],
                        internaldate=when,
                    )  # fmt: skip
                    row["flags"] = _mbox_flags(head, row["labels"])
                    yield row
            finally:
                mm.close()
        finally:
            fh.close()

    yield from _batches(name, role, validity, rows(), str(p), batch_size)
