"""The verdict across presets: what to enter in the CRM, or the root cause.

One preset's failure is a symptom; the pattern across all of them is the
diagnosis. A closed IMAP port next to a working POP3 is a POP-only account,
not a firewall; every port timing out is a blocked IP, not a dozen broken
services; the same rejection over IMAP, POP3 and SMTP is a wrong password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.gate import REJECTIONS
from mailhat_nb.diagnose.probe import CERT_CODES
from mailhat_nb.diagnose.results import PresetResult

_SECURITY_RANK = {"ssl": 0, "starttls": 1, "none": 2}
_UNREACHABLE = frozenset({"connect_timeout", "no_greeting"})


@dataclass
class Verdict:
    """The conclusion of a sweep.

    Attributes
    ----------
    code:
        ``ok`` when an incoming preset works with encryption; otherwise the
        root cause (a DESIGN.md code).
    summary:
        What to tell the agent, in a sentence or three.
    incoming, outgoing:
        The results to enter in the CRM, or None.
    """

    code: str
    summary: str
    incoming: PresetResult | None = None
    outgoing: PresetResult | None = None
    results: list[PresetResult] = field(default_factory=list, repr=False)

    def _cause(self) -> PresetResult | None:
        """The first result carrying the verdict's code (it fills the code's texts)."""
        return next((r for r in self.results if r.code == self.code), None)

    @property
    def explanation(self) -> str:
        """The verdict's sentence for the customer, with its fields filled."""
        cause = self._cause()
        return cause.explanation if cause else codes.render(codes.get(self.code).explanation)

    @property
    def remedy(self) -> str:
        """The verdict's remedy for the agent, with its fields filled."""
        cause = self._cause()
        if cause:
            return cause.remedy
        return codes.render(codes.get(self.code).remedy, recommended="")

    def to_dict(self) -> dict[str, Any]:
        """Return the DESIGN.md ``verdict`` object (presets by id)."""
        return {"code": self.code, "summary": self.summary,
                "incoming": self.incoming.preset.id if self.incoming else None,
                "outgoing": self.outgoing.preset.id if self.outgoing else None}


def best(results: list[PresetResult], protocol: str) -> PresetResult | None:
    """Pick the working result of ``protocol`` to recommend: clean, most secure, first."""
    working = [(i, r) for i, r in enumerate(results) if r.protocol == protocol and r.works]
    if not working:
        return None
    return min(working, key=lambda ir: (ir[1].status != "ok", _SECURITY_RANK[ir[1].security],
                                        ir[0]))[1]


def deepest(results: list[PresetResult]) -> PresetResult | None:
    """Pick the failure that got furthest (the most telling one), first on ties."""
    if not results:
        return None
    return max(enumerate(results), key=lambda ir: (ir[1].depth, -ir[0]))[1]


def _names(results: list[PresetResult]) -> str:
    return ", ".join(f"{r.preset.label} ({r.host}:{r.port})" for r in results[:4]) + (
        f" and {len(results) - 4} more" if len(results) > 4 else "")


def decide(results: list[PresetResult]) -> Verdict:
    """Conclude a sweep (may re-read IMAP codes as ``pop_only``)."""
    verdict = _conclude(results)
    verdict.results = list(results)
    return verdict


def _conclude(results: list[PresetResult]) -> Verdict:
    if not results:
        return Verdict("unknown", "No preset could be tested (no server name and no domain?).")
    imap = [r for r in results if r.protocol == "imap"]
    pop = [r for r in results if r.protocol == "pop3"]
    smtp = [r for r in results if r.protocol == "smtp"]
    incoming, outgoing = best(results, "imap"), best(results, "smtp")
    out_text = _outgoing_text(outgoing, smtp)

    if incoming is not None:
        code = "ok" if incoming.status == "ok" else incoming.code
        summary = f"Incoming: enter {incoming.setting()}."
        if incoming.status != "ok":
            summary += f" Warning: {incoming.title.lower()}; {incoming.explanation}"
        cert_failed = [r for r in imap if r.code in CERT_CODES]
        if incoming.security == "none" and cert_failed:
            # Only clear text works because every encrypted preset trips over the
            # certificate: that is the finding, the working setting a stopgap.
            code = cert_failed[0].code
            summary = (f"{_certificate_finding(cert_failed[0])} Until that is fixed only an "
                       f"unencrypted setting works: {incoming.setting()}, and the password "
                       "would cross the network in clear text.")
        return Verdict(code, f"{summary} {out_text}".strip(), incoming, outgoing)

    pop_greeted = [r for r in pop if _passed(r, "greeting")]
    if imap and pop_greeted and all(r.code == "connection_refused" for r in imap):
        for r in imap:
            r.code = "pop_only"
            r.context = f"(Port {r.port} refused the connection while POP3 answers.)"
        pop_works = [r for r in pop if r.works]
        shown = pop_works[0] if pop_works else pop_greeted[0]
        summary = (f"POP-only account: every IMAP port is closed while POP3 answers "
                   f"({shown.setting()}"
                   + (", login works" if pop_works else "") + "). The CRM needs IMAP: ask the "
                   "host to enable IMAP for this account.")
        return Verdict("pop_only", f"{summary} {out_text}".strip(), None, outgoing)

    if all(r.code == "connect_timeout" for r in results):
        return Verdict("connect_timeout",
                       "Every port timed out: the IP may be blocked (cPHulk/CSF block an IP "
                       "after failed logins). Ask HostGator support to check the firewall for "
                       "the customer's IP, and stop login attempts until it is lifted.",
                       None, None)

    rejected = [r for r in results if r.code in REJECTIONS]
    if rejected and not any(r.works for r in results):
        reached = {r.protocol for r in results if _passed(r, "greeting")}
        refused = {r.protocol for r in rejected}
        if refused == reached:
            protocols = ", ".join(p.upper() for p in sorted(refused))
            return Verdict(rejected[0].code,
                           f"The credentials were rejected on every protocol ({protocols}): the "
                           "password or username is wrong. Have the customer reset the password "
                           "in cPanel and use the full email address as the username.",
                           None, None)

    worst = deepest(imap) if imap else deepest(results)
    assert worst is not None  # results is not empty  # noqa: S101
    if imap and all(r.code in _UNREACHABLE for r in imap) and any(
            _passed(r, "greeting") for r in pop + smtp):
        summary = (f"No IMAP preset answers ({worst.title.lower()}) while other mail ports do: "
                   f"a firewall filters the IMAP ports, or the IMAP service hangs. {worst.remedy}")
    else:
        summary = (f"No IMAP preset works. The furthest attempt, {worst.setting()}, failed: "
                   f"{worst.title.lower()} ({worst.detail}). {worst.remedy}")
    return Verdict(worst.code, f"{summary} {out_text}".strip(), None, outgoing)


def _certificate_finding(bad: PresetResult) -> str:
    """One or two sentences on why the encrypted presets fail, and what to use."""
    cert = bad.certificate or {}
    names = ", ".join(cert.get("names", []))
    rec = cert.get("recommended_host")
    if bad.code == "cert_hostname_mismatch" and names:
        text = (f"The encrypted settings fail: the server's certificate covers {names}, "
                f"not {bad.host}.")
        if rec and rec != bad.host:
            text += (f" Enter server {rec} with {bad.preset.label} "
                     f"({bad.security_name}) instead.")
        return text
    if bad.code == "cert_expired" and cert.get("not_after"):
        return f"The encrypted settings fail: the server's certificate expired on " \
               f"{str(cert['not_after'])[:10]}."
    if bad.code == "cert_untrusted" and cert.get("issuer"):
        return (f"The encrypted settings fail: the server's certificate is issued by "
                f"{cert['issuer']}, which no trusted authority vouches for.")
    return f"The encrypted settings fail: {bad.title.lower()} ({bad.detail})."


def _passed(result: PresetResult, step: str) -> bool:
    found = result.step(step)
    return found is not None and found.status in ("ok", "warn")


def _outgoing_text(outgoing: PresetResult | None, smtp: list[PresetResult]) -> str:
    if outgoing is not None:
        text = f"Outgoing: enter {outgoing.setting()}."
        if outgoing.status != "ok":
            text += f" (Warning: {outgoing.title.lower()}.)"
        return text
    if not smtp:
        return ""
    worst = deepest(smtp)
    assert worst is not None  # noqa: S101
    return f"No outgoing (SMTP) preset works: {worst.title.lower()} ({worst.setting()})."
