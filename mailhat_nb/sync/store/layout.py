"""Names and paths of the store: hive partitions, escaped names, what readers skip.

See :mod:`mailhat_nb.sync.store` for the whole layout.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mailhat_nb.checks import check_text

STATE_FILE = "_state.json"
RETIRED_DIR = "_retired"
LOCK_FILE = "_lock"
_UNSAFE = frozenset('/\\%=:*?"<>|#{}[]^\'')
_MAX_COMPONENT = 200


def escape_component(name: str) -> str:
    """A folder or account name as a safe path component (reversible by URI decoding).

    Names too long for a file name are cut and given a hash suffix; the real
    name is always in ``_state.json``.

    Raises
    ------
    UsageError
        For a name that is not text (bytes that are not UTF-8, e.g. an
        ``--account`` typed in a terminal of another encoding).
    """
    check_text(name, "account or folder name")
    out = "".join(
        "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        if ch in _UNSAFE or ord(ch) < 0x20 or ord(ch) == 0x7F else ch
        for ch in name
    )
    if not out:
        out = "%00"
    if len(out.encode("utf-8")) > _MAX_COMPONENT:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]  # noqa: S324 - a name, not security
        cut = out.encode("utf-8")[: _MAX_COMPONENT - 20].decode("utf-8", "ignore")
        if "%" in cut[-2:]:
            cut = cut[: cut.rfind("%")]
        out = f"{cut}~{digest}"
    return out


def account_dir(root: Path, account: str) -> Path:
    """The directory of ``account``'s folders."""
    return root / f"account={escape_component(account)}"


def folder_dir(root: Path, account: str, folder: str) -> Path:
    """The directory of one folder's parts and state."""
    return account_dir(root, account) / f"folder={escape_component(folder)}"
