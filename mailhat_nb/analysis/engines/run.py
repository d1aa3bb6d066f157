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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote

import numpy as np
import pandas as pd

from mailhat_nb.analysis.addresses import as_address_set, check_addresses
from mailhat_nb.analysis.dedupe import NAT, to_utc
from mailhat_nb.analysis.engines.queries import MASK_ACCOUNTS, Queries
from mailhat_nb.analysis.health import HEALTH_COLUMNS, FolderCounts, finish_health
from mailhat_nb.analysis.identity import TEAM_OWN_COLUMNS, core_addresses, own_table
from mailhat_nb.analysis.metrics import (
    CONTACT_COLUMNS,
    HISTOGRAM_COLUMNS,
    RESPONSE_COLUMNS,
    RESPONSE_FLOOR_HOURS,
    VOLUME_COLUMNS,
    WEEKDAYS,
    busiest_first,
    normalise_freq,
    response_bin_edges,
    response_histogram,
)
from mailhat_nb.analysis.team import ACCOUNT_COLUMNS, INTERNAL_COLUMNS, TEAM_COLUMNS
from mailhat_nb.errors import MailhatError, UsageError
from mailhat_nb.sync.folders import folder_role
from mailhat_nb.sync.schema import KEY_COLUMNS, REPEATS_COLUMN
from mailhat_nb.sync.store import Store

#: ``date_trunc`` units of the periods of :func:`mailhat_nb.contacts.volume`.
_UNITS = {"D": "day", "W": "week", "M": "month", "Y": "year"}
#: Label propagation passes before giving up (real mail converges in two or three).
MAX_PASSES = 50


@dataclass(frozen=True)
class Source:
    """How an engine names the stored rows, and what every part of them carries."""

    sql: str        # a table function or a view name
    keyed: bool     # the duplicate rule's keys (sync.schema.KEY_COLUMNS)
    repeats: bool   # the flag of repeated recipients (sync.schema.REPEATS_COLUMN)

    @classmethod
    def of_parts(cls, sql: str, parts: Iterable[Iterable[str]]) -> Source:
        """``sql``, with what every part carries, from each part's column names."""
        shapes = [set(names) for names in parts]
        return cls(sql, keyed=bool(shapes) and all(set(KEY_COLUMNS) <= s for s in shapes),
                   repeats=bool(shapes) and all(REPEATS_COLUMN in s for s in shapes))


class Backend(Protocol):
    """What an SQL engine offers the analysis."""

    dialect_name: str

    def source(self, store: Path) -> Source:
        """The store's Parquet rows with ``account``/``folder`` partitions, and their keys."""

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make a small pandas frame a table called ``name``."""

    def view(self, name: str, sql: str) -> None:
        """Name a query (evaluated where it is used)."""

    def table(self, name: str, sql: str) -> None:
        """Evaluate a query once and keep its rows as ``name`` (may spill to disk)."""

    def frame(self, sql: str) -> pd.DataFrame:
        """Run a query and return its (small) result."""

    def narrow(self, name: str, columns: list[str]) -> None:
        """Keep only ``columns`` of table ``name`` (what follows needs no more)."""

    def drop(self, name: str) -> None:
        """Forget table ``name`` (its memory, or its disk space, is needed by what follows)."""

    def close(self) -> None:
        """Release what the engine holds."""


def folders_table(store: Path, accounts: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per stored folder, in store order: account, then folder (see :mod:`.queries`).

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
    # Store order (docs/team.md): account, then folder, by code point.
    frame = frame.sort_values(["account", "folder"], ignore_index=True)
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
    extra
        Addresses to add to self: per account (``{account: [addresses]}``,
        the key ``""`` meaning the only account), or a list when there is one
        account (``--self``).
    exclude
        Addresses to drop from every account's own (``--exclude``).

    With one account this is that account's view (:func:`mailhat_nb.contacts.contacts`);
    with several, the team view of ``docs/team.md`` (self is the union of
    each account's own addresses, one message across the team).
    """

    def __init__(self, backend: Backend, store: Path | str, *,
                 accounts: Iterable[str] | None = None,
                 extra: Mapping[str, Iterable[str]] | Iterable[str] = (),
                 exclude: Iterable[str] = ()) -> None:
        self.backend = backend
        self.store = Path(store)
        self.exclude = check_addresses(exclude, "excluded address")
        self.folders = folders_table(self.store, accounts)
        if self.folders.empty:
            raise UsageError(f"{self.store} holds no folder of the chosen account(s)")
        self.accounts = list(dict.fromkeys(self.folders["account"]))
        self.extra = _extra_by_account(extra, self.accounts)
        from mailhat_nb.analysis.engines.dialect import DUCKDB, SPARK

        dialect = {"duckdb": DUCKDB, "spark": SPARK}[backend.dialect_name]
        source = backend.source(self.store)
        self.q = Queries(dialect, source.sql, int(time.time() * 1_000_000),
                         masks=len(self.accounts) <= MASK_ACCOUNTS, keyed=source.keyed,
                         repeats=source.repeats)
        backend.register("folders", self.folders)
        backend.register("accts", pd.DataFrame({"aid": np.arange(len(self.accounts),
                                                                 dtype=np.int64)}))
        keys = None if accounts is None else sorted(set(self.folders["akey"]))
        backend.view("src", self.q.src(keys))
        self._me: pd.DataFrame | None = None
        self._built: set[str] = set()     # the tables built so far ("u": the duplicate rule's)

    def close(self) -> None:
        """Release the engine's tables (and DuckDB's connection and spill directory)."""
        self.backend.close()

    def __enter__(self) -> Analysis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ identity

    @property
    def team(self) -> bool:
        """Whether this is a team view (several accounts)."""
        return len(self.accounts) > 1

    def own_addresses(self) -> pd.DataFrame:
        """The self table: ``own_addresses`` for one account, ``team_identity`` for several."""
        if self._me is None:
            tables = self._identity()
            if self.team:
                self._me = pd.concat(
                    [t.assign(account=a) for a, t in sorted(tables.items())],
                    ignore_index=True).astype({"account": "str"})[TEAM_OWN_COLUMNS]
            else:
                self._me = tables[self.accounts[0]]
        return self._me

    def _identity(self) -> dict[str, pd.DataFrame]:
        """Each account's own addresses, by the rule of ``own_addresses``, on its own rows."""
        b, q = self.backend, self.q
        senders = b.frame(q.senders())
        delivered = b.frame(q.delivered_to())
        name = dict(zip(self.folders["aid"], self.folders["account"], strict=False))
        core: dict[int, set[str]] = {}
        cand: list[tuple[int, str]] = []
        for aid, account in name.items():
            mine = senders[senders["aid"] == aid]
            core[aid] = set(core_addresses([account], mine, self.extra.get(account, ())))
            cand += [(aid, a) for a in delivered.loc[delivered["aid"] == aid, "a"]
                     if a not in core[aid]]
        wrote = pd.DataFrame({"aid": pd.Series(dtype="int64"), "sender": pd.Series(dtype=object)})
        if cand:
            b.register("cand", pd.DataFrame(cand, columns=["aid", "address"]))
            b.register("core", pd.DataFrame([(a, x) for a, xs in core.items() for x in xs],
                                            columns=["aid", "address"]))
            wrote = b.frame(q.wrote_to())
        out = {}
        for aid, account in name.items():
            mine = senders[senders["aid"] == aid]
            out[account] = own_table(
                logins=[account], senders=mine,
                delivered=set(delivered.loc[delivered["aid"] == aid, "a"]),
                wrote=set(wrote.loc[wrote["aid"] == aid, "sender"]),
                extra=self.extra.get(account, []), exclude=self.exclude)
        return out

    # ------------------------------------------------------------------ duplicate rule

    def _dedupe(self) -> None:
        """Build the tables of the duplicate rule once: ``m`` to ``u`` (see :mod:`.queries`)."""
        if "u" in self._built:
            return
        me = self.own_addresses()
        b, q = self.backend, self.q
        b.register("me", pd.DataFrame({"address": sorted(set(me["address"].astype(str)))}))
        aid = dict(zip(self.folders["account"], self.folders["aid"], strict=False))
        owners = (me[["account", "address"]] if self.team
                  else me[["address"]].assign(account=self.accounts[0]))
        b.register("owners", pd.DataFrame({
            "address": owners["address"].astype(str).to_numpy(dtype=object),
            "aid": owners["account"].map(aid).to_numpy(dtype=np.int64)}))
        versions = b.frame(q.versions()).sort_values(["fid", "uidvalidity"], ignore_index=True)
        versions["vrank"] = np.arange(len(versions), dtype=np.int64)
        b.register("fv", versions.astype("int64"))
        b.view("srcv", q.ranked())
        b.table("m", q.messages())
        b.table("hper", q.rank_counts())
        # The set key of the recipients only where stored lists differ under one content key.
        b.table("gck", q.content_groups())
        mixed = not q.keyed and int(
            b.frame("SELECT count(*) AS n FROM gck WHERE mixed = 1")["n"].iloc[0])
        b.narrow("m", ["pos", "aid", "idk", "ck", "pref"])   # what the labels need
        b.table("rk", q.recipient_keys() if mixed else q.no_recipient_keys())
        self._labels("lab")
        b.table("kept", q.kept())
        if not q.masks:     # else `u` says who holds each message
            b.table("held", q.held())
        b.table("hdup", q.duplicates())
        # Only what the replies need of `lab`, and what `u` needs of `kept`,
        # is held while `u`, the widest table, is built.
        b.narrow("lab", ["idk", "l"])
        b.narrow("kept", ["l", "kpos", "mask"] if q.masks else ["l", "kpos"])
        b.table("u", q.unique())
        b.drop("kept")
        self._built.add("u")

    def _labels(self, name: str) -> None:
        """Label propagation into table ``name`` until every content key agrees."""
        b, q = self.backend, self.q
        b.table(name, q.first_labels())
        for table in ("m", "gck", "rk"):   # `name` holds all that is needed from here on
            b.drop(table)
        if int(b.frame(q.unsettled(name, moved_only=True))["n"].iloc[0]) == 0:
            return
        for _ in range(MAX_PASSES):
            b.table(name, q.propagate(name))
            if int(b.frame(q.unsettled(name))["n"].iloc[0]) == 0:
                return
        raise MailhatError(f"the duplicate rule did not settle in {MAX_PASSES} passes")

    # ------------------------------------------------------------------ metrics

    def _build(self, name: str, sql: Callable[[], str]) -> None:
        """Table ``name`` from the unique messages, built the first time a metric needs it."""
        self._dedupe()
        if name not in self._built:
            self.backend.table(name, sql())
            self._built.add(name)

    def _groups(self) -> None:
        """``rg`` and ``sg``: per contact, what the team's and each teammate's counts sum."""
        self._build("rg", self.q.received_groups)
        self._build("sg", self.q.sent_groups)

    def contacts(self) -> pd.DataFrame:
        """Volume per contact: :func:`mailhat_nb.contacts.contacts`, same frame."""
        self._groups()
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
        return busiest_first(out)[CONTACT_COLUMNS]

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
        """``rt``: each timed reply's replier and hours, what the histogram bins."""
        self._build("rt", lambda: self.q.responses(full=False))

    def response_times(self) -> pd.DataFrame:
        """Every reply between self and a contact: :func:`mailhat_nb.contacts.response_times`.

        One row per reply: for a big store, :meth:`response_histogram` is what
        the chart needs.
        """
        self._dedupe()
        raw = self.backend.frame(self.q.responses()).sort_values("reply", kind="stable")
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

    # ------------------------------------------------------------------ the team

    def _sends(self) -> None:
        """``sends``: who sent each of the team's messages."""
        self._build("sends", self.q.senders_of)

    def _account_names(self, aids: pd.Series) -> pd.Series:
        names = self.folders.drop_duplicates("aid").set_index("aid")["account"]
        return pd.Series(names.to_numpy(dtype=object)[aids.to_numpy(dtype=np.int64)],
                         index=aids.index, dtype="str")

    def _account_groups(self) -> None:
        """What each teammate's counts are taken from (see :meth:`.Queries.by_account`)."""
        if self.q.masks:
            self._groups()
        else:
            self._sends()

    def contacts_by_account(self) -> pd.DataFrame:
        """Per contact and account: :func:`mailhat_nb.contacts.contacts_by_account`."""
        self._account_groups()
        raw = self.backend.frame(self.q.by_account())
        out = pd.DataFrame({
            "contact": pd.Series(raw["contact"], dtype="str"),
            "account": self._account_names(raw["aid"]),
            "sent": raw["sent"].astype("int64"),
            "received": raw["received"].astype("int64"),
        })
        out["total"] = out["sent"] + out["received"]
        return out[ACCOUNT_COLUMNS]      # in order already (Queries.by_account)

    def team_contacts(self) -> pd.DataFrame:
        """The team's contacts with ``owner``: :func:`mailhat_nb.contacts.team_contacts`."""
        people = self.contacts()
        self._account_groups()
        raw = self.backend.frame(self.q.contact_owners())
        owner = pd.Series(self._account_names(raw["aid"]).to_numpy(),
                          index=raw["contact"].to_numpy())
        people["owner"] = people["contact"].map(owner).astype("str")
        return people[TEAM_COLUMNS]

    def internal_mail(self) -> pd.DataFrame:
        """Who writes to whom inside the team: :func:`mailhat_nb.contacts.internal_mail`."""
        self._sends()
        raw = self.backend.frame(self.q.internal())
        out = pd.DataFrame({
            "from_account": self._account_names(raw["from_aid"]),
            "to_account": self._account_names(raw["to_aid"]),
            "messages": raw["messages"].astype("int64"),
            "first": _utc(raw["first_us"]),
            "last": _utc(raw["last_us"]),
        })
        return out.sort_values(["messages", "from_account", "to_account"],
                               ascending=[False, True, True],
                               ignore_index=True)[INTERNAL_COLUMNS]


def _extra_by_account(extra: Mapping[str, Iterable[str]] | Iterable[str],
                      accounts: list[str]) -> dict[str, list[str]]:
    """``extra`` as {account: checked addresses}; a list, or the key "", is the one account's."""
    given = extra if isinstance(extra, Mapping) else {"": extra}
    known = {a.casefold(): a for a in accounts}
    out: dict[str, list[str]] = {}
    for key, listed in given.items():
        values = list(listed)
        if not values:
            continue
        if key == "" and len(accounts) == 1:
            account = accounts[0]
        elif str(key).casefold() in known:
            account = known[str(key).casefold()]
        else:
            raise UsageError(f"no account {key!r} to add self addresses to; the store holds: "
                             + ", ".join(accounts))
        out.setdefault(account, []).extend(check_addresses(values, "self address"))
    return out
