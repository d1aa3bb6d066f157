"""The verdict across presets: what to enter in the CRM, or the root cause.

One preset's failure is a symptom; the pattern across all of them is the
diagnosis. A closed IMAP port next to a working POP3 is a POP-only account,
not a firewall; every port timing out is a blocked IP, not a dozen broken
services; the same rejection over IMAP, POP3 and SMTP is a wrong password.

Two rules keep the patterns honest:

* Host names that do not resolve are left out of the port patterns. The
  built-in presets test both the server name and ``mail.<domain>``, and
  ``mail.<domain>`` often does not exist; its ``dns_not_found`` says nothing
  about the ports of the server that does.
* An unencrypted preset the doctor did not log in over (it does not send a
  password in clear text unless asked to) is never said to have worked. It
  may be recommended as the only usable setting, with its warning, but not
  once the credentials were rejected elsewhere, and it neither proves nor
  disproves the credentials. The JSON keeps it apart from the working
  presets: ``incoming``/``outgoing`` name only presets whose login worked,
  ``usable_untested`` names such a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.gate import REJECTIONS
from mailhat_nb.diagnose.probe import CERT_CODES
from mailhat_nb.diagnose.results import PresetResult
from mailhat_nb.discovery.model import Discovery

_SECURITY_RANK = {"ssl": 0, "starttls": 1, "none": 2}
_UNREACHABLE = frozenset({"connect_timeout", "no_greeting"})


@dataclass
class Verdict:
    """The conclusion of a sweep.

    Attributes
    ----------
    code:
        ``ok`` when an incoming preset works with encryption; otherwise the
        root cause (a DESIGN.md code), or ``plaintext_password_exposed``
        when the only usable incoming preset is unencrypted.
    summary:
        What to tell the agent, in a sentence or three.
    incoming, outgoing:
        The presets to show the agent, or None: one the doctor logged in
        over (:attr:`PresetResult.works`), else, where nothing worked, the
        unencrypted preset the server would take the password on, which the
        doctor did not log in over (it does not send a password in clear
        text unless asked to): usable now, with its warning, but untested.
        :attr:`incoming_working` and :attr:`incoming_untested` tell them
        apart; the JSON (:meth:`to_dict`) names only a working one.
    """

    code: str
    summary: str
    incoming: PresetResult | None = None
    outgoing: PresetResult | None = None
    results: list[PresetResult] = field(default_factory=list, repr=False)

    @property
    def incoming_working(self) -> PresetResult | None:
        """The incoming preset, when the doctor's login over it worked."""
        return _working(self.incoming)

    @property
    def outgoing_working(self) -> PresetResult | None:
        """The outgoing preset, when the doctor's login over it worked."""
        return _working(self.outgoing)

    @property
    def incoming_untested(self) -> PresetResult | None:
        """The incoming preset, when it is usable on the server's word only (no login)."""
        return _untested(self.incoming)

    @property
    def outgoing_untested(self) -> PresetResult | None:
        """The outgoing preset, when it is usable on the server's word only (no login)."""
        return _untested(self.outgoing)

    def _cause(self) -> PresetResult | None:
        """The result carrying the verdict's code (it fills the code's texts).

        The recommended incoming preset when it carries it (the warning is
        about that one), else the first where the failure really happened: a
        preset that only inherited another's rejection (its login not tried)
        would explain the gate instead of the problem.
        """
        if self.incoming is not None and self.incoming.code == self.code:
            return self.incoming
        carrying = [r for r in self.results if r.code == self.code]
        return next((r for r in carrying if not r.rejection_reused),
                    carrying[0] if carrying else None)

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
        """Return the DESIGN.md ``verdict`` object (presets by id).

        ``incoming``/``outgoing`` name only presets whose login worked (else
        null), as DESIGN.md has them: "the working preset". The additive
        ``usable_untested`` names, per direction, the unencrypted preset the
        verdict recommends without a login having been tried over it (else
        null); the summary says the same in words.
        """
        def pid(result: PresetResult | None) -> str | None:
            return result.preset.id if result is not None else None

        return {"code": self.code, "summary": self.summary,
                "incoming": pid(self.incoming_working), "outgoing": pid(self.outgoing_working),
                "usable_untested": {"incoming": pid(self.incoming_untested),
                                    "outgoing": pid(self.outgoing_untested)}}


def _working(result: PresetResult | None) -> PresetResult | None:
    return result if result is not None and result.works else None


def _untested(result: PresetResult | None) -> PresetResult | None:
    return result if result is not None and not result.works else None


def best(results: list[PresetResult], protocol: str,
         untested_ok: bool = True) -> PresetResult | None:
    """Pick the result of ``protocol`` to recommend: clean, logged in, most secure, first.

    ``untested_ok=False`` leaves out unencrypted presets the doctor did not
    log in over (after a rejection they would most likely fail as well).
    """
    working = [(i, r) for i, r in enumerate(results) if r.protocol == protocol
               and (r.usable if untested_ok else r.works)]
    if not working:
        return None
    return min(working, key=lambda ir: (ir[1].status != "ok", not ir[1].works,
                                        _SECURITY_RANK[ir[1].security], ir[0]))[1]


def deepest(results: list[PresetResult]) -> PresetResult | None:
    """Pick the failure that got furthest (the most telling one), first on ties."""
    if not results:
        return None
    return max(enumerate(results), key=lambda ir: (ir[1].depth, -ir[0]))[1]


def _names(results: list[PresetResult]) -> str:
    return ", ".join(f"{r.preset.label} ({r.host}:{r.port})" for r in results[:4]) + (
        f" and {len(results) - 4} more" if len(results) > 4 else "")


def decide(results: list[PresetResult], discovery: Discovery | None = None) -> Verdict:
    """Conclude a sweep (may re-read IMAP codes as ``pop_only``).

    With a ``discovery``, what it found about the domain (its DNS failing,
    its mail at another provider, ``mail.<domain>`` pointing at a web
    proxy) is the root cause when no IMAP preset works: the failures of the
    presets are its symptoms.
    """
    verdict = _conclude(results)
    if discovery is not None and verdict.incoming is None:
        verdict = _discovered(discovery, verdict)
    verdict.results = list(results)
    return verdict


#: Discovery problems that explain a sweep with no working IMAP, in order.
_DISCOVERED = ("dns_not_found", "dns_servfail", "dns_timeout", "mx_elsewhere",
               "mail_host_elsewhere")


def _discovered(found: Discovery, verdict: Verdict) -> Verdict:
    """The verdict when the domain itself, not a port, is the cause."""
    for code in _DISCOVERED:
        problem = found.problem(code)
        if problem is None:
            continue
        if code.startswith("dns_") and problem.subject != found.domain:
            continue  # only the domain's own failure; mail.<domain> missing is a symptom
        if code == "dns_not_found":
            summary = (f"{problem.detail}: check the spelling of the email address; if it "
                       "is right, the domain has expired or was never registered, and the "
                       "customer must renew it at the registrar before any mail setting can "
                       "work.")
        elif code == "mx_elsewhere":
            summary = f"{problem.detail[:1].upper()}{problem.detail[1:]}."
        else:
            summary = (f"{problem.detail}. "
                       + codes.render(codes.get(code).remedy, host=problem.subject))
        return Verdict(code, summary, None, verdict.outgoing)
    return verdict


def _conclude(results: list[PresetResult]) -> Verdict:
    if not results:
        return Verdict("unknown", "No preset could be tested: every preset chosen needs a "
                       "server name (give the one from the welcome email or cPanel), or there "
                       "were none.")
    imap = [r for r in results if r.protocol == "imap"]
    pop = [r for r in results if r.protocol == "pop3"]
    smtp = [r for r in results if r.protocol == "smtp"]
    rejected = [r for r in results if r.code in REJECTIONS]
    incoming = best(results, "imap", untested_ok=not rejected)
    outgoing = best(results, "smtp", untested_ok=not rejected)
    out_text = _outgoing_text(outgoing, smtp)
    # Port patterns are judged on the host names that exist (see the module doc).
    resolved = [r for r in results if _passed(r, "dns")]
    imap_resolved = [r for r in imap if _passed(r, "dns")]

    if incoming is not None:
        return _recommend(incoming, imap, out_text, outgoing)

    pop_greeted = [r for r in pop if _passed(r, "greeting")]
    if imap_resolved and pop_greeted and all(r.code == "connection_refused"
                                             for r in imap_resolved):
        for r in imap_resolved:
            r.code = "pop_only"
            r.context = f"(Port {r.port} refused the connection while POP3 answers.)"
        pop_works = [r for r in pop if r.works]
        shown = pop_works[0] if pop_works else pop_greeted[0]
        summary = (f"POP-only account: every IMAP port is closed while POP3 answers "
                   f"({shown.setting()}"
                   + (", login works" if pop_works else "") + "). The CRM needs IMAP: ask the "
                   "host to enable IMAP for this account.")
        return Verdict("pop_only", f"{summary} {out_text}".strip(), None, outgoing)

    if resolved and all(r.code == "connect_timeout" for r in resolved):
        return Verdict("connect_timeout",
                       "Every port timed out: the IP may be blocked (cPHulk/CSF block an IP "
                       "after failed logins). Ask HostGator support to check the firewall for "
                       "the customer's IP, and stop login attempts until it is lifted.",
                       None, None)

    if rejected and not any(r.works for r in results):
        # Only logins actually attempted count: an unencrypted preset judged from
        # the server's offer neither confirms nor refutes the credentials.
        tried = {r.protocol for r in results if r.login_tried or r.code in REJECTIONS}
        refused = {r.protocol for r in rejected}
        if refused == tried:
            protocols = ", ".join(p.upper() for p in sorted(refused))
            return Verdict(rejected[0].code,
                           f"The credentials were rejected on every protocol tried ({protocols}): "
                           "the password or username is wrong. Have the customer reset the "
                           "password in cPanel and use the full email address as the username.",
                           None, None)

    worst = deepest(imap) if imap else deepest(results)
    assert worst is not None  # results is not empty  # noqa: S101
    if imap_resolved and all(r.code in _UNREACHABLE for r in imap_resolved) and any(
            _passed(r, "greeting") for r in pop + smtp):
        summary = (f"No IMAP preset answers ({worst.title.lower()}) while other mail ports do: "
                   f"{_why_silent({r.code for r in imap_resolved})}. {worst.remedy}")
    else:
        summary = (f"No IMAP preset works. The furthest attempt, {worst.setting()}, failed: "
                   f"{worst.title.lower()} ({worst.detail}). {worst.remedy}")
    return Verdict(worst.code, f"{summary} {out_text}".strip(), None, outgoing)


def _why_silent(found: set[str]) -> str:
    """Why no IMAP port answers, from what the connections did (see ``_UNREACHABLE``).

    A timed-out connection never opened (a firewall drops the packets); a
    ``no_greeting`` one opened, so nothing filtered it: something accepted it
    and then held it without a word.
    """
    greetless = ("the server accepted the connection but never greeted: something holds it "
                 "open without speaking (a proxy or firewall in between, or an overloaded or "
                 "stuck IMAP service)")
    if found == {"no_greeting"}:
        return f"on the IMAP ports {greetless}"
    if found == {"connect_timeout"}:
        return "a firewall drops the packets to the IMAP ports (the connections get no answer)"
    return ("some IMAP ports get no answer at all (a firewall drops the packets); on others "
            + greetless)


def _recommend(incoming: PresetResult, imap: list[PresetResult], out_text: str,
               outgoing: PresetResult | None) -> Verdict:
    """The verdict when an IMAP preset can be entered in the CRM."""
    code = "ok" if incoming.status == "ok" else incoming.code
    if incoming.untested_plaintext:
        summary = (f"Incoming: the only usable setting is {incoming.setting()}, with a warning: "
                   f"{_UNTESTED}.")
    else:
        summary = f"Incoming: enter {incoming.setting()}."
        if incoming.status != "ok":
            summary += f" Warning: {incoming.title.lower()}; {incoming.explanation}"
    cert_failed = [r for r in imap if r.code in CERT_CODES]
    if incoming.security == "none" and cert_failed:
        # Only clear text is left because every encrypted preset trips over the
        # certificate: that is the finding, the unencrypted setting a stopgap.
        code = cert_failed[0].code
        if incoming.untested_plaintext:
            left = (f"Until that is fixed only an unencrypted setting is usable: "
                    f"{incoming.setting()}; {_UNTESTED}.")
        else:
            left = (f"Until that is fixed only an unencrypted setting works: "
                    f"{incoming.setting()}, and the password crosses the network in clear "
                    "text (the doctor's own test login did).")
        summary = f"{_certificate_finding(cert_failed[0])} {left}"
    return Verdict(code, f"{summary} {out_text}".strip(), incoming, outgoing)


#: What the verdict says of an unencrypted preset it did not log in over.
_UNTESTED = ("the server accepts the password without encryption here; the doctor did not "
             "send it, so the login itself is untested")


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
        if outgoing.untested_plaintext:
            return (f"Outgoing: the only usable setting is {outgoing.setting()}, with a "
                    f"warning: {_UNTESTED}.")
        text = f"Outgoing: enter {outgoing.setting()}."
        if outgoing.status != "ok":
            text += f" (Warning: {outgoing.title.lower()}.)"
        return text
    if not smtp:
        return ""
    worst = deepest(smtp)
    assert worst is not None  # noqa: S101
    return f"No outgoing (SMTP) preset works: {worst.title.lower()} ({worst.setting()})."
