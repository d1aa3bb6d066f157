"""What the CRM (or the customer's mail app) said, understood and set beside the doctor's result.

The agent pastes the CRM's own error (``mailhat diagnose --crm-error TEXT``,
the doctor panel's "What the CRM said" box). :func:`understand` maps it to a
cause with the table of known messages in ``crm_errors.toml`` (data, like the
presets); :func:`attach` puts it in the report and says, in the verdict's
summary, what the two together mean: the doctor logging in from here while
the CRM times out is not a wrong setting but a blocked path (the host's
firewall, cPHulk/CSF, blocking the CRM's addresses after failed logins); the
CRM rejected while the doctor gets in is a password the CRM holds that is old.

Matching
    The pasted text is first redacted (:func:`redact_pasted`), then
    normalised (:func:`normalise`: whitespace runs and escaped line breaks
    become one space, curly quotes straight ones, HTML entities characters),
    then each row's regular expressions are searched in it, case-insensitively,
    in the file's order: the first row that matches wins, so the file lists
    specific messages before general ones. Searching (not anchoring) is what
    makes surrounding text harmless: ``imaplib.IMAP4.error: b'[...]'``, a CRM's
    "Cannot authenticate to IMAP server:" prefix, a quoted reply.

Redaction
    A pasted text may hold a password: a protocol log with ``LOGIN user
    secret``, ``password=...`` in a URL or JSON, the password itself pasted
    into the wrong box. Before anything is matched, kept or printed, every
    known password (in the forms a log prints it: as is, quoted, URL- or
    JSON-escaped) and anything shaped like one (:data:`_SHAPES`) is replaced
    by ``***``; one word on its own that no row knows is not kept at all.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import tomllib
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailhat_nb.checks import as_text
from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.evidence import passed
from mailhat_nb.errors import UsageError
from mailhat_nb.secrets import MASK, Secret

if TYPE_CHECKING:
    from mailhat_nb.diagnose.report import Report

#: Causes a CRM's message may name beyond the doctor's own codes (DESIGN.md, ``crm_error``).
CRM_CODES: Mapping[str, str] = {
    "app_password_required": "App password required",
    "web_login_required": "Browser sign-in required",
    "too_many_connections": "Too many connections",
    "ip_blocked": "Address blocked",
    "relay_denied": "Sending without login refused",
}
#: Characters of the pasted text read (a whole stack trace fits) and kept.
MAX_READ, MAX_KEPT = 20_000, 2_000
_TABLE = "crm_errors.toml"
_KEYS = {"id", "code", "said_by", "match", "summary", "examples"}
_UNKNOWN = ("Not a message the doctor knows: go by the doctor's own result, and keep the "
            "CRM's words in the ticket.")
_ONE_WORD = (f"{MASK} (one word that matches no known message is not kept: it may be a "
             "password pasted into the wrong box)")


@dataclass(frozen=True)
class KnownMessage:
    """One row of the table: what a family of messages means."""

    id: str
    code: str
    summary: str
    said_by: str
    patterns: tuple[re.Pattern[str], ...]
    examples: tuple[str, ...]

    def search(self, normal: str) -> re.Match[str] | None:
        """The first of this row's patterns found in ``normal`` (normalised text)."""
        return next((found for p in self.patterns if (found := p.search(normal))), None)


@dataclass
class CrmError:
    """The CRM's error as understood.

    Attributes
    ----------
    text:
        What was pasted, redacted and trimmed: the only form ever kept.
    code:
        A diagnosis code, one of :data:`CRM_CODES`, or ``unknown``.
    summary:
        What the message means.
    matched:
        The id of the table row that understood it (None: no row did).
    beside:
        What it means beside the doctor's own result (set by :func:`attach`).
    """

    text: str
    code: str
    summary: str
    matched: str | None = None
    beside: str = ""

    @property
    def title(self) -> str:
        """A few words for the code."""
        if self.matched is None:
            return "Not understood"
        if self.code == "unknown":  # a known message that names no one cause: an ALERT
            return "The server's own words"
        if self.code in codes.CODES:
            return codes.CODES[self.code].title
        return CRM_CODES.get(self.code, self.code)

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN.md ``crm_error`` object (plus ``matched``, the table row)."""
        return {"text": self.text, "code": self.code, "summary": self.summary,
                "matched": self.matched}


# --------------------------------------------------------------------------- the table


@cache
def load_table(path: str | Path | None = None) -> tuple[KnownMessage, ...]:
    """The table of known messages: the built-in one, or a file of the same format.

    Raises
    ------
    UsageError
        When the file does not parse or a row breaks the format (unknown
        code or key, a pattern that does not compile, no example).
    """
    if path is None:
        source = f"built-in {_TABLE}"
        text = (resources.files("mailhat_nb.diagnose") / _TABLE).read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the CRM messages table {source}: {exc}") from exc
    try:
        rows = tomllib.loads(text).get("message", [])
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from exc
    table = tuple(_row(row, f"{source}, message {i + 1}") for i, row in enumerate(rows))
    ids = [m.id for m in table]
    if not table or len(set(ids)) != len(ids):
        raise UsageError(f"{source}: needs at least one [[message]], each with its own id")
    return table


def _row(row: dict[str, Any], where: str) -> KnownMessage:
    if set(row) != _KEYS:
        raise UsageError(f"{where}: needs exactly the keys {', '.join(sorted(_KEYS))}")
    known = set(codes.CODES) | set(CRM_CODES)
    if row["code"] not in known:
        raise UsageError(f"{where}: unknown code {row['code']!r}")
    try:
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in row["match"])
    except re.error as exc:
        raise UsageError(f"{where}: a pattern does not compile: {exc}") from exc
    if not patterns or not row["examples"]:
        raise UsageError(f"{where}: needs at least one pattern and one example")
    return KnownMessage(id=row["id"], code=row["code"], summary=row["summary"],
                        said_by=row["said_by"], patterns=patterns,
                        examples=tuple(row["examples"]))


# --------------------------------------------------------------------------- redaction

_SASL_TOKEN = re.compile(r"(?<![\w+/=])[A-Za-z0-9+/]{8,}={0,2}(?![\w+/=])")


def _sasl_plain(match: re.Match[str]) -> str:
    """Mask a base64 token that decodes to ``authzid NUL user NUL password`` (AUTH PLAIN)."""
    token = match.group(0)
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return token
    return MASK if b"\0" in decoded else token


#: Things shaped like a password, each with what replaces it.
_SHAPES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # password=..., "password": "...", pwd: ..., app password = ... (a URL, JSON, a form dump)
    (re.compile(r"""(?ix)
        (\b(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|app[\ _-]?password)
         \s*["']?\s*[:=]\s*)
        ("[^"]*"|'[^']*'|[^\s,;&"'<>]+)"""), rf"\1{MASK}"),
    # an IMAP client's LOGIN command: "a1 LOGIN user secret" (after an optional "C:" of a log)
    (re.compile(r"""(?m)^(\s*(?:C:\s*|>+\s*)?[A-Za-z0-9.]+\s+LOGIN\s+
                    ("(?:[^"\\]|\\.)*"|\S+)\s+)\S.*$""", re.VERBOSE), rf"\1{MASK}"),
    # a POP3 client's PASS command
    (re.compile(r"(?m)^(\s*(?:C:\s*|>+\s*)?PASS\s+)\S.*$"), rf"\1{MASK}"),
    # SASL initial responses: AUTH PLAIN <base64>, AUTHENTICATE PLAIN <base64>, AUTH LOGIN <base64>
    (re.compile(r"(?i)\b(AUTH(?:ENTICATE)?\s+(?:PLAIN|LOGIN|XOAUTH2|OAUTHBEARER)\s+)\S+"),
     rf"\1{MASK}"),
    # a client line of a log that is one base64 word: an AUTH LOGIN password
    (re.compile(r"(?m)^(\s*C:\s*)[A-Za-z0-9+/]{4,}={0,2}\s*$"), rf"\1{MASK}"),
    # user:password@ in a URL (imaps://info:secret@mail.example)
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@"), rf"\1{MASK}@"),
    # AUTH PLAIN's blob anywhere (it holds the password between NULs)
    (_SASL_TOKEN, _sasl_plain),
)


def _spellings(password: str) -> set[str]:
    """How a log may print ``password``: as is, escaped for JSON, Python, a URL, HTML."""
    found = {password, json.dumps(password)[1:-1], repr(password)[1:-1],
             urllib.parse.quote(password, safe=""), urllib.parse.quote_plus(password),
             html.escape(password)}
    return {s for s in found if s}


def redact_pasted(text: str, secrets: Iterable[Secret | str] = ()) -> str:
    """``text`` with every known password, and anything shaped like one, replaced by ``***``.

    >>> redact_pasted("a1 LOGIN info@example.com hunter2")
    'a1 LOGIN info@example.com ***'
    >>> redact_pasted("imaps://info:hunter2@mail.example.com/", ["hunter2"])
    'imaps://info:***@mail.example.com/'
    """
    values = {v for s in secrets if (v := s.reveal() if isinstance(s, Secret) else s)}
    for spelling in sorted({sp for v in values for sp in _spellings(v)}, key=len, reverse=True):
        text = text.replace(spelling, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


# --------------------------------------------------------------------------- matching

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'",
                         "’": "'", "‚": "'", "\u00a0": " "})
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_ESCAPED_BREAK = re.compile(r"\\[rnt]")
_ESCAPED_QUOTE = re.compile(r"""\\(["'/\\])""")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_BYTE_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
#: smtplib's "(535, b'5.7.8 ...": the reply code as a server writes it, "535 5.7.8 ...".
_SMTPLIB_REPLY = re.compile(r"""\((\d{3}), b?['"]""", re.IGNORECASE)


def _utf8(match: re.Match[str]) -> str:
    r"""``\xe2\x80\x99`` (UTF-8 bytes as a bytes value prints them) as the character."""
    try:
        return bytes.fromhex(match.group(0).replace("\\x", "")).decode("utf-8")
    except UnicodeDecodeError:
        return match.group(0)


def normalise(text: str) -> str:
    r"""The text the table's patterns are searched in.

    Undone: HTML entities, JSON's ``\u2019`` and a bytes value's ``\xe2\x80\x99``
    escapes, escaped quotes and line breaks, curly quotes, invisible characters,
    smtplib's ``(535, b'`` and runs of whitespace.

    >>> normalise("b'5.7.8 Username and Password not accepted.\\r\\n5.7.8  https://x'")
    "b'5.7.8 Username and Password not accepted. 5.7.8 https://x'"
    """
    text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), html.unescape(text))
    text = _BYTE_ESCAPES.sub(_utf8, text)
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _ESCAPED_QUOTE.sub(r"\1", _ESCAPED_BREAK.sub(" ", _INVISIBLE.sub("", text)))
    return " ".join(_SMTPLIB_REPLY.sub(r"\1 ", text).split())


def _kept(text: str) -> str:
    """The redacted text as it is kept: trimmed, each line's spaces tidied, cut at MAX_KEPT."""
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    kept = "\n".join(line for line in lines if line)
    return kept if len(kept) <= MAX_KEPT else kept[:MAX_KEPT - 1].rstrip() + "…"


def understand(text: str, secrets: Iterable[Secret | str] = (),
               table: Iterable[KnownMessage] | None = None) -> CrmError:
    """Map what the CRM said to a cause (see the module docstring for how).

    Parameters
    ----------
    text:
        What the agent pasted, as pasted.
    secrets:
        Passwords known to be in play (the one the doctor was given).
    table:
        The known messages (default: the built-in table).
    """
    redacted = redact_pasted(as_text(text[:MAX_READ]), secrets)
    normal = normalise(redacted)
    for row in load_table() if table is None else table:
        found = row.search(normal)
        if found:
            detail = (found.groupdict().get("detail") or "").strip(" '\"")
            detail = re.sub(r"\s*\(Failure\)$", "", detail)
            return CrmError(_kept(redacted), row.code,
                            row.summary.replace("{detail}", detail), row.id)
    kept = _ONE_WORD if len(normal.split()) == 1 and len(normal) >= 4 else _kept(redacted)
    return CrmError(kept, "unknown", _UNKNOWN)


# --------------------------------------------------------------------------- beside the doctor

#: The CRM's codes by what they say about the CRM's situation.
GROUPS: Mapping[str, frozenset[str]] = {
    "path": frozenset({"connect_timeout", "connection_refused", "ip_blocked", "no_greeting"}),
    "password": frozenset({"auth_failed"}),
    "app_password": frozenset({"app_password_required"}),
    "web_login": frozenset({"web_login_required"}),
    "certificate": frozenset({"cert_expired", "cert_untrusted", "cert_hostname_mismatch"}),
    "encryption": frozenset({"plain_on_tls_port", "tls_on_plain_port", "tls_handshake_failed",
                             "starttls_unavailable", "starttls_failed"}),
    "plaintext": frozenset({"plaintext_auth_disabled"}),
    "dns": frozenset({"dns_not_found", "dns_failure", "dns_no_record", "dns_servfail",
                      "dns_timeout"}),
    "connections": frozenset({"too_many_connections"}),
    "hangup": frozenset({"server_disconnected"}),
    "imap_off": frozenset({"pop_only", "wrong_protocol"}),
    "mailbox": frozenset({"mailbox_unavailable"}),
    "non_ascii": frozenset({"password_not_ascii"}),
    "sending": frozenset({"relay_denied", "smtp_auth_unavailable", "send_rejected"}),
}
_CERT = GROUPS["certificate"]
_ASK_FIREWALL = ("Ask the host to look up the CRM's IP addresses in cPHulk and the firewall's "
                 "deny list (CSF), unblock them and whitelist them; until then keep the CRM "
                 "from retrying, or it is blocked again.")
_PATH_WORDS = {"connect_timeout": "times out", "connection_refused": "is refused",
               "ip_blocked": "is blocked", "no_greeting": "gets no greeting"}

#: (group, doctor's state) -> sentence; "*" is any state. Fields: {setting} (the
#: incoming setting the doctor logged in over), {host}, {username}, {outgoing},
#: {verdict} (the doctor's finding in words), {crm} (the CRM's connection's fate).
_BESIDE: Mapping[tuple[str, str], str] = {
    ("path", "in"): "The doctor logs in from here ({setting}) while the CRM's connection {crm}: "
                    "the CRM's path to the server is blocked, most likely the host's firewall "
                    "blocked the CRM's addresses after failed logins (cPHulk/CSF). "
                    + _ASK_FIREWALL,
    ("path", "unreachable"): "The doctor cannot connect from here either ({verdict}): the "
                             "server is down, or its firewall blocks this network too "
                             "(cPHulk/CSF block each address that failed logins). Ask the host "
                             "whether the mail server is up, and to check cPHulk and CSF for "
                             "the CRM's IP addresses and this one.",
    ("path", "rejected"): "The doctor reaches the server, but its login is rejected: the "
                          "password is wrong, and the CRM's failed retries are what got its "
                          "addresses blocked (cPHulk/CSF). Have the customer reset the password, "
                          "then " + _ASK_FIREWALL[0].lower() + _ASK_FIREWALL[1:],
    ("path", "*"): "The doctor reaches the server from here ({verdict}) while the CRM's "
                   "connection {crm}: the CRM's path is blocked (the host's firewall, "
                   "cPHulk/CSF) or the CRM uses another server name or port. Compare the "
                   "CRM's settings with the doctor's; if they agree, " + _ASK_FIREWALL[0].lower()
                   + _ASK_FIREWALL[1:],
    ("password", "in"): "The doctor logs in with the password typed here while the CRM's login "
                        "is rejected: the CRM holds an old or mistyped password (or another "
                        "username). Re-enter the password in the CRM, with {username} as the "
                        "username. If it is still rejected, the host's brute-force protection "
                        "(cPHulk) may be refusing the CRM's addresses after its failed "
                        "attempts: ask the host to check.",
    ("password", "rejected"): "The doctor's login is rejected too: the password itself is wrong "
                              "(or the account is suspended). Have the customer reset it in "
                              "cPanel, then enter the new one in the CRM.",
    ("password", "*"): "The CRM's login is rejected; the doctor's own test did not get as far as "
                       "a login ({verdict}), so it cannot tell whether the password is right: "
                       "fix that first, then re-enter the password in the CRM.",
    ("app_password", "in"): "The doctor logs in with the password typed here, so that password "
                            "works for apps (most likely an app password already): enter that "
                            "same one in the CRM, not the account's normal password.",
    ("app_password", "*"): "Have the customer create an app password in the provider's security "
                           "settings and enter it in the CRM (and here, to test it).",
    ("web_login", "in"): "The doctor is let in from here while the provider holds the CRM's "
                         "login for a browser sign-in: a security check on where the CRM "
                         "connects from. Have the customer sign in to webmail and confirm the "
                         "security alert, then reconnect the CRM; where the provider allows "
                         "apps only through its own sign-in, use the CRM's sign-in-with-provider "
                         "option.",
    ("web_login", "*"): "Have the customer sign in to webmail and clear the security alert, or "
                        "connect the CRM with the provider's own sign-in option (OAuth): a "
                        "password alone will not do.",
    ("certificate", "in"): "The doctor's encrypted login works with {setting}, whose certificate "
                           "is valid for that name: the CRM most likely uses another server "
                           "name (mail.<domain>, say, which the certificate does not cover). "
                           "Enter the server name exactly as {host} in the CRM.",
    ("certificate", "same"): "The doctor sees the same certificate problem from here: it is "
                             "the server's certificate, not the CRM's settings.",
    ("encryption", "in"): "The doctor's login works with {setting}: the CRM's security setting "
                          "does not match its port. Enter that setting in the CRM, port and "
                          "security together.",
    ("plaintext", "in"): "The CRM sends the password without encryption, which the server "
                         "rightly refuses; the doctor's encrypted login works: set the CRM to "
                         "{setting}.",
    ("dns", "in"): "The doctor finds the server as {host}: the server name in the CRM is "
                   "misspelt or another one. Enter {host}.",
    ("dns", "unreachable"): "The doctor cannot find or reach the server either ({verdict}): "
                            "the server name itself is the problem, not the CRM.",
    ("connections", "*"): "The server limits simultaneous connections per user and address "
                          "(Dovecot's mail_max_userip_connections on cPanel): close other mail "
                          "apps that use the account from the same network, lower the CRM's "
                          "parallel connections if it has the option, or ask the host to raise "
                          "the limit. The doctor's own test holds one connection at a time.",
    ("hangup", "in"): "The doctor's session worked from here: the server hung up on the CRM (a "
                      "passing fault, a connection limit, or the firewall cutting it off). Have "
                      "the CRM retry once; if it persists, ask the host to check the mail logs "
                      "for the CRM's addresses.",
    ("imap_off", "in"): "IMAP works from here with {setting}: the CRM is set to POP3 or pointed "
                        "at a POP3 or SMTP port. Enter that IMAP setting in the CRM.",
    ("imap_off", "pop_only"): "The doctor finds the same: IMAP is off for this account. Ask the "
                              "host to enable IMAP.",
    ("mailbox", "in"): "The doctor logs in and opens INBOX from here: the CRM trips over a "
                       "folder or the quota. Check the account's quota in cPanel (Email Disk "
                       "Usage) and which folders the CRM reads.",
    ("non_ascii", "*"): "The CRM cannot send the password's special characters: have the "
                        "customer set a password of plain letters, digits and punctuation, and "
                        "enter it in the CRM.",
    ("sending", "out"): "The doctor's sending login works with {outgoing}: turn on SMTP "
                        "authentication in the CRM (same username and password) and enter that "
                        "setting; if the message itself was refused, check that the CRM sends "
                        "From the account's own address and within the host's hourly limit.",
    ("sending", "*"): "The doctor found no working outgoing setting either: its outgoing "
                      "finding says why.",
}


def _doctor_state(report: Report) -> str:
    """What the doctor's own run amounts to, for :data:`_BESIDE`.

    ``in`` (an IMAP login worked here), ``rejected`` (a login was made and
    refused), ``pop_only``, ``same`` (set by the caller for a shared
    certificate finding), ``unreachable`` (no server greeted at all), else
    ``other``.
    """
    v = report.verdict
    if v.incoming_working is not None:
        return "in"
    if any(r.code == "auth_failed" and r.login_tried for r in report.results):
        return "rejected"
    if v.code == "pop_only":
        return "pop_only"
    if not any(passed(r, "greeting") for r in report.results):
        return "unreachable"
    return "other"


def beside(crm: CrmError, report: Report) -> str:
    """What the CRM's error and the doctor's result mean together ("" when nothing more)."""
    group = next((g for g, members in GROUPS.items() if crm.code in members), None)
    if group is None or crm.matched is None:
        return ""
    v = report.verdict
    state = _doctor_state(report)
    if group == "certificate" and (v.code in _CERT or any(r.code in _CERT
                                                          for r in report.results)):
        state = "same"
    if group == "sending":
        state = "out" if v.outgoing_working is not None else state
    template = _BESIDE.get((group, state)) or _BESIDE.get((group, "*"), "")
    incoming = v.incoming_working
    outgoing = v.outgoing_working
    fields = {
        "setting": incoming.setting() if incoming else "",
        "host": incoming.host if incoming else (report.account.server or ""),
        "username": report.account.username,
        "outgoing": outgoing.setting() if outgoing else "",
        "verdict": codes.get(v.code).title.lower(),
        "crm": _PATH_WORDS.get(crm.code, "fails"),
    }
    return template.format_map(fields)


def attach(report: Report, text: str, secrets: Iterable[Secret | str] = ()) -> CrmError:
    """Understand ``text``, keep it in ``report``, and say in the verdict what it means.

    The verdict's summary starts with the sentence of :func:`beside` (when
    there is one), so every output (terminal, JSON, Markdown, panel) says it
    where the agent reads the conclusion.
    """
    crm = understand(text, secrets)
    crm.beside = beside(crm, report)
    if crm.beside:
        report.verdict.summary = f"{crm.beside} {report.verdict.summary}"
    report.crm_error = crm
    return crm
