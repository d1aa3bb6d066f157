"""The correspondence panel: who writes to whom, how much and when, from the store.

One :class:`CorrespondencePanel` reads the store once and holds the frames;
its three parts are shown one per notebook cell, each with its own words
above it:

* the panel itself -- choose the view (the team, or one account, when the
  store holds several) and read who counts as "you" and the busiest
  contacts (with their owner, and the mail inside the team, for the team);
* :attr:`CorrespondencePanel.charts` -- choose contacts and a period; the
  charts (top contacts, volume over time, weekday × hour, reply times, and
  for a team the contacts by teammate) follow the choice;
* :attr:`CorrespondencePanel.aliases` -- addresses that look like one
  person, each to accept or reject; only accepted ones are merged;
* :attr:`CorrespondencePanel.exports` -- save a table as CSV, JSON or Parquet.

The counting rules (one message counted once across folders and
teammates, self never a contact; ``docs/team.md`` for a team) are the
analysis modules'; this panel only chooses and shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from mailhat_nb.errors import MailhatError, UsageError
from mailhat_nb.widgets import render
from mailhat_nb.widgets._base import FIELD_LAYOUT, Panel, as_list, field_style
from mailhat_nb.widgets.render import plural

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

PERIODS = [("Day", "D"), ("Week", "W"), ("Month", "M"), ("Year", "Y")]
PERIOD_NAMES = {code: name for name, code in PERIODS}
#: Chart tabs: title -> method name of :class:`CorrespondencePanel` drawing it.
CHARTS = [("Top contacts", "top_chart"), ("Over time", "volume_chart"),
          ("Weekday × hour", "activity_chart"), ("Reply times", "response_chart")]
#: Only for a store of several accounts.
TEAM_CHARTS = [("By teammate", "team_chart")]
TABLES = [("Contacts (volume per contact)", "contacts"),
          ("Volume per period (chosen contacts)", "volume"),
          ("Messages (one row per message)", "messages"),
          ("Alias decisions", "aliases")]
TEAM_TABLES = [("Contacts by teammate (team view)", "by_account"),
               ("Mail inside the team (team view)", "internal")]
#: The account chooser's value for "every account, as one team".
TEAM = ""
FORMATS = [("CSV (spreadsheets)", ".csv"), ("JSON", ".json"), ("Parquet (pandas, DuckDB)",
                                                                 ".parquet")]
CHOOSER_SIZE = 30


def contact_options(people: pd.DataFrame, limit: int = CHOOSER_SIZE) -> list[tuple[str, str]]:
    """The contact chooser's entries: "Name <address> · N messages", busiest first."""
    top = people.head(limit)
    out = []
    for contact, name, total in zip(top["contact"].tolist(), top["name"].tolist(),
                                    top["total"].tolist(), strict=True):
        who = f"{name} <{contact}>" if not _missing(name) else str(contact)
        out.append((f"{who} · {int(total):,}", str(contact)))
    return out


def default_choice(people: pd.DataFrame, wanted: Sequence[str], top: int) -> list[str]:
    """The contacts to chart first: those asked for that exist, else the ``top`` busiest."""
    known = {str(c) for c in people["contact"]}
    chosen = [c.strip().lower() for c in wanted if c.strip().lower() in known]
    return chosen or [str(c) for c in people["contact"].head(top)]


@dataclass(frozen=True)
class Saved:
    """A file an export wrote; shows itself as one line in a notebook."""

    path: Path
    rows: int
    what: str
    replaced: bool = False  # a file of that name was there and is now this one

    def _repr_html_(self) -> str:
        return render.message(str(self), "ok")

    def __str__(self) -> str:
        again = " (replacing the earlier file of that name)" if self.replaced else ""
        return f"Saved {self.rows:,} rows ({self.what}) to {self.path}{again}"


class _Part(Panel):
    """One part of the correspondence panel (charts, aliases, exports)."""

    def __init__(self, owner: CorrespondencePanel, title: str,
                 static: Callable[[], str]) -> None:
        super().__init__()
        self.owner = owner
        self.title = title
        self._static = static

    def static_html(self) -> str:
        if self.owner.raw is None:  # nothing loaded: say why here too, not an empty cell
            return render.message(f"Nothing to show: {self.owner.error}", "warn")
        return self.error_html() + self._static()


class CorrespondencePanel(Panel):
    """Correspondence of a team, or of one of its accounts, in a store.

    Parameters
    ----------
    store:
        The store directory the sync filled.
    account:
        The account to show first (its address); None: the team, i.e.
        every account of the store as one (the account itself when there is
        only one). A chooser switches between the team and each account.
    me:
        More addresses of the account's owner (old addresses, aliases); for
        the team, per account: ``{account: [addresses]}``.
    exclude:
        Addresses found as "self" that are not (an assistant in the Sent folder).
    contacts:
        Contacts to chart first (default: the ``top`` busiest).
    top:
        How many contacts the charts show by default.
    period:
        ``"D"``, ``"W"``, ``"M"`` or ``"Y"``.
    export_dir:
        Where exports are saved.
    messages:
        A ``messages`` frame to use instead of reading ``store`` (an mbox
        import, a frame built by hand).
    team:
        Start with the team even when ``account`` is given (the notebook's
        ``email`` stays the account the chooser offers first).
    """

    title = "Correspondence"
    charts: _Part
    aliases: _Part
    exports: _Part

    def __init__(self, store: str | Path, account: str | None = None,
                 me: Sequence[str] | Mapping[str, Sequence[str]] = (),
                 exclude: Sequence[str] = (), contacts: Sequence[str] = (), top: int = 6,
                 period: str = "M", export_dir: str | Path = "exports",
                 messages: pd.DataFrame | None = None, team: bool = False) -> None:
        super().__init__()
        self._given = messages
        self.store = Path(store)
        self.account = account.strip().lower() if account and not team else None
        # A notebook parameter given as one string instead of a list means that
        # one address, not its letters.
        self.extra_me: list[str] | dict[str, list[str]] = (
            {str(k): as_list(v) for k, v in me.items()} if isinstance(me, Mapping)
            else as_list(me))
        self.exclude = as_list(exclude)
        contacts = as_list(contacts)
        self.top = top
        self._period_given = period
        self.export_dir = Path(export_dir)
        self.saved: list[Saved] = []
        self._pngs: dict[str, bytes] = {}
        self.raw: pd.DataFrame | None = None
        self.every: pd.DataFrame | None = None  # every account's rows, as read
        self.accounts: list[str] = []
        self.by_account: pd.DataFrame | None = None
        self.internal: pd.DataFrame | None = None
        self.summary = w.HTML()
        self.view = w.Dropdown(description="View", style=field_style(),
                               layout=w.Layout(width="520px", display="none"))
        self.widget = w.VBox([self.status, self.view, self.summary])
        self._build_parts(period)
        if self.guarded(self._load):
            self.chooser.value = tuple(default_choice(self.people, contacts, top))
            self.guarded(self.redraw)
            self.view.observe(lambda _: self.guarded(self._switch), names="value")

    # ------------------------------------------------------------------ data

    @property
    def team(self) -> bool:
        """Whether the panel shows the team (several accounts as one)."""
        return self.account is None and len(self.accounts) > 1

    def _load(self) -> None:
        from mailhat_nb.analysis.load import read_messages

        if self._period_given not in dict(PERIODS).values():
            raise UsageError(f"period {self._period_given!r} is not one of "
                             + ", ".join(f"{code!r} ({name.lower()})" for name, code in PERIODS))
        if self._given is not None:
            every = self._given
        elif not self.store.is_dir():
            raise UsageError(f"no store at {self.store}: sync the mailbox first "
                             "(notebook 02_sync_mailbox) with the same store parameter")
        else:
            every = read_messages(self.store)
        self.accounts = sorted(str(a) for a in every["account"].dropna().unique())
        if self.account is not None and not every.empty \
                and self.account not in {a.lower() for a in self.accounts}:
            raise UsageError(f"the store {self.store} holds no account {self.account}; it "
                             "holds: " + ", ".join(self.accounts))
        if every.empty:
            who = f" for {self.account}" if self.account else ""
            raise UsageError(f"the store {self.store} holds no messages{who}: sync first "
                             "(notebook 02_sync_mailbox)")
        self.every = every
        if len(self.accounts) > 1:
            team = f"The team: all {len(self.accounts)} accounts, each message once"
            self.view.options = [(team, TEAM), *((a, a.lower()) for a in self.accounts)]
            self.view.value = self.account or TEAM
            self.view.layout.display = None
        self._select()

    def _select(self) -> None:
        """Identity, aliases and every table for the chosen view (the team, or one account)."""
        from mailhat_nb import contacts as ca

        assert self.every is not None  # noqa: S101 - only called after _load
        every = self.every
        if self.account is not None:
            mine = (every["account"].astype("str").str.lower() == self.account).to_numpy()
            raw = every[mine].reset_index(drop=True) if len(self.accounts) > 1 else every
        else:
            raw = every
        if self.team:
            extra = self.extra_me if isinstance(self.extra_me, dict) else {}
            if self.extra_me and not isinstance(self.extra_me, dict):
                raise UsageError("for the team, give me as {account: [addresses]}: whose "
                                 "address it is decides who sent what")
            self.self_table = ca.team_identity(raw, extra=extra, exclude=self.exclude)
            unique = ca.team_messages(raw)
        else:
            extra_me = (self.extra_me if not isinstance(self.extra_me, dict)
                        else self.extra_me.get(self.account or "", []))
            self.self_table = ca.own_addresses(raw, login=self.account, extra=extra_me,
                                               exclude=self.exclude)
            unique = ca.unique_messages(raw)
        self.suggestions = ca.suggest_aliases(unique, self.self_table)
        self.decisions = {str(a): False for a in self.suggestions["address"]}
        self.raw = raw  # last: every part reads "loaded" from it
        self._compute(unique)
        self._fill_aliases()

    def _switch(self) -> None:
        """The view chooser moved: the team or another account, tables and charts anew."""
        chosen = self.chosen()
        self.account = str(self.view.value) or None
        self._select()
        self.chooser.value = tuple(default_choice(self.people, chosen, self.top))
        self.redraw()

    def _compute(self, unique: pd.DataFrame | None = None) -> None:
        """(Re)compute every table from the raw rows and the accepted aliases.

        ``unique``: the raw rows already de-duplicated (valid while no alias
        is accepted), so opening the panel de-duplicates once.
        """
        from mailhat_nb import contacts as ca

        assert self.raw is not None  # noqa: S101 - only called after _load
        merging = any(self.decisions.values())
        merged = (ca.apply_aliases(self.raw, self.accepted_aliases(), self.self_table)
                  if merging else self.raw)
        self.messages = merged
        dedupe = ca.team_messages if self.team else ca.unique_messages
        self.unique = dedupe(merged) if merging or unique is None else unique
        # Replies are joined on the raw rows (a reply may cite any copy's id);
        # computed once here, not on every redraw.
        self.replies = ca.response_times(merged, self.self_table)
        if self.team:
            self.by_account = ca.contacts_by_account(self.unique, self.self_table)
            self.people = ca.team_contacts(self.unique, self.self_table,
                                           by_account=self.by_account)
            self.internal = ca.internal_mail(self.unique, self.self_table)
        else:
            self.by_account = self.internal = None
            self.people = ca.contacts(self.unique, self.self_table)
        self.chooser.options = contact_options(self.people)
        self.summary.value = self._summary_html()
        self._set_tabs()

    def accepted_aliases(self) -> pd.DataFrame:
        """The suggestions with the agent's decisions in ``accept``."""
        table = self.suggestions.copy()
        table["accept"] = [self.decisions.get(str(a), False) for a in table["address"]]
        return table

    def _summary_html(self) -> str:
        assert self.raw is not None  # noqa: S101 - for mypy: loaded before any part draws
        folders = self.raw[["account", "folder"]].drop_duplicates().shape[0]
        team = self.team
        me_rows = [([str(acct)] if team else []) + [str(a), str(s), f"{int(n):,}"]
                   for acct, a, s, n in zip(
                       self.self_table["account"] if team else [""] * len(self.self_table),
                       self.self_table["address"], self.self_table["sources"],
                       self.self_table["messages"], strict=True)]
        me = render.table((["Account"] if team else [])
                          + ["Address", "Why it counts as " + ("the team" if team else "you"),
                             "Messages from it"], me_rows)
        people = self.people.head(10)
        top = render.table(
            ["Contact", "Name", "Sent", "Received", "Total", "First", "Last",
             *(["Owner"] if team else [])],
            [[str(r.contact), "" if _missing(r.name) else str(r.name), f"{r.sent:,}",
              f"{r.received:,}", f"{r.total:,}", _day(r.first), _day(r.last),
              *([str(r.owner)] if team else [])]
             for r in people.itertuples(index=False)])
        what = (f"{len(self.accounts)} accounts' {len(self.raw):,} rows in {folders} folders "
                f"are {len(self.unique):,} distinct messages (a message filed in several "
                "folders, or held by several teammates, counts once)" if team else
                f"{len(self.raw):,} rows in {folders} folders are {len(self.unique):,} "
                "distinct messages (a message filed in several folders counts once)")
        out = (render.message(f"{what}, with {len(self.people):,} contacts.", "ok")
               + render.section("Who counts as the team (never a contact)" if team
                                else "Who counts as you (never a contact)", me)
               + render.section("The ten busiest contacts" + (
                   " (owner: the teammate with the most messages with them)" if team else ""),
                   top))
        if team and self.internal is not None:
            inside = render.table(["From", "To", "Messages", "First", "Last"], [
                [str(r.from_account), str(r.to_account), f"{r.messages:,}", _day(r.first),
                 _day(r.last)] for r in self.internal.itertuples(index=False)]) \
                if not self.internal.empty else render.message(
                    "No mail between teammates.", "info")
            out += render.section("Mail inside the team (nobody's contact)", inside)
        return out

    # ------------------------------------------------------------------ parts

    def _build_parts(self, period: str) -> None:
        style, layout = field_style(), w.Layout(**FIELD_LAYOUT)
        # Charts
        self.chooser = w.SelectMultiple(description="Contacts", style=style,
                                        layout=w.Layout(width="760px", height="11em"))
        self.period = w.Dropdown(options=PERIODS, value=period if period in dict(PERIODS).values()
                                 else "M", description="Period", style=style,
                                 layout=w.Layout(width="300px"))
        self.draw_button = w.Button(description="Draw the charts", icon="bar-chart",
                                    button_style="primary", layout=w.Layout(width="200px"))
        self.draw_button.on_click(lambda _: self.guarded(self.redraw))
        self.images = {name: w.Image(format="png", layout=w.Layout(max_width="960px"))
                       for _, name in CHARTS + TEAM_CHARTS}
        self.tabs = tabs = w.Tab()
        self.charts = _Part(self, "Correspondence charts", self._charts_static)
        self.charts.widget = w.VBox([
            w.HTML("<small>Tick contacts (Ctrl/Cmd-click for several) and a period, then draw."
                   "</small>"), self.chooser, w.HBox([self.period, self.draw_button]),
            self.charts.status, tabs])
        # Aliases
        self.alias_rows = w.VBox()
        self.apply_button = w.Button(description="Apply my decisions", icon="check",
                                     button_style="primary", layout=w.Layout(width="220px"))
        self.apply_button.on_click(lambda _: self.aliases.guarded(self.apply_decisions))
        self.aliases = _Part(self, "Alias review", self._aliases_static)
        self.aliases.widget = w.VBox([self.alias_rows, self.apply_button, self.aliases.status])
        # Exports
        self.table_choice = w.Dropdown(options=TABLES, description="Table", style=style,
                                       layout=layout)
        self.format_choice = w.Dropdown(options=FORMATS, description="Format", style=style,
                                        layout=layout)
        self.name = w.Text(value="contacts", description="File name", style=style,
                           layout=layout)
        self.table_choice.observe(lambda ch: setattr(self.name, "value", str(ch["new"])),
                                  names="value")
        self.save_button = w.Button(description="Save", icon="download",
                                    button_style="primary", layout=w.Layout(width="160px"))
        self.save_button.on_click(lambda _: self.exports.guarded(self._save_from_form))
        self.exports = _Part(self, "Exports", self._exports_static)
        self.exports.widget = w.VBox([
            w.HTML(f"<small>Files are saved in <code>{render.esc(self.export_dir)}</code>."
                   "</small>"), self.table_choice, self.format_choice, self.name,
            self.save_button, self.exports.status])

    # ------------------------------------------------------------------ charts

    def chosen(self) -> list[str]:
        """The contacts ticked in the chooser."""
        return [str(c) for c in self.chooser.value]

    def volume(self) -> pd.DataFrame:
        """Volume per period of the chosen contacts (what the "Over time" chart draws)."""
        from mailhat_nb import contacts as ca

        return ca.volume(self.unique, self.self_table, str(self.period.value),
                         contacts=self.chosen() or None, top=None if self.chosen() else self.top)

    def top_chart(self) -> Figure:
        """Sent vs received for the busiest contacts."""
        from mailhat_nb.analysis import charts

        return charts.top_contacts_chart(self.people, n=12)

    def volume_chart(self) -> Figure:
        """Messages per period for the chosen contacts, one small panel each."""
        from mailhat_nb.analysis import charts

        word = PERIOD_NAMES[str(self.period.value)].lower()
        return charts.volume_chart(self.volume(), self.chosen() or None, names=self.people,
                                   title=f"Messages per {word}, chosen contacts")

    def activity_chart(self) -> Figure:
        """When mail is written: weekday × hour, on the sender's clock."""
        from mailhat_nb import contacts as ca
        from mailhat_nb.analysis import charts

        return charts.activity_heatmap(ca.activity(self.unique))

    def response_chart(self) -> Figure:
        """How fast replies come, you vs the chosen contacts (all contacts if none chosen)."""
        from mailhat_nb.analysis import charts

        replies = self.replies
        if self.chosen():
            replies = replies[replies["contact"].isin(self.chosen())]
        return charts.response_time_chart(replies)

    def team_chart(self) -> Figure:
        """The busiest contacts, each bar cut by teammate (the team view only)."""
        from mailhat_nb.analysis import charts

        if self.by_account is None:
            raise UsageError("the chart by teammate is the team view's: choose the team")
        return charts.team_chart(self.people, self.by_account, n=12)

    def shown_charts(self) -> list[tuple[str, str]]:
        """The chart tabs of the current view: (title, method name)."""
        return CHARTS + (TEAM_CHARTS if self.team else [])

    def _set_tabs(self) -> None:
        shown = self.shown_charts()
        if [t for t, _ in shown] != list(self.tabs.titles):
            self.tabs.children = [self.images[name] for _, name in shown]
            self.tabs.titles = [title for title, _ in shown]
        tables = TABLES + (TEAM_TABLES if self.team else [])
        if list(self.table_choice.options) != tables:
            self.table_choice.options = tables

    def redraw(self) -> None:
        """Draw every chart for the current choice."""
        if self.raw is None:
            raise UsageError("no messages loaded")
        self.charts.say("Drawing…")
        self._pngs = {}
        for _, name in self.shown_charts():
            fig: Figure = getattr(self, name)()
            self._pngs[name] = render.figure_png(fig)
            self.images[name].value = self._pngs[name]
        who = (plural(len(self.chosen()), "chosen contact") if self.chosen()
               else f"the {self.top} busiest contacts (none ticked)")
        self.charts.say(f"Charts for {who}, per "
                        f"{PERIOD_NAMES[str(self.period.value)].lower()}.",
                        "ok")

    def headline(self) -> render.Html:
        """The top-contacts chart and a sentence (the demo report's)."""
        if self.raw is None or "top_chart" not in self._pngs:
            return render.Html(self.error_html() or render.message("No chart was drawn.",
                                                                   "warn"))
        busiest = self.people.head(3)
        who = ", ".join(str(c) for c in busiest["contact"])
        return render.Html(render.message(
            f"{len(self.unique):,} distinct messages, {len(self.people):,} contacts; the "
            f"busiest: {who}.", "info") + render.png_img(self._pngs["top_chart"],
                                                         "Top contacts: sent and received"))

    def _charts_static(self) -> str:
        if not self._pngs:
            return ""
        chosen = ", ".join(self.chosen()) or "the busiest"
        return (render.message(f"Contacts charted: {chosen}.", "info")
                + "".join(render.section(title, render.png_img(self._pngs[name], title))
                          for title, name in self.shown_charts() if name in self._pngs))

    # ------------------------------------------------------------------ aliases

    def _fill_aliases(self) -> None:
        rows: list[w.Widget] = []
        for address, alias_of, reason, messages in _suggestion_rows(self.suggestions):
            toggle = w.ToggleButtons(options=["Reject", "Accept"],
                                     value="Accept" if self.decisions[address] else "Reject",
                                     style={"button_width": "80px"})
            toggle.observe(lambda ch, a=address: self.decide(a, ch["new"] == "Accept"),
                           names="value")
            text = (f"<code>{render.esc(address)}</code> → <code>{render.esc(alias_of)}</code>"
                    f" <small>({render.esc(reason)}; {messages:,} messages)</small>")
            rows.append(w.HBox([toggle, w.HTML(text)]))
        if not rows:
            rows = [w.HTML(render.message(
                "No two addresses look like the same person (same display name, or Gmail "
                "dots and +tags): nothing to review.", "ok"))]
            self.apply_button.layout.display = "none"
        self.alias_rows.children = rows

    def decide(self, address: str, accept: bool) -> None:
        """Record the agent's decision on one suggestion (applied by :meth:`apply_decisions`)."""
        if address not in self.decisions:
            raise UsageError(f"{address} is not among the suggested aliases")
        self.decisions[address] = accept

    def apply_decisions(self) -> None:
        """Merge the accepted aliases and recompute the tables and charts."""
        chosen = self.chosen()
        self._compute()
        self.chooser.value = tuple(default_choice(self.people, chosen, self.top))
        self.redraw()
        accepted = sum(self.decisions.values())
        self.aliases.say(f"{accepted} of {len(self.decisions)} suggestions accepted and merged; "
                         "tables and charts are up to date.", "ok")

    def _aliases_static(self) -> str:
        if self.raw is None:
            return ""
        if self.suggestions.empty:
            return render.message("No two addresses look like the same person: nothing to "
                                  "review.", "ok")
        rows = [[address, alias_of, reason, f"{messages:,}",
                 "accepted" if self.decisions.get(address) else "not merged"]
                for address, alias_of, reason, messages in _suggestion_rows(self.suggestions)]
        return render.table(["Address", "Same person as", "Why", "Messages", "Decision"], rows)

    # ------------------------------------------------------------------ exports

    def table(self, which: str) -> pd.DataFrame:
        """One of the exportable tables: contacts, volume, messages or aliases."""
        if self.raw is None:
            raise UsageError("no messages loaded")
        tables: dict[str, Callable[[], pd.DataFrame | None]] = {
            "contacts": lambda: self.people, "volume": self.volume,
            "messages": lambda: self.unique, "aliases": self.accepted_aliases,
            "by_account": lambda: self.by_account, "internal": lambda: self.internal}
        if which not in tables:
            raise UsageError(f"unknown table {which!r}: choose {', '.join(tables)}")
        table = tables[which]()
        if table is None:
            raise UsageError(f"the table {which!r} is the team view's: choose the team")
        return table

    def export(self, filename: str, which: str = "contacts") -> Saved:
        """Save table ``which`` to ``export_dir/filename`` (.csv, .json or .parquet)."""
        from mailhat_nb import contacts as ca

        name = Path(filename).name
        if not name or name != filename.strip():
            raise UsageError(f"give a file name without folders, not {filename!r}")
        frame = self.table(which)
        replaced = (self.export_dir / name).exists()
        try:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            path = ca.export(frame, self.export_dir / name).resolve()
        except OSError as exc:
            raise UsageError(f"cannot save {name} in {self.export_dir}: "
                             f"{exc.strerror or exc}; choose another export_dir") from exc
        saved = Saved(path=path, rows=len(frame), what=which, replaced=replaced)
        self.saved.append(saved)
        return saved

    def save(self, filename: str, which: str = "contacts") -> Saved | render.Notice:
        """Like :meth:`export`, for a notebook cell: a problem is shown, never raised."""
        try:
            return self.export(filename, which)
        except MailhatError as exc:
            return render.Notice(str(exc), "fail")

    def _save_from_form(self) -> None:
        name = self.name.value.strip() or str(self.table_choice.value)
        suffix = str(self.format_choice.value)
        if not name.endswith(suffix):
            name = f"{Path(name).stem}{suffix}"
        saved = self.export(name, str(self.table_choice.value))
        self.exports.say(str(saved), "ok")

    def _exports_static(self) -> str:
        if not self.saved:
            return render.message(f"Exports are saved in {self.export_dir}; none yet.", "info")
        return "".join(s._repr_html_() for s in self.saved)

    # ------------------------------------------------------------------ static view

    def static_html(self) -> str:
        """The summary: distinct messages, who counts as you, the busiest contacts."""
        return self.error_html() + str(self.summary.value)


def _suggestion_rows(table: pd.DataFrame) -> list[tuple[str, str, str, int]]:
    """``(address, alias_of, reason, messages)`` of each alias suggestion."""
    return [(str(a), str(b), str(c), int(n)) for a, b, c, n in zip(
        table["address"].tolist(), table["alias_of"].tolist(), table["reason"].tolist(),
        table["messages"].tolist(), strict=True)]


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value)) or str(value).strip() == ""


def _day(value: Any) -> str:
    return "" if _missing(value) else str(value)[:10]
