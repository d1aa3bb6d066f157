"""POP3, as much as the doctor needs (RFC 1939, 2449, 2595, 5034).

POP3 matters to the doctor for one reason: an account that answers on
110/995 while IMAP is off is POP-only, and the CRM cannot use it. So the
probe goes as far as STAT, to prove the login works.
"""

from __future__ import annotations

from mailhat_nb.diagnose.classify import (
    USER_REFUSED,
    Diagnosed,
    classify_auth_reply,
    starttls_refused,
    wrong_protocol,
)
from mailhat_nb.diagnose.session import Session, b64, sasl_plain
from mailhat_nb.diagnose.wire import Channel
from mailhat_nb.secrets import Secret


class Pop3Session(Session):
    """A POP3 conversation for the doctor."""

    protocol = "pop3"

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        #: False when the server answered CAPA with -ERR (an RFC 1939-only server).
        self.capa = False
        #: CAPA's ``LOGIN-DELAY`` seconds (RFC 2449), quoted when a login is delayed.
        self.login_delay = ""

    def _command(self, text: str, masked_as: str | None = None) -> str:
        self.chan.send_line(text, secret=masked_as is not None, shown=masked_as)
        return self.chan.read_line()

    def _multiline(self) -> list[str]:
        lines: list[str] = []
        until = self.chan.deadline()  # the whole listing, not each line
        while True:
            line = self.chan.read_line(until=until)
            if line == ".":
                return lines
            lines.append(line[1:] if line.startswith("..") else line)

    def greeting(self, timeout: float) -> str:  # noqa: D102 - see Session
        line = self.chan.read_line(timeout=timeout)
        if line.startswith("+OK"):
            return line[:160]
        if line.startswith("-ERR"):
            raise Diagnosed("server_disconnected", f"the server refused the session: {line[:160]}")
        raise wrong_protocol(line, "POP3")

    def capabilities(self) -> str:  # noqa: D102
        reply = self._command("CAPA")
        if not reply.startswith("+OK"):
            self.caps, self.capa = set(), False
            return "CAPA not supported (an old server)"
        self.capa = True
        caps: set[str] = set()
        for line in self._multiline():
            words = line.upper().split()
            if not words:
                continue
            caps.add(words[0])
            if words[0] == "LOGIN-DELAY" and len(words) > 1:
                self.login_delay = words[1]
            if words[0] == "SASL":
                caps |= {f"SASL={mech}" for mech in words[1:]}
        self.caps = caps
        return self.caps_detail()

    def starttls(self) -> None:  # noqa: D102
        if "STLS" not in self.caps:
            raise Diagnosed("starttls_unavailable", "the server does not list STLS in CAPA")
        reply = self._command("STLS")
        if not reply.startswith("+OK"):
            raise starttls_refused(reply)

    def _password_sasl(self) -> list[str]:
        """SASL mechanisms listed in CAPA that carry a password as it is."""
        return sorted(c[5:] for c in self.caps if c.startswith("SASL=") and
                      c[5:] in ("PLAIN", "LOGIN"))

    def _refuse_unlisted(self) -> None:
        """Refuse to send a password the server's CAPA does not ask for.

        Dovecot and others drop USER and the plain SASL mechanisms from CAPA
        where they refuse passwords in clear text (RFC 2449: no USER, no
        USER/PASS).
        """
        if self.capa and "USER" not in self.caps and not self._password_sasl():
            listed = sorted(c.replace("SASL=", "SASL ") for c in self.caps
                            if c == "STLS" or c.startswith("SASL="))
            raise Diagnosed("plaintext_auth_disabled",
                            "CAPA lists neither USER nor SASL PLAIN/LOGIN on this unencrypted "
                            "connection" + (f" (it lists {', '.join(listed)})" if listed else "")
                            + "; no password was sent")

    def plaintext_offer(self, username: str) -> str:  # noqa: D102 - see Session
        sasl = self._password_sasl()
        self._refuse_unlisted()
        if self.capa and "USER" not in self.caps:
            return f"CAPA lists SASL {' '.join(sasl)}"
        # USER listed, or no CAPA to go by: USER (never PASS) shows whether the
        # server would go on to take the password here. The username is no secret.
        reply = self._command(f"USER {username}")
        if reply.startswith("+OK"):
            listed = "CAPA lists USER" if self.capa else "no CAPA to go by"
            return f"{listed}, and USER was accepted: the server waits for the password"
        if sasl:
            return f"USER refused, but CAPA lists SASL {' '.join(sasl)}"
        # Refused with [AUTH] (Cyrus: "-ERR [AUTH] Invalid user"), the username was judged.
        code = classify_auth_reply(reply)
        if code not in ("plaintext_auth_disabled", "auth_failed") or (
                code == "auth_failed" and "[AUTH]" not in reply.upper()):
            code = "unknown"
        raise Diagnosed(code, f"{USER_REFUSED}: {self.said(reply[:160])}; no password was sent")

    def authenticate(self, username: str, password: Secret) -> str:  # noqa: D102
        if not self.encrypted:
            self._refuse_unlisted()
        if "SASL=PLAIN" in self.caps:
            # RFC 5034's initial response: the login in one round trip.
            how = "AUTH PLAIN"
            reply = self._command(f"AUTH PLAIN {sasl_plain(username, password)}",
                                  masked_as="AUTH PLAIN ***")
        elif "SASL=LOGIN" in self.caps:
            # Before USER/PASS, as mail clients do: a server without SASL PLAIN may
            # list USER and still refuse PASS (Dovecot, whose PASS is PLAIN underneath).
            how = "AUTH LOGIN"
            reply = self._command("AUTH LOGIN")
            for field in (username, password.reveal()):
                if reply.split(" ", 1)[0] != "+":  # not asking for it (RFC 5034 "+ ...")
                    break
                reply = self._command(b64(field), masked_as="***")
        else:
            how = "USER/PASS"
            reply = self._command(f"USER {username}")
            if reply.startswith("+OK"):
                reply = self._command(f"PASS {password.reveal()}", masked_as="PASS ***")
            else:
                how = "USER"  # refused: the username itself, before any password
        if reply.startswith("+OK"):
            return f"logged in as {username} with {how}"
        code = classify_auth_reply(reply)
        delay = (f" (CAPA: LOGIN-DELAY {self.login_delay}: the server allows one login per "
                 f"{self.login_delay} s)" if code == "login_delayed" and self.login_delay else "")
        if code == "auth_failed" and how == "USER/PASS" and not password.reveal().isascii():
            code = "password_not_ascii"
        raise Diagnosed(code, f"{how} rejected: {self.said(reply[:160])}{delay}")

    def mailbox(self) -> str:  # noqa: D102
        reply = self._command("STAT")
        if not reply.startswith("+OK"):
            raise Diagnosed("mailbox_unavailable", f"STAT failed: {self.said(reply[:160])}")
        parts = reply.split()
        count = parts[1] if len(parts) > 1 else "?"
        size = parts[2] if len(parts) > 2 else "?"
        return f"STAT: {self.said(count)} messages, {self.said(size)} bytes"
