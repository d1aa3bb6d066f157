"""Diagnosis codes: the one table of titles, customer explanations and agent remedies.

The codes are stable strings in the JSON (DESIGN.md lists them); everything a
human reads about a code lives in :data:`CODES` and nowhere else, so the CLI
table, the Markdown for a ticket, the DataFrames and the notebook panels all
say the same thing. ``{host}``, ``{port}``, ``{label}``, ``{names}`` and
``{recommended}`` in the texts are filled per result by :func:`render`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """What a diagnosis code means.

    Attributes
    ----------
    code:
        The stable string.
    status:
        ``ok``, ``warn`` or ``fail``: what a result with this code counts as.
    title:
        A few words for a table cell.
    explanation:
        A sentence the agent can read out or paste to the customer.
    remedy:
        What the agent should do next, for one preset's row (it may point to
        another kind of setting, e.g. "use SSL/TLS on 993").
    fix:
        What to do about this cause when it is the verdict's, without naming
        another setting: the verdict adds the settings that are left from the
        rows that did not fail (:mod:`mailhat_nb.diagnose.verdict`), so it
        never recommends one whose row failed. Empty when :attr:`remedy`
        names no other setting and serves as it is.
    host_side:
        True when the fault is the server's (its TLS, its certificate, a hung
        service): nothing in the customer's settings fixes it, the host must.
    """

    code: str
    status: str
    title: str
    explanation: str
    remedy: str
    fix: str = ""
    host_side: bool = False

    @property
    def verdict_fix(self) -> str:
        """:attr:`fix`, or :attr:`remedy` when that serves as it is."""
        return self.fix or self.remedy


_TABLE: tuple[Code, ...] = (
    Code("ok", "ok", "Works",
         "The connection, encryption and login all worked with these settings.",
         "Enter these settings in the CRM."),
    Code("dns_not_found", "fail", "Server name does not exist",
         "The server name {host} does not exist, so nothing can connect to it.",
         "Check the spelling of the server name; for HostGator use the server name from the "
         "welcome email or cPanel (e.g. gator1234.hostgator.com), or mail.<domain> once the "
         "domain's DNS points at HostGator."),
    Code("dns_failure", "fail", "Name lookup failed",
         "The server name {host} could not be looked up right now.",
         "Retry in a minute; if it persists, check the domain's DNS (nameservers, expired "
         "domain) or use the server name from the welcome email instead."),
    Code("dns_no_record", "fail", "Name has no address",
         "The name {host} exists, but has no address (or no record of the kind asked for).",
         "The domain's DNS lacks the record: in the DNS zone (cPanel Zone Editor, or wherever "
         "the domain's nameservers are), add an A record for {host} pointing at the mail "
         "server's address; meanwhile use the server name from the welcome email."),
    Code("dns_servfail", "fail", "Domain's DNS is broken",
         "The domain's nameservers fail to answer for {host} (SERVFAIL): its DNS is broken, "
         "or it points at nameservers that do not serve it.",
         "Check the domain's nameservers at the registrar (an expired domain, a transfer "
         "half done, nameservers that no longer host the zone); meanwhile connect with the "
         "server name from the welcome email, which does not depend on the customer's DNS."),
    Code("dns_timeout", "fail", "DNS did not answer",
         "The DNS resolver gave no answer for {host} in time.",
         "Check the resolver (--dns-server, or the machine's network settings) and retry; "
         "if only this domain times out, its nameservers are unreachable: check them at the "
         "registrar."),
    Code("mx_elsewhere", "fail", "Mail is handled by another provider",
         "This domain's mail is handled by another provider than the settings tested, so "
         "these settings cannot work.",
         "Use the settings of the provider the domain's MX records name (run with --presets "
         "auto), with an app password or OAuth where that provider requires it."),
    Code("mail_host_elsewhere", "fail", "mail.<domain> points elsewhere",
         "{host} does not lead to the mail server any more: it points at a web server or "
         "proxy (web ports answer, mail ports do not), typically after the domain's DNS "
         "moved.",
         "Use the server name from the welcome email or cPanel (it does not depend on the "
         "domain's DNS); to fix mail.<domain>, set its A record (DNS only, not proxied) to "
         "the mail server's address at the domain's current DNS provider."),
    Code("connection_refused", "fail", "Port closed",
         "The server {host} is reachable but nothing accepts connections on port {port}.",
         "Use another preset (e.g. 993 SSL/TLS instead of 143); if every port of this kind is "
         "closed, the service is off for this account: ask the host.",
         fix="Nothing accepts connections on this port: if every port of this kind is closed, "
             "the service is off for this account; ask the host to enable it."),
    Code("connect_timeout", "fail", "Connection timed out",
         "Connections to {host} on port {port} get no answer at all: a firewall drops them, "
         "or the client's IP address is blocked.",
         "Check whether the customer's network blocks the port; if every port times out, the "
         "IP may be blocked by the host's firewall (cPHulk/CSF after failed logins): ask "
         "HostGator support to whitelist the IP."),
    Code("no_greeting", "fail", "Server never answered",
         "The connection to {host}:{port} opened but the server never said hello.",
         "The mail service behind this port is stuck or a proxy swallows it; try the other "
         "presets, and report the port to the host if it stays silent.",
         fix="The mail service behind this port is stuck or a proxy swallows it: report the "
             "port to the host.", host_side=True),
    Code("tls_on_plain_port", "fail", "Port expects SSL/TLS",
         "Port {port} on {host} speaks encrypted SSL/TLS, but the settings say no encryption.",
         "Set security to SSL/TLS for port {port} (993 IMAP, 995 POP3, 465 SMTP are SSL/TLS "
         "ports).",
         fix="This port expects encryption from the first byte: the security chosen for it "
             "is wrong."),
    Code("plain_on_tls_port", "fail", "Port does not speak SSL/TLS",
         "Port {port} on {host} answers without encryption, but the settings say SSL/TLS.",
         "Use STARTTLS or no encryption on this port (143, 110, 25, 26, 587), or switch to the "
         "SSL/TLS port (993, 995, 465).",
         fix="This port does not speak SSL/TLS: the security chosen for it is wrong, or the "
             "host has turned encryption off on it."),
    Code("cert_hostname_mismatch", "fail", "Certificate for another name",
         "The server's certificate is valid, but for {names}, not for {host}.",
         "Use a host name the certificate covers{recommended} (for HostGator: the server "
         "name, not mail.<domain>, with SSL/TLS).",
         fix="Enter a server name the certificate covers{recommended} (for HostGator: the "
             "server name from the welcome email, not mail.<domain>)."),
    Code("cert_untrusted", "fail", "Untrusted certificate",
         "The server's certificate is not issued by an authority the CRM trusts (for "
         "example, it is self-signed).",
         "Use the server name whose certificate is trusted (HostGator: the gatorNNNN server "
         "name); or ask the host to install a proper certificate (AutoSSL).",
         fix="Enter the server name whose certificate is trusted (HostGator: the gatorNNNN "
             "server name from the welcome email), or ask the host to install a certificate "
             "from a trusted authority (cPanel AutoSSL)."),
    Code("cert_expired", "fail", "Certificate expired",
         "The server's certificate has expired (or is not valid yet), so encrypted "
         "connections are refused.",
         "Ask the host to renew the certificate (cPanel AutoSSL); meanwhile the server name "
         "from the welcome email usually carries a valid one.", host_side=True),
    Code("tls_handshake_failed", "fail", "Server's TLS is broken",
         "The server on {host}:{port} broke off the encrypted connection while setting it up "
         "(the TLS handshake): a fault on the server's side, not in these settings.",
         "The server's TLS is broken: report it to the host with the transcript. Meanwhile "
         "use another setting only if one works; changing this one's security will not help.",
         fix="The server's TLS is broken: report it to the host with the transcript (nothing "
             "in the customer's settings fixes it).", host_side=True),
    Code("starttls_unavailable", "fail", "STARTTLS not offered",
         "The server on {host}:{port} does not offer to switch to encryption (STARTTLS).",
         "Use the SSL/TLS preset (993/465) instead.",
         fix="The server does not offer encryption (STARTTLS) on this port: ask the host "
             "whether encryption is available for this service."),
    Code("starttls_failed", "fail", "STARTTLS failed on the server",
         "The server on {host}:{port} offers to switch to encryption (STARTTLS), but the switch "
         "fails on its side; its own words are in the details.",
         "The server's TLS is broken: report it to the host with its words from the "
         "transcript. Meanwhile use another setting only if one works; this one's settings "
         "are right.",
         fix="The server's TLS is broken (STARTTLS fails on its side): report it to the host "
             "with its words from the transcript (nothing in the customer's settings fixes "
             "it).", host_side=True),
    Code("plaintext_auth_disabled", "fail", "Login without encryption refused",
         "The server refuses passwords over an unencrypted connection.",
         "Use SSL/TLS (993/465) or STARTTLS; the server is right to refuse.",
         fix="The server is right to refuse passwords without encryption: only an encrypted "
             "setting can work here."),
    Code("plaintext_password_exposed", "warn", "Unencrypted login allowed",
         "The server on {host}:{port} accepts the password without encryption: with these "
         "settings it would cross the network in clear text, readable along the way.",
         "Prefer the SSL/TLS or STARTTLS preset that works; use this one only if the CRM "
         "cannot do encryption.",
         fix="With this setting the password crosses the network in clear text: use it only "
             "if the CRM can do nothing else and the customer accepts that, and ask the host "
             "to offer encryption."),
    Code("auth_failed", "fail", "Login rejected",
         "The server rejected the username or password.",
         "Have the customer reset the email password in cPanel and enter the full email "
         "address as the username; do not retry repeatedly (cPHulk/CSF block the IP after "
         "a few failures)."),
    Code("password_not_ascii", "fail", "Password has special characters",
         "The password contains characters (like ü or ß) that this server's login command "
         "cannot carry.",
         "Have the customer set a password of plain letters, digits and punctuation, or use "
         "a preset whose server supports AUTHENTICATE PLAIN."),
    Code("wrong_protocol", "fail", "Wrong kind of server",
         "Port {port} on {host} answers, but with a different protocol than {protocol}.",
         "Check the port: IMAP is 993/143, POP3 995/110, SMTP 465/587/25/26.",
         fix="Another kind of server answers on this port: check the port number typed for "
             "this protocol."),
    Code("pop_only", "fail", "POP-only account",
         "This account can only be reached over POP3; IMAP is off, and the CRM needs IMAP.",
         "Ask the host to enable IMAP for the account (or move it to a plan with IMAP); POP3 "
         "cannot be used by the CRM."),
    Code("mailbox_unavailable", "fail", "Mailbox not readable",
         "Login worked but the mailbox could not be opened.",
         "Check the account's quota and mailbox in cPanel (Email Accounts, Email Disk "
         "Usage); ask the host if INBOX is damaged."),
    Code("smtp_auth_unavailable", "fail", "Sending server offers no login",
         "The sending server on {host}:{port} does not offer a login (SMTP AUTH).",
         "Use the SSL/TLS submission port (465) or 587 with STARTTLS; port 25 often only "
         "accepts mail for local recipients.",
         fix="This sending port offers no login; port 25 often only accepts mail for local "
             "recipients: ask the host which port takes the account's login."),
    Code("send_rejected", "fail", "Test message rejected",
         "Login worked, but the server refused the test message.",
         "Check the account's sending limits and that the From address is the account's own; "
         "the server's reply is in the transcript."),
    Code("server_disconnected", "fail", "Server hung up",
         "The server on {host}:{port} closed the connection unexpectedly.",
         "Retry once; if it persists, the server may be overloaded or limiting connections: "
         "check with the host."),
    Code("server_misbehaved", "fail", "Server sent nonsense",
         "The server on {host}:{port} sent something no mail server sends (an endless line, "
         "an oversized or missing block of data, or garbage), so the doctor stopped listening.",
         "Check the server name and port (something other than a mail server may answer "
         "there); if they are right, report it to the host with the transcript.",
         host_side=True),
    Code("unknown", "fail", "Unexpected error",
         "Something unexpected happened; the details are in the transcript.",
         "Paste the transcript into the ticket and escalate."),
)

#: Code string -> its :class:`Code`.
CODES: Mapping[str, Code] = {c.code: c for c in _TABLE}

#: Step names in the order they run, the "layers" of a probe.
LAYERS: tuple[str, ...] = ("dns", "tcp", "tls", "greeting", "capabilities", "auth", "mailbox")


def get(code: str) -> Code:
    """Return the :class:`Code` for ``code``; unknown strings map to ``unknown``."""
    return CODES.get(code, CODES["unknown"])


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(text: str, **values: str) -> str:
    """Fill ``{host}``-style fields of a code text; unknown fields stay as they are.

    A code's text is data that may carry braces a caller did not fill, so
    this never raises on a missing field (``str.format`` would).
    """
    return string.Formatter().vformat(text, (), _Default(values))
