"""What a sync did: per folder and in total, as the CLI, the panel and ``--json`` show it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FolderResult:
    """What one folder's sync did."""

    folder: str
    role: str = ""
    action: str = "unchanged"  # unchanged | synced | reset | retired | failed
    new: int = 0
    flags_changed: int = 0
    expunged: int = 0
    retired: int = 0
    rows: int = 0
    server_messages: int = 0
    uidvalidity: int | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SyncSummary:
    """What :func:`sync_account` did, per folder and in total (JSON-ready via ``to_dict``)."""

    account: str
    store: str
    folders: list[FolderResult] = field(default_factory=list)
    reconnects: int = 0
    #: damaged folders (an unreadable state record, a missing or broken part):
    #: moved under ``_retired/`` (relative to the store) and fetched again
    set_aside: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def new(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.new for f in self.folders)

    @property
    def flags_changed(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.flags_changed for f in self.folders)

    @property
    def expunged(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.expunged for f in self.folders)

    @property
    def rows(self) -> int:  # noqa: D102 - totals over folders
        return sum(f.rows for f in self.folders)

    @property
    def failed(self) -> list[FolderResult]:
        """Folders the server refused (their ``error`` says why)."""
        return [f for f in self.folders if f.action == "failed"]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        out = asdict(self)
        out.update(new=self.new, flags_changed=self.flags_changed, expunged=self.expunged,
                   rows=self.rows, failed=[f.folder for f in self.failed])
        return out
