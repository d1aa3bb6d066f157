"""The sync panel: connect with the settings that worked, choose folders, sync, check the data.

Three steps, top to bottom:

1. **Connect.** When the connection doctor found working IMAP settings in
   this kernel, they are used as they are, password included, so nobody
   types it twice. Otherwise the panel runs the doctor itself on the
   notebook's parameters (the password from the box, the environment
   variable, or the lab's file) and takes the setting the verdict names.
2. **Folders.** Listed with the server's message counts; all are ticked.
3. **Sync.** Headers only, into the store; a progress bar; then a preview of
   the newest messages and the data-health summary in words and as a chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w

from mailhat_nb.app import params
from mailhat_nb.checks import check_store_arg
from mailhat_nb.diagnose import Account, diagnose
from mailhat_nb.diagnose.doctor import DEFAULT_TIMEOUT
from mailhat_nb.errors import UsageError
from mailhat_nb.secrets import Secret
from mailhat_nb.sync.progress import Progress
from mailhat_nb.widgets import render
from mailhat_nb.widgets._base import FIELD_LAYOUT, Panel, as_list, field_style

if TYPE_CHECKING:
    import pandas as pd

    from mailhat_nb.sync.summary import SyncSummary

#: Columns of the preview, in the order an agent reads a mail list.
PREVIEW_COLUMNS = ["date", "folder", "direction", "from_addr", "to_addrs", "subject"]


def progress_words(event: Progress) -> str:
    """The progress line: where, how many, how fast, how long to go."""
    if event.phase == "done":
        return f"Done: {event.done:,} new messages in {event.elapsed:.1f} s."
    if event.phase == "retry":
        return "The connection dropped; reconnecting and resuming from the last saved chunk…"
    where = f"{event.folder}: " if event.folder else ""
    eta = f", about {event.eta:.0f} s to go" if event.eta is not None and event.done else ""
    rate = f" at {event.rate:,.0f} messages/s" if event.done else ""
    return f"{where}{event.done:,} of {event.total:,} new messages{rate}{eta}"


def folder_label(name: str, count: int | None) -> str:
    """A folder as the list shows it: ``INBOX.Sent (156 messages)``."""
    return name if count is None else f"{name} ({count:,} messages)"


def summary_rows(summary: SyncSummary) -> list[list[str]]:
    """One row per folder of what the sync did."""
    words = {"unchanged": "unchanged since the last sync", "synced": "synced",
             "reset": "renumbered by the server: fetched again",
             "retired": "gone from the server: removed"}
    return [[f.folder, words.get(f.action, f.action), f"{f.new:,}", f"{f.rows:,}",
             f"{f.server_messages:,}"] for f in summary.folders]


def preview_frame(messages: pd.DataFrame, rows: int = 10) -> pd.DataFrame:
    """The newest ``rows`` messages, a few readable columns, lists joined."""
    cols = [c for c in PREVIEW_COLUMNS if c in messages.columns]
    out = messages.sort_values("date", ascending=False, na_position="last").head(rows)[cols].copy()
    if "to_addrs" in out.columns:
        out["to_addrs"] = [", ".join(list(v)[:3]) + (" …" if len(v) > 3 else "")
                           if v is not None else "" for v in out["to_addrs"]]
    if "date" in out.columns:
        out["date"] = out["date"].dt.strftime("%Y-%m-%d %H:%M")
    return out.reset_index(drop=True)


class SyncPanel(Panel):
    """Sync a mailbox's headers into the store, with the settings that worked.

    Parameters
    ----------
    email, server, presets, password_env, ca_file, dns_server:
        As for :class:`~mailhat_nb.widgets.doctor.DoctorPanel`; used only when
        no working connection is given or remembered in this kernel: Connect
        then runs the doctor on them, asking for the password.
    store:
        The store directory.
    folders:
        Folder names to tick (None: all).
    sync_now:
        Connect and sync at once (headless runs, reports).
    connection:
        The settings and password that worked in a doctor panel (its "Sync
        this mailbox" passes its own); else the one remembered for ``email``.
    timeout:
        For the doctor run that finds the settings.
    """

    title = "Mailbox sync"

    def __init__(self, email: str = "", server: str = "", presets: str = params.LAB,
                 password_env: str = params.DEFAULT_PASSWORD_ENV, ca_file: str = params.LAB,
                 store: str | Path = "store", folders: Sequence[str] | None = None,
                 sync_now: bool = False, connection: params.Connection | None = None,
                 timeout: float = DEFAULT_TIMEOUT, dns_server: str = "") -> None:
        super().__init__()
        self.email_param = email
        self.server_param = server
        self.presets = presets
        self.password_env = password_env
        self.ca_file = ca_file
        self.dns_server = dns_server
        self.timeout = timeout
        self.store_given = str(store)
        # Shown as an absolute path: "../.store" means nothing to a reader.
        self.store = Path(store).resolve()
        self.wanted = as_list(folders) or None  # "INBOX" is one folder, not five
        self.connection = connection or (params.recall(email) if email else None)
        self.server_counts: dict[str, int] = {}
        self.summary: SyncSummary | None = None
        self.messages: pd.DataFrame | None = None
        self.health: pd.DataFrame | None = None
        self._health_png: bytes | None = None
        self._typed: Secret | None = None

        style, layout = field_style(), w.Layout(**FIELD_LAYOUT)
        self.how = w.HTML()
        self.password = w.Password(description="Password", style=style, layout=layout,
                                   placeholder=f"leave empty to use ${shown}"
                                   if (shown := params.shown_env_name(password_env))
                                   else "the account's password")
        self.connect_button = w.Button(description="Connect", button_style="primary",
                                       icon="plug", layout=w.Layout(width="180px"))
        self.connect_button.on_click(lambda _: self.connect())
        self.folder_list = w.SelectMultiple(description="Folders", style=style,
                                            layout=w.Layout(width="560px", height="14em"))
        self.sync_button = w.Button(description="Sync the chosen folders", icon="refresh",
                                    button_style="primary", disabled=True,
                                    layout=w.Layout(width="240px"))
        self.sync_button.on_click(lambda _: self.sync())
        self.bar = w.IntProgress(value=0, min=0, max=1, description="Progress", style=style,
                                 layout=w.Layout(width="560px"))
        self.bar_text = w.HTML()
        self.result = w.HTML()
        self.preview_html = w.HTML()
        self.health_text = w.HTML()
        self.health_chart = w.Image(format="png", layout=w.Layout(max_width="900px"))
        self.widget = w.VBox([
            w.HTML("<h4 style='margin: 4px 0;'>1. Connect</h4>"), self.how, self.password,
            self.connect_button,
            w.HTML("<h4 style='margin: 12px 0 4px;'>2. Choose folders and sync</h4>"),
            self.folder_list, w.HBox([self.sync_button]), self.bar, self.bar_text,
            self.status, self.result,
            w.HTML("<h4 style='margin: 12px 0 4px;'>3. What was stored</h4>"),
            self.preview_html, self.health_text, self.health_chart,
        ])
        self._describe_connection()
        if sync_now and self.connect():
            self.sync()

    # ------------------------------------------------------------------ connect

    def _secrets(self) -> list[Secret]:
        return [s for s in (self._typed, self.connection.password if self.connection else None)
                if s is not None]

    def _describe_connection(self) -> None:
        if self.connection is not None:
            self.how.value = render.message(
                f"Using {self.connection.label}, found by {self.connection.found_by}: the "
                "password that worked there is reused, not asked again.", "ok")
            self.password.layout.display = "none"
        else:
            shown = params.shown_env_name(self.password_env)
            empty = f"leave it empty to use ${shown} (or, for a lab account, the lab's " \
                "password file)" if shown else "for a lab account leave it empty to use the " \
                "lab's password file"
            self.how.value = render.message(
                f"Connect runs the connection doctor for {self.email_param or 'the account'} "
                f"first, to find the IMAP setting that works. Type the password, or {empty}.",
                "info")

    def connect(self) -> bool:
        """Find the settings (if needed), log in, and list the folders with their counts."""
        typed = self.password.value
        self.password.value = ""
        return self.guarded(lambda: self._connect(typed), self._secrets, self.connect_button)

    def _connect(self, typed: str) -> None:
        if typed:  # inside the guard: a password no protocol can carry is a sentence
            self._typed = Secret(typed)
        if self.connection is None:
            self.connection = self._find_settings(typed)
            self._describe_connection()
        from mailhat_nb.sync.imap import ImapSource

        conn = self.connection
        self.say(f"Logging in to {conn.settings.host}:{conn.settings.effective_port}…")
        with ImapSource(conn.settings, conn.password) as session:
            self.server_counts = {f.info.name: f.status.messages
                                  for f in session.folder_states() if f.status is not None}
        names = list(self.server_counts)
        if self.wanted is not None:
            unknown = [f for f in self.wanted if f not in self.server_counts]
            if unknown:
                raise UsageError(f"the server has no folder {', '.join(unknown)}; it has: "
                                 + ", ".join(names))
        self.folder_list.options = [(folder_label(n, self.server_counts[n]), n) for n in names]
        self.folder_list.value = tuple(self.wanted or names)
        self.sync_button.disabled = False
        total = sum(self.server_counts.values())
        self.say(f"Connected: {len(names)} folders, {total:,} messages on the server. "
                 "Untick what you do not need, then sync.", "ok")

    def _find_settings(self, typed: str) -> params.Connection:
        email = self.email_param.strip()
        if not email:
            raise UsageError("no email address: set the email parameter of this notebook")
        found = params.find_password(email, typed, self.password_env, params.running_lab())
        self.say(f"Running the connection doctor to find working IMAP settings "
                 f"(the password came {found.source})…")
        account = Account.from_input(email, found.secret, server=self.server_param or None)
        ca_file = params.resolve_ca_file(self.ca_file)
        dns_server = params.resolve_dns_server(self.dns_server)
        report = diagnose(account, presets=params.resolve_presets(self.presets),
                          ca_file=ca_file, timeout=self.timeout, dns_server=dns_server)
        conn = params.connection_from_report(report, ca_file,
                                             found_by="a connection doctor run by this panel",
                                             dns_server=dns_server)
        if conn is None:
            raise UsageError(f"no IMAP setting works for {email}: {report.verdict.summary} "
                             "Open the connection doctor (01_connection_doctor) for details.")
        params.remember(conn)
        return conn

    # ------------------------------------------------------------------ sync

    def _progress(self, event: Progress) -> None:
        self.bar.max = max(event.total, event.done, 1)
        self.bar.value = min(event.done, self.bar.max)
        self.bar_text.value = f"<small>{render.esc(progress_words(event))}</small>"

    def sync(self) -> SyncSummary | None:
        """Sync the ticked folders into the store, then show the preview and data health."""
        self.sync_button.disabled = True
        try:
            return self.summary if self.guarded(self._sync, self._secrets) else None
        finally:
            self.sync_button.disabled = self.connection is None

    def _sync(self) -> None:
        from mailhat_nb.sync.engine import sync_account

        if self.connection is None:
            raise UsageError("connect first")
        chosen = list(self.folder_list.value)
        if not chosen:
            raise UsageError("tick at least one folder")
        # An empty store parameter would put the store beside the notebook.
        check_store_arg(self.store_given, "the store parameter")
        self.say(f"Syncing {len(chosen)} folders into {self.store}…")
        self.summary = sync_account(self.connection.settings, self.connection.password,
                                    self.store, folders=chosen, progress=self._progress)
        self.bar.max = self.bar.value = max(self.bar.max, 1)  # done, even with nothing new
        self.result.value = render.table(
            ["Folder", "What happened", "New", "In the store", "On the server"],
            summary_rows(self.summary))
        self.say(f"Stored {self.summary.rows:,} messages ({self.summary.new:,} new) in "
                 f"{self.store} in {self.summary.seconds:.1f} s.", "ok")
        self._inspect(chosen)

    def _inspect(self, folders: list[str]) -> None:
        from mailhat_nb import contacts as ca
        from mailhat_nb.analysis import charts
        from mailhat_nb.analysis.load import read_messages
        from mailhat_nb.sync.store import uidvalidity_events

        assert self.connection is not None  # noqa: S101 - _sync checked it
        self.messages = read_messages(self.store, account=self.connection.email, folders=folders)
        self.preview_html.value = (
            "<p style='margin: 2px 0;'><b>The newest messages</b> (the whole table is "
            "<code>sync.messages</code>):</p>" + render.frame_html(preview_frame(self.messages)))
        counts = {f: self.server_counts[f] for f in folders if f in self.server_counts}
        self.health = ca.data_health(
            self.messages, server_counts=counts,
            uidvalidity_events=uidvalidity_events(self.store, self.connection.email))
        self.health_text.value = ("<p style='margin: 8px 0 2px;'><b>Data health</b></p>"
                                  + render.health_html(self.health))
        fig = charts.data_health_chart(self.health)
        self._health_png = render.figure_png(fig)
        self.health_chart.value = self._health_png

    # ------------------------------------------------------------------ static view

    def headline(self) -> render.Html:
        """What was synced, and the data health, in a sentence or two (the demo report's)."""
        if self.summary is None or self.health is None:
            return render.Html(self.error_html() or render.message("Nothing was synced.",
                                                                   "warn"))
        said = render.health_sentences(self.health)
        kind = ("fail" if any(k == "fail" for k, _ in said)
                else "warn" if any(k == "warn" for k, _ in said) else "ok")
        where = self.connection.label if self.connection is not None else "the server"
        text = (f"Synced the headers from {where} in {self.summary.seconds:.1f} s "
                f"({render.plural(self.summary.new, 'new message')}): "
                + " ".join(sentence for _, sentence in said))
        return render.Html(render.message(text, kind))

    def static_html(self) -> str:
        """What the live panel shows (the form aside): how it connects, what it did and found."""
        shown = [self.how.value, self.status.value, self.result.value, self.preview_html.value,
                 self.health_text.value]
        if self._health_png:
            shown.append(render.png_img(self._health_png, "Data health per folder"))
        if self.summary is None and not self.error:
            shown.append(render.message(
                "The sync panel appears here in JupyterLab or Voilà: Connect, choose folders, "
                "then Sync.", "info"))
        return "".join(shown)
