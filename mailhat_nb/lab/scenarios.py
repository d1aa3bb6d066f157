"""The lab's switchable fault scenarios, as data.

Each scenario is a real server configuration (a Dovecot or Exim config, a
certificate, a key the server cannot read, a port held open by a silent
listener, a listen queue that drops SYNs), never an instruction to the client
to misbehave. ``mailhat lab scenario NAME`` re-renders the configs, reloads
Dovecot, restarts Exim when its config changed, rebinds the sidecar's ports
and checks that the wire now behaves as described.

Service names are the lab's listeners; the port each stands for is in
:data:`STANDS_FOR`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhat_nb.lab.hostile import MISBEHAVIOURS

#: Every client-facing listener of the lab, and the standard port it stands for.
STANDS_FOR: dict[str, int] = {
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
    "smtp": 25,
    "smtp_alt": 26,
    "submission": 587,
    "submissions": 465,
}
IMAP_SERVICES = ("imap", "imaps")
TLS_SERVICES = frozenset({"imaps", "pop3s", "submissions"})
PROTOCOL_OF: dict[str, str] = {
    "imap": "imap", "imaps": "imap", "pop3": "pop3", "pop3s": "pop3",
    "smtp": "smtp", "smtp_alt": "smtp", "submission": "smtp", "submissions": "smtp",
}
#: The listeners Exim serves; Dovecot serves the others.
SMTP_SERVICES = tuple(s for s, protocol in PROTOCOL_OF.items() if protocol == "smtp")

#: The loopback address a client must use for Dovecot to treat it as remote.
#: Dovecot counts a connection whose client and server addresses are equal
#: (127.0.0.1 to 127.0.0.1) as secured and allows plaintext login whatever the
#: settings; connecting to 127.0.0.2 from the default source 127.0.0.1 does not.
INSECURE_HOST = "127.0.0.2"


@dataclass(frozen=True)
class Scenario:
    """One configuration of the lab server.

    Attributes
    ----------
    name, title, story:
        The id, a one-line title, and what a customer would be living
        through (used by the training walkthrough).
    expect:
        The diagnosis code the doctor should give for the presets the fault
        is on: the IMAP presets, or the SMTP ones for an SMTP fault.
    cert:
        Which certificate Dovecot and Exim serve (see :mod:`mailhat_nb.lab.certs`).
    broken_key:
        Dovecot's IMAP and POP3 serve a private key that does not belong to
        their certificate (a botched renewal): every TLS handshake fails on
        the server's side. Implicit TLS (993, 995) is reset mid-handshake;
        STARTTLS is offered, accepted, then answered in plain text
        (``* BYE [UNAVAILABLE] TLS initialization failed.``) and dropped.
    plaintext_auth:
        Dovecot's ``disable_plaintext_auth = no`` when true.
    smtp_plaintext_auth:
        Exim advertises AUTH before TLS too. False is cPanel's default ("Require
        SSL/TLS for authentication"): AUTH appears only after STARTTLS or on 465.
    tls_key_unreadable:
        SMTP services whose private key Exim cannot read: the 465 stand-in
        breaks off every handshake, the others answer STARTTLS with ``454``.
    imap:
        False turns IMAP off entirely: a POP-only account.
    silent, blackhole, closed:
        Services whose port accepts TCP and never speaks, never completes the
        TCP handshake, or is closed.
    server:
        The server name to diagnose the lab with in this scenario.
    hostile:
        A misbehaviour of :data:`mailhat_nb.lab.hostile.MISBEHAVIOURS`: the
        sidecar holds the IMAP ports with a server that misbehaves so.
    training:
        Shown in the training walkthrough (a fault an agent will meet).
    imap_without:
        IMAP capabilities Dovecot does not advertise (before and after
        login): a server without LIST-STATUS, SASL-IR or CONDSTORE, for the
        sync's fallbacks. The commands still work if sent; a client that
        reads the capabilities, as it must, does not send them.
    auth_plain:
        Dovecot and Exim offer the SASL PLAIN mechanism (IMAP ``AUTH=PLAIN``,
        POP3 ``SASL PLAIN``, SMTP ``AUTH PLAIN``). False leaves SASL LOGIN
        alone, as some servers do; Dovecot then refuses its IMAP ``LOGIN``
        command and POP3 ``PASS`` too (PLAIN underneath), though its CAPA
        still lists ``USER``.
    """

    name: str
    title: str
    story: str
    expect: str
    cert: str = "server"
    broken_key: bool = False
    plaintext_auth: bool = True
    smtp_plaintext_auth: bool = False
    tls_key_unreadable: tuple[str, ...] = ()
    imap: bool = True
    silent: tuple[str, ...] = ()
    blackhole: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()
    server: str = "localhost"
    hostile: str = ""
    training: bool = True
    imap_without: tuple[str, ...] = ()
    auth_plain: bool = True

    @property
    def protocol(self) -> str:
        """The protocol whose presets the fault is on (``expect`` is their code)."""
        return "smtp" if self.tls_key_unreadable else "imap"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "normal", "Everything works",
            "A healthy cPanel-style server: IMAP, POP3 and SMTP over SSL/TLS and "
            "STARTTLS; IMAP and POP3 (with a warning) in plain text too, while SMTP "
            "takes a password only after STARTTLS, as cPanel's Exim does by default.",
            expect="ok",
        ),
        Scenario(
            "wrong-host-cert", "Certificate for another host name",
            "The customer typed mail.<their domain>, but the shared server's "
            "certificate only names the server itself (gator4321.hostgator.com).",
            expect="cert_hostname_mismatch", cert="wrong-host",
        ),
        Scenario(
            "expired-cert", "Expired certificate",
            "The server's certificate ran out last month and was not renewed.",
            expect="cert_expired", cert="expired",
        ),
        Scenario(
            "self-signed", "Self-signed certificate",
            "The server presents a certificate it issued itself; no CA vouches for it.",
            expect="cert_untrusted", cert="self-signed",
        ),
        Scenario(
            "pop-only", "POP-only account",
            "The mailbox can only be reached over POP3; IMAP is off. The CRM "
            "needs IMAP, so it cannot connect until the host enables IMAP.",
            expect="pop_only", imap=False,
        ),
        Scenario(
            "plaintext-disabled", "Plain-text login refused",
            "The server refuses passwords over an unencrypted connection "
            "(port 143 with security 'none', SMTP without STARTTLS); STARTTLS or "
            "port 993 works.",
            expect="plaintext_auth_disabled", plaintext_auth=False, server=INSECURE_HOST,
        ),
        Scenario(
            "plaintext-allowed", "Plain-text login allowed",
            "The server accepts passwords over an unencrypted connection (IMAP, "
            "POP3 and SMTP): it works, but the password crosses the network in "
            "clear text.",
            expect="plaintext_password_exposed", server=INSECURE_HOST,
            smtp_plaintext_auth=True,
        ),
        Scenario(
            "no-greeting", "Port accepts but never greets",
            "Something answers on the IMAP ports (a stuck server, a proxy) but "
            "never sends the IMAP greeting.",
            expect="no_greeting", silent=IMAP_SERVICES,
        ),
        Scenario(
            "firewalled", "IMAP ports filtered",
            "A firewall silently drops packets to the IMAP ports: connections "
            "never complete.",
            expect="connect_timeout", blackhole=IMAP_SERVICES,
        ),
        Scenario(
            "ip-blocked", "Client IP blocked",
            "After repeated failed logins the host's firewall (cPHulk, CSF) "
            "blocked the client's IP: every mail port times out.",
            expect="connect_timeout", blackhole=tuple(STANDS_FOR),
        ),
        Scenario(
            "closed-port", "Port 993 closed",
            "Nothing listens on the IMAP SSL/TLS port; port 143 still works.",
            expect="connection_refused", closed=("imaps",),
        ),
        # -- Faults on the server's side (Dovecot's TLS, or all of Exim's), where the
        # -- verdict must weigh every preset's evidence, not take the one that got furthest.
        Scenario(
            "tls-broken", "The server's TLS is broken",
            "The host renewed the mail server's certificate but not its key: every "
            "encrypted connection fails on the server's side (993 hangs up in the middle "
            "of the handshake; 143 offers STARTTLS, then says 'TLS initialization "
            "failed'). Only the unencrypted setting is left, and it should not be used.",
            expect="tls_handshake_failed", broken_key=True,
        ),
        Scenario(
            "starttls-broken", "STARTTLS fails on the server",
            "The host opened only port 143, and its TLS is broken: STARTTLS is offered, "
            "then fails on the server's side. Passwords without encryption are refused "
            "(rightly), so nothing the customer types can work until the host fixes TLS.",
            expect="starttls_failed", broken_key=True, closed=("imaps",),
            plaintext_auth=False, server=INSECURE_HOST,
        ),
        Scenario(
            "self-signed-no-plaintext", "Self-signed certificate, clear text refused",
            "The server presents a certificate it issued itself and refuses passwords "
            "without encryption: every encrypted setting fails on the certificate, the "
            "unencrypted one is refused. The certificate is the problem, not the refusal.",
            expect="cert_untrusted", cert="self-signed", plaintext_auth=False,
            server=INSECURE_HOST,
        ),
        Scenario(
            "smtp-tls-broken", "SMTP's TLS is broken",
            "The host's Exim cannot read its private key at all: 465 cuts every "
            "SSL/TLS connection off during the handshake, and 587, 25 and 26 list "
            "STARTTLS, then answer '454 TLS currently unavailable'. AUTH is offered only "
            "after TLS, so no outgoing setting works until the host fixes it.",
            expect="tls_handshake_failed",
            tls_key_unreadable=("submissions", "smtp", "smtp_alt", "submission"),
        ),
        # A server that sends what no mail server sends, one scenario per way
        # (hostile-endless-line, hostile-huge-literal, ...): for the tests that show
        # a client stops within its timeout and under its memory bound.
        *(Scenario(f"hostile-{name}", f"Hostile IMAP server: {name}",
                   f"The IMAP ports are held by a server that misbehaves: {what}.",
                   expect="server_misbehaved", hostile=name, training=False)
          for name, what in MISBEHAVIOURS.items()),
        # Servers without what the doctor uses where it is offered (fewer round
        # trips): the same verdict the longer way (mailhat_nb/diagnose/imap.py).
        Scenario(
            "no-auth-plain", "No SASL PLAIN",
            "The mail servers offer no SASL PLAIN, only SASL LOGIN (and Dovecot then "
            "refuses IMAP's LOGIN command and POP3's PASS, PLAIN underneath): a client "
            "logs in with SASL LOGIN, in more round trips, and everything works.",
            expect="ok", auth_plain=False, training=False,
        ),
        # SMTP faults: Exim's own failures, on the SMTP presets.
        Scenario(
            "smtp-tls-handshake-fails", "SMTP SSL/TLS port breaks off the handshake",
            "After a certificate renewal the host's Exim cannot read the private key "
            "it uses on port 465: every SSL/TLS connection there is cut off during "
            "the handshake. STARTTLS on 587, 25 and 26 still works.",
            expect="tls_handshake_failed", tls_key_unreadable=("submissions",),
        ),
        Scenario(
            "smtp-starttls-fails", "SMTP STARTTLS offered, then failing on the server",
            "Exim lists STARTTLS on 587, 25 and 26, then answers '454 TLS currently "
            "unavailable': the private key it uses on those ports is unreadable to "
            "it. SSL/TLS on 465 still works.",
            expect="starttls_failed", tls_key_unreadable=("smtp", "smtp_alt", "submission"),
        ),
        # -- Servers that lack an extension the sync uses where it is offered:
        # -- the sync must fall back and store exactly what it stores elsewhere
        # -- (nothing for an agent to learn: not in the walkthrough).
        *(Scenario(name, title, story, expect="ok", training=False, imap_without=without)
          for name, title, without, story in (
              ("no-list-status", "No LIST-STATUS", ("LIST-STATUS",),
               "An IMAP server without RFC 5819's LIST-STATUS: each folder's counts take a "
               "STATUS command of their own."),
              ("no-sasl-ir", "No SASL-IR", ("SASL-IR",),
               "An IMAP server without SASL-IR (RFC 4959): a login cannot carry the password "
               "with the AUTHENTICATE command, so clients use LOGIN."),
              ("no-condstore", "No CONDSTORE", ("CONDSTORE", "QRESYNC"),
               "An IMAP server without CONDSTORE or QRESYNC: no modification sequences, so "
               "every sync reads every message's flags to see what changed."),
              ("imap4rev1-only", "A plain IMAP4rev1 server",
               ("LIST-STATUS", "SASL-IR", "CONDSTORE", "QRESYNC", "ESEARCH", "ENABLE",
                "LIST-EXTENDED", "SPECIAL-USE"),
               "An older IMAP server with none of the extensions above, nor ESEARCH, ENABLE, "
               "LIST-EXTENDED or SPECIAL-USE: everything still works, in more round trips."),
          )),
    )
}


def get(name: str) -> Scenario:
    """Return the scenario called ``name``.

    Raises
    ------
    KeyError
        With the list of known names, for the CLI to show.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise KeyError(f"unknown scenario {name!r}; known: {known}") from None


def bound_services(scenario: Scenario) -> tuple[str, ...]:
    """Services the lab's servers (Dovecot, Exim) listen on in ``scenario``."""
    off = set(scenario.silent) | set(scenario.blackhole) | set(scenario.closed)
    if not scenario.imap or scenario.hostile:
        off |= set(IMAP_SERVICES)
    return tuple(s for s in STANDS_FOR if s not in off)
