"""Charts render headless, label what they show, and survive empty frames.

The PNGs of every chart on a real Enron mailbox are written to
``/tmp/mailhat-charts/`` (override with ``$MAILHAT_CHART_DIR``) so a person
can look at them.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

matplotlib.use("Agg")  # headless, whatever the environment says

from mailhat_nb import contacts as ca
from mailhat_nb.analysis import charts

sys.path.insert(0, str(Path(__file__).parent))
from test_contacts import ME, T0, build, msg
from test_contacts_enron import load_person

CHART_DIR = Path(os.environ.get("MAILHAT_CHART_DIR", "/tmp/mailhat-charts"))


def texts(fig: Figure) -> str:
    """Every piece of text drawn on the figure (titles, labels, ticks, notes)."""
    fig.canvas.draw()
    found = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return "\n".join(t for t in found if t)


@pytest.fixture(scope="module")
def mailbox() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    people = [f"p{i}@x.com" for i in range(12)] + ["ann@x.com", "ann@y.org"]
    rows = []
    for i in range(300):
        sent = rng.random() < 0.35
        who = people[int(rng.integers(0, len(people)))]
        at = T0 + timedelta(hours=int(rng.integers(0, 24 * 120)))
        rows.append(msg(ME if sent else who, [who] if sent else [ME], at=at, mid=f"m{i}",
                        folder="Sent" if sent else "INBOX",
                        name="" if sent else ("Ann Lee" if who.startswith("ann") else ""),
                        date_offset_min=-300))
        if not sent and rng.random() < 0.5:  # a reply from me
            rows.append(msg(ME, [who], at=at + timedelta(minutes=int(rng.integers(5, 3000))),
                            mid=f"r{i}", folder="Sent", in_reply_to=f"m{i}"))
    rows.append(msg("old@x.com", [ME], at=datetime(1979, 12, 31, tzinfo=UTC), mid="bogus"))
    return build(rows)


def test_every_chart_returns_a_figure_with_words(mailbox: pd.DataFrame) -> None:
    people = ca.contacts(mailbox, [ME])
    figs = {
        "top": charts.top_contacts_chart(people, 15),
        "volume": charts.volume_chart(ca.volume(mailbox, [ME], "W"), names=people,
                                      contacts=[*ca.top_contacts(people, 4), "old@x.com"]),
        "activity": charts.activity_heatmap(ca.activity(mailbox)),
        "responses": charts.response_time_chart(ca.response_times(mailbox, [ME])),
        "health": charts.data_health_chart(ca.data_health(mailbox, server_counts={"INBOX": 250})),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        words = texts(fig)
        assert fig.axes, name
        title = fig.axes[0].get_title(loc="left") or fig.get_suptitle()
        assert title, f"{name} has no title"
        assert isinstance(fig, charts.ChartFigure)
        assert fig._repr_png_().startswith(b"\x89PNG"), name
        assert "no data" not in words, name
    top = texts(figs["top"])
    assert "Ann Lee (x.com)" in top
    assert "Ann Lee (y.org)" in top
    assert "messages" in top
    assert "sent" in top
    assert "received" in top
    vol = texts(figs["volume"])
    assert "placeholder dates before 1990" in vol  # the 1979 date is not on the axis
    assert "1979" not in vol
    assert "2024" in vol
    assert "sender's local time" in texts(figs["activity"])
    assert "median" in texts(figs["responses"])
    health = texts(figs["health"])
    assert "not synced" in health
    assert "server's count" in health


@pytest.mark.parametrize("draw", [
    lambda: charts.top_contacts_chart(ca.contacts(_empty(), [ME])),
    lambda: charts.volume_chart(ca.volume(_empty(), [ME])),
    lambda: charts.activity_heatmap(ca.activity(_empty())),
    lambda: charts.response_time_chart(ca.response_times(_empty(), [ME])),
    lambda: charts.data_health_chart(ca.data_health(_empty())),
])
def test_empty_frames_say_no_data(draw: object) -> None:
    fig = draw()  # type: ignore[operator]
    assert isinstance(fig, Figure)
    words = texts(fig)
    assert "no data" in words or "no replies found" in words
    fig.savefig(os.devnull, format="png")


def _empty() -> pd.DataFrame:
    return build([msg("a@x.com", [ME], mid="1")]).iloc[:0]


def test_draws_into_a_given_axes(mailbox: pd.DataFrame) -> None:
    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(2, 2)
    people = ca.contacts(mailbox, [ME])
    assert charts.top_contacts_chart(people, ax=axes[0, 0]) is fig
    assert charts.volume_chart(ca.volume(mailbox, [ME]), ax=axes[0, 1]) is fig
    assert charts.activity_heatmap(ca.activity(mailbox), ax=axes[1, 0]) is fig
    assert charts.response_time_chart(ca.response_times(mailbox, [ME]), ax=axes[1, 1]) is fig
    assert axes[0, 1].get_lines(), "volume lines went elsewhere"
    fig.savefig(os.devnull, format="png")


def test_no_pyplot_state_left_behind(mailbox: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    charts.top_contacts_chart(ca.contacts(mailbox, [ME]))
    assert plt.get_fignums() == before


def test_labels() -> None:
    names = {"a@x.com": "Ann", "b@y.com": "Ann", "c@z.com": ""}
    assert charts.display_labels(["a@x.com", "b@y.com", "c@z.com"], names) == [
        "Ann (x.com)", "Ann (y.com)", "c@z.com"]
    long = "a-very-long-local-part-for-someone@an-even-longer-domain.example.com"
    assert len(charts.display_labels([long])[0]) == charts.MAX_LABEL


def test_enron_charts_to_png(corpus: Path) -> None:
    """Every chart on a real mailbox, saved for a person to look at."""
    CHART_DIR.mkdir(parents=True, exist_ok=True)
    for person in ("dean-c", "delainey-d"):
        frame = load_person(corpus / "enron" / person, person)
        me = ca.own_addresses(frame)
        uniq = ca.unique_messages(frame)
        people = ca.contacts(uniq, me)
        figs = {
            "top": charts.top_contacts_chart(people, 15),
            "volume": charts.volume_chart(ca.volume(uniq, me, "M"), names=people),
            "activity": charts.activity_heatmap(ca.activity(uniq, me, direction="sent")),
            "responses": charts.response_time_chart(ca.response_times(frame, me)),
            "health": charts.data_health_chart(ca.data_health(frame, unique=uniq)),
        }
        for name, fig in figs.items():
            path = CHART_DIR / f"{person}-{name}.png"
            fig.savefig(path, dpi=100)
            assert path.stat().st_size > 10_000, path
        if person == "delainey-d":  # six Notes placeholder dates (corpus README)
            assert "placeholder dates" in texts(figs["health"])


def test_team_chart_cuts_each_contact_by_teammate(mailbox: pd.DataFrame) -> None:
    other = mailbox.assign(account="mate@example.com", uid=mailbox["uid"] + 10_000)
    team = pd.concat([mailbox.assign(account=ME), other.iloc[:100]], ignore_index=True)
    who = ca.team_identity(team)
    per = ca.contacts_by_account(team, who)
    people = ca.team_contacts(team, who, by_account=per)
    fig = charts.team_chart(people, per, n=8)
    words = texts(fig)
    assert "Top 8 contacts, by teammate" in words
    assert "mate@example.com" in words  # the legend names each teammate
    assert f" · {people['owner'].iloc[0].partition('@')[0]}" in words  # and the owner
    CHART_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(CHART_DIR / "team.png")
    alone = charts.team_chart(ca.team_contacts(mailbox, ca.team_identity(mailbox)),
                              ca.contacts_by_account(mailbox, ca.team_identity(mailbox)))
    assert "one account" in texts(alone)


def test_health_chart_of_a_big_team_shows_troubled_folders_and_sums_the_rest() -> None:
    """Hundreds of folders: the troubled ones and the largest are drawn, the rest summed."""
    n = 100
    health = pd.DataFrame({
        "account": [f"user{i % 20}@team.example" for i in range(n)],
        "folder": [f"Folder {i:03d}" for i in range(n)],
        "rows": [10_000 - i for i in range(n)],
        "duplicates": [0] * n,
        "defects": [3 if i in (95, 97) else 0 for i in range(n)],
    })
    fig = charts.data_health_chart(health, max_folders=10)
    words = texts(fig)
    assert "(10 of 100 folders)" in fig.axes[0].get_title(loc="left")
    assert "3 decode fallbacks" in words              # a troubled small folder is kept
    assert "user15@team.example: Folder 095" in words
    assert "user0@team.example: Folder 000" in words  # then the largest
    assert "user19@team.example: Folder 099" not in words
    left = health.drop(index=[95, 97, *range(8)])
    assert "90 more folders" in words
    assert f"{int(left['rows'].sum()):,} rows, no problems" in words
    assert fig._repr_png_().startswith(b"\x89PNG")
    few = texts(charts.data_health_chart(health.head(12), max_folders=30))
    assert "more folders" not in few
