"""History per customer: each diagnosis kept as redacted JSON, and what changed since the last.

``mailhat diagnose --save DIR`` and the doctor panel keep every run in a
folder, one file per run named for the address and the time
(``diagnosis-info-at-customer.com-20261203T101500Z.json``): the report's JSON
(which never holds a password, and whose CRM text was redacted when it was
pasted) plus ``at``, the run's time in UTC. A new run for the same address
reads the latest earlier file and says what changed: the verdict
("2026-12-03: cert_expired; now: ok"), the setting to enter, a preset that
worked and now fails (or the other way round), a certificate that changed,
a different error from the CRM.

The folder is private: created 0700 (an existing one is tightened to 0700
when it holds nothing but these files, and refused when it holds other
things and others can read it), each file 0600 and written once, never
overwritten. A folder that cannot be used is a :class:`UsageError` with one
sentence, said before the sweep runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailhat_nb import __version__
from mailhat_nb.errors import UsageError, reason

if TYPE_CHECKING:
    from mailhat_nb.diagnose.report import Report

PREFIX = "diagnosis-"
_STAMP = "%Y%m%dT%H%M%SZ"
_OURS = re.compile(rf"^{re.escape(PREFIX)}.+-\d{{8}}T\d{{6}}Z(?:-\d+)?\.json$")
_WORKED = ("ok", "warn")


def address_slug(email: str) -> str:
    """An address as part of a file name: safe on every filesystem, readable.

    >>> address_slug("Info@Customer.com")
    'info-at-customer.com'
    """
    slug = re.sub(r"[^a-z0-9._-]+", "_", email.lower().replace("@", "-at-")).strip("_.")
    return slug or "account"


def file_name(email: str, at: dt.datetime) -> str:
    """The file a run is kept in: ``diagnosis-<address>-<UTC time>.json``."""
    return f"{PREFIX}{address_slug(email)}-{at.astimezone(dt.UTC).strftime(_STAMP)}.json"


@dataclass
class History:
    """What changed since the last run for the same address.

    Attributes
    ----------
    previous_at, previous_code:
        When the last run was, and its verdict code (None: no earlier run).
    changes:
        Sentences, most important first; empty when nothing that matters changed.
    saved:
        The file this run was kept in.
    """

    previous_at: str | None = None
    previous_code: str | None = None
    changes: list[str] = field(default_factory=list)
    saved: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN.md ``history`` object."""
        previous = ({"at": self.previous_at, "code": self.previous_code}
                    if self.previous_at is not None else None)
        return {"previous": previous, "changes": list(self.changes)}

    def sentences(self) -> list[str]:
        """The history in words: the changes, or that this is the first run or nothing changed."""
        if self.previous_at is None:
            return ["First saved run for this address."]
        if not self.changes:
            return [f"Nothing that matters changed since the last run "
                    f"({_when(self.previous_at)}: {self.previous_code})."]
        return list(self.changes)


# --------------------------------------------------------------------------- the folder


def prepare(directory: str | Path, what: str = "--save") -> Path:
    """Make sure ``directory`` can hold the history, privately; return it.

    Raises
    ------
    UsageError
        One sentence: a file where the folder should be, a folder that cannot
        be created or written, or one others can read that holds other files.
    """
    path = Path(directory).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path}: that is a file, not a folder; give a folder for the "
                         "history (it is created if missing)")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        if stat.S_IMODE(info.st_mode) & 0o077:
            if info.st_uid != os.getuid() or not all(_OURS.match(p.name)
                                                     for p in path.iterdir()):
                raise UsageError(f"{what} {path}: other users can open this folder and it holds "
                                 "other files; give a folder of its own for the history (a new "
                                 "one is created private)")
            path.chmod(0o700)
        # Root may write where the mode bits say no; a read-only disk stops anyone.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write the history there: "
                         f"{reason(exc)}") from exc
    return path


def _write_new(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` to a new 0600 file (never over an existing one); return its path."""
    stem, suffix = name.removesuffix(".json"), ".json"
    for n in range(1, 1000):
        path = directory / (name if n == 1 else f"{stem}-{n}{suffix}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(text)
        return path
    raise UsageError(f"{directory}: too many runs saved for the same second")


# --------------------------------------------------------------------------- reading


def earlier_runs(directory: Path, email: str) -> tuple[list[dict[str, Any]], int]:
    """The saved runs for ``email``, oldest first, and how many files could not be read."""
    runs, unreadable = [], 0
    wanted = email.lower()
    for path in sorted(directory.glob(f"{PREFIX}{address_slug(email)}-*.json")):
        if not _OURS.match(path.name):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            same = str(data["account"]["email"]).lower() == wanted
            at = str(data["at"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            unreadable += 1
            continue
        if same:
            runs.append(data | {"at": at})
    runs.sort(key=lambda d: str(d["at"]))
    return runs, unreadable


# --------------------------------------------------------------------------- comparing


def _when(at: str, now: str | None = None) -> str:
    """A run's time for a sentence: the day, with the time when it was the same day as ``now``."""
    day = at[:10]
    if now is not None and now[:10] == day:
        return f"{day} {at[11:16]} UTC"
    return day


def _key(result: dict[str, Any]) -> tuple[str, str, int]:
    return str(result.get("preset")), str(result.get("host")), int(result.get("port") or 0)


def _named(keys: list[tuple[str, str, int]]) -> str:
    names = [f"{p} on {h}:{port}" for p, h, port in keys]
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _setting(verdict: dict[str, Any]) -> str | None:
    """The incoming setting a verdict named, as text (None: none)."""
    setting = verdict.get("incoming_setting")
    if isinstance(setting, dict) and setting:
        return (f"{setting.get('preset')}: {setting.get('host')}, port {setting.get('port')}, "
                f"{setting.get('security')}")
    preset = verdict.get("incoming")
    return str(preset) if preset else None


def compare(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The changes that matter between two runs' JSON, as sentences (most important first)."""
    then, now = str(previous["at"]), str(current["at"])
    when = _when(then, now)
    changes: list[str] = []
    old_v, new_v = previous.get("verdict") or {}, current.get("verdict") or {}
    if old_v.get("code") != new_v.get("code"):
        changes.append(f"{when}: {old_v.get('code')}; now: {new_v.get('code')}.")
    old_setting, new_setting = _setting(old_v), _setting(new_v)
    if old_setting != new_setting and (old_setting or new_setting):
        changes.append(f"The setting to enter was {old_setting or 'none'} on {when}; now "
                       f"{new_setting or 'none'}.")
    changes += _preset_changes(previous.get("results") or [], current.get("results") or [], when)
    changes += _certificate_changes(previous.get("results") or [],
                                    current.get("results") or [], when)
    old_crm, new_crm = previous.get("crm_error") or {}, current.get("crm_error") or {}
    if old_crm and new_crm and old_crm.get("code") != new_crm.get("code"):
        changes.append(f"The CRM said {old_crm.get('code')} on {when}; now {new_crm.get('code')}.")
    return changes


def _preset_changes(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]],
                    when: str) -> list[str]:
    """Presets whose outcome changed, grouped by the change (22 presets are one sentence)."""
    before = {_key(r): r for r in old}
    groups: dict[tuple[str, str, str], list[tuple[str, str, int]]] = {}
    for result in new:
        key = _key(result)
        was = before.get(key)
        if was is None or was.get("code") == result.get("code"):
            continue
        worked, works = was.get("status") in _WORKED, result.get("status") in _WORKED
        kind = ("broke" if worked and not works else "mended" if works and not worked
                else "changed")
        groups.setdefault((kind, str(was.get("code")), str(result.get("code"))), []).append(key)
    said = {"broke": "{names}: worked on {when} ({was}), now fails: {code}.",
            "mended": "{names}: failed on {when} ({was}), now works ({code}).",
            "changed": "{names}: {was} on {when}, now {code}."}  # in the order they are said
    return [said[kind].format(names=_named(keys), when=when, was=was, code=code)
            for (kind, was, code), keys in sorted(groups.items(),
                                                  key=lambda g: list(said).index(g[0][0]))]


def _certificate_changes(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]],
                         when: str) -> list[str]:
    """Servers whose certificate is not the one they showed last time."""
    def certs(results: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {f"{r.get('host')}:{r.get('port')}": r["certificate"] for r in results
                if isinstance(r.get("certificate"), dict) and r["certificate"].get("sha256")}

    before, after = certs(old), certs(new)
    groups: dict[tuple[str, str], list[str]] = {}
    for where, cert in after.items():
        was = before.get(where)
        if was is not None and was["sha256"] != cert["sha256"]:
            groups.setdefault((was["sha256"], cert["sha256"]), []).append(where)
    sentences = []
    for (was_sha, _), places in groups.items():
        cert = after[places[0]]
        was = before[places[0]]
        sentences.append(
            f"The certificate on {', '.join(places)} changed since {when}: it was valid to "
            f"{str(was.get('not_after', '?'))[:10]}, now covers "
            f"{', '.join(cert.get('names') or []) or '?'}, issued by {cert.get('issuer') or '?'}, "
            f"valid to {str(cert.get('not_after', '?'))[:10]} (was {was_sha[:12]}…).")
    return sentences


# --------------------------------------------------------------------------- keeping a run


def keep(report: Report, directory: str | Path, now: dt.datetime | None = None,
         what: str = "--save") -> History:
    """Compare ``report`` with the last saved run for its address, then save it.

    The history is attached to the report (``report.history``) before it is
    saved, so the file holds what was shown.

    Raises
    ------
    UsageError
        When the folder cannot be used or the file cannot be written.
    """
    folder = prepare(directory, what)
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    # To the microsecond: two runs in one second must still come in order.
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    email = report.account.email
    runs, unreadable = earlier_runs(folder, email)
    history = History()
    if runs:
        last = runs[-1]
        history.previous_at = str(last["at"])
        history.previous_code = (last.get("verdict") or {}).get("code")
        history.changes = compare(last, report.to_dict() | {"at": stamp})
    if unreadable:
        report.notes.append(f"{unreadable} saved run(s) in {folder} could not be read and were "
                            "left out of the history")
    report.history = history
    data = {"at": stamp, "mailhat": __version__} | report.to_dict()
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        history.saved = _write_new(folder, file_name(email, at), text)
    except OSError as exc:
        raise UsageError(f"{what} {folder}: cannot save this run: {reason(exc)}") from exc
    return history
