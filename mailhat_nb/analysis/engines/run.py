"""One analysis of a store on an SQL engine: identity, the duplicate rule, then each metric.

:class:`Analysis` drives the queries of :mod:`.queries` on a
:class:`Backend` (DuckDB in :mod:`.duck`, Spark in :mod:`.spark`) and hands
back the same frames as the pandas functions of :mod:`mailhat_nb.contacts`,
with the same columns, dtypes and order, so charts, exports and the CLI take
either. Only aggregates cross from the engine into pandas: per contact, per
period, per folder, 7 x 24 cells, one row per timed reply; never one row
per message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote

import numpy as np
import pandas as pd

from mailhat_nb.analysis.addresses import as_address_set, check_addresses, is_address
from mailhat_nb.analysis.dedupe import NAT, to_utc
from mailhat_nb.analysis.engines.queries import Queries
from mailhat_nb.analysis.health import HEALTH_COLUMNS, FolderCounts, finish_health
from mailhat_nb.analysis.identity import OWN_COLUMNS
from mailhat_nb.analysis.metrics import (
    CONTACT_COLUMNS,
    HISTOGRAM_COLUMNS,
    RESPONSE_COLUMNS,
    RESPONSE_FLOOR_HOURS,
    VOLUME_COLUMNS,
    WEEKDAYS,
    normalise_freq,
    response_bin_edges,
    response_histogram,
)
from mailhat_nb.errors import UsageError
from mailhat_nb.sync.folders import folder_role
from mailhat_nb.sync.store import Store

#: ``date_trunc`` units of the periods of :func:`mailhat_nb.contacts.volume`.
_UNITS = {"D": "day", "W": "week", "M": "month", "Y": "year"}
#: Label propagation passes before giving up (real mail converges in two or three).
MAX_PASSES = 50


class Backend(Protocol):
    """What an SQL engine offers the analysis."""

    dialect_name: str

    def source(self, store: Path) -> str:
        """SQL naming the store's Parquet rows with ``account``/``folder`` partitions."""

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make a small pandas frame a table called ``name``."""

    def view(self, name: str, sql: str) -> None:
        """Name a query (evaluated where it is used)."""

    def table(self, name: str, sql: str) -> None:
        """Evaluate a query once and keep its rows as ``name`` (may spill to disk)."""

    def frame(self, sql: str) -> pd.DataFrame:
        """Run a query and return its (small) result."""

    def close(self) -> None:
        """Release what the engine holds."""


def folders_table(store: Path, accounts: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per stored folder, in the store's read order (see :mod:`.queries`).

    ``akey`` and ``fkey`` are the directory names as a hive reader decodes
    them; ``account`` and ``folder`` the real names from ``_state.json``
    (they differ for names cut to fit a file name).
    """
    wanted = None if accounts is None else {a.casefold() for a in accounts}
    rows = []
    for state in Store(store).states():
        if wanted is not None and state.account.casefold() not in wanted:
            continue
        path = Store(store).folder_path(state.account, state.folder)
        rows.append((unquote(path.parent.name.split("=", 1)[1]),
                     unquote(path.name.split("=", 1)[1]), state.account, state.folder,
                     folder_role(state.folder) == "sent"))
    frame = pd.DataFrame(rows, columns=["akey", "fkey", "account", "folder", "name_sent"])
    frame.insert(0, "fid", np.arange(len(frame), dtype=np.int64))
    codes, _ = pd.factorize(frame["account"])
    frame.insert(1, "aid", np.asarray(codes, dtype=np.int64))
    return frame


def _utc(us: pd.Series) -> pd.DatetimeIndex:
    """Microseconds since the epoch (NULL = missing) as the pandas path's UTC dates."""
    values = pd.to_numeric(us).astype("Int64").to_numpy(dtype="int64", na_value=NAT)
    return to_utc(np.where(values == NAT, NAT, values * 1000))


class Analysis:
    """One store (or some of its accounts) analysed on an SQL engine.

    Parameters
    ----------
    backend
        The engine (:class:`~.duck.DuckBackend`, :class:`~.spark.SparkBackend`).
    store
        The store directory.
    accounts
        Only these accounts (default: all).
    extra, exclude
        Addresses to add to self, or to drop from it (``--self``, ``--exclude``).
    """

    def __init__(self, backend: Backend, store: Path | str, *,
                 accounts: Iterable[str] | None = None, extra: Iterable[str] = (),
                 exclude: Iterable[str] = ()) -> None:
        self.backend = backend
        self.store = Path(store)
        self.extra = check_addresses(extra, "self address")
        self.exclude = check_addresses(exclude, "excluded address")
        self.folders = folders_table(self.store, accounts)
        if self.folders.empty:
            raise UsageError(f"{self.store} holds no folder of the chosen account(s)")
        self.accounts = list(dict.fromkeys(self.folders["account"]))
        from mailhat_nb.analysis.engines.dialect import DUCKDB, SPARK

        dialect = {"duckdb": DUCKDB, "spark": SPARK}[backend.dialect_name]
        self.q = Queries(dialect, backend.source(self.store),
                         int(time.time() * 1_000_000))
        backend.register("folders", self.folders)
        keys = None if accounts is None else sorted(set(self.folders["akey"]))
        backend.view("src", self.q.src(keys))
        self._me: pd.DataFrame | None = None
        self._deduped = False
        self._timed = False

    def close(self) -> None:
        """Release the engine's tables (and DuckDB's connection and spill directory)."""
        self.backend.close()

    def __enter__(self) -> Analysis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ identity

    def own_addresses(self) -> pd.DataFrame:
        """The self table of :func:`mailhat_nb.analysis.identity.own_addresses`, same rule."""
        if self._me is not None:
            return self._me
        senders = self.backend.frame(self.q.senders())
        sent = set(senders.loc[senders["sent_rows"] > 0, "sender"])
        logins = {a.strip().lower() for a in self.accounts if is_address(a)}
        core = logins | sent | set(self.extra)
        delivered = set(self.backend.frame(self.q.delivered_to())["a"])
        candidates = delivered - core
        wrote: set[str] = set()
        if candidates:
            self.backend.register("core", pd.DataFrame({"address": sorted(core)}))
            wrote = set(self.backend.frame(self.q.wrote_to(candidates))["sender"])
        found = {"login": logins, "sent folder": sent,
                 "delivered-to": {a for a in delivered if a in core or a not in wrote},
                 "user": set(self.extra)}
        excluded = set(self.exclude)
        addresses = sorted(set().union(*found.values()) - excluded)
        counts = senders.set_index("sender")
        table = pd.DataFrame({
            "address": pd.Series(addresses, dtype="str"),
            "sources": [", ".join(s for s, got in found.items() if a in got) for a in addresses],
        })
        table["sources"] = table["sources"].astype("str")
        table["messages"] = table["address"].map(counts["messages"]).fillna(0).astype("int64")
        table["sent_folder_rows"] = (table["address"].map(counts["sent_rows"])
                                     .fillna(0).astype("int64"))
        table = table.sort_values(["sent_folder_rows", "messages", "address"],
                                  ascending=[False, False, True], ignore_index=True)
        self._me = table[OWN_COLUMNS]
        return self._me

    # ------------------------------------------------------------------ duplicate rule

    def _dedupe(self) -> None:
        """Build ``m``, ``rk``, ``lab``, ``kept`` and ``u`` once (see :mod:`.queries`)."""
        if self._deduped:
            return
        me = self.own_addresses()
        b, q = self.backend, self.q
        b.register("me", pd.DataFrame({"address": me["address"].astype(object)}))
        b.table("m", q.messages())
        b.table("rk", q.recipient_keys())
        b.table("lab", q.first_labels())
        for _ in range(MAX_PASSES):
            b.table("lab", q.propagate("lab"))
            if int(b.frame(q.unsettled("lab"))["n"].iloc[0]) == 0:
                break
        b.table("kept", q.kept())
        b.table("u", q.unique())
        self._deduped = True

    # ------------------------------------------------------------------ metrics

    def contacts(self) -> pd.DataFrame:
        """Volume per contact: :func:`mailhat_nb.contacts.contacts`, same frame."""
        self._dedupe()
        raw = self.backend.frame(self.q.contacts())
        out = pd.DataFrame({
            "contact": pd.Series(raw["contact"], dtype="str"),
            "name": pd.Series(raw["name"], dtype="str"),
            "sent": raw["sent"].astype("int64"),
            "received": raw["received"].astype("int64"),
        })
        out["total"] = out["sent"] + out["received"]
        out["first"] = _utc(raw["first_us"])
        out["last"] = _utc(raw["last_us"])
        out = out.sort_values(["total", "received", "contact"],
                              ascending=[False, False, True], kind="stable")
        return out.reset_index(drop=True)[CONTACT_COLUMNS]

    def volume(self, contacts: Iterable[str], freq: str = "M") -> pd.DataFrame:
        """Per period and contact: :func:`mailhat_nb.contacts.volume` with ``contacts``."""
        self._dedupe()
        f = normalise_freq(freq)
        chosen = sorted(as_address_set(list(contacts)))
        raw = self.backend.frame(self.q.volume(chosen, _UNITS[f]))
        out = pd.DataFrame({"period": _utc(raw["period_us"]),
                            "contact": pd.Series(raw["contact"], dtype="str"),
                            "sent": raw["sent"].astype("int64"),
                            "received": raw["received"].astype("int64")})
        out["total"] = out["sent"] + out["received"]
        out = out.sort_values(["period", "contact"], kind="stable", ignore_index=True)
        out = out[VOLUME_COLUMNS]
        out.attrs["freq"] = f
        return out

    def activity(self, direction: Literal["sent", "received"] | None = None) -> pd.DataFrame:
        """Weekday x hour on the writer's clock: :func:`mailhat_nb.contacts.activity`."""
        self._dedupe()
        raw = self.backend.frame(self.q.activity(direction))
        grid = np.zeros((7, 24), dtype=np.int64)
        grid[raw["weekday"].to_numpy(dtype=np.int64), raw["hour"].to_numpy(dtype=np.int64)] = (
            raw["n"].to_numpy(dtype=np.int64))
        out = pd.DataFrame(grid, index=pd.Index(WEEKDAYS, name="weekday"),
                           columns=pd.Index(range(24), name="hour"))
        out.attrs["clock"] = "sender's local time" if raw["tz"].max(skipna=True) == 1 else "UTC"
        out.attrs["direction"] = direction
        return out

    def _responses(self) -> None:
        self._dedupe()
        if not self._timed:
            self.backend.table("rt", self.q.responses())
            self._timed = True

    def response_times(self) -> pd.DataFrame:
        """Every reply between self and a contact: :func:`mailhat_nb.contacts.response_times`.

        One row per reply: for a big store, :meth:`response_histogram` is what
        the chart needs.
        """
        self._responses()
        raw = self.backend.frame("SELECT * FROM rt").sort_values("reply", kind="stable")
        out = pd.DataFrame({
            "contact": pd.Series(raw["contact"].to_numpy(), dtype="str"),
            "replier": pd.Series(raw["replier"].to_numpy(), dtype="str"),
            "asked": _utc(raw["asked_us"]),
            "answered": _utc(raw["answered_us"]),
            "hours": raw["hours"].to_numpy(dtype=np.float64),
        })
        return out[RESPONSE_COLUMNS]

    def response_histogram(self) -> pd.DataFrame:
        """Reply delays per replier, binned: :func:`mailhat_nb.contacts.response_histogram`."""
        self._responses()
        slowest = self.backend.frame("SELECT max(hours) AS h FROM rt")["h"].iloc[0]
        if pd.isna(slowest):
            return response_histogram(pd.DataFrame({"replier": [], "hours": []}))
        edges = response_bin_edges(float(slowest))
        raw = self.backend.frame(self.q.response_histogram(edges, RESPONSE_FLOOR_HOURS))
        raw = raw.assign(order=raw["replier"].map({"self": 0, "contact": 1}))
        raw = raw.sort_values(["order", "b"], ignore_index=True)
        bins = raw["b"].to_numpy(dtype=np.int64)
        out = pd.DataFrame({
            "replier": pd.Series(raw["replier"], dtype="str"),
            "left": np.asarray(edges)[bins], "right": np.asarray(edges)[bins + 1],
            "replies": raw["replies"].astype("int64"),
        })
        out.attrs["median_hours"] = {
            str(r): float(m) for r, m in raw.groupby("replier", sort=False)["median_hours"].first()
            .items()}
        return out[HISTOGRAM_COLUMNS]

    def data_health(self, server_counts: FolderCounts | None = None,
                    uidvalidity_events: pd.DataFrame | Mapping[str, int] | None = None,
                    ) -> pd.DataFrame:
        """Per folder, how complete and clean: :func:`mailhat_nb.contacts.data_health`."""
        self._dedupe()
        raw = self.backend.frame(self.q.health())
        top = self.backend.frame(self.q.top_defects())
        names = self.folders.set_index("fid")
        out = pd.DataFrame({
            "account": pd.Series(names.loc[raw["fid"], "account"].to_numpy(), dtype="str"),
            "folder": pd.Series(names.loc[raw["fid"], "folder"].to_numpy(), dtype="str"),
        })
        for col in ("rows", "duplicates", "date_fallbacks", "no_date", "suspect_dates",
                    "defects", "uidvalidity_values"):
            out[col] = raw[col].astype("int64").to_numpy()
        out["top_defect"] = pd.Series(
            raw["fid"].map(top.set_index("fid")["defect"]).to_numpy(), dtype="str")
        out = out.sort_values(["account", "folder"], kind="stable", ignore_index=True)
        return finish_health(out, server_counts, uidvalidity_events)[HEALTH_COLUMNS]
