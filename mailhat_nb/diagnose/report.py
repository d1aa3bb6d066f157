"""The Report: one object the CLI prints, the notebooks display and tickets quote.

Every output is derived from the same results, so JSON, Markdown, the
terminal table and the DataFrames can never disagree. Nothing here can hold
the password: the account's :meth:`~mailhat_nb.diagnose.normalise.Account.to_dict`
leaves it out, and results carry only redacted text.
"""

from __future__ import annotations

import html
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailhat_nb.diagnose import codes, grouping
from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.diagnose.results import SYMBOLS, PresetResult
from mailhat_nb.diagnose.verdict import Verdict
from mailhat_nb.discovery.model import Discovery

if TYPE_CHECKING:
    import pandas as pd

    from mailhat_nb.diagnose.crm import CrmError
    from mailhat_nb.diagnose.history import History

#: Columns of the terminal table: layer -> the step names folded into it.
TABLE_LAYERS: dict[str, tuple[str, ...]] = {
    "DNS": ("dns",), "TCP": ("tcp",), "TLS": ("tls",), "Greet": ("greeting",),
    "Caps": ("capabilities", "capabilities_tls"), "Auth": ("auth",), "Mailbox": ("mailbox",),
    "Send": ("send", "arrival"),
}
_WORST = {"fail": 3, "warn": 2, "ok": 1, "skip": 0}
#: Where the terminal view wraps its sentences.
WIDTH = 100


@dataclass
class Report:
    """The outcome of one diagnosis.

    Attributes
    ----------
    account:
        The account as normalised (its ``to_dict`` has no password).
    results:
        One :class:`PresetResult` per target, in preset order.
    verdict:
        The conclusion across presets.
    elapsed_ms:
        Wall time of the sweep (and send test).
    notes:
        Input repairs and skipped presets.
    crm_error:
        What the CRM said, understood (:func:`mailhat_nb.diagnose.crm.attach`).
    history:
        What changed since the last saved run (:func:`mailhat_nb.diagnose.history.keep`).
    """

    account: Account
    results: list[PresetResult]
    verdict: Verdict
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: What the doctor discovered first (no server name given), else None.
    discovery: Discovery | None = None
    #: Outgoing-mail advice (SPF, DMARC, DKIM): notes beside the SMTP verdict.
    health: list[str] = field(default_factory=list)
    crm_error: CrmError | None = None
    history: History | None = None

    @property
    def incoming_ok(self) -> bool:
        """True when an incoming (IMAP) preset works: the CLI's exit 0.

        "Works" means the doctor logged in over it. An unencrypted preset
        recommended on the server's offer alone (the doctor does not send a
        password in clear text unless asked to) does not count: exit 0 must
        never promise a login nobody tried. So the certificate scenarios,
        where only clear text is left, exit 1 by default and 0 with
        ``allow_plaintext_login`` once that login worked.
        """
        return self.verdict.incoming_working is not None

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """Return the DESIGN.md JSON shape: ``account``, ``results``, ``verdict``.

        Plus ``crm_error`` and ``history`` when the run has them.
        """
        out: dict[str, Any] = {
            "account": {**self.account.to_dict(), "notes": self.all_notes},
            "discovery": self.discovery.to_dict() if self.discovery else None,
            "results": [r.to_dict() for r in self.results], "verdict": self.verdict.to_dict()}
        if self.health:
            out["outgoing_health"] = list(self.health)
        if self.crm_error is not None:
            out["crm_error"] = self.crm_error.to_dict()
        if self.history is not None:
            out["history"] = self.history.to_dict()
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    # ---------------------------------------------------------------- frames

    def to_frame(self) -> pd.DataFrame:
        """One row per tested preset (and host)."""
        import pandas as pd

        return pd.DataFrame([{
            "preset": r.preset.id, "label": r.preset.label, "protocol": r.protocol,
            "host": r.host, "port": r.port, "stands_for": r.preset.std_port,
            "security": r.security, "status": r.status, "code": r.code, "title": r.title,
            "explanation": r.explanation, "remedy": r.remedy, "detail": r.detail,
            "elapsed_ms": round(r.elapsed_ms, 1),
            "failed_step": r.failed_step.name if r.failed_step else None,
            "cert_names": ", ".join((r.certificate or {}).get("names", [])) or None,
            **{layer.lower(): layer_status(r, layer) for layer in TABLE_LAYERS},
        } for r in self.results])

    def steps_frame(self) -> pd.DataFrame:
        """One row per step of every preset."""
        import pandas as pd

        rows = [{"preset": r.preset.id, "label": r.preset.label, "host": r.host, "port": r.port,
                 "security": r.security, "step": s.name, "status": s.status,
                 "elapsed_ms": round(s.elapsed_ms, 1), "detail": s.detail}
                for r in self.results for s in r.steps]
        columns = ["preset", "label", "host", "port", "security", "step", "status",
                   "elapsed_ms", "detail"]
        return pd.DataFrame(rows, columns=columns)

    # ------------------------------------------------------------------ text

    def to_text(self, verbose: bool = False) -> str:
        """Render the terminal view, the answer first.

        In this order: the verdict with the settings to type (server, port,
        security, username), what was found and the remedy (each sentence
        once); what the CRM's error means; what changed since the last run;
        the failures, identical ones grouped in one sentence
        (:mod:`~mailhat_nb.diagnose.grouping`); the grid, one line per
        preset; then how the server was found and the outgoing-mail advice.
        ``verbose`` adds every preset's own line under the groups.
        """
        v = self.verdict
        kind = verdict_kind(v)
        head = {"ok": "it works; type this in the CRM",
                "warn": codes.get(v.code).title,
                "fail": f"{codes.get(v.code).title}; no IMAP setting works"}[kind]
        out = [f"{SYMBOLS[kind]} Verdict [{v.code}] for {self.account.email}: {head}"]
        out += [f"    {label}: {text}" for label, text in setting_lines(v, self.account.username)]
        if v.finding:
            out.append(_wrap(v.finding))
        if v.code != "ok":
            out.append(_wrap(f"Remedy: {v.remedy}"))
        if self.crm_error is not None:
            crm = self.crm_error
            out += ["", "The CRM said: " + crm.text.replace("\n", "\n  "),
                    _wrap(f"which means [{crm.code}]: {crm.summary}", "    ")]
        if self.history is not None:
            out += ["", "Since the last run:" if self.history.previous_at else "History:"]
            out += [_wrap(line, "    ") for line in self.history.sentences()]
        groups = grouping.group(self.results)
        if groups:
            out += ["", "What failed:" if any(g.status == "fail" for g in groups)
                    else "Warnings:"]
            out += [_wrap(f"{SYMBOLS[g.status]} {g.sentence(len(self.results))}", "  ", "    ")
                    for g in groups]
        if verbose:
            out += ["", "Every preset:"]
            out += [f"  {SYMBOLS[r.status]} {r.preset.display} on {r.host}:{r.port}: "
                    f"{r.title}. {r.detail}" for r in self.results if r.status != "ok"]
        out += ["", *self._grid()]
        out += [f"note: {n}" for n in self.all_notes]
        if self.discovery is not None:
            best = self.discovery.recommended
            out.append(_wrap("discovered: " + (best.why if best else
                                               "no server name could be recommended"), ""))
            out += [f"discovery problem [{p.code}]: {p.detail}" for p in self.discovery.problems]
        out += [_wrap(f"Outgoing mail: {h}", "") for h in self.health]
        return "\n".join(out)

    def _grid(self) -> list[str]:
        """The presets x layers grid: one aligned line per preset (✓ ⚠ ✗ · –)."""
        header = ["", "Preset", "Host:port", *TABLE_LAYERS, "Result"]
        rows = [[SYMBOLS[r.status], r.preset.display, f"{r.host}:{r.port}",
                 *[SYMBOLS.get(layer_status(r, layer) or "", "–") for layer in TABLE_LAYERS],
                 r.title] for r in self.results]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
        return [" ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in [header, *rows]]

    @property
    def all_notes(self) -> list[str]:
        """The account's input repairs, then this run's other notes (each once)."""
        return list(self.account.notes) + [n for n in self.notes if n not in self.account.notes]

    # -------------------------------------------------------------- markdown

    def to_markdown(self, transcripts: bool = True) -> str:
        """Render a ticket-ready Markdown report (no password anywhere), the answer first.

        The same order as :meth:`to_text`: the verdict and the settings to
        type, the CRM's error, the history, the failures grouped, the
        presets table, then the details and transcripts.

        Much of the text comes from servers (replies, certificate names) or
        from presets files, and a ticket system renders it: all of it is
        escaped (:func:`_md`) or put in code spans and fenced blocks that it
        cannot close (:func:`_code`, :func:`_fence`), so a hostile server
        cannot put a link, an image or HTML into the agent's ticket.
        """
        v = self.verdict
        md = [f"## Mail connection diagnosis: {_md(self.account.email)}", "",
              f"### Verdict: {_md(codes.get(v.code).title)} ({_code(v.code)})", ""]
        md += [f"- **{label}:** {_md(text)}"
               for label, text in setting_lines(v, self.account.username)]
        if v.finding:
            md += ["", _md(v.finding)] if md[-1] else [_md(v.finding)]
        if v.code != "ok":
            md += ["", f"**For the customer:** {_md(v.explanation)}",
                   "", f"**Agent remedy:** {_md(v.remedy)}"]
        md += ["", f"- **Username:** {_code(self.account.username)}"]
        if self.account.server:
            md.append(f"- **Server name given:** {_code(self.account.server)}")
        md += [f"- Note: {_md(n)}" for n in self.all_notes]
        if self.crm_error is not None:
            lines = self.crm_error.text.splitlines()
            fence = _fence(lines)
            md += ["", "### What the CRM said", "", fence, *lines, fence, "",
                   f"{_md(self.crm_error.title)} ({_code(self.crm_error.code)}): "
                   f"{_md(self.crm_error.summary)}"]
        if self.history is not None:
            md += ["", "### Since the last run" if self.history.previous_at else "### History",
                   ""]
            md += [f"- {_md(line)}" for line in self.history.sentences()]
        groups = grouping.group(self.results)
        if groups:
            md += ["", "### What failed", ""]
            md += [f"- {SYMBOLS[g.status]} {_md(g.sentence(len(self.results)))}" for g in groups]
        md += ["", "### Presets tested", "",
               "| Preset | Host | Port | Security | Result | Code |",
               "|---|---|---|---|---|---|"]
        for r in self.results:
            md.append(f"| {_md(r.preset.label)} | {_cell(_code(r.host))} | {r.port} | "
                      f"{r.security_name} | {SYMBOLS[r.status]} {_md(r.title)} | "
                      f"{_cell(_code(r.code))} |")
        if self.discovery is not None:
            md += ["", "### Server found from the address", ""]
            md += [f"- {'(recommended) ' if c.recommended else ''}{_code(c.host)}: {_md(c.why)}"
                   for c in self.discovery.candidates[:5]]
            md += [f"- Problem {_code(p.code)}: {_md(p.detail)}" for p in self.discovery.problems]
        if self.health:
            md += ["", "### Outgoing mail health (advice)", ""]
            md += [f"- {_md(h)}" for h in self.health]
        if groups:
            md += ["", "### Details", ""]
            said = {v.explanation, v.remedy} if v.code != "ok" else set()
            for g in groups:
                md += _group_details(g, said)
        if transcripts:
            md += ["", "### Transcripts (passwords redacted)", ""]
            for r in self.results:
                lines = [str(line) for line in r.transcript]
                fence = _fence(lines)
                md += [f"<details><summary>{html.escape(r.preset.display)} on "
                       f"{html.escape(r.host)}:{r.port}: {html.escape(r.code)}</summary>", "",
                       fence, *lines, fence, "", "</details>", ""]
        return "\n".join(md).rstrip() + "\n"


def verdict_kind(verdict: Verdict) -> str:
    """``ok`` (an IMAP setting to enter), ``warn`` (one with a catch) or ``fail`` (none)."""
    if verdict.incoming is None:
        return "fail"
    return "ok" if verdict.code == "ok" else "warn"


def setting_lines(verdict: Verdict, username: str) -> list[tuple[str, str]]:
    """The settings to type, as (label, fields) pairs: incoming first, then outgoing.

    A setting nobody logged in over (unencrypted, judged from the server's
    offer) says so in its label.
    """
    lines = []
    for label, working, untested in (
            ("Incoming (IMAP)", verdict.incoming_working, verdict.incoming_untested),
            ("Outgoing (SMTP)", verdict.outgoing_working, verdict.outgoing_untested)):
        if working is not None:
            lines.append((label, working.fields(username)))
        elif untested is not None:
            lines.append((f"{label}, usable now but untested (unencrypted, login not tried)",
                          untested.fields(username)))
    return lines


def _wrap(text: str, indent: str = "  ", subsequent: str | None = None) -> str:
    """``text`` wrapped for a terminal, each line indented."""
    return textwrap.fill(text, width=WIDTH, initial_indent=indent,
                         subsequent_indent=indent if subsequent is None else subsequent,
                         break_long_words=False, break_on_hyphens=False)


def _group_details(g: grouping.Group, said: set[str]) -> list[str]:
    """A failure group in the ticket: what happened, for the customer, the remedy.

    A sentence the verdict already ``said`` (its explanation, its remedy) is
    not said again.
    """
    first = g.results[0]
    md = [f"**{_md(g.title)}** ({_code(g.code)}) on {_md(g.where())}", "",
          f"- What happened: {_md(g.detail())}"]
    md += [f"- For the customer: {_md(e)}" for e in g.once([r.explanation for r in g.results])
           if e not in said]
    md += [f"- Remedy: {_md(rem)}" for rem in g.once([r.remedy for r in g.results])
           if rem not in said]
    cert = first.certificate or {}
    if cert.get("names"):
        md.append(f"- Certificate: covers {_code(', '.join(cert['names']))}; issuer "
                  f"{_code(cert.get('issuer') or '?')}; valid "
                  f"{_md(str(cert.get('not_before', ''))[:10])} to "
                  f"{_md(str(cert.get('not_after', ''))[:10])}")
    return [*md, ""]


def layer_status(result: PresetResult, layer: str) -> str | None:
    """The worst status among ``result``'s steps folded into ``layer`` (None: none ran)."""
    found = [s.status for s in result.steps if s.name in TABLE_LAYERS[layer]]
    return max(found, key=lambda s: _WORST.get(s, 0), default=None)


#: Characters that start Markdown (CommonMark/GFM) constructs inline: emphasis,
#: code, links and images (no "[" means no link), HTML and autolinks, entities,
#: headings, table cells, strikethrough.
_MD_ACTIVE = re.compile(r"([\\`*_\[\]<>#|~&])")
#: GFM turns bare "www." and "scheme:" text into links; an escape breaks the match.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|xmpp|file|javascript|data|www)([:.])")


def _md(text: str) -> str:
    r"""Escape ``text`` for Markdown prose: it renders as the same words, never as markup.

    Newlines become spaces (a new line could start a heading, list or table
    row); every character that opens an inline construct is backslash-escaped;
    ``www.`` and ``scheme:`` are broken so GFM does not autolink them.

    >>> print(_md("see [here](http://evil.example) ![x](y) <b>hi</b>"))
    see \[here\](http\://evil.example) !\[x\](y) \<b\>hi\</b\>
    """
    text = " ".join(str(text).split())
    return _AUTOLINK.sub(r"\1\\\2", _MD_ACTIVE.sub(r"\\\1", text))


def _code(text: str) -> str:
    """Put ``text`` in a code span no backtick inside it can close.

    >>> _code("a`b")
    '``a`b``'
    """
    text = " ".join(str(text).split())
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _cell(text: str) -> str:
    """A table cell: GFM splits cells on ``|`` even inside a code span."""
    return text.replace("|", "\\|")


def _fence(lines: list[str]) -> str:
    """A code fence longer than any backtick run in ``lines``, so none can end the block."""
    longest = max((len(run) for line in lines for run in re.findall(r"`{3,}", line)), default=0)
    return "`" * max(3, longest + 1)
