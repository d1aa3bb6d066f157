"""The connection doctor panel: a form, a grid that fills in live, the verdict in words.

The agent types the customer's email address, password and server name,
picks the provider and presses Run. Every preset is tested at once; each
row of the grid fills in as its probe finishes (``on_result`` runs in this
thread, so updating a widget from it is safe). Then: the verdict ("Use IMAP
option 1: gator1234.hostgator.com, port 993, SSL/TLS"), the certificate
helper, the redacted transcripts and a button that saves the ticket-ready
Markdown.

The agent may paste what the CRM said into "What the CRM said": the verdict
then says what it means beside the doctor's own result
(:mod:`mailhat_nb.diagnose.crm`), and the box is left holding only the
redacted text. With ``history_dir`` each run is kept there and the panel says
what changed since the customer's last run (:mod:`mailhat_nb.diagnose.history`).

The Password box is emptied the moment Run reads it, so the password is
not left in the form (nor in any widget state a tool might save). When the
IMAP verdict is good, the settings and the password that worked are kept in
this kernel's memory (:func:`mailhat_nb.app.params.remember`), and the panel
offers **Sync this mailbox** right under the verdict: the sync panel opens in
place, with that setting, resolver and password, nothing typed again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import ipywidgets as w

from mailhat_nb.app import params
from mailhat_nb.diagnose import Account, Report, Target, builtin_names, diagnose, load_presets
from mailhat_nb.diagnose.crm import attach as attach_crm_error
from mailhat_nb.diagnose.crm import redact_pasted
from mailhat_nb.diagnose.doctor import (
    DEFAULT_TIMEOUT,
    DISCOVERY_SHARE,
    auto_presets,
    wants_discovery,
)
from mailhat_nb.diagnose.history import address_slug, keep, prepare
from mailhat_nb.diagnose.presets import expand
from mailhat_nb.diagnose.results import PresetResult
from mailhat_nb.discovery import discover
from mailhat_nb.errors import UsageError
from mailhat_nb.secrets import Secret
from mailhat_nb.widgets import render
from mailhat_nb.widgets._base import FIELD_LAYOUT, Panel, field_style
from mailhat_nb.widgets.sync import SyncPanel

#: How the built-in presets files are named in the Provider list.
PROVIDER_NAMES = {
    "hostgator": "HostGator", "gmail": "Gmail", "microsoft365": "Microsoft 365",
    "outlook": "Outlook.com / Hotmail", "icloud": "iCloud", "aol": "AOL", "yahoo": "Yahoo",
    "zoho": "Zoho", "fastmail": "Fastmail", "godaddy": "GoDaddy", "bluehost": "Bluehost",
}
AUTO = "auto"


def provider_options(presets: str) -> list[tuple[str, str]]:
    """The Provider list: the notebook's own choice first, then the built-in providers.

    ``presets`` is the notebook parameter: ``"lab"``, a built-in name, a file
    path, or ``""``/``"auto"`` (choose by the email's domain).
    """
    chosen = (presets or AUTO).strip()
    options: list[tuple[str, str]] = []
    if chosen.lower() == params.LAB:
        options.append(("Training lab (HostGator presets on the lab's ports)", params.LAB))
    elif chosen.lower() not in [*builtin_names(), AUTO]:
        options.append((f"Presets file: {Path(chosen).name}", chosen))
    options += [(PROVIDER_NAMES.get(n, n.title()), n) for n in builtin_names()]
    options.append(("Choose by the email's domain", AUTO))
    return options


def ticket_filename(email: str, when: dt.datetime) -> str:
    """A file name for the ticket Markdown: who and when, safe on every filesystem."""
    return f"diagnosis-{address_slug(email)}-{when.strftime('%Y%m%d-%H%M%S')}.md"


def progress_text(done: int, total: int) -> str:
    """What the status line says while probes finish."""
    if total and done >= total:
        return f"All {total} presets tested; concluding…"
    return f"Testing {total} presets at once: {done} finished…"


@dataclass(frozen=True)
class Ticket:
    """The ticket Markdown as saved, shown as text ready to copy.

    Shown as text, not rendered: it is what goes into the ticket, and it
    quotes what servers said, which must never become markup here.
    """

    path: Path | None
    markdown: str
    note: str

    def _repr_html_(self) -> str:
        if not self.markdown:
            return render.message(self.note, "info")
        return (render.message(self.note, "ok")
                + '<pre style="white-space: pre-wrap; max-height: 30em; overflow: auto; '
                'background: #fafafa; border: 1px solid #e3e3e3; padding: 6px; font-size: 12px;">'
                + render.esc(self.markdown) + "</pre>")

    def __str__(self) -> str:
        return self.markdown or self.note


class DoctorPanel(Panel):
    """The connection doctor as a form.

    Parameters
    ----------
    email, server:
        Pre-filled into the form (the notebook's parameters).
    presets:
        ``"lab"``, a built-in provider name, a presets file, or ``"auto"``.
    password_env:
        The NAME of an environment variable holding the password, used when
        the Password box is left empty (then the lab's file, for lab accounts).
    ca_file:
        Extra CA to trust (``"lab"``: the lab's), e.g. a corporate CA.
    timeout:
        Seconds any one wait may take.
    send_test:
        Pre-tick "send a test message".
    run_now:
        Run at once with the parameters (headless runs, reports): the password
        then comes from ``password_env`` or the lab, never from the form.
    export_dir:
        Where the ticket Markdown is saved.
    history_dir:
        Where each run is kept, for "what changed since the last run" (the
        doctor notebook passes its ``history_dir`` parameter); None keeps nothing.
    crm_error:
        Pre-filled into "What the CRM said".
    dns_server:
        The DNS server to ask (``"lab"``: the lab's; ``""``: the system's).
    store:
        Where "Sync this mailbox" keeps the synced headers.
    """

    title = "Connection doctor"

    def __init__(self, email: str = "", server: str = "", presets: str = params.LAB,
                 password_env: str = params.DEFAULT_PASSWORD_ENV, ca_file: str = params.LAB,
                 timeout: float = DEFAULT_TIMEOUT, send_test: bool = False,
                 run_now: bool = False, export_dir: str | Path = ".",
                 history_dir: str | Path | None = None, crm_error: str = "",
                 dns_server: str = "", store: str | Path = "store") -> None:
        super().__init__()
        self.password_env = password_env
        self.ca_file = ca_file
        self.dns_server = dns_server
        self.export_dir = Path(export_dir)
        self.history_dir = Path(history_dir) if history_dir else None
        self.report: Report | None = None
        self.targets: list[Target] = []
        self.results: dict[tuple[str, str, int, str], PresetResult] = {}
        self.password_source = ""
        self.exported: Path | None = None
        self._secret: Secret | None = None
        self.store = store
        #: The IMAP settings and password that worked (memory only), after a good verdict.
        self.connection: params.Connection | None = None
        #: The sync panel "Sync this mailbox" opened, if any.
        self.sync: SyncPanel | None = None

        style, layout = field_style(), w.Layout(**FIELD_LAYOUT)
        self.email = w.Text(value=email, description="Email address", style=style,
                            layout=layout, placeholder="the customer's full address")
        self.password = w.Password(value="", description="Password", style=style, layout=layout,
                                   placeholder=f"leave empty to use ${shown}"
                                   if (shown := params.shown_env_name(password_env))
                                   else "the customer's password")
        self.server = w.Text(value=server, description="Server name", style=style, layout=layout,
                             placeholder="leave empty to find it (or from the welcome email "
                                         "or cPanel, e.g. gator1234.hostgator.com)")
        options = provider_options(presets)
        self.provider = w.Dropdown(options=options, value=options[0][1], description="Provider",
                                   style=style, layout=layout)
        self.timeout = w.BoundedFloatText(value=float(timeout), min=1, max=120, step=1,
                                          description="Timeout (seconds)", style=style,
                                          layout=w.Layout(width="260px"))
        self.send_test = w.Checkbox(value=bool(send_test), indent=False,
                                    description="Send a test message (and check it arrives)")
        self.crm_error = w.Textarea(value=redact_pasted(crm_error),
                                    description="What the CRM said",
                                    style=style, layout=w.Layout(width="560px", height="4.5em"),
                                    placeholder="optional: paste the error the CRM or the "
                                                "customer's mail app showed")
        self.run_button = w.Button(description="Run the doctor", button_style="primary",
                                   icon="stethoscope", layout=w.Layout(width="180px"))
        self.run_button.on_click(lambda _: self.run())
        self.verdict = w.HTML()
        self.sync_button = w.Button(description="Sync this mailbox", button_style="success",
                                    icon="refresh", layout=w.Layout(width="230px"))
        self.sync_button.on_click(lambda _: self.sync_mailbox())
        self.sync_note = w.HTML()
        self.sync_offer = w.HBox([self.sync_button, self.sync_note],
                                 layout=w.Layout(display="none"))
        self.sync_area = w.VBox()
        self.findings = w.HTML()
        self.grid = w.HTML()
        self.certificates = w.HTML()
        self.transcript_choice = w.Dropdown(description="Transcript of", style=style,
                                            layout=w.Layout(width="760px"), options=[])
        self.transcript_choice.observe(lambda _: self._show_transcript(), names="value")
        self.transcript = w.HTML()
        self.export_button = w.Button(description="Export for the ticket", icon="download",
                                      disabled=True, layout=w.Layout(width="220px"))
        self.export_button.on_click(lambda _: self.export())
        self.export_note = w.HTML()
        self.markdown = w.Textarea(layout=w.Layout(width="100%", height="12em",
                                                   display="none"))
        self.details = w.VBox(layout=w.Layout(display="none"))
        self.details.children = [
            w.HTML("<h4 style='margin: 12px 0 2px;'>Certificate helper</h4>"), self.certificates,
            w.HTML("<h4 style='margin: 12px 0 2px;'>Transcript (passwords redacted)</h4>"),
            self.transcript_choice, self.transcript,
            w.HTML("<h4 style='margin: 12px 0 2px;'>For the ticket</h4>"),
            w.HBox([self.export_button, self.export_note]), self.markdown,
        ]
        form = w.VBox([self.email, self.password, self.server, self.provider, self.crm_error,
                       w.HBox([self.timeout, self.send_test]), self.run_button])
        # The verdict sits right under the form: it is what the agent came for; then
        # the sync it allows, what failed, the grid and the details.
        self.widget = w.VBox([form, self.verdict, self.sync_offer, self.sync_area,
                              self.findings, self.status, self.grid, self.details])
        if run_now:
            self.run()

    # ------------------------------------------------------------------ running

    def _secrets(self) -> list[Secret]:
        return [self._secret] if self._secret is not None else []

    def run(self) -> Report | None:
        """Read the form, test every preset (the grid fills in live), show the verdict."""
        typed = self.password.value
        self.password.value = ""  # never left in the form, nor in saved widget state
        pasted = self.crm_error.value
        # What the CRM said may hold the password too: masked before anything else.
        self.crm_error.value = redact_pasted(pasted, [typed] if typed else [])
        self._secret = None
        self.export_button.disabled = True
        self.exported = None
        self.export_note.value = ""
        self.markdown.layout.display = "none"
        self.verdict.value = self.findings.value = ""
        self.connection = None
        self.sync_offer.layout.display = "none"
        self.sync_area.children = ()
        self.sync = None
        return self.report if self.guarded(lambda: self._run(typed, pasted), self._secrets,
                                           self.run_button) else None

    def _run(self, typed: str, pasted: str) -> None:
        # Inside the guard: a password no protocol can carry (a pasted line
        # break) is a sentence in the panel, like any other bad input.
        self._secret = Secret(typed) if typed else None
        self.report = None
        self.details.layout.display = "none"
        self.grid.value = ""  # an earlier run's ✓ rows must not stand under this run's error
        email = self.email.value.strip()
        if not email:
            raise UsageError("type the customer's email address first")
        self.say("Checking the input…")
        server = self.server.value.strip() or None
        # The address and server name first: a typo there is the likelier mistake,
        # and it should be named before anyone is asked for a password.
        email = Account.from_input(email, Secret("placeholder"), server=server).email
        found = params.find_password(email, typed, self.password_env, params.running_lab())
        self._secret = found.secret
        self.password_source = found.source
        account = Account.from_input(email, found.secret, server=server)
        ca_file = params.resolve_ca_file(self.ca_file)
        dns_server = params.resolve_dns_server(self.dns_server)
        discovery = None
        if wants_discovery(params.resolve_presets(self.provider.value), account):
            self.say("Finding the server from the address (no password is sent)…")
            discovery = discover(email, dns_server, ca_file,
                                 float(self.timeout.value) * DISCOVERY_SHARE)
        spec = auto_presets(params.resolve_presets(self.provider.value), discovery)
        presets = load_presets(spec, account.domain)
        shown = account
        if discovery is not None and discovery.recommended is not None:
            shown = replace(account, server=discovery.recommended.host)
        folder = (prepare(self.history_dir, "the history folder")
                  if self.history_dir is not None else None)
        self.targets, _ = expand(presets, shown)
        self.results = {}
        self.grid.value = render.grid_html(self.targets, self.results)
        self.say(progress_text(0, len(self.targets)) + f" (the password came {found.source})")

        def arrived(result: PresetResult) -> None:
            self.results[render.target_key(result)] = result
            self.grid.value = render.grid_html(self.targets, self.results)
            self.say(progress_text(len(self.results), len(self.targets)))

        report = diagnose(account, presets=spec, ca_file=ca_file,
                          timeout=float(self.timeout.value), send_test=bool(self.send_test.value),
                          on_result=arrived, dns_server=dns_server, discovery=discovery)
        if pasted.strip():
            self.crm_error.value = attach_crm_error(report, pasted, self._secrets()).text
        self.report = report
        self.results = {render.target_key(r): r for r in report.results}
        self.grid.value = render.grid_html(self.targets, self.results)
        self.verdict.value = render.answer_html(report)
        self.findings.value = render.findings_html(report)
        self.certificates.value = render.certificate_html(report.results)
        self.transcript_choice.options = [
            (f"{render.symbol(r.status)} {r.preset.display} on {r.host}:{r.port}", i)
            for i, r in enumerate(report.results)]
        first_problem = next((i for i, r in enumerate(report.results) if r.status != "ok"), 0)
        if report.results:
            self.transcript_choice.value = first_problem
        self._show_transcript()
        self.details.layout.display = ""
        self.export_button.disabled = False
        connection = params.connection_from_report(report, ca_file, dns_server=dns_server)
        seconds = report.elapsed_ms / 1000
        done = f"Done in {seconds:.1f} s; the password came {found.source}."
        if connection is None:
            params.forget(account.email)  # an older good result no longer holds
        if connection is not None:
            params.remember(connection)
            self.connection = connection
            self.sync_note.value = render.message(
                f"Copies the headers of every folder into {Path(self.store).resolve()} with "
                "the IMAP setting above; the password that worked is reused, not asked again.")
            self.sync_offer.layout.display = ""
            self.say(f"{done} The IMAP settings that worked are kept in this kernel's memory: "
                     "Sync this mailbox uses them without asking for the password again.",
                     "ok")
        elif report.verdict.incoming is not None:
            self.say(f"{done} The usable setting has a catch (see the verdict), so it is "
                     "not handed to the sync panel.", "warn")
        else:
            self.say(done, "info")
        if folder is not None:  # last: a disk that refuses it must not hide the verdict
            keep(report, folder, what="the history folder")
            self.verdict.value = render.answer_html(report)

    def sync_mailbox(self) -> SyncPanel | None:
        """Open the sync panel under the verdict, with the connection that worked, and sync.

        Same kernel, same setting, resolver and CA, and the password from
        memory: nothing is typed again. The panel stays, for another sync of
        chosen folders.
        """
        def open_and_sync() -> None:
            if self.connection is None:
                raise UsageError("run the doctor first: a good verdict offers the sync")
            self.sync = SyncPanel(email=self.connection.email, store=self.store,
                                  connection=self.connection)
            self.sync_area.children = (self.sync.widget,)
            if self.sync.connect():
                self.sync.sync()

        opened = self.guarded(open_and_sync, self._secrets, self.sync_button)
        return self.sync if opened else None

    def _show_transcript(self) -> None:
        if self.report is None or self.transcript_choice.value is None:
            self.transcript.value = ""
            return
        result = self.report.results[int(self.transcript_choice.value)]
        self.transcript.value = render.transcript_html(result)

    # ------------------------------------------------------------------ export

    def export(self) -> Path | None:
        """Save the ticket-ready Markdown (no password in it) and show it for copying."""
        def write() -> None:
            if self.report is None:
                raise UsageError("run the doctor first")
            text = self.report.to_markdown()
            path = self.export_dir / ticket_filename(self.report.account.email,
                                                     dt.datetime.now())
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot save {path}: {exc.strerror or exc}") from exc
            self.exported = path.resolve()
            self.markdown.value = text
            self.markdown.layout.display = ""
            self.export_note.value = render.message(
                f"Saved {self.exported}. Paste it into the ticket (also shown below).", "ok")

        return self.exported if self.guarded(write, self._secrets) else None

    def ticket(self) -> Ticket:
        """Save the ticket Markdown (as the Export button does) and show it.

        Before any run there is nothing to save: the result then says how to
        get the text once the doctor has run.
        """
        if self.report is None:
            return Ticket(None, "", "After a run, press Export for the ticket above (or run "
                                    "this cell again) to save the ticket text and show it here.")
        path = self.export()
        if path is None:
            return Ticket(None, "", self.error)
        return Ticket(path, self.markdown.value, f"Saved to {path}; paste it into the ticket.")

    # ------------------------------------------------------------------ static view

    def headline(self) -> render.Html:
        """The verdict box alone: the first thing the demo report shows."""
        if self.report is None:
            return render.Html(self.error_html() or render.message(
                "The doctor has not run.", "info"))
        return render.Html(render.verdict_html(self.report))

    def static_html(self) -> str:
        """What the live panel shows (the form aside), every transcript folded under its preset."""
        if self.report is not None:
            r = self.report
            title = f"Connection doctor: {r.account.email}" + (
                f" (server {r.account.server})" if r.account.server else "")
            sync = render.section("Sync this mailbox", self.sync.static_html()) \
                if self.sync is not None else ""
            saved = render.message(f"Ticket Markdown saved to {self.exported}", "ok") \
                if self.exported is not None else ""
            return (f'<div style="{render.FONT}"><h3 style="margin: 6px 0;">{render.esc(title)}'
                    f"</h3>{self.verdict.value}{sync}{self.findings.value}{self.status.value}"
                    + render.section("Every preset, layer by layer", self.grid.value)
                    + render.section("Certificate helper", self.certificates.value)
                    + render.section("Transcripts (passwords redacted)",
                                     render.transcripts_html(r.results))
                    + f"{saved}</div>")
        hint = render.message(
            "The connection doctor form appears here when this notebook runs in JupyterLab or "
            "as the app (make app): type the customer's email, password and server name, then "
            "press Run the doctor.", "info")
        return self.error_html() + hint
