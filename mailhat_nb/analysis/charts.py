"""Charts of correspondence, with matplotlib only.

Every function takes a frame from :mod:`mailhat_nb.contacts` (and an
optional ``ax`` to draw into) and returns the :class:`~matplotlib.figure.Figure`.
None calls ``plt.show()`` or even imports pyplot: figures are built as
:class:`ChartFigure` objects, which need no GUI backend (headless servers,
CI, Voilà) and leave no global state behind, so a loop drawing a thousand
charts does not leak figures. A ``ChartFigure`` renders itself in Jupyter
(``_repr_png_``), so a cell ending in ``top_contacts_chart(people)`` shows
the chart once.

Readable defaults, because these charts are pasted into tickets and reports
as they are: a title, labelled axes, concise date ticks, display names
instead of raw addresses where the mail told us one, one palette (sent is
always blue, received always orange; Okabe-Ito colours, safe for colour
blindness), and an empty frame gives a figure that says "no data" rather
than an exception.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from mailhat_nb.analysis.dedupe import SUSPECT_BEFORE
from mailhat_nb.analysis.metrics import WEEKDAYS, busiest_first, response_histogram
from mailhat_nb.errors import UsageError

#: Okabe-Ito: distinguishable with every common colour-vision deficiency.
SENT_COLOR = "#0072B2"
RECEIVED_COLOR = "#E69F00"
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
           "#F0E442", "#000000"]
WARN_COLOR = "#D55E00"
MUTED_COLOR = "#999999"
MAX_LABEL = 34
#: Folders the data health chart draws at most (see :func:`data_health_chart`).
MAX_HEALTH_FOLDERS = 30

Names = Mapping[str, str] | pd.DataFrame | None


class ChartFigure(Figure):
    """A Figure that Jupyter displays as PNG without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def _figure_and_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure(root=True)
        if not isinstance(fig, Figure):  # an Axes always belongs to one
            raise UsageError("the Axes given is not attached to a figure")
        return fig, ax
    fig = ChartFigure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _no_data(ax: Axes, title: str, why: str = "no data") -> None:
    ax.set_title(title, loc="left", fontweight="bold")
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes,
            fontsize=12, color=MUTED_COLOR, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#dddddd")


def _tidy(ax: Axes) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _bar_axes(ax: Axes, y: np.ndarray, labels: list[str], xmax: float, xlabel: str,
              title: str, nbins: int = 6) -> None:
    """The frame every horizontal bar chart shares: one labelled row per bar, counts across."""
    ax.set_yticks(y, labels)
    ax.set_xlim(0, xmax)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=nbins, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_compact))
    ax.set_title(title, loc="left", fontweight="bold")
    ax.grid(axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    _tidy(ax)


def _compact(value: float, _pos: object = None) -> str:
    """Tick label for counts: 950, 12k, 1.2M (no collisions on a narrow axis)."""
    v = abs(value)
    if v >= 1e6:
        return f"{value / 1e6:.1f}M".replace(".0M", "M")
    if v >= 1e4:
        return f"{value / 1e3:.0f}k"
    return f"{value:,.0f}"


def _shorten(text: str, width: int = MAX_LABEL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _name_map(names: Names) -> dict[str, str]:
    if names is None:
        return {}
    if isinstance(names, pd.DataFrame):
        if not {"contact", "name"} <= set(names.columns):
            return {}
        known = names.dropna(subset=["name"])
        known = known[known["name"].astype("str").str.strip() != ""]
        return dict(zip(known["contact"].astype("str"), known["name"].astype("str"),
                        strict=True))
    return {str(k).lower(): str(v) for k, v in names.items() if v}


def display_labels(contacts: Sequence[str], names: Names = None) -> list[str]:
    """Return a chart label per contact: the display name when known, else the address.

    Two contacts with the same name get their domain added
    ("Ann Lee (acme.com)"), so a label never hides which is which.
    Labels are cut at :data:`MAX_LABEL` characters so they cannot push the
    plot off the figure.
    """
    known = _name_map(names)
    base = [known.get(c, "").strip() or c for c in contacts]
    counts = Counter(base)
    return [_shorten(f"{label} ({c.rpartition('@')[2]})" if counts[label] > 1 and label != c
                     else label) for c, label in zip(contacts, base, strict=True)]


# --------------------------------------------------------------------------- top contacts


def top_contacts_chart(contacts: pd.DataFrame, n: int = 15, *, ax: Axes | None = None,
                       title: str | None = None) -> Figure:
    """Horizontal bars, sent vs received, for the ``n`` busiest contacts.

    Parameters
    ----------
    contacts
        What :func:`mailhat_nb.contacts.contacts` returns.
    n
        How many contacts (the busiest by ``total``), top of the chart first.
    """
    title = title or f"Top {n} contacts: messages sent and received"
    height = 1.4 + 0.36 * max(min(n, len(contacts)), 3)
    fig, ax = _figure_and_axes(ax, (9.0, height))
    if contacts.empty:
        _no_data(ax, title)
        return fig
    top = busiest_first(contacts).head(n)
    labels = display_labels(list(top["contact"].astype("str")), top)
    y = np.arange(len(top))[::-1]
    h = 0.4
    peak = max(int(top[["sent", "received"]].to_numpy().max(initial=0)), 1)
    for col, dy, color, label in (("sent", h / 2, SENT_COLOR, "sent (you → them)"),
                                  ("received", -h / 2, RECEIVED_COLOR, "received (them → you)")):
        values = top[col].to_numpy()
        ax.barh(y + dy, values, height=h, color=color, label=label)
        for yi, vi in zip(y + dy, values, strict=True):
            if vi:
                ax.text(vi + peak * 0.01, yi, f"{vi:,}", va="center", fontsize=7.5,
                        color="#333333")
    _bar_axes(ax, y, labels, peak * 1.12, "messages (each copy of a message counted once)",
              title)
    ax.legend(loc="lower right", frameon=False)
    return fig


# --------------------------------------------------------------------------- the team


def team_chart(contacts: pd.DataFrame, by_account: pd.DataFrame, n: int = 15, *,
               ax: Axes | None = None, title: str | None = None) -> Figure:
    """Who on the team handles each of the ``n`` busiest contacts: one bar per contact.

    Each bar is cut by teammate: the messages each account had with the
    contact (sent by it, or received in its mailbox). A message from a
    client to two teammates is one message of the team (the number after
    the bar) but counts for both, so the pieces can add up to more. The
    label names the contact's ``owner``, the teammate with the most.

    Parameters
    ----------
    contacts
        :func:`mailhat_nb.contacts.team_contacts` (with ``owner``).
    by_account
        :func:`mailhat_nb.contacts.contacts_by_account` of the same messages.
    n
        How many contacts, the busiest first.
    """
    title = title or f"Top {n} contacts, by teammate"
    top = busiest_first(contacts).head(n)
    height = 1.6 + 0.36 * max(len(top), 3)
    fig, ax = _figure_and_axes(ax, (9.5, height))
    if top.empty:
        _no_data(ax, title)
        return fig
    accounts = sorted(by_account["account"].astype("str").unique())
    if len(accounts) < 2:
        _no_data(ax, title, "one account: every contact is its own (sync the teammates' "
                 "mailboxes into the same store)")
        return fig
    table = by_account.pivot_table(index="contact", columns="account", values="total",
                                   aggfunc="sum", fill_value=0)
    table = table.reindex(index=top["contact"].astype("str"), columns=accounts, fill_value=0)
    owners = top["owner"].astype("str").tolist() if "owner" in top.columns else [""] * len(top)
    labels = [f"{label}  · {owner.partition('@')[0]}" if owner else label
              for label, owner in zip(display_labels(list(top["contact"].astype("str")), top),
                                      owners, strict=True)]
    y = np.arange(len(top))[::-1]
    left = np.zeros(len(top))
    for i, account in enumerate(accounts):
        values = table[account].to_numpy(dtype=float)
        ax.barh(y, values, left=left, height=0.62, color=PALETTE[i % len(PALETTE)],
                label=_shorten(account, 28))
        left += values
    for yi, end, total in zip(y, left, top["total"].to_numpy(), strict=True):
        ax.text(end + left.max() * 0.01, yi, f"{int(total):,}", va="center", fontsize=7.5,
                color="#333333")
    _bar_axes(ax, y, labels, max(left.max(), 1) * 1.12,
              "messages with each teammate (the number: the team's, each message once)", title)
    ax.legend(loc="lower right", frameon=False, title="teammate", fontsize=8,
              title_fontsize=8)
    return fig


# --------------------------------------------------------------------------- volume


_FREQ_RULE = {"D": "D", "W": "W-MON", "M": "MS", "Y": "YS"}
_FREQ_WORD = {"D": "day", "W": "week", "M": "month", "Y": "year"}


def _volume_table(volume: pd.DataFrame, chosen: list[str], measure: str,
                  freq: str) -> tuple[pd.DataFrame, int]:
    """Return periods x contacts (0 where silent) and the placeholder-dated count."""
    data = volume[volume["contact"].isin(chosen)]
    placeholder = data["period"] < SUSPECT_BEFORE
    dropped = int(data.loc[placeholder, measure].sum())
    data = data[~placeholder]
    if data.empty:
        return pd.DataFrame(), dropped
    table = data.pivot_table(index="period", columns="contact", values=measure,
                             aggfunc="sum", fill_value=0)
    have = pd.DatetimeIndex(table.index)
    full = pd.date_range(have.min(), have.max(), freq=_FREQ_RULE.get(freq, "MS"))
    table = table.reindex(full.union(have), fill_value=0)
    table.index = pd.DatetimeIndex(table.index).tz_convert(None)
    return table, dropped


def _date_axis(ax: Axes) -> None:
    """Concise date ticks that always carry the year ("Apr 2000", not "Apr")."""
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]  # untyped lib
    formats = ["%Y", "%b %Y", "%d %b %Y", "%H:%M", "%H:%M", "%S.%f"]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]  # untyped lib
            locator, formats=formats, zero_formats=formats, show_offset=False))


def volume_chart(
    volume: pd.DataFrame,
    contacts: Sequence[str] | None = None,
    *,
    names: Names = None,
    measure: Literal["total", "sent", "received"] = "total",
    top: int = 5,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Messages per period for chosen contacts.

    Without ``ax``: one small panel per contact, stacked on a shared time
    axis, each with its own scale. One busy contact (a daily report, a
    mailing list) would otherwise flatten everyone else's line to zero;
    small multiples keep each contact's rhythm readable. With ``ax``: one
    line per contact on that Axes.

    Parameters
    ----------
    volume
        What :func:`mailhat_nb.contacts.volume` returns (its period length
        is read from ``volume.attrs["freq"]``; months if absent).
    contacts
        Addresses to draw; default the ``top`` busiest in ``volume``.
    names
        A contacts frame or ``{address: name}``, for labels.
    measure
        ``"total"``, ``"sent"`` or ``"received"``.

    Notes
    -----
    Periods with no message are drawn as 0, not skipped (a line that jumps
    over a silent quarter would lie). Messages dated before 1990 are
    placeholders (Enron's Notes export used 1979-12-31): they are left off
    the time axis, which they would otherwise stretch over twenty empty
    years, and a note says how many.
    """
    if measure not in ("total", "sent", "received"):
        raise UsageError("measure must be 'total', 'sent' or 'received'")
    freq = str(volume.attrs.get("freq", "M"))
    word = _FREQ_WORD.get(freq, "period")
    title = title or f"Messages per {word} ({measure}), busiest contacts"
    if contacts is None and not volume.empty:
        busiest = volume.groupby("contact")["total"].sum().sort_values(
            ascending=False, kind="stable")
        contacts = [str(c) for c in busiest.index[:top]]
    chosen = [c.lower() for c in contacts or []]
    table, dropped = (
        _volume_table(volume, chosen, measure, freq) if chosen and not volume.empty
        else (pd.DataFrame(), 0)
    )
    present = [c for c in chosen if c in table.columns]
    labels = dict(zip(chosen, display_labels(chosen, names), strict=True))
    # A message to two charted contacts counts for each: say "counts", not "messages".
    note = (f"not shown: {dropped:,} count(s) with placeholder dates before 1990"
            if dropped else "")

    if ax is not None or not present:
        fig, ax = _figure_and_axes(ax, (10.0, 4.8))
        if not present:
            _no_data(ax, title, "no messages for the chosen contacts"
                     if not volume.empty else "no data")
            return fig
        for i, c in enumerate(present):
            ax.plot(table.index, table[c].to_numpy(), color=PALETTE[i % len(PALETTE)],
                    label=labels[c], linewidth=1.8)
        _date_axis(ax)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"messages per {word}")
        ax.set_xlabel(f"{word} (UTC)")
        ax.set_title(title, loc="left", fontweight="bold")
        if note:
            ax.text(0, 1.0, note, transform=ax.transAxes, fontsize=8, color=WARN_COLOR,
                    va="bottom")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8.5)
        ax.grid(axis="y", color="#eeeeee")
        _tidy(ax)
        return fig

    fig = ChartFigure(figsize=(10.0, 1.0 + 1.05 * len(present)), layout="constrained")
    axes = fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]
    for i, (c, a) in enumerate(zip(present, axes, strict=True)):
        values = table[c].to_numpy()
        color = PALETTE[i % len(PALETTE)]
        a.fill_between(table.index, values, step="mid", color=color, alpha=0.25, linewidth=0)
        a.plot(table.index, values, drawstyle="steps-mid", color=color, linewidth=1.4)
        a.set_ylim(0, max(int(values.max()), 1) * 1.15)
        a.yaxis.set_major_locator(MaxNLocator(nbins=2, integer=True))
        a.tick_params(axis="y", labelsize=7.5)
        a.set_title(f"{labels[c]}  ·  {int(values.sum()):,} messages, peak "
                    f"{int(values.max()):,}/{word}", loc="left", fontsize=9, color="#333333")
        a.grid(axis="y", color="#eeeeee")
        _tidy(a)
    _date_axis(axes[-1])
    axes[-1].set_xlabel(f"{word} (UTC)")
    fig.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=11)
    if note:
        axes[0].annotate(note, xy=(1.0, 1.0), xycoords="axes fraction", xytext=(0, 14),
                         textcoords="offset points", ha="right", va="bottom", fontsize=8,
                         color=WARN_COLOR)
    fig.supylabel(f"messages per {word}", fontsize=9)
    return fig


# --------------------------------------------------------------------------- hour x weekday


def activity_heatmap(activity: pd.DataFrame, *, ax: Axes | None = None,
                     title: str | None = None, clock: str | None = None) -> Figure:
    """Messages by hour of day (x) and weekday (y), darker = more.

    Parameters
    ----------
    activity
        What :func:`mailhat_nb.contacts.activity` returns (7 x 24).
    clock
        Words for the x label, saying which clock the hours are on; default
        what :func:`~mailhat_nb.contacts.activity` recorded in ``attrs``.
    """
    clock = clock or str(activity.attrs.get("clock", "UTC"))
    direction = activity.attrs.get("direction")
    title = title or {
        "sent": "When you write: messages you sent, by weekday × hour",
        "received": "When mail arrives: messages you received, by weekday × hour",
    }.get(str(direction), "When mail is written: weekday × hour")
    fig, ax = _figure_and_axes(ax, (10.0, 3.8))
    values = activity.reindex(index=WEEKDAYS, columns=range(24), fill_value=0)
    grid = values.to_numpy(dtype=float)
    if activity.empty or grid.sum() == 0:
        _no_data(ax, title)
        return fig
    image = ax.imshow(grid, aspect="auto", cmap="Blues", interpolation="nearest",
                      vmin=0)
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}:00" for h in range(0, 24, 2)], fontsize=8)
    ax.set_xticks(np.arange(-0.5, 24, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, 7, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel(f"hour of day ({clock})")
    ax.set_title(title, loc="left", fontweight="bold")
    for side in ax.spines.values():
        side.set_visible(False)
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    bar.set_label("messages")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return fig


# --------------------------------------------------------------------------- response times

_TIME_TICKS = [(1 / 60, "1 min"), (10 / 60, "10 min"), (1, "1 h"), (6, "6 h"),
               (24, "1 day"), (24 * 7, "1 week"), (24 * 30, "1 month")]


def _human_hours(h: float) -> str:
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h / 24:.1f} days"


def response_time_chart(responses: pd.DataFrame, *, ax: Axes | None = None,
                        title: str | None = None) -> Figure:
    """Distribution of reply delays, you vs your contacts, on a log time axis.

    Parameters
    ----------
    responses
        What :func:`mailhat_nb.contacts.response_times` returns (one row per
        reply), or its histogram, :func:`mailhat_nb.contacts.response_histogram`
        (what an out-of-core engine hands over for a big store): the chart is
        drawn from the histogram either way.

    Notes
    -----
    A log axis because reply delays span minutes to weeks; the dashed lines
    are the medians (the legend gives them in words).
    """
    title = title or "How fast replies come: you vs your contacts"
    fig, ax = _figure_and_axes(ax, (9.0, 4.2))
    hist = responses if "left" in responses.columns else response_histogram(responses)
    if hist.empty:
        _no_data(ax, title, "no replies found:\nno In-Reply-To or References header "
                 "points to a message in this mailbox")
        return fig
    medians = hist.attrs.get("median_hours", {})
    low = float(hist["left"].min())
    high = float(hist["right"].max())
    for who, color, label in (("self", SENT_COLOR, "you replied"),
                              ("contact", RECEIVED_COLOR, "they replied")):
        bins = hist[hist["replier"] == who]
        if bins.empty:
            continue
        edges = np.r_[bins["left"].to_numpy(dtype=float), bins["right"].to_numpy(dtype=float)]
        edges = np.unique(edges)
        counts = np.zeros(len(edges) - 1)
        counts[np.searchsorted(edges, bins["left"].to_numpy(dtype=float))] = bins["replies"]
        med = float(medians.get(who, np.nan))
        # A light fill plus a full-colour outline: two overlapping
        # distributions stay readable where they overlap.
        ax.stairs(counts, edges, color=color, alpha=0.25, fill=True)
        ax.stairs(counts, edges, color=color, linewidth=1.6,
                  label=f"{label}: {int(bins['replies'].sum()):,} replies, "
                  f"median {_human_hours(med)}")
        ax.axvline(med, color=color, linestyle="--", linewidth=1.5)
    ax.set_xscale("log")
    ticks = [(v, t) for v, t in _TIME_TICKS if low / 2 <= v <= high * 2]
    if ticks:
        ax.set_xticks([v for v, _ in ticks], [t for _, t in ticks])
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time to reply (log scale)")
    ax.set_ylabel("replies")
    ax.set_title(title, loc="left", fontweight="bold")
    ax.legend(frameon=False, loc="upper right", fontsize=8.5)
    _tidy(ax)
    return fig


# --------------------------------------------------------------------------- data health


def _health_notes(r: pd.Series) -> str:
    """One folder's problems, as the chart's right-hand text ("" when there are none)."""
    parts = []
    missing = r.get("missing")
    if missing is not None and not pd.isna(missing) and int(missing) != 0:
        parts.append(f"{int(missing):,} not synced" if int(missing) > 0 else
                     f"{-int(missing):,} over server count")
    for col, word in (("date_fallbacks", "date fallbacks"),
                      ("suspect_dates", "placeholder dates"),
                      ("no_date", "no date"), ("defects", "decode fallbacks"),
                      ("uidvalidity_events", "UIDVALIDITY changes")):
        v = r.get(col)
        if v is not None and not pd.isna(v) and int(v) != 0:
            parts.append(f"{int(v):,} {word}")
    return " · ".join(parts)


def data_health_chart(health: pd.DataFrame, *, ax: Axes | None = None,
                      title: str | None = None, max_folders: int = MAX_HEALTH_FOLDERS) -> Figure:
    """Rows per folder (duplicate copies shaded), the server's count, and problems.

    Parameters
    ----------
    health
        What :func:`mailhat_nb.contacts.data_health` returns.
    max_folders
        Folders drawn at most. A team's store can hold hundreds, and a bar
        per folder would make a chart nobody scrolls through: the folders
        with a problem come first, then the largest, and one last line sums
        up the folders left out (the table still lists them all).

    Notes
    -----
    One bar per folder drawn (see ``max_folders``): the dark part is rows whose message has a copy
    elsewhere (counted once by every metric), a black tick is the server's
    count when it is known (a gap between bar and tick is mail not synced),
    and the text at the right lists date fallbacks, placeholder dates,
    decoding fallbacks and UIDVALIDITY events, in red when there are any.
    """
    title = title or "Data health per folder"
    h = health.sort_values(["rows", "folder"], ascending=[False, True], kind="stable")
    notes = [_health_notes(r) for _, r in h.iterrows()]  # one per folder, not per message
    summary, bad = "", 0
    if len(h) > max_folders:
        troubled = np.array([bool(note) for note in notes])
        # Troubled folders first (largest first), then the largest of the rest.
        order = np.lexsort((np.arange(len(h)), ~troubled))
        shown, rest = np.sort(order[:max_folders]), order[max_folders:]
        bad = int(troubled[rest].sum())
        summary = (f"{int(h['rows'].iloc[rest].sum()):,} rows"
                   + (f" · {bad:,} with problems" if bad else ", no problems"))
        h, notes = h.iloc[shown], [notes[i] for i in shown]
    fig, ax = _figure_and_axes(ax, (11.0, 1.5 + 0.34 * max(len(h) + bool(summary), 3)))
    if health.empty:
        _no_data(ax, title)
        return fig
    accounts = health["account"].astype("str").nunique() if "account" in health.columns else 1
    labels = [
        _shorten(f"{a}: {f}" if accounts > 1 else str(f))
        for a, f in zip(h.get("account", pd.Series([""] * len(h))).astype("str"),
                        h["folder"].astype("str"), strict=True)
    ]
    colors = [WARN_COLOR if note else "#009E73" for note in notes]
    if summary:   # one more line, without a bar, for the folders left out
        labels.append(f"{len(health) - len(h):,} more folders")
        notes.append(summary)
        colors.append(WARN_COLOR if bad else MUTED_COLOR)
        title = f"{title} ({len(h):,} of {len(health):,} folders)"
    rows = h["rows"].to_numpy(dtype=float)
    dups = h["duplicates"].to_numpy(dtype=float) if "duplicates" in h else np.zeros(len(h))
    server = (pd.to_numeric(h["server_count"], errors="coerce").to_numpy(dtype=float)
              if "server_count" in h else np.full(len(h), np.nan))
    if summary:   # the summary's line has no bar and no server count
        rows, dups, server = np.r_[rows, 0.0], np.r_[dups, 0.0], np.r_[server, np.nan]
    y = np.arange(len(labels))[::-1]
    ax.barh(y, rows - dups, color="#56B4E9", label="rows (only copy)")
    ax.barh(y, dups, left=rows - dups, color=SENT_COLOR,
            label="rows with a copy in another folder")
    known = ~np.isnan(server)
    if known.any():
        ax.scatter(server[known], y[known], marker="|", s=260, color="black", linewidths=2,
                   label="server's count", zorder=3)
    peak = float(np.nanmax(np.r_[rows, server[known], 1.0]))
    _bar_axes(ax, y, labels, peak * 1.04, "rows in the store", title, nbins=5)
    ax.tick_params(axis="y", labelsize=8.5)
    # The problems go on a right-hand axis as tick labels, so the layout
    # engine makes room for them however long they are.
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(y, [note or "ok" for note in notes], fontsize=8)
    for label, color in zip(right.get_yticklabels(), colors, strict=True):
        label.set_color(color)
    right.tick_params(axis="y", length=0)
    for side in right.spines.values():
        side.set_visible(False)
    ax.legend(loc="lower right", frameon=True, framealpha=0.9, edgecolor="none", fontsize=8)
    return fig
