"""The per-folder state record, ``_state.json``: what a folder holds and how it got there."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailhat_nb.errors import StoreError, reason
from mailhat_nb.sync.uids import parse_sequence_set

STATE_VERSION = 1
MAX_EVENTS = 200
_PART_INTS = ("uidvalidity", "first", "last", "rows")


def load_state(state_file: Path) -> FolderState:
    """Read one ``_state.json``.

    Raises
    ------
    StoreError
        Unreadable, not JSON, or of the wrong shape; the message names the
        file and the way out.
    """
    try:
        return FolderState.from_json(json.loads(state_file.read_text("utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise StoreError(f"cannot read {state_file}: {reason(exc)}; the next sync or import of "
                         "that account sets the folder aside and fetches it again") from exc


def utc_now() -> str:
    """Now, as the store records times: ISO-8601 UTC to the second.

    The one clock of the state records (``last_sync``, event times), shared
    by the sync and the imports so their records compare as strings.
    """
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class PartInfo:
    """One committed Parquet file of a folder."""

    file: str
    uidvalidity: int
    first: int
    last: int
    rows: int


@dataclass
class FolderState:
    """What ``_state.json`` holds for one folder.

    ``highestmodseq`` is the modification sequence as of which the flags of
    every stored row are known to be current; ``complete`` is False while a
    sync of the folder is under way (a crash leaves it False, and the next
    run resumes from ``uids`` instead of trusting ``uidnext``).
    """

    account: str
    folder: str
    role: str = ""
    delimiter: str | None = None
    flags: list[str] = field(default_factory=list)
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    messages: int = 0
    uids: str = ""
    complete: bool = False
    source: str = "imap"
    #: where an import read the folder from (the resolved file or tree); only
    #: a later import of the same origin may replace or retire the folder
    origin: str | None = None
    last_sync: str | None = None
    parts: list[PartInfo] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[str, list[list[str]]] = field(default_factory=dict)
    version: int = STATE_VERSION

    @classmethod
    def from_json(cls, data: Any) -> FolderState:
        """Read a state record (unknown keys from newer versions are ignored).

        Raises
        ------
        ValueError, TypeError
            When ``data`` is valid JSON of the wrong shape (a file overwritten
            by hand or by another program); :func:`load_state` reports the file.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("account"), str) \
                or not isinstance(data.get("folder"), str) \
                or not isinstance(data.get("parts", []), list) \
                or not isinstance(data.get("uids", ""), str):
            raise ValueError("not a folder state record")
        for part in data.get("parts", []):
            if not isinstance(part, Mapping) or not isinstance(part.get("file"), str) \
                    or not all(type(part.get(k)) is int for k in _PART_INTS):
                raise ValueError("not a folder state record (a part entry is malformed)")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["parts"] = [PartInfo(**p) for p in data.get("parts", [])]
        return cls(**known)

    def to_json(self) -> bytes:
        """Serialise for ``_state.json``."""
        return json.dumps(asdict(self), indent=1, ensure_ascii=False).encode("utf-8")

    def uid_list(self) -> list[int]:
        """The stored UIDs, sorted."""
        return parse_sequence_set(self.uids) if self.uids else []

    def log(self, event: str, **details: Any) -> None:
        """Append to the event log (bounded)."""
        self.events.append({"at": utc_now(), "event": event, **details})
        del self.events[:-MAX_EVENTS]

