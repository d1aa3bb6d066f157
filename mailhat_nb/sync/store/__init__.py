r"""The local store: Parquet parts plus one small state record per folder.

Layout (readable by pandas, DuckDB, Spark or Dask without this package)::

    <store>/
      account=<account>/                      hive partition: the login address
        folder=<folder>/                      hive partition: the decoded folder name
          part-v<uidvalidity>-<first>-<last>-g<n>.parquet    the rows
          _state.json                         this folder's sync state (below)
      _retired/account=.../folder=.../v<uidvalidity>-<time>/part-*.parquet
                                              rows retired by a UIDVALIDITY change
      _retired/account=.../folder=...-damaged-<time>/
                                              a damaged folder, set aside whole

``account`` and ``folder`` live only in the directory names (percent-encoded
where a character is unsafe in a path: ``/ \ % = : * ? " < > | # { } [ ] ^ '``
and control characters; non-ASCII stays as it is), so ``pd.read_parquet(store)``
(pyarrow's hive partitioning, which also decodes the ``%XX``) returns them as
columns; DuckDB and Spark read ``store/*/*/*.parquet`` with hive
partitioning the same way. Files whose names start with ``_`` or ``.`` are
ignored by those readers, which is why the state, temporary files and
retired rows are named so. (The files do not repeat ``account`` and
``folder`` as columns: pyarrow refuses a dataset where a file column and a
partition have the same name.) Each row's key is (account, folder, uidvalidity,
uid). The Parquet files carry no pandas metadata (pandas cannot read back
its own metadata for Arrow list columns): use
:func:`mailhat_nb.analysis.load.read_messages` for the typed ``messages``
frame, or any Parquet reader for the raw columns.

``_state.json`` holds the folder's real name, role, delimiter, UIDVALIDITY,
UIDNEXT, HIGHESTMODSEQ, the UIDs stored (as a compact IMAP sequence set),
the list of committed parts, the last sync time, and an event log (e.g. a
UIDVALIDITY change and how many rows it retired).

Every change is one atomic commit, so a sync killed at any instant leaves
the folder either before or after it: new files are written under a
temporary ``_tmp-*`` name and fsynced; then the state is replaced
atomically (write, fsync, ``os.replace``, fsync the directory) naming the new
parts and listing the file moves still to do; then the moves run. That
state write is the commit point. Opening a folder replays any moves a crash
interrupted and deletes files no committed state names. :func:`.read_table`
reads exactly the parts the committed states name, so it never sees a half
written file nor a row twice, even while a sync runs; a plain Parquet reader
of the directory can, after a crash in the middle of a flag/expunge rewrite,
see the old and the new copy of a part until the next sync or import opens
that folder.

Damage from outside (a disk fault, a "clean-up" by hand) is healed, never
read around, and one way only: before a sync or an import writes, each
folder of the account is checked (its state record readable, every part it
names there and ``PAR1`` at both ends; ``mailhat sync --verify`` reads each
part whole), and a damaged folder is moved to ``_retired/`` whole and fetched
(or imported) again (:meth:`Store.set_aside_damaged`). Readers fail with the
file's name and that way out; a part that vanishes under a reader (a sync
compacting right then) is read again from the new state.

Modules, by job: :mod:`.layout` (names, escaping), :mod:`.state` (the
records), :mod:`.commit` (the commit protocol), :mod:`.folder` (a folder's
changes), :mod:`.damage` (checking parts), :mod:`.lock` (one writer),
:mod:`.root` (the directory, :class:`Store`), :mod:`.read` (readers).
"""

from mailhat_nb.sync.store.damage import damaged_part, part_intact
from mailhat_nb.sync.store.folder import FolderStore
from mailhat_nb.sync.store.layout import RETIRED_DIR, STATE_FILE, escape_component
from mailhat_nb.sync.store.read import read_table, uidvalidity_events
from mailhat_nb.sync.store.root import Store
from mailhat_nb.sync.store.state import FolderState, PartInfo, load_state, utc_now

__all__ = [
    "RETIRED_DIR",
    "STATE_FILE",
    "FolderState",
    "FolderStore",
    "PartInfo",
    "Store",
    "damaged_part",
    "escape_component",
    "load_state",
    "part_intact",
    "read_table",
    "uidvalidity_events",
    "utc_now",
]
