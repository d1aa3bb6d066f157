"""Real email shipped with the project: the lab's demo mailbox and the test corpus.

Nobody on this project wrote these messages; provenance and licences are in
``tests/data/README.md`` and ``tests/data/LICENSES/``, and the demo
mailbox's in ``mailhat_nb/lab/data/README.md``. Both come xz-compressed:

- ``mailhat_nb/lab/data/enron-cuilla-m.tar.xz`` (in the package, so ``mailhat
  lab up`` works from an install): ``enron/cuilla-m/``, one Enron
  custodian's mailbox, alice's mail in the lab;
- ``tests/data/corpus.tar.xz`` (in a checkout only): ``enron/badeer-r/``,
  ``enron/dean-c/``, ``enron/delainey-d/`` and ``quirks/`` (malformed
  real-world messages), for the tests and the benchmarks.

:func:`corpus_root` unpacks what there is into one directory, as published
(``enron/<person>/<folder>/<file>``, ``quirks/...``), once per content: a
cache directory named by the archives' digest, filled in a temporary
sibling and renamed into place, so concurrent tests and labs never see half
of it. ``$MAILHAT_CORPUS`` names another copy of the corpus instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

from mailhat_nb.errors import LabError

#: The demo mailbox, in the package.
DEMO_ARCHIVE = "enron-cuilla-m.tar.xz"
#: The test corpus, in a checkout of the project (not installed).
TEST_ARCHIVE = Path(__file__).resolve().parents[2] / "tests" / "data" / "corpus.tar.xz"


def archives() -> list[Path]:
    """The corpus archives at hand: the demo mailbox, and the test corpus in a checkout."""
    demo = Path(str(resources.files("mailhat_nb.lab") / "data" / DEMO_ARCHIVE))
    return [demo, *([TEST_ARCHIVE] if TEST_ARCHIVE.is_file() else [])]


def cache_dir() -> Path:
    """Where unpacked corpora are kept (``$XDG_CACHE_HOME/mailhat``, else ``~/.cache/mailhat``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mailhat"


def corpus_root() -> Path:
    """A directory holding the corpus: ``$MAILHAT_CORPUS``, else the shipped archives unpacked.

    Raises
    ------
    LabError
        When an archive cannot be read or unpacked.
    """
    given = os.environ.get("MAILHAT_CORPUS")
    if given:
        return Path(given)
    found = archives()
    digest = hashlib.sha256()
    for archive in found:
        try:
            digest.update(archive.read_bytes())
        except OSError as exc:
            raise LabError(f"cannot read the corpus archive {archive}: {exc.strerror}") from exc
    target = cache_dir() / f"corpus-{digest.hexdigest()[:16]}"
    if not target.is_dir():
        _unpack(found, target)
    return target


def _unpack(found: list[Path], target: Path) -> None:
    """Unpack ``found`` into ``target``, which appears whole or not at all."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for archive in found:
                with tarfile.open(archive, "r:xz") as tar:
                    tar.extractall(work, filter="data")
            os.rename(work, target)
        except OSError:
            if not target.is_dir():  # not someone else's copy, finished first
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except (OSError, tarfile.TarError) as exc:
        raise LabError(f"cannot unpack the corpus into {target}: {exc}") from exc
