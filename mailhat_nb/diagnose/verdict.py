"""The verdict across presets: a decision over all the evidence.

One preset's failure is a symptom; the pattern across all of them is the
diagnosis. A closed IMAP port next to a working POP3 is a POP-only account,
not a firewall; every port timing out is a blocked IP, not a dozen broken
services; the same rejection over IMAP, POP3 and SMTP is a wrong password;
encrypted presets that all fail on the certificate are a certificate
problem, whatever the unencrypted preset beside them says.

The rules, in the order they are tried (:data:`RULES`; the first that
applies decides):

1. ``nothing_tested``: no result at all: ``unknown``.
2. ``imap_usable``: an IMAP setting can be entered, and the best one is
   recommended (a login that worked before one judged from the server's
   offer, encrypted before unencrypted). Encrypted: ``ok``. Only an
   unencrypted one left: the fault that makes the encrypted ones fail (their
   certificate, the server's TLS) when there is one, the unencrypted setting
   being a stopgap with its warning; else ``plaintext_password_exposed``.
   An unencrypted setting nobody logged in over is not offered once the
   password was rejected anywhere: it would most likely fail as well.
3. ``domain_fault``: with a discovery, what it found about the domain (its
   DNS failing, its mail at another provider, ``mail.<domain>`` pointing
   elsewhere): the presets' failures are its symptoms.
4. ``credentials_rejected``: the password was rejected on every protocol a
   password was sent over: that rejection, with what the server said of the
   username, and, when rule 5 holds as well, that the account is POP-only
   (the reset alone would not let the CRM in).
5. ``pop_only``: every IMAP port refuses while POP3 answers.
6. ``ip_blocked``: every port times out.
7. ``host_down``: every port tested refuses the connection, of two kinds
   or more (IMAP, POP3, SMTP): the name leads to no mail server (a wrong
   address, or the server is down), not a service off for one account.
8. ``incoming_down``: every IMAP and POP3 port refuses while the same
   host's SMTP answers: the name is right, and the server's incoming service
   is not running (a POP-only account still has POP3), not this account's
   settings.
9. ``cause``: otherwise, the cause that explains the encrypted IMAP rows.

The outgoing (SMTP) line of the summary follows rules 2 and 9 for SMTP.

What every rule holds to:

* **Encrypted rows outrank unencrypted ones.** A cause is chosen among a
  protocol's encrypted rows when any of them failed; the unencrypted rows
  count only where there are none.
* **A row that sent no password is no evidence about the password.** An
  unencrypted preset judged from the server's offer never "worked" and
  neither proves nor disproves the credentials; a row that only inherited
  another's rejection (:attr:`PresetResult.rejection_reused`) ranks below
  the row where the rejection happened.
* **The most telling failure explains.**
  :data:`~mailhat_nb.diagnose.evidence.TELLING` ranks the codes by what they
  say about the account and the server: a login the server judged, then a
  certificate, then the server's own TLS failing, ..., a name that does not
  resolve last.
* **Names that do not resolve are left out of the port patterns** (rules 5
  and 6): ``mail.<domain>`` often does not exist, and its ``dns_not_found``
  says nothing about the ports of the server that does.
* **The remedy never recommends a setting whose row failed.** It is the
  cause's :attr:`~mailhat_nb.diagnose.codes.Code.remedy`, which names no
  other setting, plus the settings left from rows that did not fail; a
  certificate's name is recommended only once it is shown to lead to the
  same server (:func:`~mailhat_nb.diagnose.certificate.vet`). Each row's
  own remedy holds to the same (:attr:`PresetResult.alternative`).
* **The order of the presets never matters.** The rows are put in one
  canonical order first (:func:`~mailhat_nb.diagnose.evidence.preference`)
  and every tie is broken by it; a test checks the verdict over every order
  (hypothesis).

The JSON keeps the working presets apart from the untested ones:
``incoming``/``outgoing`` (and their ``*_setting``) name only presets whose
login worked, ``usable_untested`` an unencrypted preset recommended on the
server's word alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.classify import USER_REFUSED
from mailhat_nb.diagnose.evidence import Evidence, is_fault, most_telling, passed, preference
from mailhat_nb.diagnose.gate import REJECTIONS
from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.diagnose.probe import CERT_CODES
from mailhat_nb.diagnose.results import PresetResult
from mailhat_nb.discovery.model import Discovery

_UNREACHABLE = frozenset({"connect_timeout", "no_greeting"})
_REFUSED = frozenset({"connection_refused", "pop_only"})

#: What the verdict says of an unencrypted preset it did not log in over.
_UNTESTED = ("the server accepts the password without encryption here; the doctor did not "
             "send it, so the login itself is untested")


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
    cause:
        The result whose failure (or warning) the code names: it fills the
        code's texts for the customer.
    remedy:
        What the agent should do; it never recommends a setting whose row
        failed. Built by the rule that decided (default: the cause's fix).
    """

    code: str
    summary: str
    incoming: PresetResult | None = None
    outgoing: PresetResult | None = None
    results: list[PresetResult] = field(default_factory=list, repr=False)
    cause: PresetResult | None = field(default=None, repr=False)
    remedy: str = ""

    def __post_init__(self) -> None:
        if not self.remedy:
            self.remedy = (self.cause.fix if self.cause is not None
                           else codes.render(codes.get(self.code).remedy, recommended=""))

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

    @property
    def finding(self) -> str:
        """The summary without the sentences of the remedy: what was found, said once.

        Several rules put the remedy into the summary, so that the JSON's
        summary reads on its own; where the remedy is shown beside it (the
        terminal, the ticket, the panel) this is what goes above it, so no
        sentence is said twice. The plain "Incoming: enter ..." sentences go
        too: those views show the settings to type field by field.
        """
        said = set(sentences(self.remedy))
        said |= {enter(direction, shown) for direction, shown in
                 (("Incoming", self.incoming), ("Outgoing", self.outgoing)) if shown is not None}
        return " ".join(s for s in sentences(self.summary) if s not in said)

    @property
    def explanation(self) -> str:
        """The verdict's sentence for the customer, with its fields filled."""
        if self.cause is not None and self.cause.code == self.code:
            return self.cause.explanation
        return codes.render(codes.get(self.code).explanation)

    def to_dict(self) -> dict[str, Any]:
        """Return the DESIGN.md ``verdict`` object.

        ``incoming``/``outgoing`` (ids) and ``incoming_setting``/
        ``outgoing_setting`` (preset, host, port, security: one preset is
        tried on several hosts) name only presets whose login worked, else
        null. ``usable_untested`` names, per direction, the unencrypted
        preset the verdict recommends without a login having been tried over
        it (else null); the summary says the same in words. ``remedy`` is
        additive: what the agent should do.
        """
        return {"code": self.code, "summary": self.summary, "remedy": self.remedy,
                "incoming": _id(self.incoming_working), "outgoing": _id(self.outgoing_working),
                "incoming_setting": _setting(self.incoming_working),
                "outgoing_setting": _setting(self.outgoing_working),
                "usable_untested": {"incoming": _id(self.incoming_untested),
                                    "outgoing": _id(self.outgoing_untested),
                                    "incoming_setting": _setting(self.incoming_untested),
                                    "outgoing_setting": _setting(self.outgoing_untested)}}


def _working(result: PresetResult | None) -> PresetResult | None:
    return result if result is not None and result.works else None


def _untested(result: PresetResult | None) -> PresetResult | None:
    return result if result is not None and not result.works else None


def _id(result: PresetResult | None) -> str | None:
    return result.preset.id if result is not None else None


def _setting(result: PresetResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"preset": result.preset.id, "host": result.host, "port": result.port,
            "security": result.security}


# ------------------------------------------------------------------ the rules


def _nothing_tested(ev: Evidence) -> Verdict | None:
    if ev.rows:
        return None
    return Verdict("unknown", "No preset could be tested: every preset chosen needs a server "
                   "name (give the one from the welcome email or cPanel), or there were none.")


def _imap_usable(ev: Evidence) -> Verdict | None:
    incoming = ev.incoming
    if incoming is None:
        return None
    fault = ev.fault("imap") if incoming.security == "none" else None
    if fault is not None:
        # Only clear text is left because the encrypted settings trip over a
        # fault of the server's: that is the finding, the unencrypted setting a stopgap.
        stopgap = _stopgap(incoming)
        return Verdict(fault.code, _join(_finding(fault, ev), stopgap,
                                         _outgoing_text(ev, fault.fix)),
                       incoming, ev.outgoing, cause=fault, remedy=f"{fault.fix} {stopgap}")
    out = _outgoing_text(ev)
    if incoming.untested_plaintext:
        summary = (f"Incoming: the only usable setting is {incoming.setting()}, with a warning: "
                   f"{_UNTESTED}.")
    else:
        summary = enter("Incoming", incoming)
        if incoming.status != "ok":
            summary += f" Warning: {_title(incoming)}; {incoming.explanation}"
    code = "ok" if incoming.status == "ok" else incoming.code
    return Verdict(code, _join(summary, out), incoming, ev.outgoing, cause=incoming)


#: Discovery problems that explain a sweep with no usable IMAP, in order.
_DISCOVERED = ("dns_not_found", "dns_servfail", "dns_timeout", "mx_elsewhere",
               "mail_host_elsewhere")


def _domain_fault(ev: Evidence) -> Verdict | None:
    found = ev.discovery
    if found is None or ev.incoming is not None:
        return None
    for code in _DISCOVERED:
        problem = found.problem(code)
        if problem is None:
            continue
        if code.startswith("dns_") and problem.subject != found.domain:
            continue  # only the domain's own failure; mail.<domain> missing is a symptom
        remedy = codes.render(codes.get(code).remedy, host=problem.subject)
        if code == "dns_not_found":
            summary = (f"{problem.detail}: check the spelling of the email address; if it "
                       "is right, the domain has expired or was never registered, and the "
                       "customer must renew it at the registrar before any mail setting can "
                       "work.")
        elif code == "mx_elsewhere":
            summary = f"{problem.detail[:1].upper()}{problem.detail[1:]}."
        else:
            summary = f"{problem.detail}. {remedy}"
        return Verdict(code, summary, None, ev.outgoing, remedy=remedy)
    return None


def _credentials_rejected(ev: Evidence) -> Verdict | None:
    if not ev.rejected or any(r.works for r in ev.rows):
        return None
    # Only logins actually attempted count: an unencrypted preset judged from the
    # server's offer neither confirms nor refutes the credentials.
    tried = {r.protocol for r in ev.rows if r.login_tried or r.code in REJECTIONS}
    refused = {r.protocol for r in ev.rejected}
    if refused != tried:
        return None
    cause = most_telling(ev.rejected)
    assert cause is not None  # rejected is not empty  # noqa: S101
    protocols = ", ".join(p.upper() for p in sorted(refused))
    summary = (f"The credentials were rejected on every protocol tried ({protocols}): the "
               "password or username is wrong.")
    unknown_user = next((r for r in ev.rejected if r.detail.startswith(USER_REFUSED)), None)
    if unknown_user is not None:
        summary += (f" {unknown_user.protocol.upper()} refused the username itself, before "
                    f"any password ({unknown_user.detail}).")
    remedy = _credentials_remedy(ev, unknown_user is not None)
    pop = _pop_only_rows(ev)
    if pop is not None:
        # Both facts: after the reset the CRM still cannot connect while IMAP is off.
        summary += (" Also, every IMAP port is closed while POP3 answers: this is a POP-only "
                    "account, and the CRM needs IMAP.")
        remedy += (" Then ask the host to enable IMAP for the account: with the right "
                   "password the CRM still cannot connect while IMAP is off.")
    return Verdict(cause.code, _join(summary, remedy), cause=cause, remedy=remedy)


def _credentials_remedy(ev: Evidence, unknown_user: bool) -> str:
    """What to do about rejected credentials, from the username that was sent.

    cPanel's username is the full address: for its presets the password is
    the suspect. Elsewhere a server may know the account by a short login
    name, and the full address having been sent (and refused) is itself
    the clue; telling the agent to "use the full address" then repeats what
    failed.
    """
    account = ev.account
    retry = ("Do not retry repeatedly: the host's firewall may block the IP after a few "
             "failed logins.")
    if account is None:
        return ("Check the username the server expects and have the customer reset the "
                f"password. {retry}")
    user = account.username
    if any(r.preset.panel == "cpanel" for r in ev.rows):
        if "@" in user:
            return ("Have the customer reset the email password in cPanel (Email Accounts); "
                    f"the username is right in form (cPanel's is the full address, {user}). "
                    + retry)
        return (f"Use the full email address ({account.email}) as the username, as cPanel "
                f"expects, not {user}; if that fails too, have the customer reset the email "
                f"password in cPanel. {retry}")
    judged = " and the server does not know it" if unknown_user else ""
    if "@" in user:
        local = user.split("@", 1)[0]
        return (f"The username sent was the full address {user}{judged}: if the password is "
                f"right, the server may know the account by a short login name (such as "
                f"{local}): ask the host for the exact login name; otherwise have the "
                f"customer reset the password. {retry}")
    return (f"The username sent was {user}{judged}: if the password is right, the server may "
            f"expect the full address ({account.email}): ask the host for the exact login "
            f"name; otherwise have the customer reset the password. {retry}")


def _pop_only_rows(ev: Evidence) -> tuple[list[PresetResult], PresetResult, bool] | None:
    """The IMAP rows, the POP3 row to show, and whether its login worked, if POP-only.

    POP-only: every IMAP port that resolved refuses while POP3 answers. The
    IMAP rows are re-read as ``pop_only`` (idempotently: a second
    :func:`decide` on the same rows sees the same).
    """
    imap = ev.resolved("imap")
    pop_greeted = [r for r in ev.of("pop3") if passed(r, "greeting")]
    if not imap or not pop_greeted or not all(r.code in _REFUSED for r in imap):
        return None
    for r in imap:
        r.code = "pop_only"
        r.context = f"(Port {r.port} refused the connection while POP3 answers.)"
    pop_works = [r for r in ev.of("pop3") if r.works]
    return imap, (pop_works or pop_greeted)[0], bool(pop_works)


def _pop_only(ev: Evidence) -> Verdict | None:
    found = _pop_only_rows(ev)
    if found is None:
        return None
    imap, shown, works = found
    summary = (f"POP-only account: every IMAP port is closed while POP3 answers "
               f"({shown.setting()}" + (", login works" if works else "") + "). The CRM "
               "needs IMAP: ask the host to enable IMAP for this account.")
    return Verdict("pop_only", _join(summary, _outgoing_text(ev)), None, ev.outgoing,
                   cause=imap[0])


def _ip_blocked(ev: Evidence) -> Verdict | None:
    resolved = ev.resolved()
    if not resolved or not all(r.code == "connect_timeout" for r in resolved):
        return None
    remedy = ("Ask HostGator support to check the firewall for the customer's IP, and stop "
              "login attempts until it is lifted.")
    return Verdict("connect_timeout", "Every port timed out: the IP may be blocked (cPHulk/CSF "
                   f"block an IP after failed logins). {remedy}", cause=resolved[0],
                   remedy=remedy)


def _host_down(ev: Evidence) -> Verdict | None:
    resolved = ev.resolved()
    ports = sorted({r.port for r in resolved})
    protocols = {r.protocol for r in resolved}
    if len(protocols) < 2 or not all(r.code == "connection_refused" for r in resolved):
        return None
    hosts = sorted({r.host for r in resolved})
    kinds = ", ".join(sorted(p.upper() for p in protocols))
    where = ", ".join(f"{h} ({_address(ev, h)})" for h in hosts)
    remedy = ("Check the server name, and the address it leads to, against the welcome email "
              "or the hosting control panel; if they are right, ask the host whether the mail "
              "server is up.")
    summary = (f"Every port tested on {where} refuses the connection ({kinds}; ports "
               f"{', '.join(map(str, ports))}): no mail server listens at that address. "
               "Either the name leads to the wrong address (a mistyped server name, or DNS "
               "that still points at an old server) or the mail server is down; it is not one "
               "service turned off for this account.")
    return Verdict("connection_refused", _join(summary, remedy), cause=resolved[0],
                   remedy=remedy)


def _incoming_down(ev: Evidence) -> Verdict | None:
    imap, pop = ev.resolved("imap"), ev.resolved("pop3")
    refused = imap + pop
    if not imap or not pop or not all(r.code == "connection_refused" for r in refused):
        return None
    hosts = {r.host for r in refused}
    if not any(r.host in hosts and passed(r, "tcp") for r in ev.of("smtp")):
        return None
    ports = ", ".join(map(str, sorted({r.port for r in refused})))
    remedy = ("Ask the host whether the server's IMAP/POP3 service (Dovecot, Courier and the "
              "like) is running and accepting connections: nothing in the customer's settings "
              "fixes it.")
    summary = (f"Every IMAP and POP3 port tested on {', '.join(sorted(hosts))} refuses the "
               f"connection (ports {ports}) while its sending server (SMTP) answers: the "
               "server name is right, but the service that serves mailboxes is not running "
               "there (even a POP-only account would have POP3). It is not the password or "
               "this account's settings.")
    return Verdict("connection_refused", _join(summary, remedy, _outgoing_text(ev)), None,
                   ev.outgoing, cause=imap[0], remedy=remedy)


def _address(ev: Evidence, host: str) -> str:
    """The addresses ``host`` resolved to (the first four), as its DNS step found them."""
    for r in ev.rows:
        if r.host == host and r.addresses:
            return ", ".join(r.addresses[:4])
    return "address unknown"


def _cause(ev: Evidence) -> Verdict:
    imap = ev.of("imap")
    cause = ev.cause("imap") if imap else most_telling(
        [r for r in ev.rows if r.status == "fail"])
    if cause is None:
        what = "IMAP setting" if imap else "IMAP preset was tested, and no"
        return Verdict("unknown", f"No {what} can be recommended, and none failed in a way "
                       "that names a cause: see each preset's result.", None, ev.outgoing)
    remedy = cause.fix
    if is_fault(cause.code):
        remedy += " Until then no IMAP setting tested works."
    resolved = ev.resolved("imap")
    others_greet = any(passed(r, "greeting") for r in ev.of("pop3") + ev.of("smtp"))
    if resolved and others_greet and all(r.code in _UNREACHABLE for r in resolved):
        finding = (f"No IMAP preset answers ({_title(cause)}) while other mail ports do: "
                   f"{_why_silent({r.code for r in resolved})}.")
    else:
        finding = _finding(cause, ev)
    return Verdict(cause.code, _join(finding, remedy, _outgoing_text(ev, cause.fix)), None,
                   ev.outgoing, cause=cause, remedy=remedy)


#: The rules in the order they are tried: the first that returns a verdict decides.
RULES: tuple[Callable[[Evidence], Verdict | None], ...] = (
    _nothing_tested, _imap_usable, _domain_fault, _credentials_rejected, _pop_only,
    _ip_blocked, _host_down, _incoming_down, _cause,
)


def decide(results: list[PresetResult], discovery: Discovery | None = None,
           account: Account | None = None) -> Verdict:
    """Conclude a sweep: the first of :data:`RULES` that applies.

    ``discovery`` (what discovery found about the domain) may be the cause
    when no IMAP setting is usable (rule 3); ``account`` (the username that
    was sent) shapes the advice on rejected credentials (rule 4). May
    re-read IMAP codes as ``pop_only``, and points each row at the setting of
    its protocol that worked (:attr:`PresetResult.alternative`); it gives
    the same verdict when run again on the same results. The verdict's
    ``results`` keep the order given; nothing else depends on it.
    """
    ev = Evidence(sorted(results, key=preference), discovery, account)
    verdict = next(v for v in (rule(ev) for rule in RULES) if v is not None)
    for r in ev.rows:
        # (POP3 is no setting for the CRM: no row is pointed at one.)
        best = {"imap": ev.incoming, "smtp": ev.outgoing}.get(r.protocol)
        r.alternative = best if best is not None and best.works and best.status == "ok" else None
    verdict.results = list(results)
    return verdict


def _outgoing_text(ev: Evidence, said: str = "") -> str:
    """The summary's sentence about sending (rules 2 and 7 for SMTP).

    A fix already ``said`` for the incoming side is not repeated.
    """
    out = ev.outgoing
    if out is not None:
        fault = ev.fault("smtp") if out.security == "none" else None
        if fault is not None:
            return _join(f"Outgoing: the encrypted settings fail: {_title(fault)} "
                         f"({fault.setting()}).", _unsaid(fault.fix, said), _stopgap(out))
        if out.untested_plaintext:
            return (f"Outgoing: the only usable setting is {out.setting()}, with a warning: "
                    f"{_UNTESTED}.")
        text = enter("Outgoing", out)
        return text + (f" (Warning: {_title(out)}.)" if out.status != "ok" else "")
    cause = ev.cause("smtp")
    if cause is None:
        return ""
    return _join(f"No outgoing (SMTP) setting works: {_title(cause)} ({cause.setting()}).",
                 _unsaid(cause.fix, said))


# ------------------------------------------------------------------ wording


#: Where one sentence ends and the next begins ("e.g. gator1234" does not end one).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def sentences(text: str) -> list[str]:
    """Split ``text`` into its sentences.

    >>> sentences("Port closed. Use 993 (e.g. gator1.example). Done!")
    ['Port closed.', 'Use 993 (e.g. gator1.example).', 'Done!']
    """
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def enter(direction: str, result: PresetResult) -> str:
    """The summary's sentence naming the setting to enter: "Incoming: enter ..."."""
    return f"{direction}: enter {result.setting()}."


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


def _title(result: PresetResult) -> str:
    """The result's title inside a sentence: "Server's TLS is broken" -> "server's TLS ..."."""
    title = result.title
    return title if title.split(" ", 1)[0].isupper() else title[:1].lower() + title[1:]


def _stopgap(usable: PresetResult) -> str:
    """The unencrypted setting left while the encrypted ones fail, with its warning."""
    if usable.untested_plaintext:
        return (f"Until that is fixed only an unencrypted setting is usable: "
                f"{usable.setting()}; {_UNTESTED}.")
    return (f"Until that is fixed only an unencrypted setting works: {usable.setting()}, and "
            "the password crosses the network in clear text (the doctor's own test login did).")


def _unsaid(sentence: str, said: str) -> str:
    return "" if sentence in said else sentence


def _finding(cause: PresetResult, ev: Evidence) -> str:
    """Why the settings fail, from the cause, and from a second fault of the server's.

    A server whose TLS is broken usually breaks it for every encrypted
    setting, in different words (a hang-up on 993, "TLS initialization
    failed" after STARTTLS): each is evidence, and the agent quotes them.
    """
    if cause.code in CERT_CODES:
        return _certificate_finding(cause)
    lead = ("The encrypted settings fail" if cause.security != "none"
            else f"No {cause.protocol.upper()} setting works")
    text = f"{lead}: {_title(cause)} ({cause.setting()}): {cause.detail}."
    if is_fault(cause.code):
        also = most_telling([r for r in ev.of(cause.protocol) if r.security != "none"
                             and r.code != cause.code and is_fault(r.code)])
        if also is not None:
            text += f" Also {_title(also)} ({also.setting()}): {also.detail}."
    return text


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
    return f"The encrypted settings fail: {_title(bad)} ({bad.detail})."
