"""HTML for the panels: pure functions from results to markup, no widgets involved.

The same markup serves twice: inside the live panels (as the value of an
``HTML`` widget) and as the static ``text/html`` a panel leaves in a notebook
run headless (papermill, nbconvert, the demo report), where no widget can
render. So everything here is plain HTML with inline styles (JupyterLab's
sanitiser keeps those, and a copied snippet keeps its look), and everything
that came from a server or a mailbox is escaped: a greeting or a subject
line is data, never markup.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.grouping import group
from mailhat_nb.diagnose.report import TABLE_LAYERS, layer_status, setting_lines, verdict_kind
from mailhat_nb.diagnose.results import SYMBOLS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from mailhat_nb.diagnose import PresetResult, Report, Target

#: Colours by status (Okabe-Ito, as the charts): readable by colour-blind agents,
#: and the symbol always says it too.
COLORS = {"ok": "#007a4d", "warn": "#b35900", "fail": "#c0392b", "skip": "#888888",
          "pending": "#888888"}
BACKGROUNDS = {"ok": "#e8f6ef", "warn": "#fff4e0", "fail": "#fdecea", "info": "#eef3fb"}
PENDING = "…"
# The line height is explicit because an HTML widget inherits ipywidgets' 28px one.
FONT = ("font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 14px; "
        "line-height: 1.4;")
_CELL = "padding: 3px 7px; border-bottom: 1px solid #e3e3e3; text-align: left;"
_HEAD = _CELL + " background: #f4f4f4; font-weight: 600;"


def esc(text: object) -> str:
    """Escape ``text`` for HTML (quotes too: it may land in an attribute)."""
    return html.escape(str(text), quote=True)


def box(body: str, kind: str = "info") -> str:
    """Wrap ``body`` (markup) in a coloured box: ``ok``, ``warn``, ``fail`` or ``info``."""
    border = COLORS.get(kind, "#6a8fc7")
    return (f'<div style="{FONT} background: {BACKGROUNDS.get(kind, BACKGROUNDS["info"])}; '
            f'border-left: 5px solid {border}; padding: 8px 12px; margin: 6px 0;">{body}</div>')


def message(text: str, kind: str = "info") -> str:
    """A one-paragraph box holding plain ``text`` (escaped)."""
    return box(f"<p style='margin: 0;'>{esc(text)}</p>", kind)


@dataclass(frozen=True)
class Notice:
    """A one-line message that displays itself as a coloured box in a notebook."""

    text: str
    kind: str = "info"

    def _repr_html_(self) -> str:
        return message(self.text, self.kind)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Html:
    """Markup that displays itself in a notebook (made here, so escaped where it must be).

    ``text`` is what it says as plain text (its ``repr``, where HTML does not render).
    """

    markup: str
    text: str = ""

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text or "(an HTML view)"

    def __str__(self) -> str:
        return self.markup


def section(title: str, body: str) -> str:
    """A titled block of the static view."""
    return (f'<div style="{FONT} margin: 10px 0;"><h3 style="margin: 10px 0 4px;">'
            f"{esc(title)}</h3>{body}</div>")


def table(header: Sequence[str] | None, rows: Iterable[Sequence[str]], *,
          raw: bool = False) -> str:
    """A small table (no header row when ``header`` is None).

    Cells are escaped unless ``raw`` (then they are markup already).
    """
    head = ("<thead><tr>" + "".join(f'<th style="{_HEAD}">{esc(h)}</th>' for h in header)
            + "</tr></thead>") if header else ""
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{c if raw else esc(c)}</td>' for c in row)
        + "</tr>" for row in rows)
    return (f'<table style="{FONT} border-collapse: collapse; margin: 4px 0;">'
            f"{head}<tbody>{body}</tbody></table>")


# --------------------------------------------------------------------------- the doctor


def symbol(status: str | None) -> str:
    """The ✓ / ⚠ / ✗ / · mark of a status; ``–`` when the layer did not apply."""
    if status is None:
        return "–"
    if status == "pending":
        return PENDING
    return SYMBOLS.get(status, "?")


def _mark(status: str | None) -> str:
    color = COLORS.get(status or "skip", "#888888")
    title = {"ok": "passed", "warn": "passed with a warning", "fail": "failed",
             "skip": "not needed", "pending": "testing", None: "not tested"}.get(status, "")
    return (f'<span title="{title}" style="color: {color}; font-weight: 700;">'
            f"{symbol(status)}</span>")


def grid_rows(targets: Sequence[Target], results: dict[tuple[str, str, int, str], PresetResult],
              ) -> list[list[str]]:
    """One row of markup cells per target: finished ones filled in, the others pending."""
    rows = []
    for t in targets:
        r = results.get(target_key(t))
        name = (f"<b>{esc(t.preset.label)}</b><br>"
                f'<small style="white-space: nowrap; color: #555;">{esc(_std(t))}</small>')
        where = f"<code>{esc(t.host)}:{t.port}</code>"
        if r is None:
            marks = [_mark("pending")] * len(TABLE_LAYERS)
            outcome = f'<span style="color: {COLORS["pending"]};">testing…</span>'
        else:
            marks = [_mark(layer_status(r, layer)) for layer in TABLE_LAYERS]
            outcome = (f'<span style="color: {COLORS[r.status]}; font-weight: 600;">'
                       f"{symbol(r.status)} {esc(r.title)}</span>")
        rows.append([name, where, *marks, outcome])
    return rows


def _std(target: Target) -> str:
    """``IMAP · 993 · SSL/TLS``: what the preset is, on its standard port."""
    from mailhat_nb.diagnose.presets import SECURITY_NAMES

    p = target.preset
    return f"{p.protocol.upper()} · {p.std_port} · {SECURITY_NAMES[p.security]}"


def target_key(target: Target | PresetResult) -> tuple[str, str, int, str]:
    """What identifies a probe: preset id, host, port, security."""
    preset = target.preset
    return (preset.id, target.host, target.port, target.security)


def grid_html(targets: Sequence[Target],
              results: dict[tuple[str, str, int, str], PresetResult]) -> str:
    """The presets × layers grid: ✓ passed, ⚠ warning, ✗ failed, – not applicable."""
    if not targets:
        return message("No preset to test: give the server name (from the welcome email or "
                       "cPanel) or choose another provider.", "warn")
    header = ["Preset", "Server:port", *TABLE_LAYERS, "Result"]
    legend = ("<small style='color:#555;'>✓ passed, ⚠ passed with a warning, ✗ failed, "
              "· skipped (e.g. TLS when no encryption was asked for), – not part of this "
              "preset, … still testing</small>")
    # A narrow notebook column scrolls the grid sideways rather than cutting it off.
    return (f'<div style="overflow-x: auto; max-width: 100%;">'
            f"{table(header, grid_rows(targets, results), raw=True)}</div>{legend}")


def verdict_html(report: Report) -> str:
    """The verdict in plain words: what to type in the CRM, or what is wrong and what to do.

    The same order as the terminal's: the headline, the settings to type
    field by field (server, port, security, username), what was found,
    then, when something is wrong, the words for the customer and the
    remedy; no sentence twice (:attr:`~mailhat_nb.diagnose.verdict.Verdict.finding`).
    """
    v = report.verdict
    code = codes.get(v.code)
    kind = verdict_kind(v)
    if kind == "ok" and v.incoming is not None:
        head = f"✓ Use {v.incoming.setting()}"
    elif kind == "warn":
        # Something works, but with a catch (no encryption, a certificate problem):
        # the catch is the headline, the usable setting below it.
        head = f"⚠ {code.title}"
    else:
        head = f"✗ {code.title}: no IMAP setting works"
    lines = [f'<p style="margin: 0 0 6px; font-size: 17px; font-weight: 700; '
             f'color: {COLORS[kind]};">{esc(head)}</p>']
    typed = setting_lines(v, report.account.username)
    if typed:
        lines.append(table(None, [[f"<b>{esc(label)}</b>", esc(text)] for label, text in typed],
                           raw=True))
    if v.finding:
        lines.append(f"<p style='margin: 6px 0;'>{esc(v.finding)}</p>")
    if v.code != "ok":
        lines.append(f"<p style='margin: 4px 0;'><b>For the customer:</b> "
                     f"{esc(v.explanation)}</p>")
        lines.append(f"<p style='margin: 4px 0;'><b>What to do:</b> {esc(v.remedy)}</p>")
    if report.all_notes:
        lines.append("<p style='margin: 4px 0; color: #555;'><small>Notes: "
                     + esc("; ".join(report.all_notes)) + "</small></p>")
    return box("".join(lines), kind)


def failures_html(report: Report) -> str:
    """What failed, identical failures in one line each (:mod:`mailhat_nb.diagnose.grouping`)."""
    groups = group(report.results)
    if not groups:
        return ""
    items = "".join(
        f'<li style="list-style: none; margin: 2px 0;"><span style="color: '
        f'{COLORS[g.status]}; font-weight: 700;">{symbol(g.status)}</span> '
        f"{esc(g.sentence(len(report.results)))}</li>" for g in groups)
    title = "What failed" if any(g.status == "fail" for g in groups) else "Warnings"
    return section(title, f'<ul style="padding-left: 4px; margin: 4px 0;">{items}</ul>')


def crm_html(report: Report) -> str:
    """What the CRM said, what it means, and what it means beside the doctor's result ("")."""
    found = report.crm_error
    if found is None:
        return ""
    kind = "info" if found.matched is None else "warn"
    lines = [f"<p style='margin: 0 0 4px; font-weight: 700;'>What the CRM said: "
             f"{esc(found.title)}</p>",
             f'<pre style="white-space: pre-wrap; margin: 2px 0; font-size: 12px;">'
             f"{esc(found.text)}</pre>",
             f"<p style='margin: 4px 0;'>{esc(found.summary)}</p>"]
    if found.beside:
        lines.append(f"<p style='margin: 4px 0;'><b>Beside the doctor's result:</b> "
                     f"{esc(found.beside)}</p>")
    return box("".join(lines), kind)


def history_html(report: Report) -> str:
    """What changed since the customer's last saved run ("" when runs are not kept)."""
    kept = report.history
    if kept is None:
        return ""
    head = ("Since the last run" if kept.previous_at else "History")
    items = "".join(f"<li>{esc(line)}</li>" for line in kept.sentences())
    saved = (f"<p style='margin: 4px 0; color: #555;'><small>This run is kept in "
             f"{esc(kept.saved)}</small></p>" if kept.saved else "")
    return box(f"<p style='margin: 0; font-weight: 700;'>{head}</p>"
               f"<ul style='margin: 4px 0;'>{items}</ul>{saved}",
               "warn" if kept.changes else "info")


def answer_html(report: Report) -> str:
    """The answer: the verdict, what the CRM's error means beside it, what changed since."""
    return verdict_html(report) + crm_html(report) + history_html(report)


def findings_html(report: Report) -> str:
    """What stands behind the answer: what failed (grouped), how the server was found."""
    return failures_html(report) + discovery_html(report)


def certificate_rows(results: Sequence[PresetResult]) -> list[dict[str, Any]]:
    """One entry per distinct certificate seen, with the presets that saw it.

    Why a helper: "certificate error" helps nobody; the names a certificate
    covers, who issued it and until when, tell the agent which server name
    to use instead, or what to ask the host to fix.
    """
    seen: dict[str, dict[str, Any]] = {}
    for r in results:
        cert = r.certificate or {}
        if not cert.get("names") and not cert.get("subject"):
            continue
        entry = seen.setdefault(str(cert.get("sha256", id(cert))), {"cert": cert, "where": [],
                                                                      "codes": set()})
        entry["where"].append(f"{r.host}:{r.port}")
        entry["codes"].add(r.code)
    return list(seen.values())


def certificate_html(results: Sequence[PresetResult]) -> str:
    """The certificate helper: what each certificate covers, who issued it, until when."""
    entries = certificate_rows(results)
    if not entries:
        return message("No certificate was presented (no preset reached SSL/TLS).")
    parts = []
    for entry in entries:
        cert = entry["cert"]
        problems = sorted(c for c in entry["codes"] if c.startswith("cert_"))
        kind = "fail" if problems or cert.get("expired") else "ok"
        facts = [
            ["Covers the names", ", ".join(cert.get("names", [])) or cert.get("subject", "")],
            ["Issued by", str(cert.get("issuer", "")) + (" (itself: self-signed)"
                                                        if cert.get("self_signed") else "")],
            ["Valid", f"{str(cert.get('not_before', ''))[:10]} to "
                      f"{str(cert.get('not_after', ''))[:10]}"
                      + (" (expired or not yet valid)" if cert.get("expired") else "")],
            ["Seen on", ", ".join(sorted(set(entry["where"])))],
        ]
        rec = cert.get("recommended_host")
        if rec and not cert.get("covers_host", True):
            facts.append(["Use this server name instead", rec])
        elif cert.get("not_here"):
            # Its names were vetted and none leads to this server: none is offered.
            facts.append(["No name it covers leads here", str(cert["not_here"])])
        if problems:
            facts.append(["Problem", "; ".join(codes.get(c).title for c in problems)])
        parts.append(box(table(None, facts), kind))
    return "".join(parts)


def transcript_html(result: PresetResult) -> str:
    """One probe's redacted transcript, escaped, in a scrollable block (lines as the ticket's)."""
    text = "\n".join(str(line) for line in result.transcript)
    return (f'<pre style="max-height: 22em; overflow: auto; background: #fafafa; '
            f'border: 1px solid #e3e3e3; padding: 6px; font-size: 12px; line-height: 1.35; '
            f'white-space: pre-wrap;">{esc(text)}</pre>')


def transcripts_html(results: Sequence[PresetResult]) -> str:
    """Every transcript, each folded under its preset (problems first, open)."""
    ordered = sorted(results, key=lambda r: {"fail": 0, "warn": 1}.get(r.status, 2))
    return "".join(
        f'<details{" open" if i == 0 and r.status != "ok" else ""} style="{FONT} margin: 3px 0;">'
        f"<summary>{esc(symbol(r.status))} {esc(r.preset.display)} on "
        f"<code>{esc(r.host)}:{r.port}</code>: {esc(r.title)}</summary>"
        f"{transcript_html(r)}</details>"
        for i, r in enumerate(ordered))


def discovery_html(report: Report) -> str:
    """How the server was found: the candidates as a small table, then the problems.

    With the outgoing-mail advice; "" when the doctor was given a server name.
    """
    found = report.discovery
    if found is None:
        return ""
    rows = [["✓" if c.recommended else "·", f"<code>{esc(c.host)}</code>", esc(c.why),
             esc(", ".join(dict.fromkeys(s.kind for s in c.sources)))]
            for c in found.candidates[:6]]
    html = table(["", "Host", "Why", "Evidence"], rows, raw=True)
    if found.provider is not None:
        html += message(f"Provider: {found.provider.name} ({found.provider.evidence})", "info")
    html += "".join(message(f"{p.code}: {p.detail}", "fail") for p in found.problems)
    if report.health:
        html += ("<p style='margin: 4px 0;'><b>Outgoing mail (advice):</b></p><ul>"
                 + "".join(f"<li>{esc(h)}</li>" for h in report.health) + "</ul>")
    return section("How the server was found (no password sent)", html)


# --------------------------------------------------------------------------- frames and figures


def frame_html(frame: pd.DataFrame, max_rows: int = 15) -> str:
    """A DataFrame as a compact, escaped HTML table (the first ``max_rows`` rows)."""
    shown = frame.head(max_rows)
    text: str = shown.to_html(index=False, escape=True, border=0, na_rep="",
                              max_cols=12, classes="mh-frame")
    more = (f"<small style='color:#555;'>showing {len(shown)} of {len(frame):,} rows</small>"
            if len(frame) > max_rows else "")
    style = (f"<style>.mh-frame {{ border-collapse: collapse; {FONT} }} "
             ".mh-frame td, .mh-frame th { padding: 2px 8px; border-bottom: 1px solid #e3e3e3;"
             " text-align: left; max-width: 28em; overflow: hidden; text-overflow: ellipsis;"
             " white-space: nowrap; } .mh-frame th { background: #f4f4f4; }</style>")
    # Wider than the page (long subjects): scroll sideways rather than be cut off.
    return style + f'<div style="overflow-x: auto; max-width: 100%;">{text}</div>' + more


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes (no GUI backend needed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` carrying ``png`` inline, so a static page needs no side files."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<img alt="{esc(alt)}" style="max-width: 100%; height: auto;" '
            f'src="data:image/png;base64,{data}">')


# --------------------------------------------------------------------------- sync


def plural(n: int, word: str) -> str:
    """``1 contact``, ``2 contacts``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def health_sentences(health: pd.DataFrame) -> list[tuple[str, str]]:
    """The data-health table in plain words: ``(kind, sentence)`` pairs, worst first.

    ``kind`` is ``ok``, ``warn`` or ``fail``. Why words: an agent needs "2
    folders are incomplete" before they need twelve columns of counts.
    """
    if health.empty:
        return [("warn", "The store holds no messages yet.")]

    import pandas as pd

    def total(col: str) -> int:
        if col not in health.columns:
            return 0
        return int(pd.to_numeric(health[col], errors="coerce").fillna(0).clip(lower=0).sum())

    def folders_where(col: str) -> list[str]:
        if col not in health.columns:
            return []
        values = pd.to_numeric(health[col], errors="coerce").fillna(0)
        return [str(f) for f in health.loc[values != 0, "folder"]]

    out: list[tuple[str, str]] = []
    rows, n_folders = total("rows"), len(health)
    incomplete = folders_where("missing")
    if incomplete:
        out.append(("fail", f"{plural(len(incomplete), 'folder')} differ from the server's "
                            f"count ({', '.join(incomplete[:5])}): run the sync again."))
    if total("uidvalidity_events"):
        renumbered = ", ".join(folders_where("uidvalidity_events"))
        out.append(("warn", f"The server renumbered {renumbered} (UIDVALIDITY changed): "
                            "those folders were fetched again."))
    for col, words in (("no_date", "have no date at all"),
                       ("suspect_dates", "carry a placeholder date (before 1990 or in the future)"),
                       ("date_fallbacks", "had no usable Date header (the server's arrival time "
                                          "is used)"),
                       ("defects", "had header parts that could not be decoded cleanly")):
        n = total(col)
        if n:
            out.append(("warn", f"{plural(n, 'message')} {words}."))
    dups = total("duplicates")
    if dups:
        out.append(("ok", f"{plural(dups, 'row')} are copies of a message filed in several "
                          "folders; every count uses each message once."))
    complete = "" if incomplete or "server_count" not in health.columns or \
        health["server_count"].isna().all() else ", every folder matches the server's count"
    out.insert(0, ("ok" if not incomplete else "fail",
                   f"{plural(rows, 'message')} in {plural(n_folders, 'folder')}{complete}."))
    return out


def health_html(health: pd.DataFrame) -> str:
    """The data-health sentences as a list of ✓ / ⚠ / ✗ lines."""
    items = "".join(
        f'<li style="list-style: none; margin: 2px 0;"><span style="color: {COLORS[kind]}; '
        f'font-weight: 700;">{symbol(kind)}</span> {esc(text)}</li>'
        for kind, text in health_sentences(health))
    return f'<ul style="{FONT} padding-left: 4px; margin: 4px 0;">{items}</ul>'
