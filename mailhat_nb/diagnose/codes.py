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
        What the agent should do about this cause, naming no other setting
        ("use SSL/TLS on 993" may be the very setting that failed): the
        verdict, and each row, add the settings that worked in the same
        sweep (:mod:`mailhat_nb.diagnose.verdict`), so nothing recommends
        a setting whose row failed.
    host_side:
        True when the fault is the server's (its TLS, its certificate, a hung
        service): nothing in the customer's settings fixes it, the host must.
    """

    code: str
    status: str
    title: str
    explanation: str
    remedy: str
    host_side: bool = False


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
         "Nothing accepts connections on this port: if the server's other mail ports "
         "answer, this service is off for the account (ask the host to enable it); if "
         "none does, check the server name and the address it leads to, and ask the host "
         "whether the mail server is up."),
    Code("connect_timeout", "fail", "Connection timed out",
         "Connections to {host} on port {port} get no answer at all: a firewall drops them, "
         "or the client's IP address is blocked.",
         "Check whether the customer's network blocks the port; if every port times out, the "
         "IP may be blocked by the host's firewall (cPHulk/CSF after failed logins): ask "
         "HostGator support to whitelist the IP."),
    Code("no_greeting", "fail", "Server never answered",
         "The connection to {host}:{port} opened but the server never said hello.",
         "The mail service behind this port is stuck or a proxy swallows it: report the "
         "port to the host.", host_side=True),
    Code("tls_on_plain_port", "fail", "Port expects SSL/TLS",
         "Port {port} on {host} speaks encrypted SSL/TLS, but the settings say no encryption.",
         "This port expects encryption from the first byte: the security chosen for it "
         "is wrong."),
    Code("plain_on_tls_port", "fail", "Port does not speak SSL/TLS",
         "Port {port} on {host} answers without encryption, but the settings say SSL/TLS.",
         "This port does not speak SSL/TLS: the security chosen for it is wrong, or the "
         "host has turned encryption off on it."),
    Code("cert_hostname_mismatch", "fail", "Certificate for another name",
         "The server's certificate is valid, but for {names}, not for {host}.",
         "Enter a server name the certificate covers{recommended} (for HostGator: the "
         "server name from the welcome email, not mail.<domain>)."),
    Code("cert_untrusted", "fail", "Untrusted certificate",
         "The server's certificate is not issued by an authority the CRM trusts (for "
         "example, it is self-signed).",
         "Enter the server name whose certificate is trusted (HostGator: the gatorNNNN "
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
         "The server's TLS is broken: report it to the host with the transcript (nothing "
         "in the customer's settings fixes it).", host_side=True),
    Code("starttls_unavailable", "fail", "STARTTLS not offered",
         "The server on {host}:{port} does not offer to switch to encryption (STARTTLS).",
         "The server does not offer encryption (STARTTLS) on this port: ask the host "
         "whether encryption is available for this service."),
    Code("starttls_failed", "fail", "STARTTLS failed on the server",
         "The server on {host}:{port} offers to switch to encryption (STARTTLS), but the switch "
         "fails on its side; its own words are in the details.",
         "The server's TLS is broken (STARTTLS fails on its side): report it to the host "
         "with its words from the transcript (nothing in the customer's settings fixes "
         "it).", host_side=True),
    Code("plaintext_auth_disabled", "fail", "Login without encryption refused",
         "The server refuses passwords over an unencrypted connection.",
         "The server is right to refuse passwords without encryption: only an encrypted "
         "setting can work here."),
    Code("plaintext_password_exposed", "warn", "Unencrypted login allowed",
         "The server on {host}:{port} accepts the password without encryption: with these "
         "settings it would cross the network in clear text, readable along the way.",
         "With this setting the password crosses the network in clear text: use it only "
         "if the CRM can do nothing else and the customer accepts that, and ask the host "
         "to offer encryption."),
    Code("auth_failed", "fail", "Login rejected",
         "The server rejected the username or password.",
         "Check the username the server expects (the full address or a short login name: "
         "the host knows) and have the customer reset the email password; do not retry "
         "repeatedly (the host's firewall may block the IP after a few failures)."),
    Code("account_locked", "fail", "Account barred by the server",
         "The server says the account cannot log in until its administrator acts (its "
         "password expired, or the account is suspended or locked); its own words are in "
         "the details.",
         "Ask the host what bars the account (an expired password, a suspension, a lock "
         "after failed logins) and to lift it; a new password alone may not help.",
         host_side=True),
    Code("login_delayed", "fail", "Login refused for now",
         "The server refused this login for now (too soon after the last one, or too many "
         "at once), before judging the password: the password may well be right.",
         "Wait and run the doctor again (the server's minimum delay between logins is in "
         "the details); if the customer's mail app polls this mailbox, the doctor meets its "
         "limit too. Do not reset the password: it was not judged."),
    Code("server_unavailable", "fail", "Server could not log in",
         "The server on {host}:{port} could not process the login because of a fault on its "
         "side (its own words are in the details); the password was not judged.",
         "Retry in a few minutes; if it persists, report it to the host with the "
         "transcript (nothing in the customer's settings fixes it).", host_side=True),
    Code("password_not_ascii", "fail", "Password has special characters",
         "The password contains characters (like ü or ß) that this server's login command "
         "cannot carry.",
         "Have the customer set a password of plain letters, digits and punctuation, or use "
         "a preset whose server supports AUTHENTICATE PLAIN."),
    Code("wrong_protocol", "fail", "Wrong kind of server",
         "Port {port} on {host} answers, but with a different protocol than {protocol}.",
         "Another kind of server answers on this port: check the port number typed for "
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
         "This sending port offers no login; port 25 often only accepts mail for local "
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

#: The remedy of ``cert_hostname_mismatch`` when no name the certificate covers
#: was shown to lead to the server (:func:`mailhat_nb.diagnose.certificate.vet`):
#: recommending one would send the agent to a DNS error, or to another server.
NO_NAME_LEADS_HERE = ("No name the certificate covers leads to this server ({not_here}): ask "
                      "the host to install a certificate that covers {host}, or to say which "
                      "name to use.")

#: What a hosting control panel's habits add to a code's remedy, by (panel, code):
#: said only for presets whose file names the panel (``panel = "cpanel"``).
PANEL_NOTES: Mapping[tuple[str, str], str] = {
    ("cpanel", "auth_failed"): "cPanel: the username is the full email address, and the "
                               "password is reset under Email Accounts.",
}

#: Code string -> its :class:`Code`.
CODES: Mapping[str, Code] = {c.code: c for c in _TABLE}

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
