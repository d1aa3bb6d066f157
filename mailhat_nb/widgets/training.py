"""The training walkthrough: each lab fault switched on in turn, what the doctor shows, the fix.

Static views only (objects with ``_repr_html_``): a walkthrough is read top
to bottom, in JupyterLab, in the HTML report or on paper, and must look the
same everywhere. Every scenario is a real server configuration of the lab
(:mod:`mailhat_nb.lab.scenarios`); the doctor runs against it exactly as it
would against a customer's server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailhat_nb.app import params
from mailhat_nb.diagnose import Account, Report, codes, diagnose, load_presets
from mailhat_nb.diagnose.presets import SECURITY_NAMES
from mailhat_nb.errors import MailhatError, UsageError
from mailhat_nb.lab import SCENARIOS, Lab, Scenario
from mailhat_nb.secrets import Secret
from mailhat_nb.widgets import render


def expected_seen(report: Report, scenario: Scenario) -> bool:
    """Whether the doctor said what the scenario is built to show.

    The scenario's ``expect`` is the code the presets of its protocol carry
    (IMAP, or SMTP for a fault of the sending server); the verdict may name
    something else when another preset still works (a closed port 993 next to
    a working 143 is "use 143", not a failure), so the check is on those
    results, or on the verdict.
    """
    found = {r.code for r in report.results if r.protocol == scenario.protocol}
    return scenario.expect in found or report.verdict.code == scenario.expect


def _failure(text: str) -> render.Html:
    """What went wrong, as the walkthrough shows it (a red message; ``text`` as plain text)."""
    return render.Html(render.message(text, "fail"), text)


def _story(title: str, tag: str, story: str, facts: str, body: str) -> str:
    """A scenario or story as the walkthrough tells it: heading, story, facts, then ``body``."""
    return (f'<div style="{render.FONT} border-top: 2px solid #ddd; margin-top: 8px;">'
            f'<h3 style="margin: 8px 0 2px;">{title} <small><code>{render.esc(tag)}</code>'
            f"</small></h3><p style='margin: 2px 0;'><b>What the customer lives through:</b> "
            f"{render.esc(story)}</p><p style='margin: 2px 0; color: #555;'><small>{facts}"
            f"</small></p>{body}</div>")


@dataclass
class ScenarioRun:
    """One scenario: the story, what the doctor found, whether that is what it should find."""

    scenario: Scenario
    report: Report
    switch_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        """True when the doctor named the scenario's fault (see :func:`expected_seen`)."""
        return expected_seen(self.report, self.scenario)

    def _repr_html_(self) -> str:
        s, report = self.scenario, self.report
        expect = codes.get(s.expect)
        shown = [r for r in report.results if r.protocol == s.protocol]
        kind = s.protocol.upper()
        check = ("ok", f"The {kind} presets show “{expect.title}” ({s.expect}), as this "
                       "scenario is built to.") if self.as_expected else \
            ("fail", f"Expected “{expect.title}” ({s.expect}) on the {kind} presets; the "
                     "doctor found something else. Look at the grid and transcripts.")
        done = {render.target_key(r): r for r in report.results}
        grid = render.grid_html([r.target for r in shown], done)
        bad = next((r for r in shown if r.code == s.expect), None)
        # The verdict's words when it names the fault (its remedy weighs every
        # preset and never recommends one that failed); else the row's.
        explanation, remedy = ((report.verdict.explanation, report.verdict.remedy)
                               if report.verdict.code == s.expect or bad is None
                               else (bad.explanation, bad.remedy))
        fix = (f"<p style='margin: 2px 0;'><b>For the customer:</b> "
               f"{render.esc(explanation)}</p><p style='margin: 2px 0;'><b>The fix:</b> "
               f"{render.esc(remedy)}</p>")
        extra = ""
        if bad is not None and s.expect.startswith("cert_"):
            extra = render.section("Certificate helper", render.certificate_html([bad]))
        if bad is not None and bad.code != "ok":
            extra += (f"<details style='{render.FONT}'><summary>Transcript of "
                      f"{render.esc(bad.preset.display)} (passwords redacted)</summary>"
                      f"{render.transcript_html(bad)}</details>")
        return _story(f"Scenario “{render.esc(s.title)}”", s.name, s.story,
                      f"Server name typed: <code>{render.esc(report.account.server)}</code>; "
                      f"lab switched in {self.switch_seconds:.1f} s, doctor ran in "
                      f"{report.elapsed_ms / 1000:.1f} s.",
                      render.section("What the doctor says", render.verdict_html(report))
                      + render.section(f"The {kind} presets, layer by layer", grid)
                      + render.message(check[1], check[0]) + render.box(fix, "info") + extra)

    def __repr__(self) -> str:
        return (f"scenario {self.scenario.name}: verdict {self.report.verdict.code}"
                f" ({'as expected' if self.as_expected else 'NOT as expected'})")


@dataclass(frozen=True)
class WorldStory:
    """A customer of the lab's world (:mod:`mailhat_nb.lab.world`) and what happens to them."""

    name: str
    title: str
    story: str
    email: str
    expect: str
    server: str | None = None
    presets: str | None = None


#: The world's stories, in the order the walkthrough tells them.
WORLD_STORIES: dict[str, WorldStory] = {s.name: s for s in (
    WorldStory("typed-mail-domain", "The customer typed mail.<domain> with SSL/TLS",
               "bakery.example is hosted on a HostGator-style shared server. The customer "
               "typed mail.bakery.example, port 993, SSL/TLS, as most people would; the "
               "server's certificate names the server (gator4321.hostgator.com), not the "
               "customer's domain.", "info@bakery.example", "cert_hostname_mismatch",
               server="mail.bakery.example", presets="hostgator"),
    WorldStory("find-the-server", "The doctor finds the server name",
               "The same customer, with the server name left empty: the doctor asks DNS "
               "(MX, mail.<domain>, reverse DNS), the SMTP banner and the certificate on 993, "
               "and says which name to type, and why. No password is sent while it looks.",
               "info@bakery.example", "ok"),
    WorldStory("moved-dns", "The domain's DNS moved to a web proxy",
               "moved.example moved its DNS to a CDN: mail.moved.example now points at the "
               "web proxy, where the web ports answer and 993 times out.",
               "c@moved.example", "mail_host_elsewhere"),
    WorldStory("mail-at-google", "The domain's mail is at Google",
               "bigcorp.example's MX names Google Workspace, while the agent tests the "
               "HostGator presets.", "b@bigcorp.example", "mx_elsewhere", presets="hostgator"),
    WorldStory("no-such-domain", "The domain does not exist",
               "A typo in the address, or a domain that expired: gone.example does not exist.",
               "d@gone.example", "dns_not_found"),
    WorldStory("broken-dns", "The domain's nameservers fail",
               "broken.example is delegated to a nameserver that refuses to answer for it "
               "(a lame delegation): every lookup ends in SERVFAIL.",
               "e@broken.example", "dns_servfail"),
)}


@dataclass
class WorldRun:
    """One world story: the doctor against the lab's DNS, and whether it found the fault."""

    story: WorldStory
    report: Report

    @property
    def as_expected(self) -> bool:
        """True when the verdict (or an IMAP preset) names the story's code."""
        imap = {r.code for r in self.report.results if r.protocol == "imap"}
        return self.report.verdict.code == self.story.expect or self.story.expect in imap

    def _repr_html_(self) -> str:
        s, report = self.story, self.report
        expect = codes.get(s.expect)
        check = (("ok", f"The doctor says “{expect.title}” ({s.expect}), as this story is "
                        "built to.") if self.as_expected else
                 ("fail", f"Expected “{expect.title}” ({s.expect}); the doctor found "
                          "something else."))
        imap = [r for r in report.results if r.protocol == "imap"]
        grid = render.grid_html([r.target for r in imap], {render.target_key(r): r for r in imap})
        typed = (f"Server name typed: <code>{render.esc(s.server)}</code>" if s.server
                 else "Server name left empty: the doctor finds it")
        return _story(render.esc(s.title), s.email, s.story,
                      f"{typed}; the doctor ran in {report.elapsed_ms / 1000:.1f} s.",
                      render.section("What the doctor says", render.verdict_html(report))
                      + render.discovery_html(report)
                      + render.section("The IMAP presets, layer by layer", grid)
                      + render.message(check[1], check[0]))

    def __repr__(self) -> str:
        return (f"story {self.story.name}: verdict {self.report.verdict.code}"
                f" ({'as expected' if self.as_expected else 'NOT as expected'})")


class Walkthrough:
    """Drive the lab through its scenarios and run the doctor on each.

    Parameters
    ----------
    email:
        A lab account (``alice@localhost``).
    presets, ca_file:
        Notebook parameters (``"lab"`` for the lab's files).
    password_env:
        The NAME of the environment variable with the password; a lab
        account falls back to the lab's password file.
    timeout:
        Seconds per wait: the "firewalled" and "ip-blocked" scenarios cost
        one timeout each, so a short one keeps the walkthrough brisk.
    """

    def __init__(self, email: str, presets: str = params.LAB, ca_file: str = params.LAB,
                 password_env: str = params.DEFAULT_PASSWORD_ENV, timeout: float = 3.0) -> None:
        self.email = email
        self.timeout = timeout
        self.runs: dict[str, ScenarioRun] = {}
        self.error = ""
        try:
            lab = params.running_lab()
            if lab is None:
                raise UsageError("the walkthrough needs the lab server: start it with "
                                 "`make lab` (or `mailhat lab up`), then run the cells again")
            self.lab: Lab = lab
            self.presets = params.resolve_presets(presets)
            self.ca_file = params.resolve_ca_file(ca_file)
            self.password = params.find_password(email, "", password_env, lab)
        except MailhatError as exc:
            self.error = str(exc)

    def _problem(self) -> render.Html:
        return _failure(self.error)

    def presets_table(self) -> render.Html:
        """The presets the doctor tries, with the standard port each lab port stands for."""
        if self.error:
            return self._problem()
        presets = load_presets(self.presets, "localhost")
        rows = [[p.label, p.protocol.upper(), str(p.std_port), SECURITY_NAMES[p.security],
                 str(p.port)] for p in presets]
        html = render.table(["Preset", "Protocol", "Standard port", "Security",
                             "Lab port (stands in for it)"], rows)
        return render.Html(html, f"{len(rows)} presets")

    def scenario(self, name: str) -> ScenarioRun | render.Html:
        """Switch the lab to scenario ``name`` and run the doctor against it.

        A problem (no lab, an unknown name, a lab that will not switch) comes
        back as a message to show, never as a traceback.
        """
        import time

        if self.error:
            return self._problem()
        try:
            if name not in SCENARIOS:
                raise UsageError(f"unknown scenario {name!r}; the lab has: "
                                 + ", ".join(SCENARIOS))
            start = time.monotonic()
            info = self.lab.set_scenario(name)
            switched = time.monotonic() - start
            chosen = SCENARIOS[name]
            account = Account.from_input(self.email, self.password.secret, server=chosen.server)
            report = diagnose(account, presets=self.presets or info.presets,
                              ca_file=self.ca_file, timeout=self.timeout)
        except MailhatError as exc:
            return _failure(str(exc))
        run = ScenarioRun(chosen, report, switched)
        self.runs[name] = run
        return run

    def world(self, name: str, dns_server: str = params.LAB) -> WorldRun | render.Html:
        """Tell one story of the lab's world (see :data:`WORLD_STORIES`) with the doctor.

        The doctor uses the lab's DNS (``dns_server``): the names resolve to
        the world's servers exactly as a customer's would on the Internet.
        """
        if self.error:
            return self._problem()
        try:
            if name not in WORLD_STORIES:
                raise UsageError(f"unknown story {name!r}; the lab's world has: "
                                 + ", ".join(WORLD_STORIES))
            story = WORLD_STORIES[name]
            lab_user = params.lab_user(story.email, self.lab)
            # The world's other customers have no mailbox: the doctor never gets as
            # far as a login there, so any password does.
            secret = (params.find_password(story.email, "", None, self.lab).secret
                      if lab_user else Secret("no-mailbox-in-the-lab"))
            account = Account.from_input(story.email, secret, server=story.server)
            report = diagnose(account, presets=story.presets, ca_file=self.ca_file,
                              timeout=self.timeout,
                              dns_server=params.resolve_dns_server(dns_server))
        except MailhatError as exc:
            return _failure(str(exc))
        return WorldRun(story, report)

    def restore(self) -> render.Html:
        """Put the lab back to normal and summarise the walkthrough."""
        if self.error:
            return self._problem()
        try:
            self.lab.set_scenario("normal")
        except MailhatError as exc:
            return _failure(str(exc))
        rows = [[run.scenario.title, run.scenario.expect, run.report.verdict.code,
                 "✓" if run.as_expected else "✗"] for run in self.runs.values()]
        html = (render.message("The lab is back to the normal scenario.", "ok")
                + render.table(["Scenario", "Built to show", "Verdict code", "As expected"],
                               rows))
        return render.Html(html, f"{sum(r.as_expected for r in self.runs.values())} of "
                          f"{len(self.runs)} scenarios as expected")
